"""Shared helpers for the OFX tests: tiny ONNX models built here and a runner for the test host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kwaflux_ofx.hosts.ofx import install as ofx_tools


def _save(graph: onnx.GraphProto, path: Path, meta: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _io(out_scale: int = 1):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "H", "W"])
    return x, y


def _meta(kind: str, scale: int, rf: int) -> dict[str, str]:
    return {
        "kwaflux.kind": kind,
        "kwaflux.scale": str(scale),
        "kwaflux.channels": "3",
        "kwaflux.range": "0-1",
        "kwaflux.noise_input": "",
        "kwaflux.max_noise": "0",
        "kwaflux.receptive_field": str(rf),
        "kwaflux.name": f"test-{kind}-x{scale}",
    }


def sr_x2_model(path: Path) -> Path:
    """x2 SR: a fixed 3x3 conv to 12 channels, then DepthToSpace (pixel shuffle)."""
    rng = np.random.default_rng(7)
    w = rng.uniform(-0.2, 0.2, (12, 3, 3, 3)).astype(np.float32)
    for c in range(12):
        w[c, c // 4, 1, 1] += 1.0  # each sub-pixel mostly follows its colour channel
    x, y = _io()
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["feat"], pads=[1, 1, 1, 1]),
            helper.make_node("DepthToSpace", ["feat"], ["output"], blocksize=2, mode="CRD"),
        ],
        "sr_x2",
        [x],
        [y],
        [numpy_helper.from_array(w, "w")],
    )
    return _save(graph, path, _meta("sr", 2, 1))


def denoise_model(path: Path) -> Path:
    """A 3x3 box blur per channel: a denoiser whose output is easy to check."""
    w = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        w[c, c] = 1.0 / 9.0
    x, y = _io()
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])],
        "box",
        [x],
        [y],
        [numpy_helper.from_array(w, "w")],
    )
    return _save(graph, path, _meta("denoise", 1, 1))


def passthrough_model(path: Path) -> Path:
    """A denoise model that returns its input: measures everything but the inference."""
    x, y = _io()
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "identity", [x], [y]
    )
    return _save(graph, path, _meta("denoise", 1, 0))


def failing_model(path: Path) -> Path:
    """Valid ONNX whose inference always fails (a reshape to an impossible shape)."""
    x, y = _io()
    shape = numpy_helper.from_array(np.array([7, 7, 7, 7], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["output"])],
        "broken",
        [x],
        [y],
        [shape],
    )
    return _save(graph, path, _meta("denoise", 1, 0))


def run_host(
    args: list[str],
    tmp: Path,
    bundle: Path | None = None,
    env: dict | None = None,
    timeout: float = 120,
    host: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the test host on a bundle; returns the finished process (never raises on failure)."""
    full_env = dict(os.environ)
    full_env.setdefault("KWAFLUX_LOG_DIR", str(tmp / "logs"))
    full_env["OMP_NUM_THREADS"] = "1"
    full_env.update(env or {})
    cmd = [str(host or ofx_tools.test_host_path())]
    cmd += ["--bundle", str(bundle or ofx_tools.installed_bundle())] + args
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
