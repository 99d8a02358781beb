"""Campaign: kill -9 a real conform at random moments, rerun, and check no partial output looks finished."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from reliability.cases import ROOT, Case, tree_state
from reliability.media_files import (
    _sequence_indices,
    _truncate,
    conform_argv,
    media_timeline,
    nearest_model,
)


# -- 3. kill -9 soak ---------------------------------------------------------------------------
def kill_sources(src: Path, frames: int = 48, size: tuple[int, int] = (320, 180)) -> dict:
    """Three sources (two videos, one EXR sequence) for the soak: {clip: (path, "done")}."""
    from tests.support.media import make_sequence, make_video

    if src.exists():
        shutil.rmtree(src)
    a = make_video(src / "alpha.mkv", frames, codec="ffv1", size=size)
    b = make_video(src / "bravo.mov", frames + 6, codec="mjpeg", size=size)
    seq = make_sequence(src / "charlie", "charlie.", 1001, frames // 2)
    return {"alpha": (a, "done"), "bravo": (b, "done"), "charlie": (seq[0], "done")}


def _spawn_conform(argv: list[str], log: Path):
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    errf = open(log, "ab")  # noqa: SIM115 - closed by the caller after wait()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kwaflux_ofx.cli", *argv, "--progress", "json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errf,
    )
    return proc, errf


def _wait_event(proc, names: set[str], deadline: float) -> dict | None:
    """Read the child's JSON progress lines until an event in `names` (None at EOF/deadline)."""
    import select

    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        line = proc.stdout.readline()
        if not line:
            return None
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in names:
            return event
    return None


