"""Per media, before rendering: its colour space (--colour-space, or what the file says) and,
for --denoise auto, one strength measured on a few frames sampled across what it renders."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from kwaflux_ofx.conform.plan import ConformSettings, WorkUnit
from kwaflux_ofx.errors import MediaError
from kwaflux_ofx.media.decode import read_frames

log = logging.getLogger(__name__)

SAMPLES = 5  # frames measured per clip: enough to steady the estimate, cheap next to rendering


def sample_frames(unit: WorkUnit, count: int = SAMPLES) -> list:
    """`count` frames spread evenly over the unit's range (each read with a seek); a damaged
    one is left out (rendering reports it), MediaError when none decodes."""
    n = unit.frames
    picks = sorted({unit.start + (2 * k + 1) * n // (2 * count) for k in range(min(count, n))})
    frames = []
    for idx in picks:
        try:
            for _, frame in read_frames(unit.media, idx, idx + 1):
                frames.append(frame[:, :, :3])
        except MediaError as exc:
            log.info("%s: frame %d not measured: %s", unit.media.path, idx, exc)
    if not frames:
        raise MediaError("no frame decoded to measure its noise", unit.media.path)
    return frames


def resolve_auto(
    units: list[WorkUnit], settings: ConformSettings, engine, note: Callable[[str, dict], None]
) -> None:
    """Give each unit its colour space (--colour-space, or what its media says) and its
    strength: the number asked for, or (auto) the one measured on its media, once per media, on
    the picture the model sees; `note(line, fields)` tells the user. A model without
    calibration raises ModelError naming it."""
    resolve_colour(units, settings, note)
    if not settings.auto:
        for unit in units:
            unit.denoise = float(settings.denoise)
        return
    measured: dict[str, tuple[float, dict]] = {}
    for unit in units:
        key = unit.media.path
        if key not in measured:
            try:
                frames = sample_frames(unit)
            except MediaError as exc:
                # Damaged media fails its own clip when it renders, not the whole job here.
                measured[key] = (0.0, {"error": str(exc)})
                note(
                    f"{os.path.basename(key)}: cannot measure its noise; denoise 0", {"media": key}
                )
                unit.denoise, unit.auto = measured[key]
                continue
            est = engine.auto_strength(
                frames, denoise_model=settings.denoise_model, colour=unit.colour
            )
            measured[key] = (est.strength, est.as_dict())
            name = os.path.basename(key)
            note(f"{name}: {est.describe()}", {"media": key, **est.as_dict()})
        unit.denoise, unit.auto = measured[key]


def resolve_colour(
    units: list[WorkUnit], settings: ConformSettings, note: Callable[[str, dict], None]
) -> None:
    """Each unit's colour space, decided once per media and said once (a warning where the
    user's --colour-space contradicts the file's tags: the option wins)."""
    from kwaflux_ofx.media import colour

    seen: dict[str, colour.ColourChoice] = {}
    for unit in units:
        key = unit.media.path
        if key not in seen:
            info = unit.media
            float_pixels = info.kind == "sequence" and info.bits == 32
            seen[key] = c = colour.choose(
                settings.colour, key, color=info.color, float_pixels=float_pixels
            )
            if c.warning:
                log.warning("%s", c.warning)
                note(f"warning: {c.warning}", {"media": key, "warning": c.warning})
            name = os.path.basename(key)
            note(f"{name}: colour space {c.space.value} ({c.why})", {"media": key, **c.as_dict()})
        unit.colour = seen[key].space
