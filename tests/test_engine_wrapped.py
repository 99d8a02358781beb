"""The wrapped path (pixel work inside the model graph) against the numpy path, and its fallbacks."""

from __future__ import annotations

import logging
import threading
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kwaflux_ofx import Engine, ModelSpec
from kwaflux_ofx.engine import sessions, wrap
from kwaflux_ofx.engine.engine import from_float
from kwaflux_ofx.errors import ModelError
from tests.support.onnx_models import (
    blur_weights,
    conv_model,
    noise_denoiser,
    np_sr,
    save_model,
    sr_model,
)

DTYPES = [np.uint8, np.uint16, np.float16, np.float32]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("wrapped")
    meta = {"kind": "sr", "scale": 2, "receptive_field": 1}
    return {
        "sr2": sr_model(d / "sr2.onnx", 2, meta=meta),
        "sr4": sr_model(d / "sr4.onnx", 4, meta={**meta, "scale": 4}),
        "dn": noise_denoiser(d / "dn.onnx"),
        "plain_dn": conv_model(
            d / "plain.onnx", meta={"kind": "denoise", "scale": 1, "receptive_field": 1}
        ),
        "range": sr_model(d / "range.onnx", 2, meta={**meta, "range": "-1-1"}),
        "grey": _grey_model(d / "grey.onnx"),
        "fp16": _half_model(sr_model(d / "h.onnx", 2, meta=meta), d / "half.onnx"),
    }


def _grey_model(path):
    """A 1-channel 3×3 blur: the engine runs each colour through it as a grey image."""
    w = blur_weights(5)[:1, :1] / blur_weights(5)[:1, :1].sum()
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1] * 4)]
    meta = {"kind": "denoise", "scale": 1, "channels": 1, "receptive_field": 1}
    inits = [numpy_helper.from_array(w.astype(np.float32), "w")]
    return save_model(
        path, nodes, inits, meta=meta, in_shape=("N", 1, "H", "W"), out_shape=("N", 1, "H", "W")
    )


def _half_model(src, path):
    """The same model with float16 inputs, outputs and weights (what the fp16 variants are)."""
    half = onnx.load(str(src))
    for vi in list(half.graph.input) + list(half.graph.output):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for init in half.graph.initializer:
        arr = numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(half, str(path))
    return path


def frame(shape, dtype, seed=0, alpha=1.0):
    """Values a little outside 0..1, so clipping is exercised; alpha as given."""
    f = np.random.default_rng(seed).random(shape, dtype=np.float32) * 1.1 - 0.05
    if shape[2] == 4:
        f[..., 3] = alpha
    return from_float(f, np.dtype(dtype))


def both(x, tile=4096, **kw):
    a = Engine(device="cpu", tile=tile).process(x, **kw)
    b = Engine(device="cpu", tile=tile, wrap=False).process(x, **kw)
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("tile", [4096, 48])
def test_wrapped_gives_the_numpy_paths_pixels(models, dtype, channels, tile):
    x = frame((150, 170, channels), dtype, seed=1)
    for kw in (
        dict(scale=2, sr_model=models["sr2"]),
        dict(scale=4, sr_model=models["sr4"]),
        dict(scale=2, denoise=0.6, denoise_model=models["dn"], sr_model=models["sr2"]),
    ):
        a, b = both(x, tile, **kw)
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["plain_dn", "range", "grey", "fp16"])
def test_wrapped_matches_for_every_model_form(models, name):
    x = frame((40, 44, 3), np.float32, seed=2)
    kw = {
        "plain_dn": dict(denoise=0.4, denoise_model=models["plain_dn"]),
        "range": dict(scale=2, sr_model=models["range"]),
        "grey": dict(denoise=1.0, denoise_model=models["grey"]),
        "fp16": dict(scale=2, sr_model=models["fp16"]),
    }[name]
    a, b = both(x, **kw)
    if name == "fp16":
        # onnxruntime may drop a float32->float16->float32 cast pair around a CPU kernel it
        # runs in float32 anyway, so the wrapped run can be the more precise one.
        np.testing.assert_allclose(a, b, atol=2e-3)
    else:
        np.testing.assert_array_equal(a, b)
    engine = Engine(device="cpu")
    engine.process(x, **kw)
    assert [g for g in engine.sessions._graphs.values() if g is not None]  # it was wrapped


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_shipped_models_give_the_same_pixels_wrapped(dtype):
    x = frame((48, 64, 4), dtype, seed=8)
    a, b = both(x, scale=2, denoise=0.3)  # the built-in denoiser, then the built-in x2
    np.testing.assert_array_equal(a, b)


def test_translucent_alpha_keeps_the_numpy_path_and_its_pixels(models):
    x = frame((30, 34, 4), np.uint16, seed=3, alpha=0.5)
    engine = Engine(device="cpu")
    a = engine.process(x, scale=2, sr_model=models["sr2"])
    np.testing.assert_array_equal(
        a, Engine(device="cpu", wrap=False).process(x, scale=2, sr_model=models["sr2"])
    )
    assert not engine.sessions._graphs and engine.sessions._runners


