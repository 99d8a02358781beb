"""Resume inside a clip: a video renders in segments kept as they finish, joined losslessly."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable

from kwaflux_ofx.conform.plan import WorkUnit
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.media.join import join_segments
from kwaflux_ofx.media.timecode import frames_to_timecode

log = logging.getLogger(__name__)

# A unit splits into about SEGMENTS pieces, so a kill loses at most ~1/SEGMENTS of it; pieces
# stay between these lengths (short ones cost a file each, long ones cost more work lost).
SEGMENTS = 20
SEGMENT_MIN = 12
SEGMENT_MAX = 1200
_FINGERPRINT = "fingerprint"
_DAMAGE = ".damaged.json"  # beside a segment: its broken source frames {index: problem}


def _read_damage(segment: str) -> dict[int, str]:
    try:
        with open(segment + _DAMAGE, encoding="utf-8") as f:
            return {int(k): v for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}


def remove(path: str) -> None:
    """Remove a file or a folder (never following a link)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def segment_ranges(start: int, stop: int) -> list[tuple[int, int]]:
    """[start, stop) cut into consecutive ranges of one length (the last may be shorter)."""
    size = min(SEGMENT_MAX, max(SEGMENT_MIN, math.ceil((stop - start) / SEGMENTS)))
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def parts_dir(tmp: str) -> str:
    """Where a unit's finished segments wait: hidden, beside its temp output."""
    return tmp + ".parts"


def _prepare(folder: str, tag: str) -> None:
    """Keep the segments of an earlier run only if it rendered with the same settings/media."""
    mark = os.path.join(folder, _FINGERPRINT)
    if os.path.isdir(folder):
        try:
            with open(mark, encoding="utf-8") as f:
                same = f.read() == tag
        except OSError:
            same = False
        if same:
            return
        log.info("%s: segments made from other settings or media; starting over", folder)
        remove(folder)
    os.makedirs(folder)
    with open(mark + ".tmp", "w", encoding="utf-8") as f:
        f.write(tag)
    os.replace(mark + ".tmp", mark)


def render_segments(
    unit: WorkUnit,
    tmp: str,
    keep_alpha: bool,
    tag: str,
    run: Callable,
    on_frames: Callable[[int], None] | None,
    open_writer: Callable,
    damaged: dict[int, str],
) -> int:
    """Render the unit's missing segments, join them all into `tmp`; returns the frames kept
    from an earlier run. `run(writer, a, b)` renders frames a..b into a writer and returns how
    many, recording the source's broken frames in `damaged`, which also gets those of segments
    kept from an earlier run; `open_writer(unit, path, keep_alpha, comment, whole, span)` makes
    one for the frames span = (a, b)."""
    folder = parts_dir(tmp)
    _prepare(folder, tag)
    try:
        parts, kept = _render_parts(unit, folder, keep_alpha, run, on_frames, open_writer, damaged)
    except BaseException:
        if not any(n[0].isdigit() for n in os.listdir(folder)):
            remove(folder)  # nothing finished to resume from: leave no trace
        raise
    remove(tmp)
    info = unit.media
    # audio, subtitles and chapters of the same span (an image sequence has none)
    t0 = info.seconds(unit.start)
    span = (info.path, t0, info.seconds(unit.stop))
    # --vfr keep: each part goes where its first frame is shown, not where the last one ended
    starts = None
    if info.keeps_times:
        starts = [info.seconds(a) - t0 for a, _ in segment_ranges(unit.start, unit.stop)]
    tc = frames_to_timecode(unit.start_tc, info.rate, info.drop_frame)
    frames = join_segments(
        parts,
        tmp,
        info.rate,
        timecode=tc,
        # an output from a damaged source does not carry the fingerprint: a rerun renders it
        # again (and reports the damage again) instead of keeping it as complete
        comment=f"{tag} from damaged source" if damaged else tag,
        streams_from=span if info.kind == "video" else None,
        audio=unit.delivery.audio,
        starts=starts,
    )
    if frames != unit.frames:
        raise KwafluxError(f"joined {frames} frames, {unit.frames} expected", unit.output)
    remove(folder)
    return kept


def _render_parts(
    unit, folder, keep_alpha, run, on_frames, open_writer, damaged
) -> tuple[list[str], int]:
    """Render each missing segment into its own file; returns all segment paths, in order, and
    the frames that earlier runs had finished. A segment's broken source frames are kept beside
    it (written before it is, so a kept segment always has them)."""
    ext = os.path.splitext(unit.output)[1]
    parts, kept = [], 0
    for a, b in segment_ranges(unit.start, unit.stop):
        path = os.path.join(folder, f"{a:09d}-{b:09d}{ext}")
        parts.append(path)
        if os.path.exists(path):
            damaged.update(_read_damage(path))
            kept += b - a
            if on_frames:
                on_frames(b - a)  # done in an earlier run: progress counts it
            continue
        partial = os.path.join(folder, f".{a:09d}-{b:09d}.partial{ext}")
        remove(partial)
        writer = open_writer(unit, partial, keep_alpha, None, False, (a, b))
        try:
            written = run(writer, a, b)
            writer.close()
        except BaseException:
            writer.abort()
            remove(partial)
            raise
        if written != b - a:
            remove(partial)
            raise KwafluxError(f"wrote {written} frames of {a}..{b}, {b - a} expected", unit.output)
        own = {k: v for k, v in damaged.items() if a <= k < b}
        if own:
            with open(path + _DAMAGE + ".tmp", "w", encoding="utf-8") as f:
                json.dump(own, f)
            os.replace(path + _DAMAGE + ".tmp", path + _DAMAGE)
        os.replace(partial, path)  # finished: a rerun keeps it
    return parts, kept
