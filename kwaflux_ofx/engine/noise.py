"""How noisy a frame is: a noise-level estimate that sets the denoise strength automatically.

Two measures, both in the units the denoiser's noise-level input uses (RMS of the damage, 1.0 =
full scale):

- Random noise, by principal component analysis of small patches (Chen, Zhu and Heng, "An
  Efficient Statistical Method for Image Noise Level Estimation", ICCV 2015). Natural image
  patches span few directions; white noise adds the same variance to every direction. So the
  smallest eigenvalues of the patch covariance are the noise variance, and the estimate is the
  mean of the tail of the spectrum at the point where that tail's mean equals its median (a
  tail of pure noise eigenvalues is symmetric; signal eigenvalues pull the mean above it).
  On small or densely detailed frames texture reaches even the smallest eigenvalues, so the
  estimate is refined on weakly textured patches only (Liu, Tanaka and Okutomi, "Single-Image
  Noise Level Estimation for Blind Denoising", 2013): patches whose gradient energy is below
  what noise of the current estimate alone would give 99% of the time.
- Compression damage, by blockiness: how much stronger the steps between pixels are across
  the block grid (8 pixels for DCT codecs, 4 for Cinepak's vector quantisation) than inside
  the blocks, on the smaller 90% of the steps, so a picture's own edges that fall on the grid
  (synthetic frames, graphics) are not read as blocking.

Both err low on purpose (texture in the smallest eigenvalues, block edges that a codec's
deblocking filter smoothed): a low estimate keeps texture, a high one paints it away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PATCH = 7  # patch side; 49 dimensions leave a long tail of noise-only eigenvalues
MAX_PATCHES = 20_000  # sampled per channel: enough for a stable spectrum at any frame size
BLOCK = 8  # DCT block size of JPEG, MPEG-1/2, MPEG-4 part 2 and H.264's 8x8 transform
# Grids looked for: 8 (DCT codecs) and 4 (Cinepak's vector-quantised blocks, H.264's 4x4).
BLOCK_SIZES = (4, BLOCK)
TRIM = 0.9  # share of the smallest steps the blockiness is measured on
# Blockiness excess (mean |step| across the grid minus inside, full scale) to RMS damage: JPEG
# quality 10..50 on held-out photos gave RMS / excess = 1.9..2.8; the low end, to err low.
BLOCK_TO_RMS = 1.8
# What a clean frame measures: its finest texture and 8-bit rounding leave 0.5..3/255 in the
# smallest eigenvalues, and a clean frame's steps show a faint grid-like excess too. These
# floors come off in quadrature (independent contributions add as variances).
NOISE_FLOOR = 2.0 / 255.0
BLOCK_FLOOR = 0.5 / 255.0


@dataclass(frozen=True)
class NoiseEstimate:
    """A frame's measured damage, full-scale units."""

    noise: float  # random noise sigma
    compression: float  # RMS of the blocking damage
    level: float  # what the denoiser's noise-level input should get (0: leave the frame alone)

    def strength(self, max_noise: float) -> float:
        """The denoise strength (0..1) for a model whose strength 1.0 means `max_noise`."""
        return min(self.level / max_noise, 1.0) if max_noise > 0 else 0.0


@dataclass(frozen=True)
class AutoStrength:
    """The strength automatic denoise chose for a frame or clip, and why."""

    estimate: NoiseEstimate
    strength: float
    model: str  # the denoise model it was calibrated for

    def describe(self) -> str:
        e = self.estimate
        return (
            f"measured noise {e.noise * 255:.1f}/255, compression {e.compression * 255:.1f}/255"
            f" -> denoise {self.strength:.2f} ({self.model})"
        )

    def as_dict(self) -> dict:
        e = self.estimate
        return {
            "noise_sigma_255": round(e.noise * 255, 2),
            "compression_rms_255": round(e.compression * 255, 2),
            "strength": round(self.strength, 4),
            "model": self.model,
        }


def _channels(frame: np.ndarray) -> list[np.ndarray]:
    x = np.asarray(frame)
    if x.dtype.kind == "u":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    else:
        # Float frames from a comp can carry NaN/inf (the engine renders them black or white).
        x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if x.ndim == 2:
        return [x]
    return [x[..., c] for c in range(min(x.shape[-1], 3))]  # colour only, never alpha


def _gradient_energy(patches: np.ndarray) -> np.ndarray:
    """Sum of squared horizontal and vertical steps inside each PATCH x PATCH patch."""
    p = patches.reshape(-1, PATCH, PATCH)
    return np.square(np.diff(p, axis=1)).sum(axis=(1, 2)) + np.square(np.diff(p, axis=2)).sum(
        axis=(1, 2)
    )


@lru_cache(maxsize=1)
def _noise_only_energy_q99() -> float:
    """The 99th percentile of a patch's gradient energy under unit white noise (simulated once,
    seeded: the closed form is a sum of correlated chi-squares)."""
    rng = np.random.default_rng(12345)
    energy = _gradient_energy(rng.standard_normal((20_000, PATCH * PATCH)))
    return float(np.quantile(energy, 0.99))


