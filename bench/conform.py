"""Conform pipeline benchmark: wall time against each stage alone, and peak RSS against clip length.

Goal (issue 5): a conform's wall time <= 1.15 x its slowest stage measured alone (decode,
inference and encode overlap), and peak memory flat in the clip's length. Writes its section of
docs/benchmarks.md. Usage: .venv/bin/python -m bench.conform [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import write_section
from kwaflux_ofx.conform import ConformSettings, run_conform
from kwaflux_ofx.engine.cache import shared_engine
from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.encode import VideoWriter
from kwaflux_ofx.media.probe import probe
from tests.support.conform import one_clip_timeline
from tests.support.media import make_nearest_x2, make_video

ROOT = Path(__file__).resolve().parent.parent


REPEATS = 2


def make_source(path: Path, frames: int, w: int, h: int) -> Path:
    """A ProRes clip of moving, photo-like texture: smooth shapes, edges and mild grain (pure
    noise would make ProRes ~15x slower than real footage and skew the encode stage)."""
    rng = np.random.default_rng(0)
    grain = rng.normal(0, 4, (h + 64, w + 64, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def texture(k: int) -> np.ndarray:
        r = 128 + 100 * np.sin((xx + 3 * k) / 23.0) * np.cos(yy / 17.0)
        g = 128 + 90 * np.sign(np.sin((xx - yy + 2 * k) / 31.0))
        b = (xx * 0.4 + yy * 0.3 + k) % 256
        img = np.stack([r, g, b], -1) + grain[k % 64 : k % 64 + h, k % 64 : k % 64 + w]
        return np.clip(img, 0, 255).astype(np.uint8)

    # prores_ks picks the 422 HQ profile for its 10-bit 4:2:2 input by itself.
    return make_video(
        path, frames, 24, "01:00:00:00", codec="prores_ks", size=(w, h), frame_fn=texture
    )


def write_timeline(path: Path, media: Path, frames: int) -> Path:
    """One clip of `frames` frames from 01:00:00:00 of `media`, found by its file name."""
    return one_clip_timeline(path, media.name, 86400, frames, name="clip")


def stages(work: Path, frames: int, w: int, h: int, model: str | None, codec: str) -> dict:
    """Each stage alone over the same frames, then the whole conform."""
    d = work / f"src_{w}x{h}_{frames}"
    d.mkdir(exist_ok=True)
    src = make_source(d / "clip.mov", frames, w, h)
    info = probe(src)
    settings = ConformSettings(scale=2, model=model, codec=codec, handles=0)
    engine = shared_engine("auto")

    def process(f):
        return engine.process(f, scale=2, sr_model=model)

    decoded = [f for _, f in read_frames(info, 0, min(frames, 4))]
    process(decoded[0])  # session start-up is not a stage
    tl = write_timeline(work / "bench.otio", src, frames)
    best: dict[str, float] = {}

    def keep(name: str, seconds: float, cpu: float | None = None) -> None:
        if seconds < best.get(name, float("inf")):
            best[name] = seconds
            if cpu is not None:
                best[name + "_cpu"] = cpu

    # Best of REPEATS: the machine is shared, and the minimum is the least disturbed run.
    for _ in range(REPEATS):
        t, c = time.perf_counter(), time.process_time()
        decoded = [f for _, f in read_frames(info, 0, frames)]
        keep("decode", time.perf_counter() - t, time.process_time() - c)

        # Inference as the pipeline runs it: two frames in flight on a small pool.
        t, c = time.perf_counter(), time.process_time()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(process, decoded[:frames]))
        keep("infer", time.perf_counter() - t, time.process_time() - c)

        t, c = time.perf_counter(), time.process_time()
        wr = VideoWriter(
            str(work / f"enc{CODECS[codec].ext}"),
            CODECS[codec],
            w * 2,
            h * 2,
            24.0,
            86400,
            high_bit=True,
        )
        for f in outs:
            wr.write(f)
        wr.close()
        keep("encode", time.perf_counter() - t, time.process_time() - c)
        del outs, decoded

        out = Path(tempfile.mkdtemp(dir=work, prefix="out_"))  # fresh: a rerun would resume
        t = time.perf_counter()
        rep = run_conform(
            tl,
            out / "o.otio",
            out / "media",
            search_paths=[src.parent],
            settings=settings,
            engine=engine,
        )
        keep("wall", time.perf_counter() - t)
        assert rep["summary"]["done"] == 1 and rep["clips"][0]["reason"] == "", rep
    return best


RSS_CHILD = """
import json, sys
from kwaflux_ofx.conform import run_conform
rep = run_conform({tl!r}, {out!r}, {media!r}, search_paths=[{src!r}], model={model!r},
                  codec="prores_422hq", handles=0)
