"""Black and white levels kept through denoise: the bias of noise clipped at 0 and 1, taken out.

Footage stores noise clipped to its range: at black half of it is cut off, so the noisy picture
is lighter than the scene by up to 0.4 sigma (10 levels at sigma 25). Averaging (the temporal
fusion) keeps that bias and a denoiser that never saw clipped noise keeps some of it: blacks come
back grey. For Gaussian noise the clipped samples say where the level lies. A level mu under
noise sigma is clipped to 0 in a share p0 = Phi(-mu/sigma) of its samples, and the clipped
samples' mean is m = sigma (t Phi(t) + phi(t)) with t = mu/sigma = -Phi^-1(p0); so

    mu = m t / (t Phi(t) + phi(t)),

from the local share of exact zeros and the local mean alone, whatever the noise level (which
the noise estimate reads low on clipped frames). White is the same seen from 1. The result's
local mean is moved onto mu where the source has clipped samples, and left alone elsewhere: a
smooth offset, so the result keeps its texture. Frames with values below 0 or above 1 carry
their noise whole and are left as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RADIUS = 6  # box half-width of the local statistics, input pixels (169 samples a channel)
# The offset fades in between these shares of clipped samples: under 5% the lift is under 0.02
# sigma and the share, read off 169 samples, too uncertain to move anything by; from 20% on
# (the level within a sigma of the end, lifted by 0.08 sigma or more) it applies fully.
SHARE_FROM, SHARE_FULL = 0.05, 0.20
MIN_SIGMA = 1.0 / 255.0  # below this denoise level the bias is under half a level: left alone
CLIPPED_READ = 1.4  # how far above the measured noise the real one may be on a clipped frame


@lru_cache(maxsize=1)
def _gain_table() -> tuple[np.ndarray, np.ndarray]:
    """(p0, mu / m) on a grid of t = mu / sigma from 0 to 5: the clipped share and the factor
    that turns a clipped mean back into the level."""
    t = np.linspace(0.0, 5.0, 2001)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(t / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    p0 = 1.0 - cdf  # Phi(-t), falling with t
    return p0[::-1].copy(), (t / (t * cdf + pdf))[::-1].copy()


def level_from_clipped(share: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The level mu behind a local `mean` of which a `share` of samples sat at 0 (0: none)."""
    p0, gain = _gain_table()
    g = np.interp(np.clip(share, 0.0, 0.5), p0, gain)  # share >= 0.5: mu <= 0
    return (mean * g).astype(np.float32)


@lru_cache(maxsize=64)
def _lift_table(sigma_key: int) -> tuple[np.ndarray, np.ndarray]:
    """(E[max(mu + sigma N, 0)], mu) on a grid of mu: the mean a level takes under noise
    clipped at 0, and the level."""
    sigma = sigma_key / 1e6
    mu = np.linspace(-4.0 * sigma, 6.0 * sigma, 1025)
    t = mu / sigma
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(t / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    return (mu * cdf + sigma * pdf).astype(np.float32), mu.astype(np.float32)


def level_under_noise(mean: np.ndarray, sigma: float) -> np.ndarray:
    """The level whose mean under Gaussian noise `sigma` clipped at 0 is `mean` (at least 0;
    beyond 6 sigma the mean is the level)."""
    f, mu = _lift_table(round(sigma * 1e6))
    inside = np.interp(mean, f, mu)
    return np.maximum(np.where(mean > f[-1], mean, inside), 0.0).astype(np.float32)


def _box(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² box per channel (fewer samples at the edges), by cumulative sums."""
    out = img.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(1, 0) if a == axis else (0, 0) for a in range(out.ndim)]
        c = np.cumsum(np.pad(out, pad), axis=axis)
        idx = np.arange(n)
        hi, lo = np.minimum(idx + r + 1, n), np.maximum(idx - r, 0)
        count = (hi - lo).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / count
    return out.astype(np.float32)


def carries_clipped_noise(frame: np.ndarray) -> bool:
    """Float RGB 0..1 of a frame: clipped noise leaves nothing outside 0..1 (integer footage
    never has); a float frame with values outside carries its noise whole."""
    rgb = frame[..., :3]
    return bool(rgb.min() >= 0.0 and rgb.max() <= 1.0)


@dataclass(frozen=True)
class Levels:
    """Where and to what a denoised frame's local mean is moved: the level behind the noisy
    source's clipped samples and a weight (1 where enough of them were clipped), input size."""

    target: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, source: np.ndarray, sigma: float) -> Levels | None:
        """For the noisy float frame `source` denoised at `sigma`; None where nothing moves."""
        if sigma < MIN_SIGMA or not carries_clipped_noise(source):
            return None
        rgb = source[..., :3]
        black, white = rgb <= 0.0, rgb >= 1.0
        if not (black.any() or white.any()):
            return None
        mean = _box(rgb, RADIUS)
        p_black, p_white = _box(black, RADIUS), _box(white, RADIUS)
        low = level_from_clipped(p_black, mean)
        high = 1.0 - level_from_clipped(p_white, 1.0 - mean)
        # Never more than Gaussian noise of the denoised level can lift at that mean, allowing
        # for the noise estimate reading clipped frames low (19 for 25 on a dark clip). Noise of another
        # shape (a few photons at black, Poisson, through the display curve) clips more samples
        # for less lift, and would otherwise be pulled too dark.
        low = np.maximum(low, level_under_noise(mean, CLIPPED_READ * sigma))
        high = np.minimum(high, 1.0 - level_under_noise(1.0 - mean, CLIPPED_READ * sigma))
        dark = p_black >= p_white
        target = np.where(dark, low, high)
        share = np.maximum(p_black, p_white)
        weight = np.clip((share - SHARE_FROM) / (SHARE_FULL - SHARE_FROM), 0.0, 1.0)
        return cls(target.astype(np.float32), weight.astype(np.float32))

    def correct(self, out: np.ndarray, scale: int) -> None:
        """Move the float result `out` (H·scale × W·scale × C) in place: its local mean, over
        the same box at input size, onto the level, where the weight says."""
        h, w = self.target.shape[:2]
        rgb = out[..., :3]
        small = rgb.reshape(h, scale, w, scale, 3).mean(axis=(1, 3)) if scale > 1 else rgb
        shift = self.weight * (self.target - _box(small, RADIUS))
        if scale > 1:  # a smooth field: repeated, it steps by a fraction of a level
            shift = shift.repeat(scale, 0).repeat(scale, 1)
        np.clip(rgb + shift, 0.0, 1.0, out=rgb)
