"""Which colour space a file's pixels are in: `--colour-space auto` reads it off the file.

EXR and float TIFF hold scene-linear light by convention. A video says what it holds in its
transfer tag (color_trc): bt709, sRGB and the SD gammas are display-referred; "linear" is linear.
PQ and HLG are taken as display too: both are perceptual encodings, so noise and detail sit in
their code values much as in a gamma encoding, and decoding them to display sRGB would clip
everything above SDR white into the part that goes around the models (docs/hosts.md). A video
with no tag is display-referred, as players assume.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from kwaflux_ofx import settings
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.settings import ColourSpace

log = logging.getLogger(__name__)

LINEAR_STILLS = (".exr", ".hdr")
FLOAT_TIFF = (".tif", ".tiff")
DISPLAY_TRC = ("bt709", "iec61966-2-1", "iec61966-2-4", "gamma22", "gamma28", "smpte170m",
               "smpte240m", "bt2020-10", "bt2020-12", "bt1361e")  # fmt: skip
PERCEPTUAL_HDR_TRC = ("smpte2084", "arib-std-b67")
LINEAR_TRC = ("linear",)


@dataclass(frozen=True)
class ColourChoice:
    """The space a source is read in, why, and a warning where the user's option contradicts
    what the file says (the option wins)."""

    space: ColourSpace
    why: str
    warning: str | None = None

    def as_dict(self) -> dict:
        return {"colour_space": self.space.value, "why": self.why}


# FFmpeg's AVColorTransferCharacteristic numbers, as PyAV hands them over, by their names.
_TRC_NUMBERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
                8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e",
                13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
                17: "smpte428", 18: "arib-std-b67"}  # fmt: skip


def _trc_name(trc) -> str:
    if trc is None:
        return ""
    if isinstance(trc, int):
        return _TRC_NUMBERS.get(int(trc), "")
    name = getattr(trc, "name", None) or str(trc)
    return name.lower().replace("_", "-")


def detect(path: str, *, color: dict | None = None, float_pixels: bool = False) -> ColourChoice:
    """What the file says: by its extension for stills and sequences, its tag for video."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext in LINEAR_STILLS:
        return ColourChoice(ColourSpace.LINEAR, f"{ext} holds scene-linear light")
    if ext in FLOAT_TIFF and float_pixels:
        return ColourChoice(ColourSpace.LINEAR, "a float TIFF holds scene-linear light")
    trc = _trc_name((color or {}).get("color_trc"))
    if trc in LINEAR_TRC:
        return ColourChoice(ColourSpace.LINEAR, "its transfer tag is linear")
    if trc in PERCEPTUAL_HDR_TRC:
        return ColourChoice(ColourSpace.DISPLAY, f"its transfer tag is {trc} (HDR: as coded)")
    if trc in DISPLAY_TRC:
        return ColourChoice(ColourSpace.DISPLAY, f"its transfer tag is {trc}")
    return ColourChoice(ColourSpace.DISPLAY, "no colour tag says otherwise")


def choose(
    option: object, path: str, *, color: dict | None = None, float_pixels: bool = False
) -> ColourChoice:
    """--colour-space (`auto` or a name) for one source: auto takes what the file says; a name
    is used as given, with a warning where the file says it holds something else."""
    try:
        picked = settings.check_colour_space(option, "--colour-space")
    except ValueError as exc:
        raise KwafluxError(str(exc)) from None
    said = detect(path, color=color, float_pixels=float_pixels)
    if picked == settings.COLOUR_AUTO:
        return said
    tagged = said.why != "no colour tag says otherwise"
    warning = None
    if tagged and said.space is not picked:
        warning = (
            f"{os.path.basename(str(path))}: --colour-space {picked.value}, but {said.why}; "
            f"reading it as {picked.value}"
        )
    return ColourChoice(picked, "--colour-space", warning)
