"""Engine overhead at 1920×1080 -> 3840×2160: engine vs raw InferenceSession.run, memory, tiling."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.report import write_section
from tests.support.onnx_models import save_model


def compact_sr(path: Path, scale: int = 2, convs: int = 8, ch: int = 32) -> Path:
    """An SRVGG-style body (convs × ch, PReLU) + pixel shuffle, random weights: a stand-in model."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], "input", 3
    for i in range(convs):
        cout = ch if i < convs - 1 else 3 * scale * scale
        w = rng.normal(0, (2 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1] * 4))
        prev, cin = f"c{i}", cout
        if i < convs - 1:
            inits.append(numpy_helper.from_array(np.full((cout, 1, 1), 0.1, np.float32), f"a{i}"))
            nodes.append(helper.make_node("PRelu", [prev, f"a{i}"], [f"p{i}"]))
            prev = f"p{i}"
    nodes.append(helper.make_node("DepthToSpace", [prev], ["output"], blocksize=scale, mode="CRD"))
    meta = {"kind": "sr", "scale": scale, "receptive_field": convs + 1}
    save_model(
        path,
        nodes,
        inits,
        meta=meta,
        in_shape=(1, 3, "H", "W"),
        out_shape=(1, 3, "OH", "OW"),
        check=False,
    )
    return path


def timed_rounds(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, measured in interleaved rounds (a, b, c, a, b, c...), so
    a change in machine load during the run weighs on every variant alike."""
    for fn in fns.values():
        fn()  # warm-up: session creation, arena growth
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def python_peak(fn) -> int:
    """Peak bytes Python allocated (numpy arrays included) during one call of fn."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def overhead_rows(model: Path, repeats: int) -> tuple[list[str], list[str]]:
    """The one-convolution x2 model, where the model costs little and the engine's own pixel
    work shows: engine minus bare session.run, wrapped and numpy paths, float32 and uint8."""
    import onnxruntime as ort

    from kwaflux_ofx import Engine

    rng = np.random.default_rng(1)
    frames = {
        "float32": rng.random((1080, 1920, 3), dtype=np.float32),
        "uint8": rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8),
    }
    outs = {k: np.empty((2160, 3840, 3), v.dtype) for k, v in frames.items()}
    nchw = np.ascontiguousarray(frames["float32"].transpose(2, 0, 1)[None])
    raw = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    wrapped = Engine(device="cpu", tile=4096)
    numpy_path = Engine(device="cpu", tile=4096, wrap=False)
    fns = {"raw": lambda: raw.run(None, {"input": nchw})}
    for dt, f in frames.items():
        for name, eng in (("wrapped", wrapped), ("numpy", numpy_path)):
            fns[f"{name} {dt}"] = lambda f=f, o=outs[dt], e=eng: e.process_into(
                f, o, scale=2, sr_model=model
            )
    t = timed_rounds(fns, repeats)
    rows = []
    for dt in frames:
        for name, what, goal in (
            ("wrapped", "pixel work in the graph", "<= 25 ms"),
            ("numpy", "numpy path, as before (Engine(wrap=False))", "info (112 ms in issue 15)"),
        ):
            e = t[f"{name} {dt}"]
            rows.append(
                f"| Engine.process_into, {dt}, {what} | {e * 1e3:.1f} | {t['raw'] * 1e3:.1f} "
                f"| {(e - t['raw']) * 1e3:+.1f} | {(e - t['raw']) / t['raw']:+.3f} | {goal} |"
            )
    peaks = []
    for dt, f in frames.items():
        o = outs[dt]
        for name, eng in (("wrapped", wrapped), ("numpy", numpy_path)):
            peak = python_peak(
                lambda f=f, o=o, e=eng: e.process_into(f, o, scale=2, sr_model=model)
            )
            goal = "<= 1" if name == "wrapped" else "info"
            peaks.append(
                f"| one conv x2, {dt}, {name}, process_into | {peak / 2**20:.1f} "
                f"| {peak / o.nbytes:.3f} | {goal} |"
            )
    return rows, peaks


