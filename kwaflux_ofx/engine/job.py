"""One frame's work on the numpy path: pixel conversions, tiles, alpha, and each model's run.

The wrapped path (graph_job.py) does the same work inside the model's graph; this path serves
the models that cannot be wrapped, translucent alpha, and the tiles whose output was not finite.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from kwaflux_ofx.engine.resample import kernel_support, resize
from kwaflux_ofx.engine.sessions import ModelRunner
from kwaflux_ofx.engine.tiling import Tile, TilePlan
from kwaflux_ofx.errors import ModelError

ALPHA_KERNEL = "lanczos3"


def _int_max(dtype: np.dtype) -> float | None:
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else None


def to_float(region: np.ndarray) -> np.ndarray:
    """Native pixels to float32 with 1.0 = full scale."""
    peak = _int_max(region.dtype)
    out = region.astype(np.float32, copy=peak is not None)
    if peak is not None:
        out *= np.float32(1.0 / peak)
    return out


def from_float(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 back to native pixels: integers rounded and clamped, floats kept as they are."""
    peak = _int_max(dtype)
    if peak is None:
        return values.astype(dtype, copy=False)
    return np.rint(np.clip(values, 0.0, 1.0) * peak).astype(dtype)


class FrameJob:
    """One frame's worth of work: the models, the margins and the per-tile pipeline."""

    def __init__(self, engine, src, dst, scale, denoise, dn, sr, premultiplied):
        self.src, self.dst = src, dst
        self.scale, self.denoise = scale, denoise
        self.sessions = engine.sessions
        self.dn_spec, self.sr_spec = dn, sr
        self.specs = [s for s in (dn, sr) if s is not None]
        self.channels = src.shape[2]
        self.premultiplied = premultiplied
        margin = sum(s.receptive_field + s.pad for s in self.specs)
        if self.channels == 4 and scale > 1:
            margin += kernel_support(ALPHA_KERNEL, 1, scale)
        self.margin = margin
        self.align = math.lcm(2, *(s.alignment for s in self.specs))

    # Sessions are made on first use: the wrapped path needs them only for a fallback tile.
    @functools.cached_property
    def dn(self) -> ModelRunner | None:
        return self.sessions.runner(self.dn_spec) if self.dn_spec else None

    @functools.cached_property
    def sr(self) -> ModelRunner | None:
        return self.sessions.runner(self.sr_spec) if self.sr_spec else None

    def run(self, plan: TilePlan, on_tile) -> None:
        total = len(plan.tiles)
        for i, tile in enumerate(plan.tiles):
            self._tile(plan, tile)
            if on_tile is not None:
                on_tile(i + 1, total)

    def _tile(self, plan: TilePlan, tile: Tile) -> None:
        ry0, ry1, rx0, rx1 = tile.read
        self._write(plan, tile, self.pixels(to_float(self.src[ry0:ry1, rx0:rx1])))

    def _write(self, plan: TilePlan, tile: Tile, out: np.ndarray) -> None:
        """Put a tile's output (float32 at full scale 1.0, or already in dst's dtype) in its
        place in dst, blending the bands it shares with the tiles written before it."""
        s = self.scale
        ry0, _, rx0, _ = tile.read
        wy0, wy1, wx0, wx1 = tile.write
        piece = out[(wy0 - ry0) * s : (wy1 - ry0) * s, (wx0 - rx0) * s : (wx1 - rx0) * s]
        target = self.dst[wy0 * s : wy1 * s, wx0 * s : wx1 * s]
        bh = bw = 0
        if tile.ramp_top or tile.ramp_left:
            weight = np.ones(piece.shape[:2], np.float32)
            band = 2 * plan.blend * s
            ramp = (np.arange(band, dtype=np.float32) + 0.5) / band
            if tile.ramp_top:
                weight[:band] *= ramp[:, None]
            if tile.ramp_left:
                weight[:, :band] *= ramp[None, :]
            # Only the bands are read back: the rest of `target` may still be uninitialised.
            bh = band if tile.ramp_top else 0
            bw = band if tile.ramp_left else 0
            for rows, cols in ((slice(0, bh), slice(None)), (slice(bh, None), slice(0, bw))):
                w = weight[rows, cols, None]
                mixed = to_float(target[rows, cols]) * (1.0 - w) + to_float(piece[rows, cols]) * w
                target[rows, cols] = from_float(mixed, self.dst.dtype)
        rest = piece[bh:, bw:]
        target[bh:, bw:] = (
            rest if rest.dtype == self.dst.dtype else from_float(rest, self.dst.dtype)
        )

    def pixels(self, img: np.ndarray) -> np.ndarray:
        """float32 H×W×C (full scale 1.0) -> processed float32 (H*s)×(W*s)×C."""
        rgb, alpha = self.split(img)
        if self.dn is not None:
            rgb = self._run(self.dn, rgb, self.denoise)
        if self.sr is not None:
            rgb = self._run(self.sr, rgb, None)
        return self.join(rgb, alpha)

    def split(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A float tile as the models take it: finite, straight colour; and its alpha."""
        if not np.isfinite(img).all():
            # Float frames from a comp can carry NaN/inf pixels; a model would smear them over
            # its receptive field. Render them as black (NaN, -inf) and full scale (+inf).
            img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
        rgb = img[..., :3]
        alpha = img[..., 3] if self.channels == 4 else None
        if alpha is not None and self.premultiplied:
            safe = np.where(alpha > 0, alpha, 1.0)[..., None]
            rgb = np.where(alpha[..., None] > 0, rgb / safe, 0.0).astype(np.float32)
        return rgb, alpha

    def join(self, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        """The processed colour with the alpha resized to it (and premultiplied again)."""
        if alpha is None:
            return rgb
        h, w = rgb.shape[:2]
        if self.scale > 1:
            alpha = np.clip(resize(alpha, h, w, ALPHA_KERNEL), 0.0, 1.0)
        if self.premultiplied:
            rgb = rgb * alpha[..., None]
        return np.concatenate([rgb, alpha[..., None]], axis=2)

    @staticmethod
    def _run(
        runner: ModelRunner,
        rgb: np.ndarray,
        strength: float | None,
        level_map: np.ndarray | None = None,
    ) -> np.ndarray:
        """One model on a float H×W×3 tile. A noise-input model gets strength × its maximum
        everywhere, or `level_map` (H×W, the noise level per pixel) where one is given."""
        spec = runner.spec
        lo, hi = spec.value_range
        x = rgb.transpose(2, 0, 1)[None]  # 1×3×H×W
        if spec.channels == 1:
            x = x.transpose(1, 0, 2, 3)  # each colour channel as its own grey image
        if spec.pad:
            p = spec.pad
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="edge")
        x = lo + x * (hi - lo) if (lo, hi) != (0.0, 1.0) else x
        noise = None
        if spec.noise_input and level_map is not None:
            noise = level_map[None, None].astype(np.float32, copy=False)
            if spec.pad:
                noise = np.pad(noise, ((0, 0), (0, 0), (p, p), (p, p)), mode="edge")
        elif spec.noise_input:
            sigma = (strength or 0.0) * spec.max_noise
            noise = np.full((x.shape[0], 1) + x.shape[2:], sigma, np.float32)
        y = runner.run(x, noise)
        if not np.isfinite(y).all():
            # NaN/inf would become silent black (integers) or poison float frames downstream.
            raise ModelError("produced NaN or infinite values; the model is broken", spec.path)
        if (lo, hi) != (0.0, 1.0):
            y = (y - lo) / (hi - lo)
        h, w = rgb.shape[:2]
        th, tw = h * spec.scale, w * spec.scale
        if y.shape[2:] != (th, tw):  # padded models: keep the centre
            oy, ox = (y.shape[2] - th) // 2, (y.shape[3] - tw) // 2
            if oy < 0 or ox < 0:
                raise ModelError(
                    f"output {y.shape[2:]} is smaller than expected {(th, tw)}", spec.path
                )
            y = y[:, :, oy : oy + th, ox : ox + tw]
        if spec.channels == 1:
            y = y.transpose(1, 0, 2, 3)
        out = y[0].transpose(1, 2, 0)  # a view: the final write into dst does the one copy
        if strength is not None and not spec.noise_input:
            # A denoiser without a noise input: strength blends it with the source.
            out = rgb + np.float32(strength) * (out - rgb) if strength < 1 else out
        return out
