"""Conform set-up written once: small OTIO timelines, and run_conform in the suite's usual layout."""

from __future__ import annotations

import os
from pathlib import Path

import opentimelineio as otio

from kwaflux_ofx.conform import run_conform

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def clip(name: str, ref, start: float, dur: float, rate: float = 24.0) -> otio.schema.Clip:
    """A clip over frames [start, start + dur) of `ref`: a media reference, a URL, or None
    (a missing reference)."""
    if ref is None:
        ref = otio.schema.MissingReference()
    elif isinstance(ref, str):
        ref = otio.schema.ExternalReference(target_url=ref)
    return otio.schema.Clip(
        name=name, media_reference=ref, source_range=TR(RT(start, rate), RT(dur, rate))
    )


def timeline(path: str | os.PathLike, *clips: otio.schema.Clip):
    """Write `clips` one after another on a single video track, as an OTIO file; returns `path`."""
    tl = otio.schema.Timeline("t")
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for c in clips:
        track.append(c)
    otio.adapters.write_to_file(tl, str(path))
    return path


def one_clip_timeline(path, ref, start, dur, rate=24.0, name="c"):
    """A timeline of one clip over frames [start, start + dur) of `ref`; returns `path`."""
    return timeline(path, clip(name, ref, start, dur, rate))


def conform(
    src: str | os.PathLike,
    work: Path,
    *,
    out: str | os.PathLike = "o.otio",
    media: str | os.PathLike = "m",
    search: str | os.PathLike | None = "src",
    codec: str = "ffv1",
    handles: int = 0,
    **kwargs,
) -> dict:
    """run_conform(src) into the new timeline `work / out` and the media folder `work / media`,
    finding sources under `work / search` (None: no search path); an absolute `out`, `media` or
    `search` stands as it is. Other keyword arguments (model, scale, rate, ...) pass through."""
    return run_conform(
        src,
        work / out,
        work / media,
        search_paths=None if search is None else [work / search],
        codec=codec,
        handles=handles,
        **kwargs,
    )
