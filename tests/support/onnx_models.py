"""Small ONNX image models built with onnx.helper, whose exact output numpy can compute (for tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def save_model(
    path: Path,
    nodes,
    inits,
    *,
    meta: dict | None = None,
    in_shape=("N", 3, "H", "W"),
    out_shape=("N", 3, "OH", "OW"),
    in_type=TensorProto.FLOAT,
    out_type=None,
    extra_inputs=(),
    opset: int = OPSET,
    domain: str = "",
    check: bool = True,
) -> Path:
    """The one way the tests, bench and reliability write an ONNX model: input "input", output
    "output", kwaflux.* metadata from `meta`; check=False keeps models that are wrong on purpose."""
    inputs = [helper.make_tensor_value_info("input", in_type, list(in_shape)), *extra_inputs]
    out = helper.make_tensor_value_info("output", out_type or in_type, list(out_shape))
    graph = helper.make_graph(nodes, "g", inputs, [out], initializer=inits)
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8  # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 reads up to 13
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=f"kwaflux.{k}", value=str(v))
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _save(nodes, inits, path: Path, meta: dict | None, extra_inputs=(), in_dtype=TensorProto.FLOAT):
    return save_model(path, nodes, inits, meta=meta, extra_inputs=extra_inputs, in_type=in_dtype)


def blur_weights(seed: int = 0, k: int = 3) -> np.ndarray:
    """A fixed k×k per-channel-mixing kernel (3×3×k×k), deterministic."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 1.0, (3, 3, k, k)).astype(np.float32)
    return w / w.sum(axis=(1, 2, 3), keepdims=True)


def conv_model(path: Path, *, k: int = 3, layers: int = 1, meta: dict | None = None) -> Path:
    """`layers` stacked k×k convolutions with zero padding (a stand-in denoiser, scale 1)."""
    nodes, inits, prev = [], [], "input"
    for i in range(layers):
        inits.append(numpy_helper.from_array(blur_weights(i, k), f"w{i}"))
        name = "output" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [name], pads=[k // 2] * 4))
        prev = name
    return _save(nodes, inits, path, meta)


def sr_model(path: Path, scale: int, *, k: int = 3, meta: dict | None = None) -> Path:
    """A k×k convolution, then nearest-neighbour upscaling by pixel shuffle (DepthToSpace)."""
    inits = [numpy_helper.from_array(blur_weights(7, k), "w")]
    rep = np.zeros((3 * scale * scale, 3, 1, 1), np.float32)
    for c in range(3):
        rep[c * scale * scale : (c + 1) * scale * scale, c] = 1.0  # DCR: channel c fills its block
    inits.append(numpy_helper.from_array(rep, "rep"))
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[k // 2] * 4),
        helper.make_node("Conv", ["c", "rep"], ["r"]),
        helper.make_node("DepthToSpace", ["r"], ["output"], blocksize=scale, mode="CRD"),
    ]
    return _save(nodes, inits, path, meta)


def noise_denoiser(path: Path, *, max_noise: float = 0.2, meta: dict | None = None) -> Path:
    """output = input + (noise / max_noise) * (blur(input) - input): strength-controlled smoothing."""
    inits = [
        numpy_helper.from_array(blur_weights(3, 3), "w"),
        numpy_helper.from_array(np.array(1.0 / max_noise, np.float32), "inv"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["b"], pads=[1] * 4),
        helper.make_node("Sub", ["b", "input"], ["d"]),
        helper.make_node("Mul", ["noise_level", "inv"], ["k"]),
        helper.make_node("Mul", ["d", "k"], ["kd"]),
        helper.make_node("Add", ["input", "kd"], ["output"]),
    ]
    noise = helper.make_tensor_value_info("noise_level", TensorProto.FLOAT, ["N", 1, "H", "W"])
    m = {
        "kind": "denoise",
        "scale": 1,
        "channels": 3,
        "noise_input": "noise_level",
        "max_noise": max_noise,
        "receptive_field": 1,
    }
    m.update(meta or {})
    return _save(nodes, inits, path, m, extra_inputs=[noise])


# ---- numpy references ------------------------------------------------------------------------
def np_conv(img_chw: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Zero-padded 'same' convolution (cross-correlation, as ONNX Conv), float64."""
    k = w.shape[-1]
    p = k // 2
    c, h, wd = img_chw.shape
    x = np.pad(img_chw.astype(np.float64), ((0, 0), (p, p), (p, p)))
    out = np.zeros((w.shape[0], h, wd))
    for o in range(w.shape[0]):
        for i in range(c):
            for dy in range(k):
                for dx in range(k):
                    out[o] += w[o, i, dy, dx] * x[i, dy : dy + h, dx : dx + wd]
    return out


def np_conv_stack(img_hwc: np.ndarray, layers: int = 1, k: int = 3) -> np.ndarray:
    x = img_hwc.transpose(2, 0, 1)
    for i in range(layers):
        x = np_conv(x, blur_weights(i, k))
    return x.transpose(1, 2, 0)


def np_sr(img_hwc: np.ndarray, scale: int, k: int = 3) -> np.ndarray:
    x = np_conv(img_hwc.transpose(2, 0, 1), blur_weights(7, k)).transpose(1, 2, 0)
    return x.repeat(scale, axis=0).repeat(scale, axis=1)


def np_denoise(img_hwc: np.ndarray, sigma: float, max_noise: float = 0.2) -> np.ndarray:
    b = np_conv(img_hwc.transpose(2, 0, 1), blur_weights(3, 3)).transpose(1, 2, 0)
    return img_hwc + (sigma / max_noise) * (b - img_hwc)
