"""The command line as a user runs it: a fresh interpreter, its exit status and its two streams."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kwaflux_ofx.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
