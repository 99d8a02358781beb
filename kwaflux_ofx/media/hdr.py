"""HDR10 static metadata (mastering display, content light level) from frames to encoders.

It is read from a source's decoded frames and written through the encoders that take it as
parameters (x264, x265, SVT-AV1). PyAV cannot attach it to a stream or a frame it encodes, so
codecs that carry it only as container side data (ProRes and DNxHR in MOV/MXF, FFV1 in MKV)
are written without it.
"""

from __future__ import annotations

import struct

# AVMasteringDisplayMetadata: display_primaries[3][2] (R, G, B), white_point[2], min and max
# luminance, all AVRational (two ints), then has_primaries and has_luminance.
_MASTERING = struct.Struct("<20i2i")
# AVContentLightMetadata: MaxCLL, MaxFALL (unsigned).
_LIGHT = struct.Struct("<2I")


def read_hdr(frame) -> dict | None:
    """The frame's HDR10 metadata as {"mastering": {...}, "light": (max_cll, max_fall)}, the
    parts it has; None when it has neither."""
    found: dict = {}
    for side in getattr(frame, "side_data", None) or ():
        kind = getattr(side.type, "name", str(side.type))
        data = bytes(side)
        if kind == "MASTERING_DISPLAY_METADATA" and len(data) >= _MASTERING.size:
            mastering = _mastering(_MASTERING.unpack_from(data))
            if mastering:
                found["mastering"] = mastering
        elif kind == "CONTENT_LIGHT_LEVEL" and len(data) >= _LIGHT.size:
            found["light"] = _LIGHT.unpack_from(data)
    return found or None


def _mastering(v: tuple[int, ...]) -> dict | None:
    def q(i: int) -> float:
        return v[i] / v[i + 1] if v[i + 1] else 0.0

    has_primaries, has_luminance = v[20], v[21]
    if not (has_primaries and has_luminance):
        return None  # the encoders take the whole set or nothing
    return {
        "red": (q(0), q(2)),
        "green": (q(4), q(6)),
        "blue": (q(8), q(10)),
        "white": (q(12), q(14)),
        "luminance": (q(16), q(18)),  # min, max in cd/m2
    }


def params_for(av_codec: str, hdr: dict | None) -> str:
    """The metadata in the encoder's own parameter syntax ("" where it takes none)."""
    if not hdr:
        return ""
    style = {"libx264": "x26x", "libx265": "x26x", "libsvtav1": "svt"}.get(av_codec)
    if style is None:
        return ""
    out = []
    m, light = hdr.get("mastering"), hdr.get("light")
    if m:
        if style == "x26x":  # chromaticity in 1/50000, luminance in 1/10000 cd/m2

            def xy(p):
                return f"({round(p[0] * 50000)},{round(p[1] * 50000)})"

            lo, hi = (round(x * 10000) for x in m["luminance"])
            key = "master-display" if av_codec == "libx265" else "mastering-display"
        else:  # SVT-AV1 takes the values themselves

            def xy(p):
                return f"({p[0]:.4f},{p[1]:.4f})"

            lo, hi = (f"{x:.4f}" for x in m["luminance"])
            key = "mastering-display"
        g, b, r, w = (xy(m[k]) for k in ("green", "blue", "red", "white"))
        out.append(f"{key}=G{g}B{b}R{r}WP{w}L({hi},{lo})")
    if light:
        key = {"libx265": "max-cll", "libx264": "cll", "libsvtav1": "content-light"}[av_codec]
        out.append(f"{key}={light[0]},{light[1]}")
    return ":".join(out)
