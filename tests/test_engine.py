"""Engine: pixels against numpy references, tiling, dtypes, strides, alpha, threads, errors."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from kwaflux_ofx import Engine, KwafluxError, ModelSpec
from kwaflux_ofx.engine import sessions
from kwaflux_ofx.engine.engine import from_float, to_float
from kwaflux_ofx.engine.resample import resize
from kwaflux_ofx.errors import ModelError
from tests.support.onnx_models import (
    conv_model,
    noise_denoiser,
    np_conv_stack,
    np_denoise,
    np_sr,
    sr_model,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "sr2": sr_model(d / "sr2.onnx", 2),
        "sr4": sr_model(d / "sr4.onnx", 4),
        "sr2_meta": sr_model(
            d / "sr2m.onnx", 2, meta={"kind": "sr", "scale": 2, "receptive_field": 1}
        ),
        "deep": conv_model(d / "deep.onnx", layers=4),
        "dn": noise_denoiser(d / "dn.onnx"),
    }


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu", threads=1)


def rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_matches_numpy_reference(engine, models, scale):
    x = rand((23, 31, 3))
    y = engine.process(x, scale=scale, sr_model=models[f"sr{scale}"])
    assert y.shape == (23 * scale, 31 * scale, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, np_sr(x, scale), atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
@pytest.mark.parametrize("channels", [3, 4])
def test_every_dtype_and_channel_count(engine, models, dtype, channels):
    f = rand((17, 19, channels), seed=1)
    if channels == 4:
        f[..., 3] = 1.0  # opaque: colour goes through the model untouched by alpha
    frame = from_float(f, np.dtype(dtype))
    y = engine.process(frame, scale=2, sr_model=models["sr2"])
    assert y.dtype == dtype and y.shape == (34, 38, channels)
    expect = np_sr(to_float(frame)[..., :3], 2)
    tol = {np.uint8: 1 / 255, np.uint16: 1 / 65535, np.float16: 2e-3, np.float32: 1e-5}[dtype]
    np.testing.assert_allclose(
        to_float(y)[..., :3],
        np.clip(expect, 0, None) if dtype != np.float32 and dtype != np.float16 else expect,
        atol=tol * 1.01,
    )
    if channels == 4:
        assert (to_float(y)[..., 3] == 1.0).all()


def test_alpha_resized_apart_and_colour_unpremultiplied(engine, models):
    straight = rand((20, 24, 3), seed=2)
    alpha = np.zeros((20, 24), np.float32)
    alpha[:, 12:] = 0.5
    premult = np.concatenate([straight * alpha[..., None], alpha[..., None]], axis=2)
    y = engine.process(premult, scale=2, sr_model=models["sr2"])
    a_expect = np.clip(resize(alpha, 40, 48, "lanczos3"), 0, 1)
    np.testing.assert_allclose(y[..., 3], a_expect, atol=1e-6)
    # Colour = model(unpremultiplied colour) * resized alpha; where alpha was 0 the colour was 0.
    unprem = np.where(alpha[..., None] > 0, straight, 0.0)
    np.testing.assert_allclose(y[..., :3], np_sr(unprem, 2) * a_expect[..., None], atol=1e-5)
    # Straight-alpha input: colour is not multiplied by alpha.
    z = engine.process(
        np.concatenate([straight, alpha[..., None]], 2),
        scale=2,
        sr_model=models["sr2"],
        premultiplied=False,
    )
    np.testing.assert_allclose(z[..., :3], np_sr(straight, 2), atol=1e-5)


def test_denoise_strength_zero_is_exact_passthrough_without_model_run(engine, tmp_path):
    x = from_float(rand((9, 11, 4), seed=3), np.dtype(np.uint16))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    y = engine.process(x, denoise=0.0, denoise_model=broken)
    assert y.dtype == x.dtype and np.array_equal(y, x)


@pytest.mark.parametrize("strength", [0.25, 1.0])
def test_denoise_strength_sets_noise_level(engine, models, strength):
    x = rand((21, 18, 3), seed=4)
    y = engine.process(x, denoise=strength, denoise_model=models["dn"])
    np.testing.assert_allclose(y, np_denoise(x, strength * 0.2), atol=1e-5)


def test_denoise_runs_before_upscale(engine, models):
    x = rand((15, 16, 3), seed=5)
    y = engine.process(x, scale=2, denoise=0.5, denoise_model=models["dn"], sr_model=models["sr2"])
    np.testing.assert_allclose(y, np_sr(np_denoise(x, 0.1), 2), atol=1e-5)


@pytest.mark.parametrize("case", ["deep", "sr2", "sr4", "chain"])
def test_tiled_equals_untiled(models, case):
    x = rand((150, 170, 4), seed=6)
    kw = {
        "deep": dict(scale=1, denoise=1.0, denoise_model=models["dn"]),
        "sr2": dict(scale=2, sr_model=models["sr2"]),
        "sr4": dict(scale=4, sr_model=models["sr4"]),
        "chain": dict(
            scale=2, denoise=0.7, denoise_model=models["dn"], sr_model=models["sr2_meta"]
        ),
    }[case]
    whole = Engine(device="cpu", tile=4096)
    tiled = Engine(device="cpu", tile=48)
    assert whole.plan_for(x.shape, **kw).untiled
    assert len(tiled.plan_for(x.shape, **kw).tiles) >= 9
    a, b = whole.process(x, **kw), tiled.process(x, **kw)
    assert np.abs(a - b).max() <= 1e-4


def test_tiled_equals_untiled_for_probed_deep_model(tmp_path):
    deep = conv_model(tmp_path / "deep.onnx", layers=4, meta={"kind": "denoise", "scale": 1})
    x = rand((100, 90, 3), seed=7)
    # No noise input: strength 1 applies the model fully.
    a = Engine(device="cpu", tile=4096).process(x, denoise=1.0, denoise_model=deep)
    b = Engine(device="cpu", tile=40).process(x, denoise=1.0, denoise_model=deep)
    np.testing.assert_allclose(a, np_conv_stack(x, 4), atol=1e-5)
    assert np.abs(a - b).max() <= 1e-4


def test_process_into_negative_row_stride_and_offset_views(engine, models):
    x = rand((12, 10, 4), seed=8)
    x[..., 3] = 1
    src_store = np.zeros((30, 20, 4), np.float32)
    src = src_store[25:13:-1, 3:13]  # bottom-up rows, offset columns: like an OFX image
    src[...] = x
    dst_store = np.full((60, 50, 4), -7.0, np.float32)
    dst = dst_store[::-1][5:29, 7:27]
    assert dst.strides[0] < 0
    engine.process_into(src, dst, scale=2, sr_model=models["sr2"])
    np.testing.assert_allclose(dst[..., :3], np_sr(x[..., :3], 2), atol=1e-5)
    outside = np.ones(dst_store.shape, bool)
    outside[::-1][5:29, 7:27] = False
    assert (dst_store[outside] == -7.0).all()  # nothing written outside the view


def test_concurrent_process_calls_share_one_engine(models):
    engine = Engine(device="cpu", tile=40, threads=1)
    frames = [rand((60, 70, 3), seed=s) for s in range(8)]
    expected = [np_sr(f, 2) for f in frames]
    results: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(3):
            results[i] = engine.process(frames[i], scale=2, sr_model=models["sr2"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(8):
        np.testing.assert_allclose(results[i], expected[i], atol=1e-5)
    # One wrapped session for (model, provider, precision, host format), no plain one.
    assert len(engine.sessions._graphs) == 1 and not engine.sessions._runners


def test_out_of_memory_halves_tile_and_still_renders(models, monkeypatch, caplog):
    real_run, real_into = sessions.ModelRunner.run, sessions.GraphRunner.run_into
    seen = []

    def fail_above(width):
        seen.append(width)
        if width > 60:
            raise RuntimeError(
                "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer"
            )

    def limited(self, x, noise=None):  # the numpy path: N×C×H×W
        fail_above(x.shape[-1])
        return real_run(self, x, noise)

    def limited_into(self, pixels, out, strength):  # the wrapped path: H×W×C
        fail_above(pixels.shape[1])
        return real_into(self, pixels, out, strength)

    monkeypatch.setattr(sessions.ModelRunner, "run", limited)
    monkeypatch.setattr(sessions.GraphRunner, "run_into", limited_into)
    engine = Engine(device="cpu", tile=200)
    x = rand((90, 100, 3), seed=9)
    with caplog.at_level(logging.WARNING):
        y = engine.process(x, scale=2, sr_model=models["sr2"])
    np.testing.assert_allclose(y, np_sr(x, 2), atol=1e-5)
    assert max(seen) > 60 and "out of memory" in caplog.text
    engine.process(x, scale=2, sr_model=models["sr2"])  # remembers the smaller tile


def test_cuda_start_failure_falls_back_to_cpu_with_one_warning(models, monkeypatch, caplog):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [sessions.CUDA, sessions.CPU])
    real = ort.InferenceSession
    cpu_sessions = []

    def fake_session(path, opts=None, providers=None):
        if providers and providers[0] == sessions.CUDA:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        cpu_sessions.append(path)
        return real(path, opts, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    engine = Engine(device="auto")
    x = rand((10, 12, 3))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            y = engine.process(x, scale=2, sr_model=models["sr2_meta"])
    np.testing.assert_allclose(y, np_sr(x, 2), atol=1e-5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no CUDA-capable device" in warnings[0].getMessage()
    assert engine.providers == [sessions.CPU]
    assert len(cpu_sessions) == 1  # the fallback session is reused, not created again


def test_modelspec_reads_metadata_and_probes_the_rest(models):
    meta = ModelSpec.from_onnx(models["dn"])
    assert (meta.kind, meta.scale, meta.noise_input, meta.max_noise) == (
        "denoise",
        1,
        "noise_level",
        0.2,
    )
    assert not meta.probed
    probed = ModelSpec.from_onnx(models["sr4"])
    assert probed.probed and (probed.kind, probed.scale, probed.channels) == ("sr", 4, 3)
    assert 1 <= probed.receptive_field <= 3
    deep = ModelSpec.from_onnx(models["deep"])
    assert deep.kind == "denoise" and deep.scale == 1 and 4 <= deep.receptive_field <= 6


def test_bad_inputs_name_the_problem(engine, models, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_text("hello")
    with pytest.raises(ModelError, match="junk.onnx: not a readable ONNX model"):
        engine.process(rand((8, 8, 3)), scale=2, sr_model=junk)
    with pytest.raises(ModelError, match="x4 model but x2"):
        engine.process(rand((8, 8, 3)), scale=2, sr_model=models["sr4"])
    with pytest.raises(KwafluxError, match="H×W×3 or H×W×4"):
        engine.process(rand((8, 8, 2)), scale=2, sr_model=models["sr2"])
    with pytest.raises(KwafluxError, match="dtype int32"):
        engine.process(np.zeros((8, 8, 3), np.int32), scale=2, sr_model=models["sr2"])
    with pytest.raises(KwafluxError, match="between 0 and 1"):
        engine.process(rand((8, 8, 3)), denoise=1.5, denoise_model=models["dn"])
    with pytest.raises(ModelError, match="no model named 'nope'"):
        engine.process(rand((8, 8, 3)), scale=2, sr_model="nope")


def test_user_models_folder_found_by_name(models, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("KWAFLUX_MODELS_DIR", str(tmp_path))
    shutil.copy(models["sr2"], tmp_path / "my-upscaler.onnx")
    from kwaflux_ofx.models.registry import list_models

    assert "my-upscaler" in [m.name for m in list_models()]
    x = rand((10, 10, 3))
    y = Engine(device="cpu").process(x, scale=2, sr_model="my-upscaler")
    np.testing.assert_allclose(y, np_sr(x, 2), atol=1e-5)


def test_io_binding_path_matches_plain_run(models):
    """The CUDA path's IO binding logic, exercised on the CPU so it cannot rot without a GPU."""
    import onnxruntime as ort

    spec = ModelSpec.from_onnx(models["sr2"])
    sess = ort.InferenceSession(str(spec.path), providers=[sessions.CPU])
    runner = sessions.ModelRunner(spec, sess, sessions.CPU)
    x = rand((1, 3, 9, 13), seed=10)
    bound = runner._run_bound({spec.input_name: x})
    np.testing.assert_array_equal(bound, runner.run(x))
    assert bound.shape == (1, 3, 18, 26)


