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
