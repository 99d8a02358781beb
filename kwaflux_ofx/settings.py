"""The rules every part shares: the scales, the denoise range, the input colour spaces and the output
codecs with what each can do.

Standard library only, and no imports from this package: the Resolve round trip and the Natron
script run inside the hosts' own Pythons (Resolve's may be as old as 3.6: no dataclasses, no
__future__ import, quoted annotations) and load this file by its path.
"""

import enum
import math
from typing import NamedTuple, TypeVar

# Upscaling factors a user can ask for; 1 means denoise only.
SCALES = (1, 2, 4)
DEFAULT_SCALE = 2
# The Super Resolution effect's "scale" choice, in the order of its options (1x is the Denoise
# effect's job). bridge/plugin.cpp declares the same list; tests/test_settings.py compares them.
SR_EFFECT_SCALES = (2, 4)

# Denoise strength: 0 is an exact pass-through, 1 the model's full strength.
DENOISE_MIN = 0.0
DENOISE_MAX = 1.0


def scales_text(scales: "tuple[int, ...]" = SCALES) -> str:
    """'1, 2 or 4': the choices as a message names them."""
    names = [str(s) for s in scales]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_scale(value: object, what: str = "scale") -> int:
    """`value` as an allowed scale; ValueError with a one-line message otherwise."""
    try:
        scale = int(value)  # type: ignore[call-overload]
        whole = isinstance(value, str) or scale == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        scale, whole = 0, False
    if not whole or scale not in SCALES:
        raise ValueError(f"{what} must be {scales_text()}, not {value!r}")
    return scale


# Frames on each side a temporal denoise looks at: 0 is frame by frame; 2 (five frames) is the
# default; 3 is the most, since beyond it motion leaves little of a neighbour to use.
TEMPORAL_RADIUS_DEFAULT = 2
TEMPORAL_RADIUS_MAX = 3


def check_temporal_radius(value: object, what: str = "temporal radius") -> int:
    """`value` as a whole number of frames in 0..TEMPORAL_RADIUS_MAX; ValueError otherwise."""
    try:
        radius = int(value)  # type: ignore[call-overload]
        whole = isinstance(value, str) or radius == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        radius, whole = -1, False
    if not whole or not 0 <= radius <= TEMPORAL_RADIUS_MAX:
        raise ValueError(
            f"{what} must be a whole number from 0 to {TEMPORAL_RADIUS_MAX}, not {value!r}"
        )
    return radius


class TemporalMethod(enum.Enum):
    """How a temporal denoise combines the window: the learned multi-frame model (fusion and
    model in one graph, kwaflux-temporal), or the fusion followed by the single-frame model."""

    LEARNED = "learned"
    FUSION = "fusion"


# FUSION until the learned model measures above it on real clips (python/kwaflux_lab/eval/temporal.py). Its
# first 15-minute stint beat the fusion on its synthetic validation windows (+0.43 dB at sigma
# 25) but not on real frames (bikes.mp4 39.62 vs 40.15 dB, bigbuckbunny.mp4 35.99 vs 36.60), so
# it is not shipped and stays in training. LEARNED, asked for, runs where it can (the model
# installed, a full window, the built-in denoiser it was trained from); the engine falls back to
# FUSION otherwise, and says why once.
TEMPORAL_METHOD_DEFAULT = TemporalMethod.FUSION


E = TypeVar("E", bound=enum.Enum)


def _choice(kind: type[E], value: object, what: str) -> E:
    """`value` (a member of the enum `kind`, or its value in any case) as that member;
    ValueError naming the choices otherwise."""
    if isinstance(value, kind):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    for member in kind:
        if text == member.value:
            return member
    names = " or ".join(m.value for m in kind)
    raise ValueError(f"{what} must be {names}, not {value!r}")


def check_temporal_method(value: object, what: str = "temporal method") -> TemporalMethod:
    """`value` (a TemporalMethod or its name) as a TemporalMethod; ValueError otherwise."""
    return _choice(TemporalMethod, value, what)


class SrLook(enum.Enum):
    """Which built-in super-resolution model upscales: FAITHFUL, trained for the least error
    (the default), or DETAIL, fine-tuned from it to give back fine texture (more high-frequency
    energy, a little less PSNR). models/registry.py's DEFAULTS names the model of each."""

    FAITHFUL = "faithful"
    DETAIL = "detail"

    @property
    def label(self) -> str:
        """The effect's choice label ("Faithful", "Detail"; bridge/plugin.cpp's kLooks)."""
        return self.value.capitalize()


SR_LOOK_DEFAULT = SrLook.FAITHFUL


def check_sr_look(value: object, what: str = "look") -> SrLook:
    """`value` (an SrLook, its name or its label) as an SrLook; ValueError otherwise."""
    return _choice(SrLook, value, what)


# The strength chosen from the noise level measured on the footage itself (one estimate per
# clip offline, per frame in the plugin); the default wherever a strength is asked for.
DENOISE_AUTO = "auto"