def shipped_rows(model: Path, repeats: int, tile: int) -> tuple[list[str], list[str], str]:
    """A real model, where the model's own cost dominates: ratios against raw and untiled."""
    import onnxruntime as ort

    from kwaflux_ofx import Engine

    frame = np.random.default_rng(1).random((1080, 1920, 3), dtype=np.float32)
    nchw = np.ascontiguousarray(frame.transpose(2, 0, 1)[None])
    untiled = Engine(device="cpu", tile=4096)
    spec = untiled.model_spec(model)
    out = np.empty((1080 * spec.scale, 1920 * spec.scale, 3), np.float32)
    raw = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {spec.input_name: nchw}
    tiled = Engine(device="cpu", tile=tile)
    n_tiles = len(tiled.plan_for(frame.shape, scale=spec.scale, sr_model=model).tiles)
    default = Engine(device="cpu")
    n_default = len(default.plan_for(frame.shape, scale=spec.scale, sr_model=model).tiles)
    kw = dict(scale=spec.scale, sr_model=model)
    t = timed_rounds(
        {
            "raw": lambda: raw.run(None, feeds),
            "untiled": lambda: untiled.process_into(frame, out, **kw),
            "tiled": lambda: tiled.process_into(frame, out, **kw),
            "default": lambda: default.process_into(frame, out, **kw),
        },
        repeats,
    )
    plan = tiled.plan_for(frame.shape, **kw)
    read_px = sum((t.read[1] - t.read[0]) * (t.read[3] - t.read[2]) for t in plan.tiles)
    overlap = read_px / (frame.shape[0] * frame.shape[1])
    rows = [
        ("raw InferenceSession.run (NCHW float32, whole frame)", t["raw"], 1.0, "baseline", ""),
        (
            "Engine.process_into, untiled",
            t["untiled"],
            t["untiled"] / t["raw"],
            "vs raw",
            "<= 1.05",
        ),
        (
            f"Engine.process_into, default tiling ({n_default} tiles, memory budget)",
            t["default"],
            t["default"] / t["untiled"],
            "vs untiled",
            "<= 1.10",
        ),
        (
            f"Engine.process_into, tile {tile} ({n_tiles} tiles)",
            t["tiled"],
            t["tiled"] / t["untiled"],
            "vs untiled",
            f"info: tiles read {overlap:.3f}× the frame's pixels (context overlap)",
        ),
    ]
    table = [f"| {n} | {s:.3f} | {r:.3f} | {vs} | {goal} |" for n, s, r, vs, goal in rows]
    peaks = []
    for name, fn, goal in (
        ("process_into, default tiling", lambda: default.process_into(frame, out, **kw), "<= 1"),
        ("process (allocates the output frame)", lambda: default.process(frame, **kw), "info"),
    ):
        peak = python_peak(fn)
        peaks.append(
            f"| {spec.name} x{spec.scale}, float32, {name} | {peak / 2**20:.1f} "
            f"| {peak / out.nbytes:.3f} | {goal} |"
        )
    return table, peaks, f"`{Path(model).name}` (x{spec.scale})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--model", default=None, help="SR model (default: built-in kwaflux-sr-x2, else a stand-in)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="rounds for the real model")
    ap.add_argument("--light-repeats", type=int, default=7, help="rounds for the one-conv model")
    ap.add_argument("--tile", type=int, default=512, help="tile size for the tiled run")
    ap.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    args = ap.parse_args()

    from kwaflux_ofx.models.registry import resolve_model

    tmp = tempfile.TemporaryDirectory()
    if args.model:
        model = resolve_model(args.model)
    else:
        try:
            model = resolve_model("kwaflux-sr-x2")
        except Exception:
            model = compact_sr(Path(tmp.name) / "compact-x2.onnx")
    one_conv = compact_sr(Path(tmp.name) / "one-conv-x2.onnx", convs=1)
    load_before = load()
    light, light_peaks = overhead_rows(one_conv, args.light_repeats)
    real, real_peaks, name = shipped_rows(model, args.repeats, args.tile)
    load_after = load()
    body = [
        "## Engine overhead (`bench/engine.py`)\n",
        "CPU provider, input 1920×1080 RGB, output 3840×2160; medians of interleaved rounds "
        "(each round runs every variant once, so load changes weigh on all alike). "
        f"This machine is {os.cpu_count()} cores shared with a model-training process and other "
        f"engineers' builds: load average {load_before} before the run, {load_after} after. "
        "Absolute times move with that load; the differences and ratios are the figures.\n",
        "### Engine minus bare `session.run`: one-convolution x2 model\n",
        "The model (one 3×3 conv to 12 channels, pixel shuffle) costs little, so what the engine "
        "does around it shows. Baseline: the bare model's `session.run` on NCHW float32 "
        f"(onnxruntime allocates its output). Median of {args.light_repeats} rounds; the engine "
        "writes into a reused destination as the OFX host and conform do. Under load the "
        "last column, the engine's share of the bare run, is the steadier figure. "
        "On the CPU the wrapped graph rebuilds the model's final DepthToSpace "
        "(engine/shuffle.py: the last conv's channels in DCR order, converted to the host "
        "type, then one transpose to channels-last row bands and one that moves whole rows "
        "into the host buffer; same pixels), so it skips the bare model's DepthToSpace and the "
        "full-frame NCHW→HWC transpose: the engine can take less time than the bare run, and "
        "a negative difference is that gain.\n",
        "| measurement | engine ms | bare run ms | engine − bare ms | (engine − bare) / bare "
        "| goal |",
        "|---|---:|---:|---:|---:|---|",
        *light,
        "",
        f"### A real model: {name}\n",
        f"Median of {args.repeats} rounds, float32 frames.\n",
        "| measurement | seconds | ratio | against | goal |",
        "|---|---:|---:|---|---|",
        *real,
        "",
        "### Python-side peak allocation per frame (tracemalloc)\n",
        "Numpy arrays and everything else Python allocates during one frame, in frames' worth "
        "of the output (onnxruntime's own buffers are not Python's and are not counted).\n",
        "| call | peak MiB | output frames | goal |",
        "|---|---:|---:|---|",
        *light_peaks,
        *real_peaks,
    ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("engine", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
