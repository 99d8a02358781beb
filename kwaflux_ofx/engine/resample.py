"""Separable resampling (Lanczos, bicubic, area) for alpha, previews and the host-resolution path."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# Kernel half-widths in source pixels at scale 1.
_SUPPORT = {"lanczos3": 3.0, "bicubic": 2.0, "area": 0.5, "bilinear": 1.0}


def _kernel(name: str, x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    if name == "lanczos3":
        out = np.sinc(x) * np.sinc(x / 3.0)
        return np.where(ax < 3.0, out, 0.0)
    if name == "bicubic":  # Keys cubic, a = -0.5 (what most editors call bicubic)
        a = -0.5
        near = (a + 2) * ax**3 - (a + 3) * ax**2 + 1
        far = a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a
        return np.where(ax <= 1, near, np.where(ax < 2, far, 0.0))
    if name == "bilinear":
        return np.clip(1.0 - ax, 0.0, None)
    if name == "area":
        return np.where(ax <= 0.5, 1.0, 0.0)
    raise ValueError(f"unknown resampling kernel {name!r}")


def kernel_support(kernel: str, in_size: int, out_size: int) -> int:
    """How many source pixels either side of a sample the kernel reads (for tile margins)."""
    stretch = max(1.0, in_size / max(out_size, 1))
    return int(math.ceil(_SUPPORT[kernel] * stretch)) + 1


@lru_cache(maxsize=64)
def _taps(kernel: str, in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and normalised weights, one row per output sample (edges clamped)."""
    ratio = in_size / out_size
    stretch = max(1.0, ratio)  # widen the kernel when shrinking: antialiasing
    support = _SUPPORT[kernel] * stretch
    centres = (np.arange(out_size) + 0.5) * ratio - 0.5
    first = np.floor(centres - support).astype(np.int64) + 1
    ntaps = int(math.ceil(2 * support)) + 1
    idx = first[:, None] + np.arange(ntaps)[None, :]
    w = _kernel(kernel, (idx - centres[:, None]) / stretch)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    idx = np.clip(idx, 0, in_size - 1)
    return idx, w


def _resize_axis(img: np.ndarray, axis: int, out_size: int, kernel: str) -> np.ndarray:
    in_size = img.shape[axis]
    if in_size == out_size:
        return img
    idx, w = _taps(kernel, in_size, out_size)
    shape = [1] * img.ndim
    shape[axis] = out_size
    # Accumulate in float64 so flat areas (an opaque alpha) stay exactly flat after rounding.
    out = np.zeros(img.shape[:axis] + (out_size,) + img.shape[axis + 1 :], dtype=np.float64)
    for k in range(idx.shape[1]):
        out += np.take(img, idx[:, k], axis=axis) * w[:, k].reshape(shape)
    return out


def resize(img: np.ndarray, out_h: int, out_w: int, kernel: str = "lanczos3") -> np.ndarray:
    """Resize an H×W or H×W×C float image to out_h×out_w; returns float32."""
    if kernel not in _SUPPORT:
        raise ValueError(f"unknown resampling kernel {kernel!r}")
    img = np.asarray(img, dtype=np.float32)
    out = _resize_axis(img, 0, out_h, kernel)
    return _resize_axis(out, 1, out_w, kernel).astype(np.float32)
