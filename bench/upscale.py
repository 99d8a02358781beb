"""`kwaflux upscale` on one long 720p clip: pipeline overhead against inference alone, peak
memory at 100 vs all frames, and how much a rerun after a kill at 70% re-renders; writes
docs/benchmarks.md. Usage: .venv/bin/python -m bench.upscale [--frames N] [--stand-in]"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section


def make_clip(path: Path, frames: int, W: int = 1280, H: int = 720) -> Path:  # noqa: N803
    """An MJPEG clip (720p by default) of moving gradients and noise."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuvj420p"
        for k in range(frames):
            base = 128 + 100 * np.sin((xx + 4 * k) / 60.0) * np.cos((yy - 3 * k) / 45.0)
            img = base[:, :, None] + rng.normal(0, 6, (H, W, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def inference_only(clip: Path, model: str | None, frames: int) -> float:
    """Seconds the engine alone spends on the same frames (decoding not counted)."""
    from kwaflux_ofx.engine.cache import shared_engine
    from kwaflux_ofx.media.decode import read_frames
    from kwaflux_ofx.media.probe import probe

    engine = shared_engine("cpu")
    spent = 0.0
    for _, frame in read_frames(probe(clip), 0, frames):
        t = time.perf_counter()
        engine.process(frame, scale=2, denoise=0.0, sr_model=model)
        spent += time.perf_counter() - t
    return spent


def upscale(clip: Path, out: Path, model: str | None, end: int | None, kill_at: float = 0.0):
    """Run `kwaflux upscale` in a child; returns (wall seconds, peak RSS MiB, report or None,
    frames done). With kill_at, SIGKILL it once that fraction of frames is done."""
    cmd = [sys.executable, "-m", "kwaflux_ofx.cli", "upscale", str(clip), str(out), "--scale",
           "2", "--denoise", "0", "--device", "cpu", "--progress", "json", "--overwrite",
           "--report", str(out) + ".json"]  # fmt: skip
    cmd += ["--model", model] if model else []
    cmd += ["--end", str(end)] if end else []
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = 0
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "frames":
            done = event["done"]
            if kill_at and done >= kill_at * event["total"]:
                proc.send_signal(signal.SIGKILL)
                break
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    report = None
    if proc.returncode == 0:
        report = json.loads(Path(str(out) + ".json").read_text())
    return wall, usage.ru_maxrss / 1024, report, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", default="1280x720", help="WxH of the generated clip")
    ap.add_argument("--stand-in", action="store_true", help="a one-layer x2 model, not shipped")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    n = args.frames
    with tempfile.TemporaryDirectory(prefix="kwaflux-bench-") as tmp:
        d = Path(tmp)
        w, h = (int(v) for v in args.size.split("x"))
        clip = make_clip(d / "clip.mov", n, w, h)
        model = None
        name = "the shipped kwaflux-sr-x2"
        if args.stand_in:
            from tests.support.onnx_models import sr_model

            model = str(sr_model(d / "standin_x2.onnx", 2))
            name = "a one-layer 3x3 stand-in x2 (not the shipped model)"
        infer = inference_only(clip, model, n)
        wall, rss_all, rep, _ = upscale(clip, d / "all.mov", model, None)
        _, rss_100, _, _ = upscale(clip, d / "hundred.mov", model, 100)
        _, _, _, at_kill = upscale(clip, d / "resume.mov", model, None, kill_at=0.7)
        _, _, again, _ = upscale(clip, d / "resume.mov", model, None)
    resumed = again["clips"][0]["resumed"] if again else 0
    lost = at_kill - resumed  # rendered before the kill, rendered again after it
    body = f"""## `kwaflux upscale`: one {w}x{h} clip, x2, CPU (bench/upscale.py)

{n} frames of {w}x{h} MJPEG (moving pattern plus noise) to ProRes 422 HQ at {2 * w}x{2 * h}, model:
{name}, denoise 0, one clip, default pipeline (decode thread, 2 inference workers, encode).

| figure | value | goal |
|---|---|---|
| inference alone, same frames | {infer:.1f} s ({n / infer:.2f} fps) | |
| `kwaflux upscale` wall time | {wall:.1f} s ({n / wall:.2f} fps) | |
| wall / inference | {wall / infer:.2f} | <= 1.10 |
| peak RSS, 100 frames | {rss_100:.0f} MiB | |
| peak RSS, {n} frames | {rss_all:.0f} MiB | flat |
| SIGKILL at 70% ({at_kill} frames done), rerun: done frames rendered again | {lost} ({lost / n:.1%} of the clip) | <= 10% |
"""
    if rep is None:
        body += "\nThe full run failed; figures above are incomplete.\n"
    print(body)
    if not args.no_write:
        write_section("upscale", body)


if __name__ == "__main__":
    main()
