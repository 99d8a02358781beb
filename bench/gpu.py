"""GPU frame rate: the engine on CUDA against a raw IO-bound session.run, fp32/fp16, 1-4 streams.

One script for a scarce GPU: x2 at 1920×1080 -> 3840×2160 and x4 at 480×270 -> 1920×1080
(--x4-input to change), shipped models in fp32 and fp16, host frames uint8 and float32, 1..4
frames in flight (one render thread and one session/stream each), and the bare model with its
input and output on the device as the baseline. Names the card and the onnxruntime-gpu version,
and writes docs/benchmarks.md. Refuses in one line where CUDA does not start.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.report import write_section

CUDA = "CUDAExecutionProvider"


def card() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.splitlines()[0] if out else "unknown card (nvidia-smi gave nothing)"


def ort_version() -> str:
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "onnxruntime (version unknown)"


def raw_fps(path: Path, shape: tuple[int, int], frames: int) -> float:
    """The bare model, input and output on the device, one stream: the ceiling for the engine."""
    import onnxruntime as ort

    from kwaflux_ofx.engine.spec import ModelSpec

    spec = ModelSpec.from_onnx(path)
    sess = ort.InferenceSession(str(path), providers=[CUDA])
    if sess.get_providers()[0] != CUDA:
        raise SystemExit(f"bench/gpu.py: CUDA did not start for {path.name}; no figures")
    x = np.random.default_rng(0).random((1, 3, *shape), dtype=np.float32)
    value = ort.OrtValue.ortvalue_from_numpy(x.astype(spec.input_dtype), "cuda", 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(spec.input_name, value)
    binding.bind_output(spec.output_name, "cuda")
    for _ in range(3):
        sess.run_with_iobinding(binding)
    binding.synchronize_outputs()
    t = time.perf_counter()
    for _ in range(frames):
        sess.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return frames / (time.perf_counter() - t)


def engine_fps(engine, model: Path, scale: int, src: np.ndarray, threads: int, frames: int):
    """Frames per second with `threads` render threads, each with its own host buffers, on one
    engine whose session pool has a session (and CUDA stream) per thread."""
    dsts = [
        np.empty((src.shape[0] * scale, src.shape[1] * scale, 3), src.dtype) for _ in range(threads)
    ]
    srcs = [src.copy() for _ in range(threads)]

    def work(i: int, n: int) -> None:
        for _ in range(n):
            engine.process_into(srcs[i], dsts[i], scale=scale, sr_model=model)

    def run(n: int) -> float:
        pool = [threading.Thread(target=work, args=(i, n)) for i in range(threads)]
        t = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        return time.perf_counter() - t

    run(2)  # warm-up: sessions, cuDNN algorithm search, arenas
    per_thread = max(1, frames // threads)
    return per_thread * threads / run(per_thread)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=24, help="frames per measurement")
    ap.add_argument("--streams", type=int, default=4, help="measure 1..N frames in flight")
    ap.add_argument("--x4-input", default="480x270", help="x4 input size WxH (output ×4)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    import onnxruntime as ort

    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import resolve_model

    if CUDA not in ort.get_available_providers():
        print("bench/gpu.py: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        return 2
    w4, h4 = (int(v) for v in args.x4_input.lower().split("x"))
    cases = [("kwaflux-sr-x2", 2, (1080, 1920)), ("kwaflux-sr-x4", 4, (h4, w4))]
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for name, scale, (h, w) in cases:
        shipped = resolve_model(name)
        fp32_only = tmp / shipped.name  # no .fp16.onnx beside it: the engine keeps fp32
        shutil.copy(shipped, fp32_only)
        half = shipped.with_name(shipped.name.removesuffix(".onnx") + ".fp16.onnx")
        for precision, model, raw_path in (
            ("fp32", fp32_only, shipped),
            ("fp16", shipped, half),
        ):
            raw = raw_fps(raw_path, (h, w), args.frames)
            engine = Engine(device="cuda", tile=8192, streams=args.streams)
            engine.process(np.zeros((16, 16, 3), np.float32), scale=scale, sr_model=model)
            if engine.providers != [CUDA]:  # a CPU fallback would take minutes a frame here
                print(f"bench/gpu.py: CUDA did not start ({engine.providers}); no figures")
                return 2
            for dtype in (np.uint8, np.float32):
                src = np.random.default_rng(1).random((h, w, 3), dtype=np.float32)
                src = (src * 255).astype(dtype) if dtype == np.uint8 else src
                for threads in range(1, args.streams + 1):
                    fps = engine_fps(engine, model, scale, src, threads, args.frames)
                    goal = ">= 60 fps" if (scale, precision) == (2, "fp16") else ""
                    if threads == 1:
                        goal += ("; " if goal else "") + "raw/engine <= 1.10"
                    rows.append(
                        f"| x{scale} {w}×{h} -> {w * scale}×{h * scale} | {precision} "
                        f"| {np.dtype(dtype).name} | {threads} | {fps:.1f} | {1e3 / fps:.2f} "
                        f"| {raw:.1f} | {raw / fps:.3f} | {goal} |"
                    )
                    print(rows[-1], flush=True)
    body = [
        "## GPU frame rate (`bench/gpu.py`)\n",
        f"Card: {card()}; {ort_version()}. Engine.process_into on host frames (RGB, the "
        "model wrapped with the pixel work in its graph, IO binding, untiled), N render threads "
        "on one engine with a session and CUDA stream each; baseline: the bare model's "
        f"session.run with input and output on the device (one stream). {args.frames} frames "
        "per row after a warm-up.\n",
        "| case | precision | host frames | frames in flight | engine fps | ms/frame "
        "| raw IO-bound fps | raw / engine | goal |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("gpu", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