assert rep["summary"]["done"] == 1, rep
# VmHWM, not ru_maxrss: ru_maxrss carries the parent's size at fork across exec.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({{"maxrss_kb": hwm}}))
"""


def peak_rss(work: Path, frames: int, w: int, h: int, model: str) -> float:
    d = work / f"rss_{frames}"
    d.mkdir(exist_ok=True)
    src = make_source(d / "clip.mov", frames, w, h)
    tl = write_timeline(d / "t.otio", src, frames)
    code = RSS_CHILD.format(
        tests=str(ROOT / "tests"),
        tl=str(tl),
        out=str(d / "o.otio"),
        media=str(d / "media"),
        src=str(d),
        model=model,
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(r.stdout.strip().splitlines()[-1])["maxrss_kb"] / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short clips (a smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    args = ap.parse_args()
    q = args.quick
    rows, rss_rows = [], []
    with tempfile.TemporaryDirectory(prefix="kwaflux-bench-conform-") as tmp:
        work = Path(tmp)
        light = str(make_nearest_x2(work / "nearest_x2.onnx"))
        scenarios = [
            ("built-in kwaflux-sr-x2", None, 320, 180, 12 if q else 48),
            ("light model (nearest x2, encode-bound)", light, 640, 360, 24 if q else 96),
        ]
        for label, model, w, h, n in scenarios:
            s = stages(work, n, w, h, model, "prores_422hq")
            slow = max(s["decode"], s["infer"], s["encode"])
            total = s["decode"] + s["infer"] + s["encode"]
            rows.append((label, w, h, n, s, slow, total))
            print(
                label,
                json.dumps({k: round(v, 3) for k, v in s.items()}),
                f"wall/slowest {s['wall'] / slow:.3f} wall/sum {s['wall'] / total:.3f}",
            )
        for n in (24, 96) if q else (48, 192, 768):
            mb = peak_rss(work, n, 640, 360, light)
            rss_rows.append((n, mb))
            print(f"peak RSS {n} frames: {mb:.0f} MiB")

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Conform pipeline (`bench/conform.py`)",
        "",
        "One clip conformed x2 to ProRes 422 HQ from a ProRes 422 HQ source, handles 0, "
        "CPU. Each stage is first timed alone over the same frames (decode: PyAV to "
        "RGB; inference: Engine.process with the pipeline's two frames in flight; encode: "
        "PyAV), then the whole `run_conform` (which also probes, plans and writes the "
        f"timeline); each figure is the best of {REPEATS} runs. Load average on this shared "
        f"machine during the run: {load}.",
        "",
        "On a CPU-only machine the stages compete for the same cores (onnxruntime spreads "
        "one frame over all of them), so no overlap can bring the wall time under the "
        "stages' CPU time summed and divided by the cores: the *CPU floor* column. The "
        "1.15 × slowest-stage goal assumes the stages use different hardware (GPU "
        "inference); here the fair comparison is against that floor.",
        "",
        "| scenario | input | frames | decode s | inference s | encode s | CPU floor s "
        "| conform wall s | wall / slowest stage | wall / sum of stages | wall / CPU floor "
        "| goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    cores = os.cpu_count() or 1
    for label, w, h, n, s, slow, total in rows:
        floor = max(slow, sum(s[k + "_cpu"] for k in ("decode", "infer", "encode")) / cores)
        lines.append(
            f"| {label} | {w}×{h} | {n} | {s['decode']:.2f} | {s['infer']:.2f} | "
            f"{s['encode']:.2f} | {floor:.2f} | {s['wall']:.2f} | {s['wall'] / slow:.3f} "
            f"| {s['wall'] / total:.3f} | {s['wall'] / floor:.3f} "
            f"| wall <= 1.15 × slowest |"
        )
    base = rss_rows[0][1]
    lines += [
        "",
        "Peak resident memory of a whole `kwaflux conform` process (light model, "
        "640×360 -> 1280×720 ProRes) against clip length:",
        "",
        "| frames | peak RSS MiB | ratio to shortest | goal |",
        "|---:|---:|---:|---|",
    ]
    for n, mb in rss_rows:
        lines.append(f"| {n} | {mb:.0f} | {mb / base:.3f} | flat (<= 1.10) |")
    if args.no_write:
        print("\n".join(lines))
    else:
        write_section("conform", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