def verify_job(
    media_dir: Path,
    expected: dict[str, int],
    src_state: dict,
    src: Path,
    out_timeline: Path | None,
    final: bool,
) -> list[str]:
    """What is wrong with the output folder now. Every finished-looking output (a visible name)
    must decode completely to exactly its frames; after the final run all must be there, the
    timeline must be valid and relinked, and nothing partial may remain."""
    import opentimelineio as otio

    from tests.support.media import decode_indices

    problems = []
    if tree_state(src) != src_state:
        problems.append("source media changed")
    for p in sorted(media_dir.iterdir()) if media_dir.exists() else []:
        if p.name.startswith("."):
            if final:
                problems.append(f"partial file left after the final run: {p.name}")
            continue
        if p.name not in expected:
            problems.append(f"unexpected output {p.name}")
            continue
        try:
            idx = _sequence_indices(p) if p.is_dir() else decode_indices(p)[0]
        except Exception as exc:  # noqa: BLE001 - a visible output that cannot decode: the bug
            problems.append(f"{p.name} taken for finished but does not decode: {exc}")
            continue
        if idx != list(range(expected[p.name])):
            problems.append(
                f"{p.name} taken for finished but holds {len(idx)} frames "
                f"({idx[:3]}...), expected {expected[p.name]}"
            )
    if final:
        have = {p.name for p in media_dir.iterdir()} if media_dir.exists() else set()
        missing = sorted(set(expected) - have)
        if missing:
            problems.append(f"outputs missing after the final run: {missing}")
    if out_timeline is not None and out_timeline.exists():
        try:
            tl = otio.adapters.read_from_file(str(out_timeline))
            urls = [
                getattr(c.media_reference, "target_url", "")
                or getattr(c.media_reference, "target_url_base", "")
                for c in tl.find_clips()
            ]
            if final and not all(str(media_dir) in (u or "") for u in urls):
                problems.append(f"output timeline not relinked: {urls}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"output timeline unreadable: {exc}")
    elif final:
        problems.append("no output timeline after the final run")
    return problems


def campaign_kills(
    work: Path, kills: int, seed: int = 0, frames: int = 48, codec: str = "ffv1"
) -> list[Case]:
    """kill -9 a real `kwaflux conform` process at random moments of its render, rerun each
    time; check after every kill and after the final run (see verify_job)."""
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    src = work / "src"
    media = kill_sources(src, frames)
    tl = media_timeline(media, work / "soak.otio", frames=frames)
    model = nearest_model(work / "models")
    ext = ".mkv" if codec == "ffv1" else ""  # image sequence outputs are folders
    expected = {f"alpha{ext}": frames, f"bravo{ext}": frames, f"charlie{ext}": frames // 2}
    src_state = tree_state(src)
    log = work / "children.log"
    cases: list[Case] = []

    def argv(media_dir: Path, out: Path, jobs: int) -> list[str]:
        a = conform_argv(tl, out, media_dir, model, "--jobs", str(jobs))
        a[a.index("--codec") + 1] = codec
        return [x for x in a if x != "-q"]

    # A full run first: how long rendering takes (from the "start" event to the end).
    ref_dir, ref_out = work / "reference", work / "reference.otio"
    proc, errf = _spawn_conform(argv(ref_dir, ref_out, 1), log)
    t_start = None
    if _wait_event(proc, {"start"}, time.monotonic() + 120):
        t_start = time.monotonic()
    proc.wait(timeout=300)
    errf.close()
    render_s = time.monotonic() - t_start if t_start else 1.0
    problems = verify_job(ref_dir, expected, src_state, src, ref_out, final=True)
    cases.append(
        Case(
            "kills",
            "uninterrupted reference run",
            "WRONG" if problems else "accepted",
            "; ".join(problems) or f"rendered in {render_s:.2f} s",
        )
    )
    media_dir, out = work / "media", work / "soak-out.otio"
    landed = k = 0
    while landed < kills and k < 4 * kills:  # `kills` kills that land during a render
        k += 1
        jobs = 1 + k % 2
        delay = rng.uniform(0.0, render_s * 0.9)
        proc, errf = _spawn_conform(argv(media_dir, out, jobs), log)
        started = _wait_event(proc, {"start", "finish"}, time.monotonic() + 120)
        if started and started["event"] == "start":
            time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)  # our own child, by its id
        proc.wait(timeout=60)
        errf.close()
        state = sorted(p.name for p in media_dir.iterdir()) if media_dir.exists() else []
        # A kill after every output was in place hit the timeline/report stage, not a render.
        mid = not finished and not set(expected) <= set(state)
        landed += mid
        problems = verify_job(media_dir, expected, src_state, src, out, final=False)
        if mid:
            what = f"kill {landed} at +{delay:.2f} s (jobs {jobs}); folder then: {state}"
        elif not finished:
            what = f"late kill at +{delay:.2f} s, after the last output was in place (run {k})"
        else:
            what = f"run {k} finished before its kill at +{delay:.2f} s"
        cases.append(
            Case(
                "kills",
                what,
                "WRONG" if problems else "accepted",
                "; ".join(problems) or ("no finished-looking file was partial"),
            )
        )
        if not mid and not problems:
            shutil.rmtree(media_dir, ignore_errors=True)  # start over so later kills land
            out.unlink(missing_ok=True)
    # A finished output damaged behind our back must be redone, not kept.
    proc, errf = _spawn_conform(argv(media_dir, out, 1), log)
    proc.wait(timeout=300)
    errf.close()
    victim = media_dir / f"alpha{ext}"
    if victim.is_file():
        _truncate(victim, 0.6)
    elif victim.is_dir():
        sorted(victim.iterdir())[-1].unlink()
    proc, errf = _spawn_conform(argv(media_dir, out, 2), log)
    proc.wait(timeout=300)
    errf.close()
    problems = verify_job(media_dir, expected, src_state, src, out, final=True)
    if proc.returncode != 0:
        problems.append(f"final run exit {proc.returncode}")
    cases.append(
        Case(
            "kills",
            f"final rerun after {landed} kills (and a truncated output)",
            "WRONG" if problems else "accepted",
            "; ".join(problems) or "all outputs complete, timeline relinked",
        )
    )
    return cases