def test_cuda_requested_on_a_cpu_build_renders_on_cpu(models, caplog):
    engine = Engine(device="cuda")
    x = rand((8, 8, 3))
    with caplog.at_level(logging.WARNING):
        y = engine.process(x, scale=2, sr_model=models["sr2"])
        engine.process(x, scale=2, sr_model=models["sr2"])
    np.testing.assert_allclose(y, np_sr(x, 2), atol=1e-5)
    assert engine.providers == [sessions.CPU]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("rng", ["-1-1", "0-255", "-1..1"])
def test_model_value_range_is_honoured(tmp_path, rng):
    # The stand-in's weights sum to 1, so away from the zero-padded border it commutes with
    # the affine range mapping exactly; a wrong mapping would shift every pixel.
    p = sr_model(
        tmp_path / "r.onnx", 2, meta={"kind": "sr", "scale": 2, "range": rng, "receptive_field": 1}
    )
    assert ModelSpec.from_onnx(p).value_range[0] in (-1.0, 0.0)
    x = rand((10, 12, 3), seed=11)
    y = Engine(device="cpu").process(x, scale=2, sr_model=p)
    np.testing.assert_allclose(y[2:-2, 2:-2], np_sr(x, 2)[2:-2, 2:-2], atol=1e-4)


def test_unparseable_range_is_a_model_error(tmp_path):
    p = sr_model(tmp_path / "bad.onnx", 2, meta={"range": "1-0"})
    with pytest.raises(ModelError, match="bad.onnx"):
        ModelSpec.from_onnx(p)


