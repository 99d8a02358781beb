"""The noise-level estimate behind automatic denoise strength: right within 25% on Gaussian noise,
near zero on clean pictures, zero (never NaN) on flat frames, any dtype."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from kwaflux_ofx.engine import noise

# Real photographs that ship with scikit-image (evaluation material, never training data).
PHOTOS = {"astronaut": skdata.astronaut, "coffee": skdata.coffee, "chelsea": skdata.chelsea}


def _noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = clean.astype(np.float32) + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize("sigma", [5, 10, 25, 50])
def test_gaussian_sigma_within_25_percent(name, sigma):
    est = noise.estimate(_noisy(PHOTOS[name](), sigma, seed=sigma))
    assert abs(est.level * 255 - sigma) <= 0.25 * sigma, est
    assert est.compression * 255 < 1.0  # white noise has no block grid


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_clean_photo_chooses_nearly_zero(name):
    est = noise.estimate(PHOTOS[name]())
    assert est.strength(50 / 255) <= 0.06, est


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((64, 64, 3), np.uint8),
        np.full((270, 480, 4), 0.5, np.float32),
        np.full((5, 3, 3), 60000, np.uint16),
        np.zeros((2, 2, 3), np.float16),
    ],
    ids=["black", "grey-rgba", "tiny-uint16", "2x2"],
)
def test_flat_frames_give_zero(frame):
    est = noise.estimate(frame)
    assert (est.noise, est.compression, est.level) == (0.0, 0.0, 0.0)


def test_dtypes_agree_and_alpha_is_ignored():
    x8 = _noisy(PHOTOS["coffee"](), 15, seed=1)
    f32 = x8.astype(np.float32) / 255
    u16 = x8.astype(np.uint16) * 257
    rgba = np.dstack([f32, np.random.default_rng(2).random(f32.shape[:2], dtype=np.float32)])
    levels = [noise.estimate(v).level for v in (x8, f32, u16, rgba, f32.astype(np.float16))]
    assert max(levels) - min(levels) < 0.3 / 255, levels


def test_blocking_is_measured_and_strength_grows_with_damage():
    import io

    from PIL import Image

    clean = PHOTOS["astronaut"]()
    levels = []
    for quality in (90, 50, 10):
        buf = io.BytesIO()
        Image.fromarray(clean).save(buf, "JPEG", quality=quality)
        damaged = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        est = noise.estimate(damaged)
        rms = float(np.sqrt(np.mean((damaged.astype(np.float32) - clean) ** 2))) / 255
        assert est.level <= 1.25 * rms  # errs low: never paints away more than the damage
        levels.append(est.level)
    assert levels[0] < levels[1] < levels[2]
    assert levels[2] > 0.5 * rms  # heavy blocking is seen


def test_clip_estimate_is_the_median_of_sampled_frames():
    clean = PHOTOS["chelsea"]()
    frames = [_noisy(clean, 20, seed=i) for i in range(4)] + [np.zeros_like(clean)]
    est = noise.estimate_clip(frames)
    assert abs(est.level * 255 - 20) < 3
    assert noise.estimate_clip([]).level == 0.0


def test_mostly_black_noisy_frame_errs_low_but_not_to_zero():
    """A night sky: most patches touch black, where clipping hides half the noise. The estimate
    must not fall to zero (no denoise at all) and must not exceed the truth."""
    sky = skdata.hubble_deep_field()[200:456, 200:456, :3]
    for sigma in (25, 50):
        est = noise.estimate(_noisy(sky, sigma, seed=sigma)).level * 255
        assert 0.5 * sigma < est <= 1.05 * sigma, (sigma, est)


def test_non_finite_and_huge_float_pixels_give_a_number():
    rng = np.random.default_rng(3)
    x = rng.random((9, 85, 4)).astype(np.float16)
    x[0, :5] = np.nan
    x[2, :7] = np.inf
    x[4, :3] = -65504.0
    est = noise.estimate(x)
    assert np.isfinite(est.level) and est.level >= 0.0
