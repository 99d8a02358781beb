"""The conform job: plan, render the units (threads or Dask), relink the timeline, report."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
import time

import opentimelineio as otio

from kwaflux_ofx.conform.plan import (
    ConformPlan,
    ConformSettings,
    WorkUnit,
    build_plan,
    same_rate,
)
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.conform.render import Cancelled, make_processor, render_unit
from kwaflux_ofx.conform.timeline import (
    check_writable,
    read_timeline,
    video_clips,
    write_timeline,
)
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.mediaio import CODECS, frames_to_timecode

log = logging.getLogger(__name__)

_engines: dict[tuple, object] = {}
_engines_lock = threading.Lock()


def shared_engine(device: str = "auto", threads: int | None = None):
    """One Engine per process (and per device/threads), shared by every unit it renders."""
    from kwaflux_ofx import Engine

    key = (device, threads)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = Engine(device=device, threads=threads)
        return _engines[key]


def run_conform(
    timeline: str | os.PathLike,
    output_timeline: str | os.PathLike,
    media_dir: str | os.PathLike,
    *,
    search_paths: list[str | os.PathLike] | None = None,
    settings: ConformSettings | None = None,
    dry_run: bool = False,
    report_path: str | os.PathLike | None = None,
    progress: str | Progress = "none",
    engine=None,
    **setting_kwargs,
) -> dict:
    """Conform `timeline` into new media under `media_dir` and a relinked `output_timeline`.

    Returns the report dict (also written to `report_path` as JSON). Settings come as a
    ConformSettings or as keyword arguments (scale=2, codec="ffv1", ...).
    """
    settings = settings or ConformSettings(**setting_kwargs)
    timeline_path = os.path.abspath(os.fspath(timeline))
    out_path = os.path.abspath(os.fspath(output_timeline))
    media_dir = os.path.abspath(os.fspath(media_dir))
    searches = [os.fspath(p) for p in (search_paths or [])]
    if os.path.exists(out_path) and os.path.samefile(out_path, timeline_path):
        raise KwafluxError("the output timeline would overwrite the input timeline", out_path)
    for sp in searches:
        if os.path.realpath(sp) == os.path.realpath(media_dir):
            raise KwafluxError("is also a --search-path: the new media would land among the "
                               "sources; choose another --media-dir", media_dir)
    tl = read_timeline(timeline_path, rate=settings.rate)
    check_writable(tl, out_path)
    plan = build_plan(tl, settings, media_dir, searches,
                      base_dir=os.path.dirname(timeline_path))
    _check_media_dir(plan, media_dir)
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    eng = None
    if plan.units and not settings.scheduler:
        eng = engine or shared_engine(settings.device, settings.threads)
    if plan.units and (settings.scale != 1 or settings.model or settings.denoise > 0):
        # A bad --model is one clear error before any work, not a failure per output.
        (eng or engine or _model_checker()).plan_for(
            (16, 16), scale=settings.scale, denoise=settings.denoise, sr_model=settings.model,
            denoise_model=settings.denoise_model)

    results: dict[int, dict] = {}
    if dry_run:
        _print_plan(plan, settings, prog)
    elif plan.units:
        os.makedirs(media_dir, exist_ok=True)
        prog.start(len(plan.units), sum(u.frames for u in plan.units))
        if settings.scheduler:
            results = _run_dask(plan.units, settings, prog)
        else:
            results = _run_local(plan.units, settings, eng, prog)
    report = _report(plan, results, settings, out_path, media_dir, dry_run)
    if not dry_run:
        new = relink_timeline(tl, plan, results, settings)
        write_timeline(new, out_path)
        prog.finish(report["summary"])
    if report_path:
        _write_json(report, os.fspath(report_path))
    return report


def _model_checker():
    """An engine on this machine only to check the models exist (Dask workers load their own)."""
    return shared_engine("cpu", 1)


def _check_media_dir(plan: ConformPlan, media_dir: str) -> None:
    """Never write over or next to source media."""
    real = os.path.realpath(media_dir)
    for unit in plan.units:
        src_dir = os.path.realpath(unit.media.seq_dir or os.path.dirname(unit.media.path))
        if unit.media.kind == "video":
            src_dir = os.path.realpath(os.path.dirname(unit.media.path))
        if real == src_dir:
            raise KwafluxError(
                f"is the folder of the source media {os.path.basename(unit.media.path)}; "
                "choose another --media-dir", media_dir)
        if os.path.realpath(unit.output) == os.path.realpath(unit.media.path):
            raise KwafluxError("output would overwrite its source", unit.output)


def _run_local(units: list[WorkUnit], settings: ConformSettings, engine, prog: Progress) -> dict:
    process = make_processor(engine, settings)
    stop = threading.Event()
    # With several units at once each gets one inference thread; alone, a unit gets two so
    # inference overlaps with itself as well as with decode and encode.
    infer_workers = 2 if settings.jobs == 1 else 1

    def one(unit: WorkUnit) -> dict:
        name = os.path.basename(unit.output)
        prog.unit_start(unit.id, name, unit.frames)
        res = render_unit(unit, settings, process, lambda n: prog.frames(unit.id, n), stop,
                          infer_workers=infer_workers)
        prog.unit_done(unit.id, name, res)
        return res

    results: dict[int, dict] = {}
    with concurrent.futures.ThreadPoolExecutor(settings.jobs,
                                               thread_name_prefix="kwaflux-unit") as pool:
        futures = {pool.submit(one, u): u for u in units}
        pending = set(futures)
        try:
            while pending:
                # Wake up twice a second: a Ctrl-C may be delivered to another thread, and the
                # main thread only acts on it when it runs Python code.
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    results[futures[fut].id] = fut.result()
        except (KeyboardInterrupt, Cancelled):
            stop.set()  # every unit stops at its next frame and removes its temp file
            for f in futures:
                f.cancel()
            raise KeyboardInterrupt from None
    return results


DASK_PROGRESS_TOPIC = "kwaflux-conform-frames"


def dask_render_unit(unit: WorkUnit, settings: ConformSettings, job: str = "") -> dict:
    """The task a Dask worker runs: one unit with the worker's shared engine. Frame progress
    goes back to the client as worker events, about twice a second."""
    from distributed import get_worker

    worker = get_worker()
    engine = shared_engine(settings.device, settings.threads)
    state = {"pending": 0, "last": time.monotonic()}

    def on_frames(n: int) -> None:
        state["pending"] += n
        now = time.monotonic()
        if now - state["last"] >= 0.5:
            worker.log_event(DASK_PROGRESS_TOPIC,
                             {"job": job, "unit": unit.id, "frames": state["pending"]})
            state["pending"], state["last"] = 0, now

    result = render_unit(unit, settings, make_processor(engine, settings), on_frames)
    result["worker"] = worker.address
    return result


def _run_dask(units: list[WorkUnit], settings: ConformSettings, prog: Progress) -> dict:
    from distributed import Client, as_completed

    try:
        client = Client(settings.scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise KwafluxError(f"cannot reach the Dask scheduler: {exc}", settings.scheduler) from exc
    results: dict[int, dict] = {}
    job = f"{os.getpid()}-{id(units)}"
    shown: dict[int, int] = {}  # frames already reported per unit
    lock = threading.Lock()

    def on_event(event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if not isinstance(msg, dict) or msg.get("job") != job:
            return
        with lock:
            if msg["unit"] in results:
                return  # a late event for a finished unit: already counted
            shown[msg["unit"]] = shown.get(msg["unit"], 0) + msg["frames"]
        prog.frames(msg["unit"], msg["frames"])

    try:
        client.subscribe_topic(DASK_PROGRESS_TOPIC, on_event)
        futures = {}
        for unit in units:
            prog.unit_start(unit.id, os.path.basename(unit.output), unit.frames)
            fut = client.submit(dask_render_unit, unit, settings, job, pure=False,
                                key=f"kwaflux-unit-{unit.id}-{job}")
            futures[fut] = unit
        try:
            for fut in as_completed(list(futures)):
                unit = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker's error becomes the unit's
                    res = {"status": "failed", "reason": str(exc).splitlines()[0] or
                           type(exc).__name__, "frames": 0}
                with lock:
                    results[unit.id] = res
                    rest = res.get("frames", 0) - shown.get(unit.id, 0)
                if res["status"] == "done" and rest > 0:
                    prog.frames(unit.id, rest)
                prog.unit_done(unit.id, os.path.basename(unit.output), res)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
    finally:
        try:
            client.unsubscribe_topic(DASK_PROGRESS_TOPIC)
        finally:
            client.close()
    return results


def relink_timeline(timeline: otio.schema.Timeline, plan: ConformPlan, results: dict,
                    settings: ConformSettings) -> otio.schema.Timeline:
    """A copy of the timeline whose conformed clips point at the new media. Source ranges and
    record positions are untouched: each new file starts at the same source timecode."""
    new = timeline.deepcopy()
    clips = video_clips(new)
    units = {u.id: u for u in plan.units}
    for cp in plan.clips:
        if cp.unit is None or results.get(cp.unit, {}).get("status") != "done":
            continue
        unit = units[cp.unit]
        clip = clips[cp.index]
        # Express the new available range at the clip's own rate when it is the media's
        # rate under another name (23.976 vs 24000/1001), so ranges compare exactly.
        rate = cp.clip_rate if same_rate(cp.clip_rate, unit.media.rate) else unit.media.rate
        avail = otio.opentime.TimeRange(otio.opentime.RationalTime(unit.start_tc, rate),
                                        otio.opentime.RationalTime(unit.frames, rate))
        codec = CODECS[unit.codec]
        if codec.kind == "video":
            ref = otio.schema.ExternalReference(
                target_url=otio.url_utils.url_from_filepath(unit.output), available_range=avail)
        else:
            ref = otio.schema.ImageSequenceReference(
                target_url_base=otio.url_utils.url_from_filepath(unit.output) + "/",
                name_prefix=f"{unit.stem}.", name_suffix=codec.ext, start_frame=unit.start_tc,
                frame_step=1, rate=rate, frame_zero_padding=7, available_range=avail)
        ref.name = os.path.basename(unit.output)
        ref.available_image_bounds = otio.schema.Box2d(
            otio.schema.V2d(0, 0), otio.schema.V2d(unit.out_width, unit.out_height))
        ref.metadata["kwaflux"] = {"width": unit.out_width, "height": unit.out_height,
                                   "codec": unit.codec,
                                   "start_timecode": frames_to_timecode(
                                       unit.start_tc, rate, unit.media.drop_frame)}
        if clip.source_range is None:
            # The clip played its whole old media; pin that range, or the new (handle-padded)
            # media would change the clip's length on the record side.
            clip.source_range = clip.trimmed_range()
        clip.media_reference = ref
        clip.metadata["kwaflux"] = {
            "source_media": cp.media,
            "scale": settings.scale,
            "denoise": settings.denoise,
            "model": settings.model or "",
            "denoise_model": settings.denoise_model or "",
            "codec": settings.codec,
            "handles": settings.handles,
        }
    return new


def _report(plan: ConformPlan, results: dict, settings: ConformSettings, out_path: str,
            media_dir: str, dry_run: bool) -> dict:
    units = {u.id: u for u in plan.units}
    clips = []
    for cp in plan.clips:
        status, reason, output = cp.status, cp.reason, ""
        if cp.unit is not None:
            output = units[cp.unit].output
            if dry_run:
                status, reason = "skipped", "dry run"
            else:
                res = results.get(cp.unit, {"status": "failed", "reason": "not rendered"})
                status = res["status"]
                # A clip whose source ran past its media keeps that note when it is done.
                reason = res.get("reason", "") or cp.reason
        clips.append({"name": cp.name, "media": cp.media, "output": output, "status": status,
                      "reason": reason, "frames": cp.frames})
    summary = {k: sum(1 for c in clips if c["status"] == k)
               for k in ("done", "skipped", "missing", "failed")}
    return {"output_timeline": out_path, "media_dir": media_dir,
            "settings": settings.as_dict(), "clips": clips, "summary": summary}


def _print_plan(plan: ConformPlan, settings: ConformSettings, prog: Progress) -> None:
    units = {u.id: u for u in plan.units}
    if prog.mode == "json":
        for u in plan.units:
            prog._emit(event="plan", unit=u.id, media=u.media.path, output=u.output,
                       start=u.start, stop=u.stop, frames=u.frames,
                       size=[u.out_width, u.out_height], clips=u.clips)
        return
    print(f"{len(plan.clips)} video clips, {len(plan.units)} outputs, "
          f"{sum(u.frames for u in plan.units)} frames to render "
          f"(x{settings.scale}, denoise {settings.denoise}, {settings.codec})")
    for cp in plan.clips:
        if cp.unit is not None:
            u = units[cp.unit]
            print(f"  {cp.name}: frames {cp.first}-{cp.last - 1} of {u.media.path}")
        else:
            print(f"  {cp.name}: {cp.status}: {cp.reason}")
    for u in plan.units:
        print(f"  -> {u.output}: {u.frames} frames ({u.start}-{u.stop - 1}, timecode "
              f"{frames_to_timecode(u.start_tc, u.media.rate, u.media.drop_frame)}), "
              f"{u.out_width}x{u.out_height}")


def _write_json(report: dict, path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_report(report: dict, stream) -> None:
    """The human summary: counts, then each clip that was not done, with why."""
    s = report["summary"]
    stream.write(f"conform: {s['done']} done, {s['skipped']} skipped, {s['missing']} missing, "
                 f"{s['failed']} failed -> {report['output_timeline']}\n")
    for c in report["clips"]:
        if c["status"] != "done":
            stream.write(f"  {c['status']}: {c['name']}: {c['reason']}\n")
