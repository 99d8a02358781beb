"""Black and white levels through denoise: the bias of clipped noise taken out (engine/blacks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.engine import blacks


@pytest.mark.parametrize("sigma", [5.0, 10.0, 25.0])
@pytest.mark.parametrize("level", [0.0, 3.0, 12.0, 40.0])
def test_the_level_behind_clipped_noise_is_found(sigma, level):
    rng = np.random.default_rng(int(sigma * 10 + level))
    x = np.rint(np.clip(level + rng.normal(0, sigma, 100_000), 0, 255)) / 255.0
    share, mean = np.array([(x <= 0).mean()]), np.array([x.mean()])
    got = float(blacks.level_from_clipped(share, mean)[0]) * 255
    assert abs(got - level) < 0.4, (got, level, mean[0] * 255)
    if level == 0.0:
        assert mean[0] * 255 > 0.35 * sigma  # the lift it took out: 0.4 sigma at black


def _dark_scene(rng, h=96, w=96) -> np.ndarray:
    """A night scene: most of it within a few levels of black, a lit patch, soft texture."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = 4.0 + 3.0 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    img = np.repeat(img[..., None], 3, axis=2)
    img[20:44, 50:80] = 140.0
    return np.clip(img, 0, 255)


def _noisy(clean, rng, sigma):
    return np.rint(np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255)).astype(np.uint8)


def test_denoised_blacks_stay_black_single_frame_and_temporal():
    rng = np.random.default_rng(1)
    clean = _dark_scene(rng)
    dark = clean.max(-1) < 20
    engine = Engine(device="cpu", threads=1)
    frames = [_noisy(clean, rng, 25.0) for _ in range(5)]
    lifted_noisy = frames[2].astype(float)[dark].mean() - clean[dark].mean()
    assert lifted_noisy > 6.0  # what clipping did to the picture
    for name, run in (
        ("single", lambda **kw: engine.process(frames[2], denoise=0.5, **kw)),
        ("temporal", lambda **kw: engine.process_window(frames, 2, denoise=0.5, **kw)),
        ("sequence", lambda **kw: list(engine.process_sequence(frames, denoise=0.5, **kw))[2]),
    ):
        kept = run().astype(float)[dark].mean() - clean[dark].mean()
        before = run(keep_levels=False).astype(float)[dark].mean() - clean[dark].mean()
        assert abs(kept) < 1.0, (name, kept)
        assert before > 2.0, (name, before)  # without it the blacks come back grey
        bright = run().astype(float)[25:40, 55:75].mean()
        assert abs(bright - 140.0) < 1.0  # the lit patch is not moved


def test_frames_that_carry_their_noise_whole_are_left_alone():
    rng = np.random.default_rng(2)
    clean = _dark_scene(rng) / 255.0
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)  # negatives kept
    engine = Engine(device="cpu", threads=1)
    assert np.array_equal(
        engine.process(noisy, denoise=0.5), engine.process(noisy, denoise=0.5, keep_levels=False)
    )
    assert blacks.Levels.of(noisy, 25 / 255) is None
    assert blacks.Levels.of(np.clip(noisy, 0, 1), 25 / 255) is not None