def test_global_context_models_are_not_tiled_when_memory_allows(tmp_path):
    p = sr_model(
        tmp_path / "g.onnx",
        2,
        meta={"kind": "sr", "scale": 2, "receptive_field": 1, "global_context": "1"},
    )
    plain = sr_model(tmp_path / "p.onnx", 2, meta={"kind": "sr", "scale": 2, "receptive_field": 1})
    engine = Engine(device="cpu", memory_budget=12 * 2**20)  # ~190 px tiles for plain models
    assert not engine.plan_for((300, 400, 3), scale=2, sr_model=plain).untiled
    assert engine.plan_for((300, 400, 3), scale=2, sr_model=p).untiled
    assert not engine.plan_for((3000, 4000, 3), scale=2, sr_model=p).untiled  # too big: tiled


def test_cuda_session_takes_the_fp16_variant_when_shipped(models, tmp_path, monkeypatch):
    """Under CUDA the cache loads NAME.fp16.onnx beside NAME.onnx (checked without a GPU)."""
    import shutil

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    shutil.copy(models["sr2_meta"], tmp_path / "m.onnx")  # metadata: no probe session needed
    half = onnx.load(str(models["sr2_meta"]))
    for vi in list(half.graph.input) + list(half.graph.output):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for init in half.graph.initializer:
        arr = onnx.numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(half, str(tmp_path / "m.fp16.onnx"))
    loaded = []
    real = ort.InferenceSession

    class ReportsCuda:
        def __init__(self, path, opts=None, providers=None):
            loaded.append(path)
            self._s = real(path, opts, providers=[sessions.CPU])

        def get_providers(self):
            return [sessions.CUDA, sessions.CPU]

    monkeypatch.setattr(ort, "get_available_providers", lambda: [sessions.CUDA, sessions.CPU])
    monkeypatch.setattr(ort, "InferenceSession", ReportsCuda)
    cache = sessions.SessionCache(device="cuda")
    runner = cache.runner(cache.spec(tmp_path / "m.onnx"))
    assert loaded[-1].endswith("m.fp16.onnx") and runner.dtype == np.float16
    assert runner.provider == sessions.CUDA
    cpu = sessions.SessionCache(device="cpu")
    assert cpu.runner(cpu.spec(tmp_path / "m.onnx")).dtype == np.float32