def test_non_finite_pixels_are_cleaned_as_on_the_numpy_path(models):
    x = frame((32, 36, 4), np.float32, seed=4)
    x[3, 4, 0], x[10, 11, 1], x[20, 5, 2] = np.nan, np.inf, -np.inf
    for tile in (4096, 32):
        a, b = both(x, tile, scale=2, sr_model=models["sr2"])
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_a_model_that_outputs_nan_is_named(tmp_path):
    nodes = [
        helper.make_node("Div", ["input", "zero"], ["q"]),
        helper.make_node("Mul", ["q", "zero"], ["output"]),  # 0/0 = NaN everywhere
    ]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    p = save_model(tmp_path / "nan.onnx", nodes, inits, meta={"kind": "denoise", "scale": 1})
    with pytest.raises(ModelError, match="nan.onnx.*NaN or infinite"):
        Engine(device="cpu").process(frame((8, 8, 3), np.uint8), denoise=1.0, denoise_model=p)


def _opset11_model(path):
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1] * 4)]
    inits = [numpy_helper.from_array(blur_weights(3), "w")]
    meta = {"kind": "denoise", "scale": 1, "receptive_field": 1}
    return save_model(path, nodes, inits, meta=meta, opset=11)


def _any_rank_model(path):
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1] * 4)]
    inits = [numpy_helper.from_array(blur_weights(3), "w")]
    meta = {"kind": "denoise", "scale": 1, "receptive_field": 1}
    p = save_model(path, nodes, inits, meta=meta)
    m = onnx.load(str(p))
    m.graph.input[0].type.tensor_type.ClearField("shape")  # rank unknown until it runs
    onnx.save(m, str(p))
    return p


@pytest.mark.parametrize("build", [_opset11_model, _any_rank_model])
def test_unwrappable_models_fall_back_with_one_log_line(tmp_path, caplog, build):
    p = build(tmp_path / "m.onnx")
    x = frame((20, 22, 3), np.uint8, seed=5)
    engine = Engine(device="cpu")
    with caplog.at_level(logging.INFO, logger="kwaflux_ofx.engine.sessions"):
        a = engine.process(x, denoise=1.0, denoise_model=p)
        engine.process(frame((20, 22, 4), np.float32), denoise=1.0, denoise_model=p)
    lines = [r for r in caplog.records if "pixel work stays in numpy" in r.getMessage()]
    assert len(lines) == 1 and "m.onnx" in lines[0].getMessage()
    b = Engine(device="cpu", wrap=False).process(x, denoise=1.0, denoise_model=p)
    np.testing.assert_array_equal(a, b)


def test_unwrappable_names_channels_last_and_padded_models(models, tmp_path):
    spec = ModelSpec.from_onnx(models["sr2"])
    m = onnx.load(str(models["sr2"]))
    assert wrap.unwrappable(m, spec) is None
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[3].dim_value = "H", 3  # N×H×W×3
    assert "channels-last" in wrap.unwrappable(m, spec)
    padded = ModelSpec.from_onnx(sr_model(tmp_path / "p.onnx", 2, meta={"pad": 2}))
    assert "edge padding" in wrap.unwrappable(onnx.load(str(padded.path)), padded)


def test_untiled_process_into_makes_no_frame_sized_array(models):
    """IO binding writes into the caller's buffer: Python allocates nothing near a frame."""
    engine = Engine(device="cpu", tile=4096)
    for dtype in (np.uint8, np.float32):
        src = frame((256, 320, 3), dtype, seed=6)
        dst = np.empty((512, 640, 3), dtype)
        engine.process_into(src, dst, scale=2, sr_model=models["sr2"])  # sessions made here
        tracemalloc.start()
        engine.process_into(src, dst, scale=2, sr_model=models["sr2"])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < dst.nbytes / 20, (dtype, peak, dst.nbytes)
        expect = np_sr(src.astype(np.float32) / (255 if dtype == np.uint8 else 1), 2)
        if dtype == np.float32:
            np.testing.assert_allclose(dst, expect, atol=1e-5)


def test_in_place_denoise_reads_before_it_writes(models):
    x = frame((40, 48, 3), np.float32, seed=7)
    expect = Engine(device="cpu").process(x, denoise=0.5, denoise_model=models["dn"])
    Engine(device="cpu").process_into(x, x, denoise=0.5, denoise_model=models["dn"])
    np.testing.assert_array_equal(x, expect)


def test_exclusive_pool_leases_each_session_to_one_frame_at_a_time():
    pool = sessions.SessionPool(["s0", "s1"], exclusive=True)
    held, inside, errors = [], threading.Barrier(2), []

    def frame_in_flight():
        try:
            with pool.lease() as sess:
                held.append(sess)
                inside.wait(timeout=10)  # both frames hold a session at once
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=frame_in_flight) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors and sorted(held) == ["s0", "s1"]
    shared = sessions.SessionPool(["only"], exclusive=False)
    with shared.lease() as a, shared.lease() as b:
        assert a == b == "only"  # the CPU session is shared, never waited for
