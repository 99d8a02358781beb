"""Progress for the whole job and for each unit: tqdm bars for people, JSON lines for wrappers."""

from __future__ import annotations

import json
import sys
import threading
import time


class Progress:
    """Thread-safe progress sink. mode: "bar" (tqdm on stderr), "json" (one object a line on
    stdout), or "none"."""

    def __init__(self, mode: str = "bar", stream=None, label: str = "conform"):
        self.mode = mode
        self.label = label
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._lock = threading.Lock()
        self._job = None
        self._bars: dict[int, object] = {}
        self._done: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._last_emit: dict[int, float] = {}
        self._began: dict[int, float] = {}  # unit (and -1, the job) -> when it started
        self._slots: list[int | None] = []

    def _emit(self, **event) -> None:
        self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        self.stream.flush()

    def note(self, line: str, fields: dict) -> None:
        """One line for people (e.g. the strength auto denoise chose), an event for wrappers."""
        with self._lock:
            if self.mode == "json":
                self._emit(event="note", text=line, **fields)
            elif self.mode == "bar":
                from tqdm import tqdm

                tqdm.write(line, file=self.stream)

    def rates(self, key: int, done: int, total: int) -> dict:
        """Frames per second since `key` started, and the seconds left at that pace."""
        elapsed = max(time.monotonic() - self._began.get(key, time.monotonic()), 1e-6)
        fps = done / elapsed
        eta = (total - done) / fps if fps > 0 else None
        return {
            "fps": round(fps, 3),
            "elapsed": round(elapsed, 2),
            "eta": None if eta is None else round(eta, 1),
        }

    def start(self, units: int, frames: int) -> None:
        with self._lock:
            self._began[-1] = time.monotonic()
            self._total[-1] = frames
            if self.mode == "json":
                self._emit(event="start", units=units, frames=frames)
            elif self.mode == "bar":
                from tqdm import tqdm

                self._job = tqdm(
                    total=frames,
                    unit="frame",
                    desc=self.label,
                    position=0,
                    file=self.stream,
                    dynamic_ncols=True,
                )

    def unit_start(self, unit_id: int, name: str, frames: int) -> None:
        with self._lock:
            self._done[unit_id] = 0
            self._total[unit_id] = frames
            self._began[unit_id] = time.monotonic()
            if self.mode == "json":
                self._emit(event="unit_start", unit=unit_id, name=name, frames=frames)
            elif self.mode == "bar":
                from tqdm import tqdm

                slot = next((i for i, u in enumerate(self._slots) if u is None), len(self._slots))
                if slot == len(self._slots):
                    self._slots.append(None)
                self._slots[slot] = unit_id
                self._bars[unit_id] = tqdm(
                    total=frames,
                    unit="frame",
                    desc=name[:30],
                    position=slot + 1,
                    leave=False,
                    file=self.stream,
                    dynamic_ncols=True,
                )

    def frames(self, unit_id: int, n: int) -> None:
        with self._lock:
            self._done[unit_id] = self._done.get(unit_id, 0) + n
            self._done[-1] = self._done.get(-1, 0) + n
            if self.mode == "json":
                now = time.monotonic()
                done, total = self._done[unit_id], self._total.get(unit_id, 0)
                # At most ~5 lines a second per unit, and always the last frame.
                if done >= total or now - self._last_emit.get(unit_id, 0.0) >= 0.2:
                    self._last_emit[unit_id] = now
                    job = self.rates(-1, self._done[-1], self._total.get(-1, 0))
                    self._emit(
                        event="frames",
                        unit=unit_id,
                        done=done,
                        total=total,
                        **self.rates(unit_id, done, total),
                        job_done=self._done[-1],
                        job_total=self._total.get(-1, 0),
                        job_fps=job["fps"],
                        job_eta=job["eta"],
                    )
            elif self.mode == "bar":
                if unit_id in self._bars:
                    self._bars[unit_id].update(n)
                if self._job is not None:
                    self._job.update(n)

    def unit_done(self, unit_id: int, name: str, result: dict) -> None:
        with self._lock:
            if self.mode == "json":
                self._emit(
                    event="unit_done",
                    unit=unit_id,
                    name=name,
                    status=result["status"],
                    reason=result.get("reason", ""),
                    frames=result.get("frames", 0),
                )
            elif self.mode == "bar":
                bar = self._bars.pop(unit_id, None)
                if bar is not None:
                    bar.close()
                if unit_id in self._slots:
                    self._slots[self._slots.index(unit_id)] = None
                if self._job is not None and result["status"] in ("done", "damaged"):
                    # Outputs kept from an earlier run count as done frames too.
                    missing = self._total.get(unit_id, 0) - self._done.get(unit_id, 0)
                    if missing > 0:
                        self._job.update(missing)

    def finish(self, summary: dict) -> None:
        with self._lock:
            if self.mode == "json":
                self._emit(event="finish", summary=summary)
            elif self.mode == "bar" and self._job is not None:
                self._job.close()
