"""Render one work unit: decode -> engine -> encode as a pipeline, into a temp name renamed when done."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from kwaflux_ofx.conform.plan import ConformSettings, WorkUnit
from kwaflux_ofx.conform.segments import remove as _remove
from kwaflux_ofx.conform.segments import render_segments
from kwaflux_ofx.errors import KwafluxError, first_line
from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.damage import CUT_SHORT, ENDS_EARLY, PREDICTED, UNDECODABLE
from kwaflux_ofx.media.damage import describe as describe_damage
from kwaflux_ofx.media.damage import ranges as damage_ranges
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.encode import SequenceWriter, VideoWriter
from kwaflux_ofx.media.probe import probe
from kwaflux_ofx.media.timecode import frames_to_timecode

log = logging.getLogger(__name__)

PARTIAL_TAG = ".kwaflux-partial"
DAMAGED_MARK = ".kwaflux-damaged"  # in a sequence output made from a damaged source
QUEUE_FRAMES = 4  # frames in flight per stage: memory stays flat whatever the clip length

ProgressFn = Callable[[int], None]


class Cancelled(Exception):
    """The job was stopped (Ctrl-C or another unit's fatal error)."""


def temp_path(unit: WorkUnit) -> str:
    """The in-progress name: hidden, in the output folder (same filesystem, so rename is atomic),
    keeping the extension the muxer needs."""
    d, name = os.path.split(unit.output)
    codec = CODECS[unit.codec]
    if not codec.is_sequence:
        stem, ext = os.path.splitext(name)  # the output's own container (.mov, .mp4, .mkv)
        return os.path.join(d, f".{stem}{PARTIAL_TAG}{ext}")
    return os.path.join(d, f".{name}{PARTIAL_TAG}")


def fingerprint(unit: WorkUnit, settings: ConformSettings) -> str:
    """What an output was made from and how; stored in it, so a rerun with other settings (or
    another source) redoes it instead of keeping a stale file."""
    what = {
        "source": unit.media.path,
        "start": unit.start,
        "stop": unit.stop,
        "origin": unit.origin,
        **settings.processing(),
        "denoise": settings.denoise if unit.denoise is None else unit.denoise,
        "codec": unit.codec,
        "delivery": dataclasses.asdict(unit.delivery),
        # the source's times kept: another output from the same frames (left out otherwise, so
        # the outputs of earlier runs keep their fingerprints)
        **({"vfr": "keep"} if unit.media.keeps_times else {}),
    }
    digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    return f"kwaflux conform {digest}"


def output_is_complete(unit: WorkUnit, settings: ConformSettings | None = None) -> bool:
    """A finished output from an earlier run: right frame count, size and settings (anything
    else is redone)."""
    if not os.path.exists(unit.output):
        return False
    if os.path.islink(unit.output):
        return False  # we never write links: one planted here would relink the clip elsewhere
    codec = CODECS[unit.codec]
    try:
        if codec.is_sequence:
            names = [n for n in os.listdir(unit.output) if n.endswith(codec.ext)]
            if len(names) != unit.frames or DAMAGED_MARK in os.listdir(unit.output):
                return False
            info = probe(os.path.join(unit.output, sorted(names)[0]))
        else:
            info = probe(unit.output)
            info.set_vfr_mode(unit.media.vfr_mode)  # counted as the source's frames were
    except (KwafluxError, OSError) as exc:
        log.info("redoing %s: %s", unit.output, exc)
        return False
    if settings is not None and info.comment != fingerprint(unit, settings):
        log.info("redoing %s: made from other settings or media", unit.output)
        return False
    return (info.frames, info.width, info.height) == (unit.frames, unit.out_width, unit.out_height)


@dataclasses.dataclass(frozen=True)
class Processor:
    """What a unit's frames go through: the engine at the unit's strength, each frame with up
    to `radius` frames of the media on each side (temporal denoise; 0: frame by frame)."""

    engine: object
    settings: ConformSettings
    strength: float
    radius: int
    colour: object  # settings.ColourSpace

    def __call__(self, window: list[np.ndarray], centre: int) -> np.ndarray:
        options = dict(
            scale=self.settings.scale,
            denoise=self.strength,
            sr_model=self.settings.model,
            denoise_model=self.settings.denoise_model,
            colour=self.colour,
        )
        if len(window) == 1:
            return self.engine.process(window[0], **options)
        return self.engine.process_window(window, centre, **options)


def make_processor(engine, settings: ConformSettings, unit: WorkUnit) -> Processor:
    strength = unit.strength(settings)  # auto was resolved per clip before rendering
    radius = settings.temporal_radius if strength > 0 else 0
    return Processor(engine, settings, strength, radius, unit.colour)


def render_unit(
    unit: WorkUnit,
    settings: ConformSettings,
    process: Callable,
    on_frames: ProgressFn | None = None,
    stop: threading.Event | None = None,
    infer_workers: int = 2,
) -> dict:
    """Render `unit` to its output; returns {"status", "reason", "frames", "seconds", "resumed"}.

    A video renders in segments, each finished one kept under its own name, so a rerun after a
    kill starts at the first missing segment; the segments are joined (packets copied) into the
    temp name, renamed to the output when complete. An image sequence renders whole.
    """
    t0 = time.perf_counter()
    if output_is_complete(unit, settings):
        return {
            "status": "done",
            "reason": "already complete (kept from an earlier run)",
            "frames": unit.frames,
            "seconds": 0.0,
            "resumed": unit.frames,
        }
    stop = stop or threading.Event()
    os.makedirs(os.path.dirname(unit.output), exist_ok=True)
    keep_alpha = unit.media.channels == 4 and CODECS[unit.codec].alpha
    tag = fingerprint(unit, settings)
    tmp = temp_path(unit)
    count = {"written": 0}
    damaged: dict[int, str] = {}  # output frames the source could not give: {index: problem}

    def counted(n: int) -> None:
        count["written"] += n
        if on_frames:
            on_frames(n)

    def run(writer, start: int, end: int) -> int:
        return _pipeline(
            unit, process, writer, start, end, counted, stop, infer_workers, keep_alpha, damaged
        )

    resumed = 0
    try:
        if CODECS[unit.codec].is_sequence:
            _render_whole(unit, tmp, keep_alpha, tag, run, damaged)
        else:
            resumed = render_segments(
                unit, tmp, keep_alpha, tag, run, on_frames, _open_writer, damaged
            )
        _remove(unit.output)  # an incomplete output from an earlier run
        os.replace(tmp, unit.output)
    except Cancelled:
        _remove(tmp)
        raise
    except Exception as exc:
        _remove(tmp)
        reason = first_line(exc)
        log.error("%s: %s", unit.output, reason)
        return {
            "status": "failed",
            "reason": reason,
            "frames": count["written"],
            "seconds": time.perf_counter() - t0,
            "resumed": resumed,
        }
    runs = damage_runs(unit, damaged)
    reason = f"{unit.media.path}: {describe_damage(runs)}" if runs else ""
    if runs:
        log.error("%s", reason)
    return {
        "status": "damaged" if runs else "done",
        "reason": reason,
        "frames": unit.frames,
        "seconds": time.perf_counter() - t0,
        "resumed": resumed,
        **({"damaged": runs} if runs else {}),
    }


def damage_runs(unit: WorkUnit, damaged: dict[int, str]) -> list[dict]:
    """The source's broken frames as runs with source timecodes and what the output holds in
    their place; a file cut short adds the frames its header announces beyond its end."""
    frames = dict(damaged)
    info = unit.media
    if info.declared_frames and unit.stop >= info.frames:
        why = CUT_SHORT if info.cut_short else ENDS_EARLY
        frames.update({k: why for k in range(info.frames, info.declared_frames)})
    runs = []
    for first, last, problem in damage_ranges(frames):
        if problem in (CUT_SHORT, ENDS_EARLY):
            instead = "not rendered (the output ends with the file)"
        elif problem == PREDICTED:
            instead = "rendered as decoded (may show the damage)"
        else:
            k = first - 1
            while frames.get(k, PREDICTED) != PREDICTED:  # a frame held or lost itself
                k -= 1
            if k < max(0, unit.start - 1):  # nothing good before it: the first good one after
                k = last + 1
                while frames.get(k, PREDICTED) != PREDICTED:
                    k += 1
            instead = f"frame {k} repeated in its place"
        tc = _timecode(unit, first)
        runs.append(
            {
                "first": first,
                "last": last,
                "timecode": tc if first == last else f"{tc}-{_timecode(unit, last)}",
                "problem": problem,
                "rendered_as": instead,
            }
        )
    return runs


def _render_whole(unit: WorkUnit, tmp: str, keep_alpha: bool, tag: str, run, damaged) -> None:
    """Render every frame into one writer at `tmp` (image sequences); one from a damaged
    source is marked so a rerun renders (and reports) it again instead of keeping it."""
    _remove(tmp)  # a partial output left by a killed run
    writer = _open_writer(unit, tmp, keep_alpha, tag)
    try:
        written = run(writer, unit.start, unit.stop)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if written != unit.frames:
        raise KwafluxError(f"wrote {written} frames, {unit.frames} expected", unit.output)
    if damaged:
        with open(os.path.join(tmp, DAMAGED_MARK), "w", encoding="utf-8") as f:
            json.dump(damaged, f)


def _pipeline(
    unit: WorkUnit,
    process: Callable,
    writer,
    start: int,
    end: int,
    on_frames: ProgressFn,
    stop: threading.Event,
    infer_workers: int,
    keep_alpha: bool,
    damaged: dict[int, str],
) -> int:
    """Frames start..end of the unit's media through `process` into `writer`; returns how many
    were written. A frame the media cannot give is recorded in `damaged` and the last good one
    written in its place (media/damage.py). Decoding runs in its own thread, frames go through the engine on a small pool
    (onnxruntime releases the GIL), and encoding runs here; bounded queues keep memory flat."""
    info = unit.media
    pending: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    failure: list[BaseException] = []
    pool = concurrent.futures.ThreadPoolExecutor(
        max(1, infer_workers), thread_name_prefix="kwaflux-infer"
    )
    halt = threading.Event()  # this pipeline only: set when the encoding side gives up

    def stopped() -> bool:
        return stop.is_set() or halt.is_set()

    def put(item) -> bool:
        while not stopped():
            try:
                pending.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    # Temporal denoise: neighbours come from the media beyond the range (a cut's first frame is
    # cleaned with the frames before it), as far as the media goes. One frame before the range
    # is read in any case: it stands in for a first frame that cannot be decoded.
    radius = getattr(process, "radius", 0)
    lo, hi = max(0, start - max(radius, 1)), min(info.frames, end + radius) if radius else end
    held: collections.deque = collections.deque()  # (index, frame) of the media, at most 2r+1

    def emit(k: int) -> bool:
        """Hand frame k, with the held frames around it, to the pool."""
        while held and held[0][0] < k - radius:
            held.popleft()
        window = [f for i, f in held if i <= k + radius]
        centre = next(n for n, (i, _) in enumerate(held) if i == k)
        return put(pool.submit(process, window, centre))

    def push(idx: int, frame) -> bool:
        """Hold media frame idx; hand every output frame whose window is complete to the pool."""
        nonlocal out
        held.append((idx, frame))
        while out < end and out + radius <= idx:
            if not emit(out):
                return False
            out += 1
        return True

    out = start
    source_damage: dict[int, str] = {}

    def decode() -> None:
        nonlocal out
        try:
            expected, good = lo, None  # the next media frame; the last one that decoded
            for idx, frame in read_frames(info, lo, hi, source_damage):
                if not keep_alpha and frame.shape[2] == 4:
                    frame = frame[:, :, :3]
                # A frame the media did not give keeps its place: the last good frame stands in
                # for it (the first good one, at the very start), so no later frame shifts.
                for k in range(expected, idx):
                    broken(k)
                    if not push(k, frame if good is None else good):
                        return
                if idx in source_damage:  # held by the VFR fill, or given but predicted
                    broken(idx)
                good, expected = frame, idx + 1
                if not push(idx, frame):
                    return
            if good is None:
                raise KwafluxError(
                    f"no frame of {start}..{end - 1} ({_timecode(unit, start)}) can be decoded",
                    info.path,
                )
            for k in range(expected, end):  # the range's last frames, lost: hold the last good
                broken(k)
                if not push(k, good):
                    return
            while out < end:  # the last frames: no more neighbours after them
                if not emit(out):
                    return
                out += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the encoding side to report
            failure.append(exc)
        finally:
            put(None)

    def broken(k: int) -> None:
        if start <= k < end:  # neighbours outside the range are not output frames
            damaged[k] = source_damage.get(k, UNDECODABLE)

    reader = threading.Thread(target=decode, name="kwaflux-decode", daemon=True)
    reader.start()
    written = 0
    try:
        while True:
            if stop.is_set():
                raise Cancelled()
            try:
                item = pending.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                break
            writer.write(item.result())
            written += 1
            on_frames(1)
        if failure:
            raise failure[0]
    finally:
        halt.set()  # the decoder's put() sees it within 0.2 s and returns
        reader.join()
        pool.shutdown(wait=True, cancel_futures=True)
    return written


def _timecode(unit: WorkUnit, index: int) -> str:
    """Frame `index` of the unit's media as its source timecode (what an editor looks up); with
    --vfr keep, the slot it is shown on."""
    info = unit.media
    slot = round(info.seconds(index) * info.rate) if info.keeps_times else index
    return frames_to_timecode(unit.origin + slot, info.rate, info.drop_frame)


def _open_writer(
    unit: WorkUnit,
    tmp: str,
    keep_alpha: bool,
    comment: str | None,
    whole=True,
    span: tuple[int, int] | None = None,
):
    """The writer for a unit's temp output (or, not `whole`, one video segment of it, frames
    `span`: no audio, subtitles, timecode or comment, which the join adds); a whole file gets the
    source's audio, subtitles and chapters of the same span. With --vfr keep on a variable-rate
    source the frames are stamped with the source's times (media/probe.py, MediaInfo.seconds)."""
    codec = CODECS[unit.codec]
    info = unit.media
    if not codec.is_sequence:
        a, b = span or (unit.start, unit.stop)
        audio = (
            (info.path, info.seconds(a), info.seconds(b))
            if info.kind == "video" and whole
            else None
        )
        times = None
        if info.keeps_times:
            times = tuple(info.seconds(k) - info.seconds(a) for k in range(a, b + 1))
        return VideoWriter(
            tmp,
            codec,
            unit.out_width,
            unit.out_height,
            info.rate,
            unit.start_tc if whole else None,
            high_bit=info.bits > 8,
            color=info.color,
            alpha=keep_alpha,
            audio_from=audio,
            comment=comment,
            drop_frame=info.drop_frame,
            sample_aspect=info.sample_aspect,
            delivery=unit.delivery,
            hdr=info.hdr,
            times=times,
            time_base=info.timing.time_base if times else None,
        )
    return SequenceWriter(
        tmp,
        unit.stem,
        codec,
        first_number=unit.start_tc,
        rate=info.rate,
        start_tc=unit.start_tc,
        comment=comment,
        delivery=unit.delivery,
    )