def _spectrum_sigma(patches: np.ndarray) -> float:
    centred = patches - patches.mean(axis=0)
    try:
        eig = np.linalg.eigvalsh(centred.T @ centred / len(centred))[::-1]  # descending
    except np.linalg.LinAlgError:  # huge out-of-range values: nothing to measure
        return 0.0
    eig = np.maximum(eig, 0.0)
    for i in range(len(eig)):
        tail = eig[i:]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) >= np.count_nonzero(tail < tau):
            return math.sqrt(tau)
    return math.sqrt(eig[-1])


def _pca_sigma(chan: np.ndarray, rng: np.random.Generator) -> float:
    h, w = chan.shape
    if h < PATCH or w < PATCH:
        return 0.0
    windows = np.lib.stride_tricks.sliding_window_view(chan, (PATCH, PATCH))
    n = windows.shape[0] * windows.shape[1]
    idx = rng.choice(n, size=min(n, MAX_PATCHES), replace=False)
    ys, xs = np.divmod(idx, windows.shape[1])
    patches = windows[ys, xs].reshape(len(idx), PATCH * PATCH).astype(np.float64)
    # Clipped pixels (black or white) hide noise: leave out patches that touch either end,
    # unless that leaves too few (a noisy night sky is mostly clipped). Then clipped patches
    # are measured too: clipping shrinks their variance, so the estimate stays low, not zero.
    enough = 4 * PATCH * PATCH
    lo, hi = patches.min(axis=1), patches.max(axis=1)
    unclipped = patches[(lo > 1.0 / 255.0) & (hi < 254.0 / 255.0)]
    if len(unclipped) >= enough:
        patches = unclipped
    elif len(patches) < enough:
        return 0.0
    sigma = _spectrum_sigma(patches)
    energy = _gradient_energy(patches)
    for _ in range(3):
        weak = patches[energy < _noise_only_energy_q99() * sigma * sigma]
        if len(weak) < enough:
            break
        refined = _spectrum_sigma(weak)
        if refined >= sigma * 0.999:
            break
        sigma = refined
    return sigma


def _trimmed_mean(steps: np.ndarray) -> float:
    """Mean of the smaller 90% of the steps: a picture's own sharp edges (a synthetic frame's
    blocks on the grid, text, lines) are the largest steps and stay out, while blocking, small
    and everywhere, stays in."""
    flat = steps.ravel()
    keep = max(1, int(len(flat) * TRIM))
    return float(np.partition(flat, keep - 1)[:keep].mean())


def _blockiness(chan: np.ndarray) -> float:
    """How much stronger the steps are on the strongest block-grid phase than elsewhere (0 for
    a frame with no block grid), the largest over the block sizes codecs use."""
    return max(_grid_excess(chan, size) for size in BLOCK_SIZES)


def _grid_excess(chan: np.ndarray, size: int) -> float:
    excess = []
    for axis in (0, 1):
        # One row of steps per boundary between pixel rows (axis 0) or columns (axis 1).
        steps = np.abs(np.diff(chan, axis=axis))
        per = steps if axis == 0 else steps.T
        if len(per) < 4 * size:
            return 0.0
        phases = [_trimmed_mean(per[p::size]) for p in range(size)]
        best = int(np.argmax(phases))
        inside = _trimmed_mean(np.delete(per, np.arange(best, len(per), size), axis=0))
        excess.append(max(phases[best] - inside, 0.0))
    return float(np.mean(excess))


def estimate(frame: np.ndarray, seed: int = 0) -> NoiseEstimate:
    """The noise level of one H x W (x C) frame, any of the engine's dtypes.

    A flat or single-colour frame gives 0 (nothing to measure is not noise), never NaN.
    """
    rng = np.random.default_rng(seed)
    chans = _channels(frame)
    noise = _above_floor(float(np.median([_pca_sigma(c, rng) for c in chans])), NOISE_FLOOR)
    luma = np.mean(chans, axis=0)
    compression = BLOCK_TO_RMS * _above_floor(_blockiness(luma), BLOCK_FLOOR)
    return NoiseEstimate(noise, compression, math.hypot(noise, compression))


def _above_floor(value: float, floor: float) -> float:
    if not math.isfinite(value) or value <= floor:
        return 0.0
    return math.sqrt(value * value - floor * floor)


def estimate_clip(frames: list[np.ndarray]) -> NoiseEstimate:
    """One estimate for a clip from a few sampled frames: the median of each measure, so one
    dark, flat or flashed frame does not decide the strength of the whole clip."""
    if not frames:
        return NoiseEstimate(0.0, 0.0, 0.0)
    each = [estimate(f, seed=i) for i, f in enumerate(frames)]
    noise = float(np.median([e.noise for e in each]))
    compression = float(np.median([e.compression for e in each]))
    return NoiseEstimate(noise, compression, math.hypot(noise, compression))
