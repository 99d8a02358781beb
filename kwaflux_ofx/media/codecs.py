"""The output codecs `--codec` offers and how each is written."""

from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CodecSpec:
    """How one `--codec` choice is written."""

    name: str
    kind: str  # "video" or "sequence"
    ext: str
    av_codec: str = ""
    pix_fmt_8: str = ""  # pixel format for 8-bit sources
    pix_fmt_hi: str = ""  # pixel format for sources above 8 bits
    options: tuple[tuple[str, str], ...] = ()
    oiio_format: str = ""  # sample type of image sequences
    min_size: tuple[int, int] = (1, 1)
    even_size: bool = False


CODECS: dict[str, CodecSpec] = {
    c.name: c
    for c in (
        CodecSpec(
            "prores_422hq",
            "video",
            ".mov",
            "prores_ks",
            "yuv422p10le",
            "yuv422p10le",
            (("profile", "3"), ("vendor", "apl0")),
        ),
        CodecSpec(
            "prores_4444",
            "video",
            ".mov",
            "prores_ks",
            "yuv444p10le",
            "yuv444p10le",
            (("profile", "4"), ("vendor", "apl0")),
        ),
        # DNxHR HQX is a 10-bit profile; the encoder refuses frames under 256x120.
        CodecSpec(
            "dnxhr_hqx",
            "video",
            ".mov",
            "dnxhd",
            "yuv422p10le",
            "yuv422p10le",
            (("profile", "dnxhr_hqx"),),
            min_size=(256, 120),
        ),
        CodecSpec(
            "h264",
            "video",
            ".mov",
            "libx264",
            "yuv420p",
            "yuv420p10le",
            (("crf", "14"), ("preset", "medium")),
            even_size=True,
        ),
        CodecSpec(
            "h265",
            "video",
            ".mov",
            "libx265",
            "yuv420p",
            "yuv420p10le",
            (("crf", "16"), ("preset", "medium"), ("x265-params", "log-level=error")),
            even_size=True,
        ),
        # The mov muxer has no FFV1 tag; Matroska carries it (and the timecode as a tag).
        CodecSpec(
            "ffv1",
            "video",
            ".mkv",
            "ffv1",
            "yuv444p",
            "yuv444p16le",
            (("level", "3"), ("slicecrc", "1")),
        ),
        CodecSpec("exr", "sequence", ".exr", oiio_format="half"),
        CodecSpec("png", "sequence", ".png", oiio_format="uint16"),
        CodecSpec("tiff", "sequence", ".tif", oiio_format="uint16"),
    )
}
