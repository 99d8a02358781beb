"""The conform job: read, plan, render the units (local or Dask), relink, write, report."""

from __future__ import annotations

import os

from kwaflux_ofx.conform.auto import resolve_auto
from kwaflux_ofx.conform.cluster import _run_dask, require_dask
from kwaflux_ofx.conform.local import _run_local
from kwaflux_ofx.conform.plan import (
    ConformPlan,
    ConformSettings,
    build_plan,
)
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.conform.relink import relink_timeline
from kwaflux_ofx.conform.report import _print_plan, _report, _write_json
from kwaflux_ofx.conform.timeline import (
    check_writable,
    read_timeline,
    write_timeline,
)
from kwaflux_ofx.engine.cache import shared_engine
from kwaflux_ofx.errors import KwafluxError


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
    overwrite: bool = False,
    **setting_kwargs,
) -> dict:
    """Conform `timeline` into new media under `media_dir` and a relinked `output_timeline`.

    Returns the report dict (also written to `report_path` as JSON). Settings come as a
    ConformSettings or as keyword arguments (scale=2, codec="ffv1", ...). An existing output
    timeline is replaced only with `overwrite`, and is always written whole (temp name, then
    rename), so it is never left half written.
    """
    settings = settings or ConformSettings(**setting_kwargs)
    if settings.scheduler:
        require_dask()
    timeline_path = os.path.abspath(os.fspath(timeline))
    out_path = os.path.abspath(os.fspath(output_timeline))
    media_dir = os.path.abspath(os.fspath(media_dir))
    searches = [os.fspath(p) for p in (search_paths or [])]
    if os.path.exists(out_path) and os.path.samefile(out_path, timeline_path):
        raise KwafluxError("the output timeline would overwrite the input timeline", out_path)
    if os.path.lexists(out_path) and not overwrite and not dry_run:
        # Checked before any rendering: hours of it must not end in a refusal.
        raise KwafluxError("exists already (pass --overwrite to replace it)", out_path)
    for sp in searches:
        if os.path.realpath(sp) == os.path.realpath(media_dir):
            raise KwafluxError(
                "is also a --search-path: the new media would land among the "
                "sources; choose another --media-dir",
                media_dir,
            )
    tl = read_timeline(timeline_path, rate=settings.rate)
    check_writable(tl, out_path)
    plan = build_plan(tl, settings, media_dir, searches, base_dir=os.path.dirname(timeline_path))
    _check_media_dir(plan, media_dir)
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    eng = None
    if plan.units and not settings.scheduler:
        eng = engine or shared_engine(settings.device, threads=settings.threads)
    if plan.units and (settings.scale != 1 or settings.model or settings.denoise != 0):
        # A bad --model is one clear error before any work, not a failure per output.
        (eng or engine or _model_checker()).plan_for(
            (16, 16),
            scale=settings.scale,
            denoise=1.0 if settings.auto else settings.denoise,
            sr_model=settings.model,
            denoise_model=settings.denoise_model,
        )

    results: dict[int, dict] = {}
    if dry_run:
        _print_plan(plan, settings, prog)
    elif plan.units:
        os.makedirs(media_dir, exist_ok=True)
        prog.start(len(plan.units), sum(u.frames for u in plan.units))
        resolve_auto(plan.units, settings, eng or engine or _model_checker(), prog.note)
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
    return shared_engine("cpu", threads=1)


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
                "choose another --media-dir",
                media_dir,
            )
        if os.path.realpath(unit.output) == os.path.realpath(unit.media.path):
            raise KwafluxError("output would overwrite its source", unit.output)
