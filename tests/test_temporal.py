"""Temporal denoise: process_sequence / process_window against their contract — radius 0 is
process(), static texture gains from the neighbours, moving things do not ghost, tiles equal whole
frames, the window is bounded, clip ends and bad sequences behave."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine, KwafluxError
from kwaflux_ofx.engine import temporal
from tests.support.onnx_models import noise_denoiser

SIGMA = 20 / 255


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return noise_denoiser(tmp_path_factory.mktemp("m") / "dn.onnx", meta={"noise_level": "rms"})


def _texture(h=48, w=64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.25 * np.sin(xx * 0.9) * np.cos(yy * 0.7) + 0.1 * ((xx // 5 + yy // 7) % 2)
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32)


def _noisy_clip(clean: list[np.ndarray], seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.clip(c + SIGMA * rng.standard_normal(c.shape, dtype=np.float32), 0, 1) for c in clean
    ]


def _psnr(a, b) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_radius_zero_is_exactly_process(engine, model):
    frames = _noisy_clip([_texture()] * 4)
    seq = list(engine.process_sequence(frames, denoise=0.4, temporal_radius=0, denoise_model=model))
    for f, out in zip(frames, seq, strict=True):
        assert np.array_equal(out, engine.process(f, denoise=0.4, denoise_model=model))


def test_static_texture_gains_from_neighbours(engine, model):
    clean = [_texture()] * 7
    frames = _noisy_clip(clean)
    strength = SIGMA / 0.2  # the stand-in's max_noise is 0.2
    seq = list(engine.process_sequence(frames, denoise=strength, denoise_model=model))
    single = [engine.process(f, denoise=strength, denoise_model=model) for f in frames]
    gain = np.mean([_psnr(t, c) - _psnr(s, c) for t, s, c in zip(seq, single, clean, strict=True)])
    assert gain > 1.0, gain


def test_moving_object_does_not_ghost(engine, model):
    """A bright square moves 6 px a frame over a flat background: in the temporal result the
    square's old and new places must not carry a trace of the other frames."""
    clean = []
    for t in range(5):
        img = np.full((40, 60, 3), 0.3, np.float32)
        img[10:26, 5 + 6 * t : 21 + 6 * t] = 0.9
        clean.append(img)
    frames = _noisy_clip(clean, seed=3)
    strength = SIGMA / 0.2
    out = engine.process_window(frames, 2, denoise=strength, denoise_model=model)
    single = engine.process(frames[2], denoise=strength, denoise_model=model)
    moving = np.zeros((40, 60), bool)
    moving[8:28, 3:47] = True  # where the square is in any frame, with a margin
    err_t = np.abs(out - clean[2])[moving].mean()
    err_s = np.abs(single - clean[2])[moving].mean()
    assert err_t <= err_s * 1.05, (err_t, err_s)
    # Where the square was two frames earlier, the background must stay background.
    assert np.abs(out[12:24, 8:14] - 0.3).mean() < 0.05


def test_tiles_equal_the_whole_frame(model):
    frames = _noisy_clip([_texture(70, 90)] * 3, seed=5)
    whole = Engine(device="cpu").process_window(frames, 1, denoise=0.5, denoise_model=model)
    tiled = Engine(device="cpu", tile=32).process_window(
        frames, 1, denoise=0.5, denoise_model=model
    )
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
def test_every_dtype_and_rgba(engine, model, dtype):
    base = _noisy_clip([_texture(24, 32)] * 3, seed=7)
    rgba = [np.dstack([f, np.linspace(0.2, 1, 24 * 32).reshape(24, 32)]) for f in base]
    if np.issubdtype(dtype, np.integer):
        peak = np.iinfo(dtype).max
        rgba = [np.rint(f * peak).astype(dtype) for f in rgba]
    else:
        rgba = [f.astype(dtype) for f in rgba]
    out = engine.process_window(rgba, 1, scale=2, denoise=0.5, denoise_model=model)
    assert out.shape == (48, 64, 4) and out.dtype == dtype


