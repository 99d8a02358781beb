"""Timelines in and out through OpenTimelineIO, and the source frames each clip really uses."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path

import opentimelineio as otio

from kwaflux_ofx.errors import KwafluxError, first_line

log = logging.getLogger(__name__)

# Adapters that take the timeline's frame rate as an argument (EDLs carry none).
_RATE_ADAPTERS = {".edl": "cmx_3600"}
_XML_EXTS = {".xml": "fcp_xml", ".fcpxml": "fcpx_xml"}


def read_timeline(path: str | os.PathLike, rate: float | None = None) -> otio.schema.Timeline:
    """Read .otio/.otioz/.otiod natively and EDL/FCP XML through the adapter packages.

    Any failure becomes one line naming the file: adapters raise anything from EDLParseError to
    AttributeError on malformed input, and a user needs the what, not a traceback.
    """
    path = os.fspath(path)
    if not os.path.isfile(path) and not os.path.isdir(path):
        raise KwafluxError("no such timeline file", path)
    ext = Path(path).suffix.lower()
    kwargs = {}
    if ext in _RATE_ADAPTERS and rate is not None:
        kwargs["rate"] = float(rate)
    try:
        result = otio.adapters.read_from_file(path, **kwargs)
    except otio.exceptions.UnsupportedSchemaError as exc:
        raise KwafluxError(
            f"written by a newer OpenTimelineIO than {otio.__version__} "
            f"({first_line(exc)}); re-export it or downgrade it with otioconvert",
            path,
        ) from exc
    except otio.exceptions.NoKnownAdapterForExtensionError as exc:
        raise KwafluxError(f"unsupported timeline format {ext or '(no extension)'}", path) from exc
    except Exception as exc:  # noqa: BLE001 - adapters raise arbitrary types on malformed input
        hint = (
            " (EDLs carry no frame rate: is it 24 fps? if not, give --rate)"
            if (ext == ".edl" and rate is None)
            else ""
        )
        raise KwafluxError(
            f"cannot read timeline: {type(exc).__name__}: {first_line(exc)}{hint}", path
        ) from exc
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if not timelines:
            raise KwafluxError("holds no timeline", path)
        if len(timelines) > 1:
            log.warning(
                "%s holds %d timelines; conforming the first, %r",
                path,
                len(timelines),
                timelines[0].name,
            )
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise KwafluxError(f"holds a {type(result).__name__}, not a timeline", path)
    if result.tracks is None:
        # OTIO 0.18.1 reads "tracks": null and then segfaults in video_tracks().
        raise KwafluxError("holds a timeline without a track stack", path)
    return result


def write_timeline(timeline: otio.schema.Timeline, path: str | os.PathLike) -> None:
    """Write in the format the extension names, atomically (temp name, then rename)."""
    path = os.fspath(path)
    ext = Path(path).suffix.lower()
    if ext in _XML_EXTS and timeline.global_start_time is None:
        # The FCP XML writer needs a sequence start time.
        timeline.global_start_time = otio.opentime.RationalTime(0, _timeline_rate(timeline))
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.partial{ext}")
    try:
        otio.adapters.write_to_file(timeline, tmp)
        os.replace(tmp, path)
    except otio.exceptions.NoKnownAdapterForExtensionError as exc:
        raise KwafluxError(f"cannot write timelines as {ext or '(no extension)'}", path) from exc
    except Exception as exc:  # noqa: BLE001 - adapter-specific failures, reported in one line
        raise KwafluxError(f"cannot write timeline: {first_line(exc)}", path) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(timeline: otio.schema.Timeline, path: str | os.PathLike) -> None:
    """Fail before any rendering if the output format cannot hold this timeline (an EDL with
    two video tracks, an unknown extension), instead of after hours of it."""
    path = os.fspath(path)
    ext = Path(path).suffix.lower()
    if ext in (".otio", ".otioz", ".otiod"):
        return  # native: holds anything OTIO does (bundles also copy the media they name)
    try:
        adapter = otio.adapters.from_filepath(path)
    except otio.exceptions.NoKnownAdapterForExtensionError as exc:
        raise KwafluxError(f"cannot write timelines as {ext or '(no extension)'}", path) from exc
    probe = timeline.deepcopy()
    if ext in _XML_EXTS and probe.global_start_time is None:
        probe.global_start_time = otio.opentime.RationalTime(0, _timeline_rate(probe))
    try:
        otio.adapters.write_to_string(probe, adapter.name)
    except Exception as exc:  # noqa: BLE001 - adapter-specific refusals, reported in one line
        raise KwafluxError(f"cannot write this timeline as {ext}: {first_line(exc)}", path) from exc


def _timeline_rate(timeline: otio.schema.Timeline) -> float:
    for clip in timeline.find_clips():
        try:
            return clip.trimmed_range().duration.rate
        except otio.exceptions.OTIOError:
            continue
    return 24.0


# -- the frames a clip uses ---------------------------------------------------------------------
@dataclasses.dataclass
class ClipUse:
    """One video clip of the timeline and the source span it needs, in its own source time."""

    clip: otio.schema.Clip
    index: int  # position among the timeline's video clips, stable across copies
    track_name: str
    start: float  # first source frame used, at `rate` (may be fractional for odd rates)
    end: float  # one past the last source frame used
    rate: float
    warp: str = ""  # a note on time warps, for the report

    @property
    def frames(self) -> int:
        return max(0, math.ceil(self.end - 1e-6) - math.floor(self.start + 1e-6))


def video_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    """Every clip on a video track, nested stacks and tracks included, in timeline order."""
    clips = []
    for track in timeline.video_tracks():
        clips.extend(track.find_clips(shallow_search=False))
    return clips


def clip_use(clip: otio.schema.Clip, index: int) -> ClipUse | None:
    """The source span a clip needs: its trimmed range, widened for transitions on either side,
    stretched or shrunk by its time warps. None for a clip with no range at all."""
    try:
        rng = clip.trimmed_range()
    except otio.exceptions.OTIOError:
        return None
    rate = rng.start_time.rate
    start = rng.start_time.value
    dur = rng.duration.rescaled_to(rate).value
    head = tail = 0.0
    parent = clip.parent()
    if isinstance(parent, otio.schema.Track):
        prev_item, next_item = parent.neighbors_of(clip)
        # A transition before the clip shows it early (in_offset before the cut); one after
        # keeps it showing past its end (out_offset after the cut).
        if isinstance(prev_item, otio.schema.Transition):
            head = prev_item.in_offset.rescaled_to(rate).value
        if isinstance(next_item, otio.schema.Transition):
            tail = next_item.out_offset.rescaled_to(rate).value
    scalar = 1.0
    warp = ""
    for effect in clip.effects:
        if isinstance(effect, otio.schema.FreezeFrame):
            scalar = 0.0
            warp = "freeze frame"
        elif isinstance(effect, otio.schema.LinearTimeWarp):
            scalar *= effect.time_scalar
            warp = f"speed {effect.time_scalar * 100:g}%"
    shown = head + dur + tail
    if scalar == 0.0:
        s, e = start, start + 1
    elif scalar > 0:
        s = start - head * scalar
        e = start + (dur + tail) * scalar
        # A speed change still needs whole source frames at either end.
        e = max(e, s + 1)
    else:
        # Reverse: played from `start` backwards.
        s = start + (dur + tail) * scalar + 1
        e = start - head * scalar + 1
    track = clip.parent()
    while track is not None and not isinstance(track, otio.schema.Track):
        track = track.parent()
    log.debug("clip %r uses %.2f..%.2f (%g shown frames)", clip.name, s, e, shown)
    return ClipUse(
        clip=clip,
        index=index,
        track_name=track.name if track else "",
        start=s,
        end=e,
        rate=rate,
        warp=warp,
    )
