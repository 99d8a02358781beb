"""Render work units on a Dask cluster, with frame progress sent back as worker events."""

from __future__ import annotations

import os
import threading
import time

from kwaflux_ofx.conform.plan import (
    ConformSettings,
    WorkUnit,
)
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.conform.render import make_processor, render_unit
from kwaflux_ofx.engine.cache import shared_engine
from kwaflux_ofx.errors import KwafluxError, first_line

DASK_PROGRESS_TOPIC = "kwaflux-conform-frames"


def require_dask() -> None:
    """Fail at once, in one line, when `--scheduler` is used without the cluster extra."""
    try:
        import distributed  # noqa: F401 - only whether it imports
    except ImportError:
        raise KwafluxError(
            "--scheduler needs Dask, which is not installed: pip install 'kwaflux-ofx[cluster]'"
        ) from None


def dask_render_unit(unit: WorkUnit, settings: ConformSettings, job: str = "") -> dict:
    """The task a Dask worker runs: one unit with the worker's shared engine. Frame progress
    goes back to the client as worker events, about twice a second."""
    from distributed import get_worker

    worker = get_worker()
    engine = shared_engine(settings.device, threads=settings.threads)
    state = {"pending": 0, "last": time.monotonic()}

    def on_frames(n: int) -> None:
        state["pending"] += n
        now = time.monotonic()
        if now - state["last"] >= 0.5:
            worker.log_event(
                DASK_PROGRESS_TOPIC, {"job": job, "unit": unit.id, "frames": state["pending"]}
            )
            state["pending"], state["last"] = 0, now

    result = render_unit(unit, settings, make_processor(engine, settings, unit), on_frames)
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
            fut = client.submit(
                dask_render_unit,
                unit,
                settings,
                job,
                pure=False,
                key=f"kwaflux-unit-{unit.id}-{job}",
            )
            futures[fut] = unit
        try:
            for fut in as_completed(list(futures)):
                unit = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker's error becomes the unit's
                    res = {
                        "status": "failed",
                        "reason": first_line(exc),
                        "frames": 0,
                    }
                with lock:
                    results[unit.id] = res
                    rest = res.get("frames", 0) - shown.get(unit.id, 0)
                if res["status"] in ("done", "damaged") and rest > 0:
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
