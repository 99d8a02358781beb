"""Sample material generated on the spot (no downloads): a small noisy, low-resolution scene."""

from __future__ import annotations

import numpy as np


def _fractal(h: int, w: int, rng: np.random.Generator, octaves: int = 5) -> np.ndarray:
    """Value noise summed over octaves: texture like grass, bark or clouds, in 0..1."""
    from kwaflux_ofx.engine.resample import resize

    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        gh, gw = max(2, h >> (octaves - o)), max(2, w >> (octaves - o))
        out += amp * resize(rng.random((gh, gw), dtype=np.float32), h, w, "bicubic")
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def scene(height: int = 270, width: int = 480, t: float = 0.0, seed: int = 0) -> np.ndarray:
    """A clean landscape frame (float32 RGB 0..1); `t` pans the camera, for a moving clip."""
    rng = np.random.default_rng(seed)
    pad = width // 4
    big_w = width + pad
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, big_w / width, big_w, dtype=np.float32)[None, :]
    sky = np.stack([0.35 + 0.3 * y, 0.55 + 0.25 * y, 0.95 - 0.1 * y], -1) * np.ones((1, big_w, 1))
    clouds = _fractal(height, big_w, rng)[..., None]
    img = sky * (1 - 0.35 * clouds * (y[..., None] < 0.5)) + 0.35 * clouds * (y[..., None] < 0.5)
    sun = ((x - 0.8) ** 2 + ((y - 0.18) * height / width) ** 2) < 0.004
    img[sun] = (1.0, 0.93, 0.7)
    ridge = 0.55 + 0.08 * np.sin(9 * x + 1.3) + 0.05 * np.sin(23 * x)
    hills = y > ridge
    grass = _fractal(height, big_w, rng, 6)[..., None]
    ground = np.concatenate([0.18 + 0.25 * grass, 0.35 + 0.3 * grass, 0.12 + 0.1 * grass], -1)
    img = np.where(hills[..., None], ground, img)
    # A house: hard edges and small windows, what upscalers most often smear.
    hx0, hx1, hy0, hy1 = int(0.25 * width), int(0.42 * width), int(0.55 * height), int(0.8 * height)
    img[hy0:hy1, hx0:hx1] = (0.8, 0.75, 0.65)
    for wy in range(hy0 + 6, hy1 - 10, 14):
        for wx in range(hx0 + 6, hx1 - 8, 12):
            img[wy : wy + 7, wx : wx + 6] = (0.15, 0.2, 0.3)
    for i in range(hy0 - 20, hy0):
        span = (i - (hy0 - 20)) * (hx1 - hx0) // 40
        c = (hx0 + hx1) // 2
        img[i, c - span : c + span] = (0.55, 0.2, 0.15)
    shift = int(round(t * pad))
    return np.ascontiguousarray(img[:, shift : shift + width], dtype=np.float32)


def add_camera_noise(img: np.ndarray, level: float = 0.04, seed: int = 1) -> np.ndarray:
    """Signal-dependent (Poisson-Gaussian) luma noise plus some colour noise, clipped to 0..1."""
    rng = np.random.default_rng(seed)
    shot = rng.normal(0, 1, img.shape).astype(np.float32) * np.sqrt(
        np.clip(img, 0, 1) * level * 0.5
    )
    read = rng.normal(0, level * 0.5, img.shape[:2] + (1,)).astype(np.float32)
    chroma = rng.normal(0, level * 0.3, img.shape).astype(np.float32)
    return np.clip(img + shot + read + chroma, 0.0, 1.0)
