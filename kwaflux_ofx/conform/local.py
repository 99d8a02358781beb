"""Render work units on this machine: a thread pool, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import concurrent.futures
import os
import threading

from kwaflux_ofx.conform.plan import (
    ConformSettings,
    WorkUnit,
)
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.conform.render import Cancelled, make_processor, render_unit


def _run_local(units: list[WorkUnit], settings: ConformSettings, engine, prog: Progress) -> dict:
    stop = threading.Event()
    # With several units at once each gets one inference thread; alone, a unit gets two so
    # inference overlaps with itself as well as with decode and encode.
    infer_workers = 2 if settings.jobs == 1 else 1

    def one(unit: WorkUnit) -> dict:
        name = os.path.basename(unit.output)
        prog.unit_start(unit.id, name, unit.frames)
        res = render_unit(
            unit,
            settings,
            make_processor(engine, settings, unit),
            lambda n: prog.frames(unit.id, n),
            stop,
            infer_workers=infer_workers,
        )
        prog.unit_done(unit.id, name, res)
        return res

    results: dict[int, dict] = {}
    with concurrent.futures.ThreadPoolExecutor(
        settings.jobs, thread_name_prefix="kwaflux-unit"
    ) as pool:
        futures = {pool.submit(one, u): u for u in units}
        pending = set(futures)
        try:
            while pending:
                # Wake up twice a second: a Ctrl-C may be delivered to another thread, and the
                # main thread only acts on it when it runs Python code.
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for fut in done:
                    results[futures[fut].id] = fut.result()
        except (KeyboardInterrupt, Cancelled):
            stop.set()  # every unit stops at its next frame and removes its temp file
            for f in futures:
                f.cancel()
            raise KeyboardInterrupt from None
    return results
