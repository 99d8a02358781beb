"""How new media is written beyond its codec: container, quality, options, streams and colour.

The choices are checked once, against the codec and the encoder this PyAV has, where the
settings are made (ConformSettings); the writers then only apply them.
"""

from __future__ import annotations

import dataclasses
import fractions
import os

from kwaflux_ofx import settings
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.media.codecs import CODECS, CodecSpec

# --colorspace: (primaries, transfer, matrix) as FFmpeg numbers them (AVColorPrimaries, ...).
COLORSPACES = {
    "bt709": (1, 1, 1),
    "bt601": (6, 6, 6),  # SMPTE 170M: 525 lines (NTSC)
    "bt601-625": (5, 6, 5),  # BT.470BG: 625 lines (PAL)
    "bt2020": (9, 14, 9),  # SDR, 10-bit transfer
    "bt2020-pq": (9, 16, 9),  # HDR10: SMPTE 2084
    "bt2020-hlg": (9, 18, 9),  # ARIB STD-B67
}
# The frame rates FFmpeg's MXF muxer writes (its content package rates); at any other it fails
# with a bare "Invalid argument", so check_rate refuses the clip first.
MXF_RATES = tuple(
    fractions.Fraction(n, d)
    for base in (24, 30, 48, 60, 72, 90, 96, 120)
    for n, d in ((base * 1000, 1001), (base, 1))
) + (
    fractions.Fraction(25),
    fractions.Fraction(50),
    fractions.Fraction(75),
    fractions.Fraction(100),
)
# Containers whose video track stores each frame's own time, so --vfr keep can keep a variable
# frame rate's; MXF holds a constant edit rate only, an image sequence no time at all.
TIMED_CONTAINERS = (".mov", ".mp4", ".mkv")
_UNSPECIFIED = (None, 0, 2)  # FFmpeg's "unknown"/"unspecified" primaries, transfer, matrix
RANGE_LIMITED, RANGE_FULL = 1, 2


@dataclasses.dataclass(frozen=True)
class Delivery:
    """The user's delivery choices; None leaves the codec's own default."""

    container: str | None = None  # ".mkv"; None: the codec's own (settings.Codec.ext)
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    compression: str | None = None  # EXR: zip, piz, dwaa
    encoder_options: tuple[tuple[str, str], ...] = ()  # -e KEY=VALUE, in order
    audio: bool = True  # copy every audio stream (subtitles and chapters are always copied)
    colorspace: str | None = None  # a COLORSPACES name for what the source leaves untagged

    def check(self, codec_name: str) -> Delivery:
        """Every choice against what the codec (and this PyAV's encoder) can do; a KwafluxError
        with one line otherwise. Returns self."""
        spec = CODECS[codec_name]
        name = spec.name
        if spec.is_sequence:
            for flag, value in (
                ("--container", self.container),
                ("--crf", self.crf),
                ("--preset", self.preset),
                ("--pix-fmt", self.pix_fmt),
            ):
                if value is not None:
                    raise KwafluxError(f"{flag} applies to video codecs, not to {name} images")
        else:
            _need_encoder(spec)
            if self.container is not None:
                _ruled(settings.check_container, spec.codec, self.container)
        _in_range("--crf", self.crf, spec.crf, name, "crf")
        _choice("--preset", self.preset, spec.presets, name, "presets")
        _choice("--compression", self.compression, spec.compressions, name, "compressions")
        if self.colorspace is not None and self.colorspace not in COLORSPACES:
            raise KwafluxError(
                f"--colorspace must be one of {', '.join(COLORSPACES)}, not {self.colorspace!r}"
            )
        if self.pix_fmt is not None:
            allowed = encoder_pix_fmts(spec)
            if self.pix_fmt not in allowed:
                raise KwafluxError(
                    f"--pix-fmt {self.pix_fmt}: {spec.av_codec} ({name}) takes {', '.join(allowed)}"
                )
        if self.encoder_options and not spec.is_sequence:
            known = encoder_option_names(spec)
            for key, _ in self.encoder_options:
                if key not in known:
                    raise KwafluxError(f"-e {key}: {spec.av_codec} ({name}) has no such option")
        return self

    def extension(self, codec_name: str) -> str:
        """The output file's extension (a sequence's images' for image codecs)."""
        spec = CODECS[codec_name]
        return spec.ext if spec.is_sequence else (self.container or spec.ext)

    def video_options(self, spec: CodecSpec, params: str = "") -> dict[str, str]:
        """The encoder's options: its defaults, then --crf/--preset, then -e; `params` (HDR
        metadata, "key=value:...") joins the encoder's own parameter list."""
        options = dict(spec.options)
        if self.crf is not None:
            options["crf"] = str(self.crf)
        if self.preset is not None:
            options["preset"] = self.preset
        for key, value in self.encoder_options:
            if key == spec.params_option and options.get(key):
                # added to the codec's own list (x265's quiet log level), read after it: -e wins
                value = f"{options[key]}:{value}"
            options[key] = value
        if params and spec.params_option:
            given = options.get(spec.params_option, "")
            # what the user gave wins: x264/x265/SVT read their list left to right
            options[spec.params_option] = ":".join(p for p in (params, given) if p)
        return options

    def video_pix_fmt(self, spec: CodecSpec, high_bit: bool, alpha: bool) -> str:
        if self.pix_fmt is not None:
            return self.pix_fmt
        if alpha and spec.alpha and spec.pix_fmt_alpha:
            return spec.pix_fmt_alpha
        return spec.pix_fmt_hi if high_bit else spec.pix_fmt_8

    def colour_tags(self, source: dict, spec: CodecSpec) -> dict:
        """The colour tags of the output: the source's, with what it leaves unspecified filled
        from --colorspace; the range is the source's unless the codec is video range only."""
        tags = {k: source.get(k) for k in ("color_primaries", "color_trc", "colorspace")}
        if self.colorspace is not None:
            chosen = COLORSPACES[self.colorspace]
            for key, value in zip(
                ("color_primaries", "color_trc", "colorspace"), chosen, strict=True
            ):
                if tags[key] in _UNSPECIFIED:
                    tags[key] = value
        tags = {k: v for k, v in tags.items() if v not in _UNSPECIFIED}
        full = source.get("color_range") == RANGE_FULL and not spec.limited_range
        tags["color_range"] = RANGE_FULL if full else RANGE_LIMITED
        return tags

    def oiio_attributes(self, spec: CodecSpec) -> list[tuple[str, str | int]]:
        """Attributes of each image: the codec's, the compression, then -e (strings)."""
        attrs = list(spec.oiio_attributes)
        compression = self.compression or (spec.compressions[0] if spec.compressions else None)
        if compression:
            attrs.append(("compression", compression))
        attrs.extend(self.encoder_options)
        return attrs


