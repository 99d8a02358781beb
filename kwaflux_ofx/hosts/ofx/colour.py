"""Which colour space the host hands the effects: the user's choice, or what Auto reads off it.

Auto takes, in order: what an OFX 1.5 colour-managed host says the source clip is in
(kOfxImageClipPropColourspace, passed as params["clipColourspace"]); scene-linear in Natron,
whose working space is linear light whatever the file; display otherwise (Resolve tells a
plugin nothing, so a colour-managed Resolve timeline needs the choice set by hand:
docs/hosts.md).
"""

from __future__ import annotations

from kwaflux_ofx import settings
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.settings import ColourSpace

NATRON = "fr.inria.Natron"

# OFX 1.5 colour names (ofxColour.h's basic spaces, and the ofx-native-v1.5 config's names
# for the ones we take) -> ours. The basic scene-linear space is taken as Rec.709 primaries.
OFX_COLOURSPACES = {
    "ofx_scene_linear": ColourSpace.LINEAR,
    "ofx_scene_log": ColourSpace.ACESCCT,
    "ofx_display_sdr": ColourSpace.DISPLAY,
    "srgb_tx": ColourSpace.DISPLAY,
    "srgb_display": ColourSpace.DISPLAY,
    "g24_rec709_tx": ColourSpace.DISPLAY,
    "lin_rec709_srgb": ColourSpace.LINEAR,
    "lin_srgb": ColourSpace.LINEAR,
    "lin_ap1_scene": ColourSpace.ACESCG,
    "acescg": ColourSpace.ACESCG,
    "acescct_ap1": ColourSpace.ACESCCT,
    "davinci_intermediate_widegamut": ColourSpace.DAVINCI_INTERMEDIATE,
    "arri_logc3_ei800_awg3": ColourSpace.ARRI_LOGC3,
    "arri_logc4": ColourSpace.ARRI_LOGC4,
    "slog3_sgamut3cine": ColourSpace.SONY_SLOG3,
    "vlog_vgamut": ColourSpace.PANASONIC_VLOG,
    "clog3_cgamut_d55": ColourSpace.CANON_LOG3,
    "log3g10_rwg": ColourSpace.RED_LOG3G10,
    "applelog_rec2020_scene": ColourSpace.APPLE_LOG,
    "bmdfilm_widegamut_gen5": ColourSpace.BMD_FILM_GEN5,
}
# What the effects ask an OFX 1.5 host for, best first (kOfxImageClipPropPreferredColourspaces):
# the models' own encoding, then linear, which the engine converts exactly.
PREFERRED = ("srgb_tx", "ofx_display_sdr", "lin_rec709_srgb", "ofx_scene_linear")


def choice(value: object) -> ColourSpace | str:
    """The *Input colour space* menu's value as the shell passes it: its label or its index
    (0 is Auto, then settings.COLOUR_SPACE_LABELS in order)."""
    if isinstance(value, int) and not isinstance(value, bool):
        spaces = list(settings.COLOUR_SPACE_LABELS)
        if value == 0:
            return settings.COLOUR_AUTO
        if 1 <= value <= len(spaces):
            return spaces[value - 1]
    try:
        return settings.check_colour_space(value, "input colour space")
    except ValueError as exc:
        raise KwafluxError(str(exc)) from None


def resolve(params: dict) -> tuple[ColourSpace, str]:
    """The space the source is in and why (for the log): the choice, or Auto's reading."""
    picked = choice(params.get("colourSpace", settings.COLOUR_AUTO_LABEL))
    if picked != settings.COLOUR_AUTO:
        return picked, "chosen"
    said = str(params.get("clipColourspace") or "").strip()
    if said:
        space = OFX_COLOURSPACES.get(said.lower())
        if space is not None:
            return space, f"the host says {said}"
        # A space we do not take was delivered despite the preference: say so, keep display.
        return ColourSpace.DISPLAY, f"the host says {said}, which Auto does not know: display"
    if params.get("host_name") == NATRON:
        return ColourSpace.LINEAR, "Natron works in scene-linear light"
    return ColourSpace.DISPLAY, "the host does not say"