def check_denoise_or_auto(value: object, what: str = "denoise strength") -> "float | str":
    """DENOISE_AUTO, or `value` as a strength (check_denoise); ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == DENOISE_AUTO:
        return DENOISE_AUTO
    try:
        return check_denoise(value, what)
    except ValueError:
        raise ValueError(
            f"{what} must be {DENOISE_AUTO} or between {DENOISE_MIN:g} and {DENOISE_MAX:g}, "
            f"not {value!r}"
        ) from None


def check_denoise(value: object, what: str = "denoise strength") -> float:
    """`value` as a denoise strength in [DENOISE_MIN, DENOISE_MAX]; ValueError otherwise."""
    try:
        strength = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        strength = math.nan
    if math.isnan(strength) or not DENOISE_MIN <= strength <= DENOISE_MAX:
        raise ValueError(
            f"{what} must be between {DENOISE_MIN:g} and {DENOISE_MAX:g}, not {value!r}"
        )
    return strength


class ColourSpace(enum.Enum):
    """The encoding a picture arrives in. The models learned display-referred pictures (sRGB /
    Rec.709 gamma), so every other one is brought to that encoding before them and back after
    (engine/colour.py). The value is the command-line name; `label` the name editors know."""

    DISPLAY = "display"
    LINEAR = "linear"
    ACESCG = "acescg"
    ACESCCT = "acescct"
    DAVINCI_INTERMEDIATE = "davinci-intermediate"
    ARRI_LOGC3 = "arri-logc3"
    ARRI_LOGC4 = "arri-logc4"
    SONY_SLOG3 = "sony-slog3"
    PANASONIC_VLOG = "panasonic-vlog"
    CANON_LOG3 = "canon-log3"
    RED_LOG3G10 = "red-log3g10"
    APPLE_LOG = "apple-log"
    BMD_FILM_GEN5 = "bmd-film-gen5"

    @property
    def label(self) -> str:
        return COLOUR_SPACE_LABELS[self]


# In the order the effects' "Input colour space" menu lists them, after "Auto" (bridge/plugin.cpp
# declares the same labels; tests/test_settings.py compares them).
COLOUR_SPACE_LABELS = {
    ColourSpace.DISPLAY: "Display (sRGB / Rec.709)",
    ColourSpace.LINEAR: "Scene linear (Rec.709 / sRGB primaries)",
    ColourSpace.ACESCG: "ACEScg",
    ColourSpace.ACESCCT: "ACEScct",
    ColourSpace.DAVINCI_INTERMEDIATE: "DaVinci Intermediate (DaVinci Wide Gamut)",
    ColourSpace.ARRI_LOGC3: "ARRI LogC3 (EI 800, AWG3)",
    ColourSpace.ARRI_LOGC4: "ARRI LogC4 (AWG4)",
    ColourSpace.SONY_SLOG3: "Sony S-Log3 (S-Gamut3.Cine)",
    ColourSpace.PANASONIC_VLOG: "Panasonic V-Log (V-Gamut)",
    ColourSpace.CANON_LOG3: "Canon Log 3 (Cinema Gamut)",
    ColourSpace.RED_LOG3G10: "RED Log3G10 (REDWideGamutRGB)",
    ColourSpace.APPLE_LOG: "Apple Log",
    ColourSpace.BMD_FILM_GEN5: "Blackmagic Film Gen 5",
}
# The first choice everywhere: the host's or the file's own word, display where there is none.
COLOUR_AUTO = "auto"
COLOUR_AUTO_LABEL = "Auto"


def check_colour_space(value: object, what: str = "colour space") -> "ColourSpace | str":
    """COLOUR_AUTO or a ColourSpace, from itself, its name or its label; ValueError listing the
    choices otherwise."""
    if isinstance(value, ColourSpace):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in (COLOUR_AUTO, COLOUR_AUTO_LABEL.lower()):
        return COLOUR_AUTO
    for space in ColourSpace:
        if text in (space.value, space.label.lower()):
            return space
    names = ", ".join([COLOUR_AUTO] + [s.value for s in ColourSpace])
    raise ValueError(f"{what} must be one of {names}, not {value!r}")


class Output(enum.Enum):
    """What one codec writes: a single video file, or a folder of numbered images."""

    VIDEO = "video"
    SEQUENCE = "sequence"


class Codec(NamedTuple):
    """One `--codec` choice and what it can do (how it is encoded lives in media/codecs.py).
    Immutable like a frozen dataclass; a NamedTuple because Resolve's Python may predate those."""

    name: str
    output: Output
    ext: str  # of the video file, or of each image in the sequence
    alpha: bool = False  # carries a fourth (alpha) channel
    min_size: "tuple[int, int]" = (1, 1)  # smallest width, height the encoder takes
    even_size: bool = False  # chroma subsampling needs even width and height
    # other file extensions (containers) that carry it, beside `ext`
    also_in: "tuple[str, ...]" = ()
    crf: "tuple[int, int] | None" = None  # the --crf range (lower is better), where it has one
    presets: "tuple[str, ...]" = ()  # the --preset choices, fastest first
    compressions: "tuple[str, ...]" = ()  # the --compression choices, the default first

    @property
    def is_sequence(self) -> bool:
        return self.output is Output.SEQUENCE

    @property
    def containers(self) -> "tuple[str, ...]":
        return (self.ext,) + self.also_in


