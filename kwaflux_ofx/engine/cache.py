"""The process-wide engines: one per (device, tile, threads), shared by every thread that renders.

The OFX plugin, `kwaflux conform` and each Dask worker take their engine here, so a process
creates each ONNX session once whatever the number of render threads, effect instances or units.
"""

from __future__ import annotations

import threading

from kwaflux_ofx.engine.engine import Engine

_engines: dict[tuple[str, int | None, int | None], Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(
    device: str = "auto", *, tile: int | None = None, threads: int | None = None
) -> Engine:
    """The Engine for these settings, created on first use."""
    key = (device, tile, threads)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = Engine(device=device, tile=tile, threads=threads)
        return _engines[key]
