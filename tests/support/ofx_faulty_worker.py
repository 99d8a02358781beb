"""A render worker that misbehaves on purpose, for the plugin's fault tests: which fault comes
from KWAFLUX_TEST_WORKER_FAULT, which the tests put in the worker's environment through
kwaflux.cfg's env lines (the worker sees none of the host's variables)."""

from __future__ import annotations

import os
import sys

from kwaflux_ofx.hosts.ofx import worker


def _wrong_shape_replies() -> None:
    """Render for real into the shared buffer, then describe a frame one row taller."""
    real = worker._reply

    def reply(sock, **fields):
        if "shape" in fields:
            h, w, c = fields["shape"].split()
            fields["shape"] = f"{int(h) + 1} {w} {c}"
        real(sock, **fields)

    worker._reply = reply


def main(fd: int) -> None:
    fault = os.environ.get("KWAFLUX_TEST_WORKER_FAULT", "")
    if fault == "die-at-start":
        sys.exit(3)
    if fault == "wrong-shape":
        _wrong_shape_replies()
    worker.main(fd)
