"""The rebuilt pixel shuffle (engine/shuffle.py): the same pixels as the wrapped graph without it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from kwaflux_ofx import Engine, ModelSpec
from kwaflux_ofx.engine import shuffle, wrap
from kwaflux_ofx.engine.engine import from_float
from tests.support.onnx_models import conv_model, save_model, sr_model

H, W = 20, 26  # the Reshape/Transpose/Reshape models are built for this input size
DTYPES = ["uint8", "uint16", "float16", "float32"]
META = {"kind": "sr", "scale": 2, "receptive_field": 2}


def shuffle_model(path, mode="CRD", *, pattern="d2s", chain=True, noise=False, r=2):
    """Conv, PReLU, Conv (bias) to 3·r² channels, pixel shuffle (DepthToSpace or PyTorch's
    Reshape/Transpose/Reshape), then scalar elementwise ops; random weights, so each output
    channel is a different sum. noise: a denoiser-style noise-level input added in the body."""
    rng = np.random.default_rng(3)
    const = numpy_helper.from_array
    inits = [
        const(rng.normal(0, 0.4, (8, 3, 3, 3)).astype(np.float32), "w0"),
        const(np.full((8, 1, 1), 0.2, np.float32), "slope"),
        const(rng.normal(0, 0.3, (3 * r * r, 8, 3, 3)).astype(np.float32), "w1"),
        const(rng.normal(0, 0.1, 3 * r * r).astype(np.float32), "b1"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w0"], ["c0"], pads=[1] * 4),
        helper.make_node("PRelu", ["c0", "slope"], ["p0"]),
    ]
    body, extra = "p0", []
    if noise:
        nodes.append(helper.make_node("Add", ["p0", "noise_level"], ["pn"]))
        body = "pn"
        extra = [helper.make_tensor_value_info("noise_level", TensorProto.FLOAT, [1, 1, "H", "W"])]
    nodes.append(helper.make_node("Conv", [body, "w1", "b1"], ["c1"], pads=[1] * 4))
    last = "shuffled" if chain else "output"
    if pattern == "d2s":
        nodes.append(helper.make_node("DepthToSpace", ["c1"], [last], blocksize=r, mode=mode))
    else:
        split = [1, 3, r, r, H, W] if mode == "CRD" else [1, r, r, 3, H, W]
        perm = shuffle.CRD_PERM if mode == "CRD" else shuffle.DCR_PERM
        inits += [
            const(np.array(split, np.int64), "split"),
            const(np.array([1, 3, H * r, W * r], np.int64), "joined"),
        ]
        nodes += [
            helper.make_node("Reshape", ["c1", "split"], ["s6"]),
            helper.make_node("Transpose", ["s6"], ["t6"], perm=perm),
            helper.make_node("Reshape", ["t6", "joined"], [last]),
        ]
    if chain:
        inits += [const(np.float32(0.9), "k"), const(np.float32(0.05), "lo")]
        nodes += [
            helper.make_node("Mul", ["shuffled", "k"], ["scaled"]),
            helper.make_node("Add", ["lo", "scaled"], ["shifted"]),
            helper.make_node("Relu", ["shifted"], ["output"]),
        ]
    meta = {**META, "scale": r}
    if noise:
        meta = {**meta, "kind": "denoise", "noise_input": "noise_level", "max_noise": 0.2}
    shape = (1, 3, H, W) if pattern != "d2s" else ("N", 3, "H", "W")
    return save_model(
        path, nodes, inits, meta=meta, in_shape=shape, out_shape=(1, 3, "OH", "OW"),
        extra_inputs=extra,
    )  # fmt: skip


def run_wrapped(path, w: wrap.Wrap, x: np.ndarray, bands: bool, strength=None) -> np.ndarray:
    spec = ModelSpec.from_onnx(path)
    model = wrap.wrap_model(onnx.load(str(path)), spec, w, bands=bands)
    block = wrap.out_block(model)
    assert bool(block) == bands
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {wrap.PIXELS: x}
    if wrap.takes_strength(spec):
        feeds[wrap.STRENGTH] = np.array([strength or 0.0], np.float32)
    out, check = sess.run([wrap.OUT, wrap.CHECK], feeds)
    assert np.isfinite(check)
    s = spec.scale
    return out.reshape(x.shape[0] * s, x.shape[1] * s, w.out_channels)


def frame(dtype: str, channels: int, seed=0) -> np.ndarray:
    f = np.random.default_rng(seed).random((H, W, channels), dtype=np.float32) * 1.1 - 0.05
    if channels == 4:
        f[..., 3] = 1.0
    return from_float(f, np.dtype(dtype))


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("pattern", ["d2s", "reshape"])
def test_rebuilt_shuffle_gives_the_same_pixels(tmp_path, mode, pattern):
    p = shuffle_model(tmp_path / "m.onnx", mode, pattern=pattern)
    for i, dtype in enumerate(DTYPES):
        for channels in (3, 4):
            w = wrap.Wrap(dtype, channels, dtype, channels)
            x = frame(dtype, channels, seed=i)
            a = run_wrapped(p, w, x, bands=True)
            b = run_wrapped(p, w, x, bands=False)
            assert a.dtype == b.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b, err_msg=f"{dtype} {channels}")


@pytest.mark.parametrize("r", [2, 4])
def test_rebuilt_shuffle_across_types_and_scales(tmp_path, r):
    """Host types differ on each side (the float32 hand-over between two models too)."""
    p = shuffle_model(tmp_path / "m.onnx", "DCR", chain=False, r=r)
    for a_type, b_type in (("uint8", "float32"), ("float32", "uint16"), ("float16", "uint8")):
        w = wrap.Wrap(a_type, 3, b_type, 3)
        x = frame(a_type, 3, seed=r)
        np.testing.assert_array_equal(
            run_wrapped(p, w, x, bands=True), run_wrapped(p, w, x, bands=False)
        )


def test_rebuilt_shuffle_of_a_noise_level_denoiser(tmp_path):
    p = shuffle_model(tmp_path / "dn.onnx", "CRD", noise=True, r=2)
    spec = ModelSpec.from_onnx(p)
    assert spec.noise_input == "noise_level"
    for dtype in ("uint8", "float32"):
        w = wrap.Wrap(dtype, 4, dtype, 4)
        x = frame(dtype, 4, seed=5)
        a = run_wrapped(p, w, x, bands=True, strength=0.07)
        np.testing.assert_array_equal(a, run_wrapped(p, w, x, bands=False, strength=0.07))


def test_models_without_a_final_shuffle_are_left_as_they_are(tmp_path, caplog):
    plain = conv_model(
        tmp_path / "plain.onnx", meta={"kind": "denoise", "scale": 1, "receptive_field": 1}
    )
    spec = ModelSpec.from_onnx(plain)
    model = onnx.load(str(plain))
    assert shuffle.find_tail(model, spec.output_name, 3) is None
    w = wrap.Wrap("uint8", 3, "uint8", 3)
    a = wrap.wrap_model(model, spec, w, bands=True)
    assert a == wrap.wrap_model(model, spec, w, bands=False) and wrap.out_block(a) == 0
    # A shuffle whose conv output is read elsewhere too, or a non-scalar op after it: kept.
    p = shuffle_model(tmp_path / "m.onnx", chain=False)
    m = onnx.load(str(p))
    m.graph.node.append(helper.make_node("Identity", ["c1"], ["also"]))
    m.graph.output.append(helper.make_tensor_value_info("also", TensorProto.FLOAT, None))
    assert shuffle.find_tail(m, "output", 3) is None
    m = onnx.load(str(p))
    m.graph.node[-1].output[0] = "shuffled"
    m.graph.initializer.append(numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "k3"))
    m.graph.node.append(helper.make_node("Mul", ["shuffled", "k3"], ["output"]))
    assert shuffle.find_tail(m, "output", 3) is None
    assert shuffle.find_tail(onnx.load(str(p)), "output", 3) is not None


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
def test_engine_renders_rebuilt_shuffles_as_the_numpy_path(tmp_path, mode):
    p = shuffle_model(tmp_path / "m.onnx", mode)
    engine = Engine(device="cpu")
    for dtype in DTYPES:
        for channels in (3, 4):
            x = np.random.default_rng(7).random((150, 170, channels), dtype=np.float32)
            x[..., 3:] = 1.0
            x = from_float(x * 1.1 - 0.05, np.dtype(dtype))
            for tile in (4096, 48):
                a = Engine(device="cpu", tile=tile).process(x, scale=2, sr_model=p)
                b = Engine(device="cpu", tile=tile, wrap=False).process(x, scale=2, sr_model=p)
                np.testing.assert_array_equal(a, b, err_msg=f"{dtype} {channels} {tile}")
            engine.process(x, scale=2, sr_model=p)
    runners = [g for g in engine.sessions._graphs.values() if g is not None]
    assert runners and all(g.block == 2 for g in runners)


def test_shipped_sized_sr_models_are_rebuilt(tmp_path):
    """The test suite's own sr models (Conv, 1×1 Conv, DepthToSpace) take the rebuilt path."""
    p = sr_model(tmp_path / "sr.onnx", 4, meta={**META, "scale": 4})
    engine = Engine(device="cpu")
    x = frame("uint8", 3)
    engine.process(x, scale=4, sr_model=p)
    (runner,) = [g for g in engine.sessions._graphs.values() if g is not None]
    assert runner.block == 4


def test_half_models_keep_their_shuffle(tmp_path):
    """float16 models (what the .fp16.onnx variants are) are not rebuilt: onnxruntime's CPU
    provider runs them through casts it places per graph, so bits could differ."""
    p = shuffle_model(tmp_path / "m.onnx", "CRD")
    half = onnx.load(str(p))
    for vi in list(half.graph.input) + list(half.graph.output):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for init in half.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), init.name))
    onnx.save(half, str(tmp_path / "half.onnx"))
    spec = ModelSpec.from_onnx(tmp_path / "half.onnx")
    w = wrap.Wrap("uint8", 3, "uint8", 3)
    assert wrap.out_block(wrap.wrap_model(half, spec, w, bands=True)) == 0