def _fps(rate: float | fractions.Fraction) -> str:
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def check_rate(container: str | None, rate: float, source: str | os.PathLike) -> None:
    """A clip at `rate` can be written in `container` (".mxf" takes only MXF_RATES); else one
    line naming the source, its rate and the rates MXF takes. Checked when the clip is planned,
    before anything renders."""
    if container != ".mxf":
        return
    if fractions.Fraction(rate).limit_denominator(1001 * 1000) in MXF_RATES:
        return
    rates = ", ".join(_fps(r) for r in sorted(MXF_RATES))
    raise KwafluxError(
        f"is {_fps(rate)} fps, which MXF cannot hold (MXF takes {rates} fps): "
        "write .mov or .mkv instead",
        source,
    )


def check_times(container: str | None, source: str | os.PathLike, output: str) -> None:
    """A variable-rate `source` can have its frame times kept in `output` (a container in
    TIMED_CONTAINERS; None: an image sequence); else one line naming the output and saying to
    conform the rate instead. A silent constant rate would play the capture too fast, so the
    clip is refused before anything renders."""
    if container in TIMED_CONTAINERS:
        return
    what = f"{container} cannot" if container else "an image sequence cannot"
    raise KwafluxError(
        f"{what} hold the frame times of {os.path.basename(source)} (variable frame rate, "
        f"--vfr keep): use --vfr cfr, or write {', '.join(TIMED_CONTAINERS)}",
        output,
    )


def _ruled(check, *args) -> None:
    try:
        check(*args)
    except ValueError as exc:
        raise KwafluxError(str(exc)) from None


def _in_range(flag: str, value, bounds, name: str, what: str) -> None:
    if value is None:
        return
    if bounds is None:
        raise KwafluxError(f"{flag} applies to {settings.codecs_with(what)}, not {name}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise KwafluxError(f"{flag} for {name} must be from {lo} to {hi}, not {value}")


def _choice(flag: str, value, choices, name: str, what: str) -> None:
    if value is None:
        return
    if not choices:
        raise KwafluxError(f"{flag} applies to {settings.codecs_with(what)}, not {name}")
    if value not in choices:
        raise KwafluxError(f"{flag} for {name} must be one of {', '.join(choices)}, not {value!r}")


def _need_encoder(spec: CodecSpec) -> None:
    import av

    if spec.av_codec not in av.codecs_available:
        raise KwafluxError(
            f"--codec {spec.name}: this PyAV build has no {spec.av_codec} encoder"
            + (" (nor libaom-av1 or librav1e)" if spec.name == "av1" else "")
        )


def encoder_pix_fmts(spec: CodecSpec) -> tuple[str, ...]:
    """The pixel formats the codec's encoder takes, as this PyAV's FFmpeg lists them."""
    import av

    formats = av.codec.Codec(spec.av_codec, "w").video_formats or ()
    return tuple(f.name for f in formats)


def encoder_option_names(spec: CodecSpec) -> frozenset[str]:
    """Every option the encoder reads (FFmpeg's generic ones and its own): FFmpeg ignores an
    unknown one silently, so -e checks here."""
    import av

    known = av.codec.CodecContext.create(spec.av_codec, "w").supported_options
    return frozenset(o.name for o in (*known.generic, *known.private))
