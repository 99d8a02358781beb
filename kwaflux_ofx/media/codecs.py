"""How each codec of settings.CODECS is encoded (PyAV for video, OIIO for image sequences)."""

from __future__ import annotations

import dataclasses

from kwaflux_ofx.settings import CODECS as CODEC_CHOICES
from kwaflux_ofx.settings import Codec


@dataclasses.dataclass(frozen=True)
class Encoder:
    """The encoder side of one codec."""

    av_codec: str = ""
    pix_fmt_8: str = ""  # pixel format for 8-bit sources
    pix_fmt_hi: str = ""  # pixel format for sources above 8 bits
    pix_fmt_alpha: str = ""  # pixel format when the codec keeps an alpha channel
    options: tuple[tuple[str, str], ...] = ()
    oiio_format: str = ""  # sample type of image sequences
    oiio_attributes: tuple[tuple[str, str], ...] = ()
    timecode_attribute: bool = False  # the image format stores a SMPTE timecode per frame


ENCODERS: dict[str, Encoder] = {
    "prores_422hq": Encoder(
        "prores_ks", "yuv422p10le", "yuv422p10le", options=(("profile", "3"), ("vendor", "apl0"))
    ),
    "prores_4444": Encoder(
        "prores_ks",
        "yuv444p10le",
        "yuv444p10le",
        "yuva444p10le",
        options=(("profile", "4"), ("vendor", "apl0")),
    ),
    "dnxhr_hqx": Encoder(
        "dnxhd", "yuv422p10le", "yuv422p10le", options=(("profile", "dnxhr_hqx"),)
    ),
    "h264": Encoder(
        "libx264", "yuv420p", "yuv420p10le", options=(("crf", "14"), ("preset", "medium"))
    ),
    "h265": Encoder(
        "libx265",
        "yuv420p",
        "yuv420p10le",
        options=(("crf", "16"), ("preset", "medium"), ("x265-params", "log-level=error")),
    ),
    "ffv1": Encoder("ffv1", "yuv444p", "yuv444p16le", options=(("level", "3"), ("slicecrc", "1"))),
    "exr": Encoder(
        oiio_format="half", oiio_attributes=(("compression", "zip"),), timecode_attribute=True
    ),
    "png": Encoder(oiio_format="uint16"),
    "tiff": Encoder(oiio_format="uint16"),
}


@dataclasses.dataclass(frozen=True)
class CodecSpec:
    """One codec: what it can do (settings.Codec) and how it is encoded."""

    codec: Codec
    encoder: Encoder

    def __getattr__(self, name: str):
        # name, ext, alpha, is_sequence, min_size... from the Codec; av_codec... from the Encoder.
        if name.startswith("__") or name in ("codec", "encoder"):
            raise AttributeError(name)  # not set yet (copy, pickle): no recursion
        for part in (self.codec, self.encoder):
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(name)


CODECS: dict[str, CodecSpec] = {
    name: CodecSpec(codec, ENCODERS[name]) for name, codec in CODEC_CHOICES.items()
}
