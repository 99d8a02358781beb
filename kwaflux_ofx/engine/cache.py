"""The process-wide engines: one per settings, shared by every thread that renders."""

from __future__ import annotations

import threading

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
