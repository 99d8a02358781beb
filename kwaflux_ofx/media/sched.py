"""Keep an encoder from leaving real-time scheduling behind in this process."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

log = logging.getLogger(__name__)

# Run as root (containers, render nodes), SVT-AV1 puts the thread that opens it, and the few
# dozen threads it starts, on SCHED_FIFO at priority 99. Threads that thread starts later
# inherit it: onnxruntime's pool workers, which spin and are pinned to a core, then starve a
# sibling pinned to the same core forever (the test suite hung so after an AV1 delivery test),
# and the encoder's own threads outrank inference and the host. The encoder needs no real-time
# priority to encode a file, so every thread it raised goes back to the normal policy, unless
# the caller was already real-time (someone ran us under `chrt` on purpose).
_REALTIME = tuple(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The real-time threads before an encoder opened, and whether the caller was one."""

    threads: frozenset[int]
    caller: bool


def realtime_threads() -> set[int]:
    """The ids of this process's threads on a real-time policy (empty where Linux's /proc or
    sched_getscheduler is missing)."""
    if not _REALTIME or not hasattr(os, "sched_getscheduler"):
        return set()
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return set()
    out = set()
    for tid in tids:
        try:
            if os.sched_getscheduler(tid) in _REALTIME:
                out.add(tid)
        except OSError:  # the thread ended meanwhile
            continue
    return out


def snapshot() -> Snapshot:
    """What is real-time now, taken on the thread that is about to open an encoder."""
    threads = realtime_threads()
    return Snapshot(frozenset(threads), threading.get_native_id() in threads)


def demote_new_realtime(before: Snapshot, what: str) -> int:
    """Put every real-time thread not in `before` back on SCHED_OTHER; returns how many."""
    if before.caller:
        return 0
    done = 0
    for tid in realtime_threads() - before.threads:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            done += 1
        except OSError:
            continue
    if done:
        log.debug("%s: %d threads raised to real-time priority put back", what, done)
    return done
