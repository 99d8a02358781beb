"""Engine overhead at 1920×1080: engine vs raw InferenceSession.run, and tiled vs untiled."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--model", default=None, help="SR model (default: built-in kwaflux-sr-x2, else a stand-in)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tile", type=int, default=512, help="tile size for the tiled run")
    ap.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    args = ap.parse_args()

    import onnxruntime as ort

    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import resolve_model

    tmp = tempfile.TemporaryDirectory()
    if args.model:
        model = resolve_model(args.model)
    else:
        try:
            model = resolve_model("kwaflux-sr-x2")
        except Exception:
            model = compact_sr(Path(tmp.name) / "compact-x2.onnx")
    frame = np.random.default_rng(1).random((1080, 1920, 3), dtype=np.float32)
    nchw = np.ascontiguousarray(frame.transpose(2, 0, 1)[None])

    untiled = Engine(device="cpu", tile=4096)
    spec = untiled.model_spec(model)
    raw = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {spec.input_name: nchw}
    tiled = Engine(device="cpu", tile=args.tile)
    n_tiles = len(tiled.plan_for(frame.shape, scale=spec.scale, sr_model=model).tiles)
    default = Engine(device="cpu")
    n_default = len(default.plan_for(frame.shape, scale=spec.scale, sr_model=model).tiles)
    t = timed_rounds(
        {
            "raw": lambda: raw.run(None, feeds),
            "untiled": lambda: untiled.process(frame, scale=spec.scale, sr_model=model),
            "tiled": lambda: tiled.process(frame, scale=spec.scale, sr_model=model),
            "default": lambda: default.process(frame, scale=spec.scale, sr_model=model),
        },
        args.repeats,
    )
    t_raw, t_untiled, t_tiled, t_default = t["raw"], t["untiled"], t["tiled"], t["default"]

    plan = tiled.plan_for(frame.shape, scale=spec.scale, sr_model=model)
    read_px = sum((t.read[1] - t.read[0]) * (t.read[3] - t.read[2]) for t in plan.tiles)
    overlap = read_px / (frame.shape[0] * frame.shape[1])
    rows = [
        ("raw InferenceSession.run (NCHW float32, whole frame)", t_raw, 1.0, "baseline", ""),
        ("Engine.process, untiled", t_untiled, t_untiled / t_raw, "vs raw", "<= 1.10"),
        (
            f"Engine.process, default tiling ({n_default} tiles, memory budget)",
            t_default,
            t_default / t_untiled,
            "vs untiled",
            "<= 1.10",
        ),
        (
            f"Engine.process, tile {args.tile} ({n_tiles} tiles)",
            t_tiled,
            t_tiled / t_untiled,
            "vs untiled",
            f"info: tiles read {overlap:.3f}× the frame's pixels (context overlap)",
        ),
    ]
    body = [
        "## Engine overhead (`bench/engine.py`)\n",
        f"Model: `{Path(model).name}` (x{spec.scale}), input 1920×1080 RGB float32, CPU provider, "
        f"median of {args.repeats} interleaved rounds.\n",
        "| measurement | seconds | ratio | against | goal |",
        "|---|---:|---:|---|---|",
    ]
    body += [f"| {n} | {t:.3f} | {r:.3f} | {vs} | {goal} |" for n, t, r, vs, goal in rows]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("engine", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
