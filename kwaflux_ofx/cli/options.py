"""Options several commands share, with their choices and ranges read from settings.py."""

from __future__ import annotations

import argparse

from kwaflux_ofx import settings

DEVICES = ("auto", "cpu", "cuda")


def add_scale(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    p.add_argument("--scale", type=int, choices=settings.SCALES, default=default, help=help)


def denoise_value(text: str) -> float | str:
    """--denoise: a strength or 'auto', checked where the command line is read."""
    try:
        return settings.check_denoise_or_auto(text, "--denoise")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_denoise(p: argparse.ArgumentParser, default: float | str | None, help: str) -> None:
    p.add_argument(
        "--denoise",
        type=denoise_value,
        default=default,
        metavar=f"{settings.DENOISE_AUTO}|{settings.DENOISE_MIN:g}..{settings.DENOISE_MAX:g}",
        help=help,
    )


def add_temporal_radius(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--temporal-radius",
        type=int,
        default=None,
        metavar=f"0..{settings.TEMPORAL_RADIUS_MAX}",
        help=f"frames each side the denoiser also looks at (default {settings.TEMPORAL_RADIUS_DEFAULT} "
        "when denoise is on, 0 = frame by frame)",
    )


def colour_space_value(text: str) -> str:
    """--colour-space: 'auto' or a space's name, checked where the command line is read."""
    try:
        value = settings.check_colour_space(text, "--colour-space")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value if isinstance(value, str) else value.value


def add_colour_space(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--colour-space",
        type=colour_space_value,
        default=settings.COLOUR_AUTO,
        metavar="NAME",
        help=f"what the input's pixels are in: {settings.COLOUR_AUTO} (EXR and float TIFF: "
        "linear; video: its transfer tag; else display) or one of "
        + ", ".join(s.value for s in settings.ColourSpace)
        + "; the output keeps it (default: %(default)s)",
    )


def look_value(text: str) -> str:
    """--look: faithful or detail, checked where the command line is read."""
    try:
        return settings.check_sr_look(text, "--look").value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_look(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--look",
        type=look_value,
        default=settings.SR_LOOK_DEFAULT.value,
        metavar="|".join(look.value for look in settings.SrLook),
        help="which built-in SR model: faithful (closest to the original) or detail (fine-tuned "
        "to give back fine texture, x2 and x4); not with --model (default: %(default)s)",
    )


def sr_model(args: argparse.Namespace, scale: int):
    """The SR model --model and --look ask for at this scale (None: the engine's default)."""
    from kwaflux_ofx.models.registry import sr_model_for

    return sr_model_for(scale, settings.check_sr_look(args.look), args.model)


def add_codec(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    p.add_argument("--codec", choices=tuple(settings.CODECS), default=default, help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the models run")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What a long render shares: inference threads, the JSON report and how progress shows."""
    p.add_argument("--threads", type=int, default=None, help="inference threads per session")
    p.add_argument("--report", default=None, metavar="PATH.json", help="write the JSON report")
    p.add_argument(
        "--progress",
        choices=("bar", "json", "none"),
        default=None,
        help="progress as tqdm bars (default), JSON lines on stdout, or nothing",
    )


def encoder_option(text: str) -> tuple[str, str]:
    """-e KEY=VALUE, split at the first '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, not {text!r}")
    return key.strip(), value


def add_delivery_options(p: argparse.ArgumentParser, container_help: str) -> None:
    """How the new media is written beyond --codec (checked against the codec in
    media/delivery.py once the codec is known)."""
    from kwaflux_ofx.media.delivery import COLORSPACES

    g = p.add_argument_group("delivery")
    g.add_argument(
        "--container",
        choices=[c.lstrip(".") for c in settings.CONTAINERS],
        default=None,
        help=container_help,
    )
    g.add_argument(
        "--crf",
        type=int,
        default=None,
        metavar="N",
        help=f"quality, lower is better ({settings.codecs_with('crf')})",
    )
    g.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help=f"encoder speed ({settings.codecs_with('presets')}): x264/x265 "
        "ultrafast..veryslow, AV1 13..0",
    )
    g.add_argument(
        "--pix-fmt",
        default=None,
        metavar="FMT",
        help="pixel format, one the encoder takes (e.g. yuv422p10le; default: from the codec "
        "and the source's depth)",
    )
    g.add_argument(
        "--compression",
        choices=tuple(dict.fromkeys(x for c in settings.CODECS.values() for x in c.compressions)),
        default=None,
        help=f"image compression ({settings.codecs_with('compressions')}; default zip)",
    )
    g.add_argument(
        "-e",
        "--encoder-option",
        dest="encoder_options",
        type=encoder_option,
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="passed to the encoder (repeatable), e.g. -e x264-params=keyint=48; for image "
        "sequences an OpenImageIO attribute",
    )
    g.add_argument(
        "--no-audio",
        action="store_true",
        help="drop the audio (every audio and subtitle stream, the chapters and the timecode "
        "are copied by default)",
    )
    g.add_argument(
        "--colorspace",
        choices=tuple(COLORSPACES),
        default=None,
        help="colour tags for a source that has none (a source's own tags are kept)",
    )


def delivery_from(args: argparse.Namespace):
    """The Delivery the delivery options ask for (checked with the codec, by ConformSettings)."""
    from kwaflux_ofx.media.delivery import Delivery

    return Delivery(
        container=f".{args.container}" if args.container else None,
        crf=args.crf,
        preset=args.preset,
        pix_fmt=args.pix_fmt,
        compression=args.compression,
        encoder_options=tuple(args.encoder_options or ()),
        audio=not args.no_audio,
        colorspace=args.colorspace,
    )
