"""Options several commands share, with their choices and ranges read from settings.py."""

from __future__ import annotations

import argparse

from kwaflux_ofx import settings

DEVICES = ("auto", "cpu", "cuda")


def add_scale(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    p.add_argument("--scale", type=int, choices=settings.SCALES, default=default, help=help)


def add_denoise(p: argparse.ArgumentParser, default: float | None, help: str) -> None:
    p.add_argument(
        "--denoise",
        type=float,
        default=default,
        metavar=f"{settings.DENOISE_MIN:g}..{settings.DENOISE_MAX:g}",
        help=help,
    )


def add_codec(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    p.add_argument("--codec", choices=tuple(settings.CODECS), default=default, help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the models run")
