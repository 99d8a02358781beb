"""Motion alignment in the fusion graph (engine/align.py): a panned picture is warped back onto
the frame exactly, static pictures stay put, panning footage gains from its neighbours as static
footage does, and tiles still equal the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.engine import align, temporal
from tests.support.onnx_models import noise_denoiser

SIGMA = 20 / 255


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return noise_denoiser(tmp_path_factory.mktemp("m") / "dn.onnx", meta={"noise_level": "rms"})


def _scene(h: int, w: int, seed: int = 1) -> np.ndarray:
    """A large picture with texture at every scale (smoothed noise of several sizes) to pan a
    window over."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = sum(gaussian_filter(rng.standard_normal((h, w)), s) * s for s in (1.0, 2.5, 6.0))
    img = 0.5 + 0.2 * img / img.std()
    return np.repeat(np.clip(img, 0, 1)[..., None], 3, axis=2).astype(np.float32)


def _pan(scene: np.ndarray, frames: int, h: int, w: int, step=(2, 5)) -> list[np.ndarray]:
    """Windows of h×w moving `step` (y, x) px a frame: the camera pans."""
    return [
        np.ascontiguousarray(
            scene[20 + t * step[0] : 20 + t * step[0] + h, 20 + t * step[1] : 20 + t * step[1] + w]
        )
        for t in range(frames)
    ]


def _noisy(clip, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(c + SIGMA * rng.standard_normal(c.shape, dtype=np.float32), 0, 1) for c in clip]


def _session(*outputs: str):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes, inits = align.align_nodes("frames", "sigma", "out")
    graph = helper.make_graph(
        nodes,
        "align",
        [
            helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["K", 3, "H", "W"]),
            helper.make_tensor_value_info("sigma", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs or ("out",)],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", temporal.OPSET)])
    m.ir_version = 8
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session, frames, sigma=0.0):
    x = np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32)
    return session.run(None, {"frames": x, "sigma": np.array([sigma], np.float32)})


@pytest.mark.parametrize("step", [(1, 4), (3, 7), (-4, -9)])
def test_a_pan_is_found_and_warped_back(step):
    """The camera pans `step` px a frame: the flow to each next frame is that step (away from the
    edges the pan brings in), and there the warped neighbour is the frame, exactly."""
    clip = _pan(_scene(300, 360), 3, 128, 160, step=(abs(step[0]), abs(step[1])))
    if step[0] < 0:
        clip = clip[::-1]
    flow, out = _run(_session(align.FLOW, "out"), [clip[1], clip[0], clip[2]])
    assert np.array_equal(out[0].transpose(1, 2, 0), clip[1])  # the frame itself is untouched
    inner = (slice(16, -16), slice(16, -16))
    for k, sign in ((1, 1), (2, -1)):  # the frame before: the picture sits +step further
        true = np.array([step[1], step[0]], np.float32)[:, None, None] * sign
        right = (flow[k - 1][:, inner[0], inner[1]] == true).all(0)
        assert right.mean() > 0.85, (k, right.mean())
        same = (out[k].transpose(1, 2, 0)[inner] == clip[1][inner]).all(-1)
        assert same[right].all()
        assert np.abs(clip[2 * (k == 2)][inner] - clip[1][inner]).mean() > 0.03  # it did move


def test_a_noisy_pan_is_mostly_found():
    clip = _pan(_scene(300, 360), 3, 128, 160, step=(1, 4))
    flow = _run(_session(align.FLOW), _noisy([clip[1], clip[0], clip[2]], seed=3), SIGMA)[0]
    true = -np.array([4, 1], np.float32)[:, None, None]  # to the frame after
    right = (flow[1][:, 16:-16, 16:-16] == true).all(0)
    assert right.mean() > 0.7, right.mean()


def test_static_noisy_frames_stay_put():
    noisy = _noisy([_scene(64, 80)] * 3, seed=4)
    out = _run(_session(), noisy, SIGMA)[0].transpose(0, 2, 3, 1)
    assert np.array_equal(out[1], noisy[1]) and np.array_equal(out[2], noisy[2])


def test_panning_footage_gains_like_static(model):
    clean = _pan(_scene(300, 360), 5, 128, 160, step=(1, 4))
    noisy = _noisy(clean, seed=2)
    strength = SIGMA / 0.2  # the stand-in's max_noise is 0.2

    def psnr(a):
        return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - clean[2]) ** 2)))

    single = psnr(Engine(device="cpu").process(noisy[2], denoise=strength, denoise_model=model))
    aligned = Engine(device="cpu").process_window(noisy, 2, denoise=strength, denoise_model=model)
    engine = Engine(device="cpu")
    temporal.fusion_for(engine, align=False)
    unaligned = engine.process_window(noisy, 2, denoise=strength, denoise_model=model)
    assert psnr(aligned) - single > 1.5, (psnr(aligned), single)
    assert psnr(aligned) > psnr(unaligned) + 1.0, (psnr(aligned), psnr(unaligned))


def test_moving_tiles_equal_the_whole_frame(model):
    noisy = _noisy(_pan(_scene(400, 520), 3, 300, 380, step=(2, 5)), seed=6)
    whole = Engine(device="cpu").process_window(noisy, 1, denoise=0.5, denoise_model=model)
    tiled = Engine(device="cpu", tile=64).process_window(noisy, 1, denoise=0.5, denoise_model=model)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
