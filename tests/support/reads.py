"""The fresh-machine guard: a test that reads a file from outside what a fresh clone has fails.

A fresh machine has the checkout, what `.ci/run` installs into the venv, the interpreter's
own library and the temporary folders the tests make. Anything else a test reads (photos
installed by hand with apt-get, the git-ignored training caches under python/data/, a model
in the user's folder) makes the suite pass here and fail for a newcomer, so reads are watched
with an audit hook (PEP 578) and each one outside those places fails the test that made it.

The hook sees what Python opens in this process: `open()`, `os.open`, `os.listdir`,
`os.scandir` (numpy, PIL, PyAV's and OpenImageIO's Python entry points included). Files that
native code opens by itself and reads by child processes are not seen; the tests that start
`kwaflux` in a subprocess pass it the same paths they would read here.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Inside the checkout but not in a fresh clone: caches that training scripts fill by hand.
_IGNORED_IN_CHECKOUT = ("python/data",)

# System places any program reads on any machine: devices, the kernel's views, the dynamic
# loader, time zones, certificates, locale and the compilers the C++ tests call.
_SYSTEM = ("/dev", "/proc", "/sys", "/etc", "/usr/lib", "/usr/lib64", "/lib", "/lib64",
           "/usr/share/zoneinfo", "/usr/share/locale", "/usr/include", "/usr/local/lib",
           "/usr/share/cmake", "/usr/share/cmake-3.25")  # fmt: skip

_EVENTS = {"open": 0, "os.listdir": 0, "os.scandir": 0}


def _reads(args: tuple) -> bool:
    """Whether an "open" event reads: open()'s mode string, or os.open's flags."""
    mode = args[1] if len(args) > 1 else None
    if isinstance(mode, str):
        return "r" in mode or "+" in mode
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else os.O_RDONLY
    return flags & os.O_ACCMODE != os.O_WRONLY


def _allowed_roots(extra: tuple[Path, ...]) -> tuple[str, ...]:
    roots = {str(ROOT), tempfile.gettempdir(), sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.update(sysconfig.get_paths().values())
    roots.update(site.getsitepackages())
    roots.update(_SYSTEM)
    roots.update(str(p) for p in extra)
    # Resolved as well: /tmp or the pyenv prefix may be symbolic links.
    roots.update(os.path.realpath(r) for r in list(roots))
    return tuple(sorted(r.rstrip("/") or "/" for r in roots))


class ReadGuard:
    """Collects reads outside the allowed places; `take()` hands them over and starts again."""

    def __init__(self, extra_roots: tuple[Path, ...] = ()) -> None:
        self._roots = _allowed_roots(extra_roots)
        self._denied = tuple(str(ROOT / d) for d in _IGNORED_IN_CHECKOUT)
        self._lock = threading.Lock()
        self._seen: list[str] = []
        self.active = False

    def allowed(self, path: str) -> bool:
        p = os.path.abspath(path)
        if any(p == d or p.startswith(d + "/") for d in self._denied):
            return False
        return any(p == r or p.startswith(r + "/") or r == "/" for r in self._roots)

    def hook(self, event: str, args: tuple) -> None:
        if not self.active or event not in _EVENTS:
            return
        target = args[0] if args else None
        if isinstance(target, bytes):
            target = os.fsdecode(target)
        if not isinstance(target, str | os.PathLike) or isinstance(target, int):
            return  # a file descriptor, or scandir() of the working directory
        path = os.fspath(target)
        if event == "open" and not _reads(args):
            return  # written only: where tests write is another matter (they use tmp_path)
        if not self.allowed(path):
            with self._lock:
                self._seen.append(f"{event} {os.path.abspath(path)}")

    def take(self) -> list[str]:
        with self._lock:
            seen, self._seen = self._seen, []
        return sorted(set(seen))


def install(extra_roots: tuple[Path, ...] = ()) -> ReadGuard:
    guard = ReadGuard(extra_roots)
    sys.addaudithook(guard.hook)  # audit hooks cannot be removed: `active` turns it off
    guard.active = True
    return guard
