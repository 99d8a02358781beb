"""What every campaign shares: the Case record, its outcomes, running the CLI in-process and judging its error."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import signal
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


TIMELINES = ROOT.parent / "shared" / "timelines"


DOC = ROOT / "docs" / "reliability.md"


# How a case may end. These are fine; the others (BAD) are bugs.
GOOD = ("accepted", "clear error", "clip failed", "clip clamped", "clip rendered, damage reported")


BAD = ("CRASH", "UNCLEAR", "DAMAGE", "HANG", "WRONG")


@dataclasses.dataclass
class Case:
    campaign: str
    name: str  # what was tried, e.g. "edl/cdl.edl truncate@120"
    outcome: str  # one of GOOD or BAD
    detail: str = ""  # the message the user saw, or what went wrong

    @property
    def ok(self) -> bool:
        return self.outcome in GOOD


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_state(root: str | os.PathLike) -> dict[str, str]:
    """Every file (and link) under root with its checksum: before/after comparisons catch damage."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link->" + os.readlink(p)
        elif p.is_file():
            out[rel] = sha256(p)
    return out


# -- running the CLI in-process ----------------------------------------------------------------
class _Timeout(Exception):
    pass


@dataclasses.dataclass
class CliRun:
    rc: int | None
    out: str
    err: str
    exc: str = ""  # an uncaught exception's last traceback line: a crash

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("kwaflux: error:")]

    def failed_outright(self, campaign: str, name: str) -> list[Case]:
        """A run that ends neither in success nor in a reported failure (exit 0 or 1) as the
        campaign's one case (a crash, or an unclear exit); [] when it ended either way."""
        if not self.exc and self.rc in (0, 1):
            return []
        outcome = "CRASH" if self.exc else "UNCLEAR"
        return [Case(campaign, name, outcome, self.exc or self.err[-300:])]


def run_cli(argv: list[str], timeout: float = 120.0) -> CliRun:
    """`kwaflux ARGV` in this process (imports paid once), stdout/stderr captured, under a timeout."""
    from kwaflux_ofx.cli import main

    out, err = io.StringIO(), io.StringIO()
    # basicConfig binds its handler to the stderr of the first call; start fresh each time.
    for h in list(logging.root.handlers):
        logging.root.removeHandler(h)

    def alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm) if _main_thread() else None
    if old is not None:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
            except _Timeout:
                return CliRun(None, out.getvalue(), err.getvalue(), f"HANG after {timeout:g} s")
            except BaseException as exc:  # noqa: BLE001 - exactly what a campaign looks for
                tb = traceback.format_exception(exc)
                return CliRun(
                    None,
                    out.getvalue(),
                    err.getvalue(),
                    f"{type(exc).__name__}: {exc}".splitlines()[0]
                    + " | "
                    + "".join(tb[-3:-1]).strip().replace("\n", " "),
                )
    finally:
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        for h in list(logging.root.handlers):
            logging.root.removeHandler(h)
    return CliRun(rc, out.getvalue(), err.getvalue())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def judge_error(run: CliRun, names: list[str]) -> tuple[str, str]:
    """(outcome, detail) for a run that must fail with one line naming one of `names`."""
    if run.exc:
        return ("HANG" if run.exc.startswith("HANG") else "CRASH"), run.exc
    lines = run.error_lines
    if run.rc == 2 and len(lines) == 1 and "Traceback" not in run.err:
        if any(n in lines[0] for n in names):
            return "clear error", lines[0]
        return "UNCLEAR", "does not name the file: " + lines[0]
    return "UNCLEAR", f"exit {run.rc}: {run.err.strip()[-300:]}"
