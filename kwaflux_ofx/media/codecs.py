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
    oiio_attributes: tuple[tuple[str, str | int], ...] = ()
    timecode_attribute: bool = False  # the image format stores a SMPTE timecode per frame
    # The encoder option that takes its own "key=value:key=value" list (HDR metadata goes there).
    params_option: str = ""
    # ProRes and DNxHR are video range by definition; other codecs keep the source's range.
    limited_range: bool = False


def _prores(profile: int, alpha: bool = False) -> Encoder:
    # 4444 and XQ are 4:4:4 (with alpha where the source has it); the others 4:2:2, all 10-bit.
    pix = "yuv444p10le" if alpha else "yuv422p10le"
    return Encoder(
        "prores_ks",
        pix,
        pix,
        "yuva444p10le" if alpha else "",
        options=(("profile", str(profile)), ("vendor", "apl0")),
        limited_range=True,
    )


def _dnxhr(profile: str, pix_fmt: str) -> Encoder:
    # A DNxHR profile fixes its pixel format: the encoder refuses any other.
    return Encoder(
        "dnxhd", pix_fmt, pix_fmt, options=(("profile", f"dnxhr_{profile}"),), limited_range=True
    )


ENCODERS: dict[str, Encoder] = {
    "prores_proxy": _prores(0),
    "prores_lt": _prores(1),
    "prores_422": _prores(2),
    "prores_422hq": _prores(3),
    "prores_4444": _prores(4, alpha=True),
    "prores_4444xq": _prores(5, alpha=True),
    "dnxhr_lb": _dnxhr("lb", "yuv422p"),
    "dnxhr_sq": _dnxhr("sq", "yuv422p"),
    "dnxhr_hq": _dnxhr("hq", "yuv422p"),
    "dnxhr_hqx": _dnxhr("hqx", "yuv422p10le"),
    "dnxhr_444": _dnxhr("444", "yuv444p10le"),
    "h264": Encoder(
        "libx264",
        "yuv420p",
        "yuv420p10le",
        options=(("crf", "14"), ("preset", "medium")),
        params_option="x264-params",
    ),
    "h265": Encoder(
        "libx265",
        "yuv420p",
        "yuv420p10le",
        options=(("crf", "16"), ("preset", "medium"), ("x265-params", "log-level=error")),
        params_option="x265-params",
    ),
    # SVT-AV1, the AV1 encoder the PyAV wheel bundles (no libaom-av1 or librav1e there).
    "av1": Encoder(
        "libsvtav1",
        "yuv420p",
        "yuv420p10le",
        options=(("crf", "24"), ("preset", "8")),
        params_option="svtav1-params",
    ),
    "ffv1": Encoder("ffv1", "yuv444p", "yuv444p16le", options=(("level", "3"), ("slicecrc", "1"))),
    "exr": Encoder(oiio_format="half", timecode_attribute=True),
    "exr_float": Encoder(oiio_format="float", timecode_attribute=True),
    # 10-bit samples in 16-bit words on the way in; OIIO packs them as DPX stores them.
    "dpx": Encoder(oiio_format="uint16", oiio_attributes=(("oiio:BitsPerSample", 10),)),
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