def test_sequence_holds_at_most_a_window_and_uses_fewer_at_the_ends(engine, model):
    frames = _noisy_clip([_texture(16, 16)] * 6, seed=9)
    alive = []

    def source():
        for i, f in enumerate(frames):
            alive.append(i)
            yield f

    outs = []
    for k, out in enumerate(
        engine.process_sequence(source(), denoise=0.5, temporal_radius=2, denoise_model=model)
    ):
        # Output k needs frames up to k+2 and no more than that was read.
        assert max(alive) <= min(k + 2, 5)
        outs.append(out)
    assert len(outs) == 6
    ends = engine.process_window(frames[:3], 0, denoise=0.5, denoise_model=model)
    np.testing.assert_array_equal(outs[0], ends)
    tail = engine.process_window(frames[3:], 2, denoise=0.5, denoise_model=model)
    np.testing.assert_array_equal(outs[5], tail)


def test_clip_shorter_than_the_window(engine, model):
    frames = _noisy_clip([_texture(16, 16)] * 2, seed=11)
    outs = list(
        engine.process_sequence(frames, denoise=0.5, temporal_radius=3, denoise_model=model)
    )
    assert len(outs) == 2


def test_size_or_dtype_change_names_the_frame(engine, model):
    frames = _noisy_clip([_texture(16, 16)] * 3)
    frames[2] = frames[2][:8]
    with pytest.raises(KwafluxError, match="frame 2 is"):
        list(engine.process_sequence(frames, denoise=0.5, denoise_model=model))
    frames = _noisy_clip([_texture(16, 16)] * 3)
    frames[1] = (frames[1] * 255).astype(np.uint8)
    with pytest.raises(KwafluxError, match="frame 1 is"):
        list(engine.process_sequence(frames, denoise=0.5, denoise_model=model))
    with pytest.raises(KwafluxError, match="temporal radius must be a whole number from 0 to 3"):
        list(engine.process_sequence(frames, temporal_radius=7))


def test_zero_strength_is_an_exact_pass_through(engine, model):
    frames = _noisy_clip([_texture(16, 16)] * 3)
    outs = list(engine.process_sequence(frames, denoise=0.0, denoise_model=model))
    for f, o in zip(frames, outs, strict=True):
        assert np.array_equal(f, o)


def test_fusion_graph_weights(engine):
    """Identical frames average; a frame that differs by far more than the noise is ignored."""
    fusion = temporal.fusion_for(engine)
    rng = np.random.default_rng(0)
    base = np.full((20, 20, 3), 0.5, np.float32)
    same = [base + SIGMA * rng.standard_normal(base.shape).astype(np.float32) for _ in range(3)]
    fused, level = fusion(same, SIGMA)
    assert np.std(fused - base) < SIGMA / 1.4
    # Three frames of the same picture: close to sigma / sqrt(3) of noise left, never less.
    assert SIGMA / np.sqrt(3) * 0.99 < level.mean() < 0.7 * SIGMA
    other = [same[0], np.full_like(base, 0.95), np.full_like(base, 0.05)]
    fused, level = fusion(other, SIGMA)
    np.testing.assert_allclose(fused, same[0], atol=1e-3)
    np.testing.assert_allclose(level, SIGMA, rtol=1e-3)


def test_disagreement_is_distrusted_a_few_pixels_around():
    """A neighbour that differs on a band is not trusted right up to the band's edge either: the
    7×7 mean dilutes a moving edge's difference, and what it lets through at partial weight
    along the border is a ghost. Noise-free frames, so the weights show in the level left; no
    alignment, which would move the band."""
    fusion = temporal.Fusion(["CPUExecutionProvider"], 1, align=False)
    centre = np.full((32, 64, 3), 0.5, np.float32)
    moved = centre.copy()
    moved[:, 16:24] += 10 * SIGMA  # columns 16..23 differ
    _, level = fusion([centre, moved], SIGMA)
    row = level[16] / SIGMA
    # Up to NEAR // 2 px beyond where the mean difference itself stops trusting it (column 27,
    # four px out: the blur's and the mean's reach), the neighbour still gets no weight ...
    np.testing.assert_allclose(row[24:30], 1.0, atol=0.01)
    # ... and well away from the band it averages in fully: two frames, sigma / sqrt(2) left.
    np.testing.assert_allclose(row[34:56], 1 / np.sqrt(2), rtol=1e-3)