# x264 and x265 name the same speed/size trade-offs.
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
# SVT-AV1 numbers them, 0 the slowest.
SVT_AV1_PRESETS = tuple(str(n) for n in range(13, -1, -1))
# Each pairing was written and read back with the bundled PyAV (tests/test_delivery.py): MP4
# takes no ProRes or DNxHR, Matroska no DNxHR, MOV no AV1 or FFV1, MXF only ProRes and DNxHR.
_PRO = (".mkv", ".mxf")
_DNX = dict(min_size=(256, 120), also_in=(".mxf",))  # DNxHR refuses frames under 256x120
_X26X = dict(even_size=True, also_in=(".mp4", ".mkv"), crf=(0, 51), presets=X26X_PRESETS)

CODECS = {
    c.name: c
    for c in (
        # ProRes profiles, prores_ks 0..5
        Codec("prores_proxy", Output.VIDEO, ".mov", also_in=_PRO),
        Codec("prores_lt", Output.VIDEO, ".mov", also_in=_PRO),
        Codec("prores_422", Output.VIDEO, ".mov", also_in=_PRO),
        Codec("prores_422hq", Output.VIDEO, ".mov", also_in=_PRO),
        Codec("prores_4444", Output.VIDEO, ".mov", alpha=True, also_in=_PRO),
        Codec("prores_4444xq", Output.VIDEO, ".mov", alpha=True, also_in=_PRO),
        # DNxHR: LB, SQ and HQ are 8-bit 4:2:2, HQX 10-bit 4:2:2, 444 10-bit 4:4:4
        Codec("dnxhr_lb", Output.VIDEO, ".mov", **_DNX),
        Codec("dnxhr_sq", Output.VIDEO, ".mov", **_DNX),
        Codec("dnxhr_hq", Output.VIDEO, ".mov", **_DNX),
        Codec("dnxhr_hqx", Output.VIDEO, ".mov", **_DNX),
        Codec("dnxhr_444", Output.VIDEO, ".mov", **_DNX),
        Codec("h264", Output.VIDEO, ".mov", **_X26X),
        Codec("h265", Output.VIDEO, ".mov", **_X26X),
        Codec(
            "av1",
            Output.VIDEO,
            ".mp4",
            even_size=True,
            also_in=(".mkv",),
            crf=(0, 63),
            presets=SVT_AV1_PRESETS,
        ),
        # The mov muxer has no FFV1 tag; Matroska carries it (and the timecode as a tag).
        Codec("ffv1", Output.VIDEO, ".mkv"),
        Codec("exr", Output.SEQUENCE, ".exr", alpha=True, compressions=("zip", "piz", "dwaa")),
        Codec(
            "exr_float", Output.SEQUENCE, ".exr", alpha=True, compressions=("zip", "piz", "dwaa")
        ),
        Codec("dpx", Output.SEQUENCE, ".dpx"),  # 10-bit RGB
        Codec("png", Output.SEQUENCE, ".png", alpha=True),
        Codec("tiff", Output.SEQUENCE, ".tif", alpha=True),
    )
}
DEFAULT_CODEC = "prores_422hq"
# The codec a video output gets from its extension when none is asked for.
CONTAINER_CODECS = {".mov": DEFAULT_CODEC, ".mp4": "h264", ".mkv": "ffv1", ".mxf": DEFAULT_CODEC}
# The containers a video output may be written in (`--container`, or the output's extension).
CONTAINERS = tuple(CONTAINER_CODECS)


def check_codec(value: object, what: str = "codec") -> Codec:
    """The Codec named `value`; ValueError naming the choices otherwise."""
    codec = CODECS.get(value) if isinstance(value, str) else None
    if codec is None:
        raise ValueError(f"{what} must be one of {', '.join(CODECS)}, not {value!r}")
    return codec


def check_container(codec: Codec, ext: str) -> str:
    """`ext` (".mkv") as a container the video codec goes in; ValueError naming them otherwise."""
    if codec.is_sequence:
        raise ValueError(f"{codec.name} writes an image sequence (a folder), not a {ext} file")
    if ext not in codec.containers:
        raise ValueError(
            f"{codec.name} goes in {', '.join(codec.containers)}, not {ext or 'no extension'!r}"
        )
    return ext


def codecs_with(field: str) -> str:
    """'h264, h265, av1': the codecs whose Codec.<field> is set (crf, presets, compressions), as
    help and error messages name them."""
    return ", ".join(c.name for c in CODECS.values() if getattr(c, field))
