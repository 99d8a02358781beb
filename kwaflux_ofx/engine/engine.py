"""The Engine: frames in, frames out — denoise at a strength, then upscale, tiled, any dtype."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from kwaflux_ofx import settings
from kwaflux_ofx.engine import noise
from kwaflux_ofx.engine.resample import kernel_support, resize
from kwaflux_ofx.engine.sessions import ModelRunner, SessionCache, is_out_of_memory
from kwaflux_ofx.engine.spec import ModelSpec
from kwaflux_ofx.engine.tiling import Tile, TilePlan
from kwaflux_ofx.errors import KwafluxError, ModelError, checked, first_line

log = logging.getLogger(__name__)

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32)
DEFAULT_BUDGET_BYTES = int(os.environ.get("KWAFLUX_TILE_BUDGET_MB", "1024")) * 2**20
MIN_TILE = 32
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


@lru_cache(maxsize=32)
def _widest_layer(path: str) -> int:
    """Most channels of any conv weight: a proxy for activation memory per pixel."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    widths = [int(t.dims[0]) for t in model.graph.initializer if len(t.dims) == 4]
    return max(widths, default=64)


class Engine:
    """Denoise and super-resolution of single frames; share one instance between threads."""

    def __init__(
        self,
        device: str = "auto",
        tile: int | None = None,
        threads: int | None = None,
        memory_budget: int | None = None,
    ):
        if tile is not None and int(tile) < MIN_TILE:
            raise KwafluxError(f"tile size must be at least {MIN_TILE} px, not {tile}")
        self.device = device
        self.tile = int(tile) if tile is not None else None
        self.memory_budget = memory_budget or DEFAULT_BUDGET_BYTES
        self.sessions = SessionCache(device=device, threads=threads)
        self._oom_tile: int | None = None  # tile size that last survived an out-of-memory retry
        self._lock = threading.Lock()

    # -- models -----------------------------------------------------------------------------
    def model_spec(self, name_or_path: str | os.PathLike) -> ModelSpec:
        from kwaflux_ofx.models.registry import resolve_model

        return self.sessions.spec(resolve_model(name_or_path))

    def _models(self, scale: int, denoise: float, sr_model, denoise_model):
        from kwaflux_ofx.models.registry import default_model_for

        dn = sr = None
        if denoise > 0:
            dn = self.model_spec(denoise_model or default_model_for("denoise", 1))
            if dn.kind != "denoise" or dn.scale != 1:
                raise ModelError(f"is a x{dn.scale} {dn.kind} model, not a denoise model", dn.path)
        if scale != 1 or sr_model is not None:
            sr = self.model_spec(sr_model or default_model_for("sr", scale))
            if sr.scale != scale:
                raise ModelError(f"is a x{sr.scale} model but x{scale} was asked for", sr.path)
        return dn, sr

    def auto_strength(
        self, frames: list[np.ndarray], *, denoise_model: str | os.PathLike | None = None
    ) -> noise.AutoStrength:
        """The denoise strength for these frames (one frame, or a few sampled from a clip) from
        their measured noise level; refused for a model whose noise input is not calibrated."""
        from kwaflux_ofx.models.registry import default_model_for

        spec = self.model_spec(denoise_model or default_model_for("denoise", 1))
        if not spec.noise_calibrated:
            raise ModelError(
                "has no calibrated noise-level input (kwaflux.noise_level=rms), so 'auto' "
                "cannot choose its strength: give --denoise a number",
                spec.path,
            )
        frames = [self._check_frame(f, "frame") for f in frames]
        est = noise.estimate_clip(frames)
        return noise.AutoStrength(est, est.strength(spec.max_noise), spec.name)

    # -- public API -------------------------------------------------------------------------
    def process(self, frame: np.ndarray, *, scale: int = 1, **options) -> np.ndarray:
        """Return a new frame of shape (H*scale, W*scale, C) and the input's dtype; `options`
        are process_into's (denoise, sr_model, denoise_model, premultiplied, on_tile)."""
        frame = self._check_frame(frame, "frame")
        h, w, c = frame.shape
        scale = checked(settings.check_scale, scale, "scale")  # before sizing the output
        out = np.empty((h * scale, w * scale, c), dtype=frame.dtype)
        self.process_into(frame, out, scale=scale, **options)
        return out

    def process_into(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        *,
        scale: int = 1,
        denoise: float | str = 0.0,
        sr_model: str | os.PathLike | None = None,
        denoise_model: str | os.PathLike | None = None,
        premultiplied: bool = True,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> None:
        """Write the processed `src` into `dst` (any strides); allocates only tile-sized buffers.
        `denoise` is a strength 0..1, or "auto" to measure this frame's noise and choose it."""
        src = self._check_frame(src, "source")
        dst = self._check_frame(dst, "destination")
        scale = checked(settings.check_scale, scale, "scale")
        denoise = checked(settings.check_denoise_or_auto, denoise, "denoise strength")
        if denoise == settings.DENOISE_AUTO:
            denoise = self.auto_strength([src], denoise_model=denoise_model).strength
        h, w, c = src.shape
        if dst.shape != (h * scale, w * scale, c):
            raise KwafluxError(
                f"destination is {dst.shape}, expected {(h * scale, w * scale, c)} for x{scale}"
            )
        dn, sr = self._models(scale, denoise, sr_model, denoise_model)
        if dn is None and sr is None:
            # Nothing to do: an exact pass-through, bit for bit.
            if dst.dtype == src.dtype:
                np.copyto(dst, src)
            else:
                dst[...] = from_float(to_float(src), dst.dtype)
            return
        job = _FrameJob(self, src, dst, scale, denoise, dn, sr, premultiplied)
        tile = self._tile_size(job)
        while True:
            plan = TilePlan.plan(h, w, tile, job.margin, align=job.align)
            try:
                job.run(plan, on_tile)
                return
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if tile <= MIN_TILE:
                    # Nothing left to halve: one line for the user, not onnxruntime's traceback.
                    raise KwafluxError(
                        f"out of memory even with {MIN_TILE} px tiles ({first_line(exc, 200)})"
                    ) from None
                tile = max(MIN_TILE, (min(tile, max(h, w))) // 2)
                with self._lock:
                    self._oom_tile = tile
                log.warning("out of memory on a tile; retrying with %d px tiles", tile)

    def plan_for(
        self,
        src_shape: tuple[int, ...],
        *,
        scale: int = 1,
        denoise: float = 0.0,
        sr_model=None,
        denoise_model=None,
    ) -> TilePlan:
        """The tile plan process() would use for a frame of this shape (for tools and tests)."""
        h, w = src_shape[:2]
        dn, sr = self._models(scale, denoise, sr_model, denoise_model)
        dummy = np.broadcast_to(np.zeros((1, 1, 3), np.float32), (h, w, 3))  # shape only, no memory
        job = _FrameJob(self, dummy, dummy, scale, denoise, dn, sr, True)
        return TilePlan.plan(h, w, self._tile_size(job), job.margin, align=job.align)

    @property
    def providers(self) -> list[str]:
        return self.sessions.providers_in_use

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _check_frame(frame: np.ndarray, what: str) -> np.ndarray:
        if not isinstance(frame, np.ndarray):
            frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise KwafluxError(f"{what} must be H×W×3 or H×W×4, got shape {frame.shape}")
        if frame.dtype.type not in SUPPORTED_DTYPES:
            raise KwafluxError(
                f"{what} dtype {frame.dtype} is not uint8, uint16, float16 or float32"
            )
        if frame.shape[0] < 1 or frame.shape[1] < 1:
            raise KwafluxError(f"{what} is empty: {frame.shape}")
        return frame

    def _tile_size(self, job: _FrameJob) -> int:
        if self.tile is not None:
            tile = self.tile
        else:
            widest = max(_widest_layer(str(s.path)) for s in job.specs)
            per_px = 4 * (4 * widest + 3 * job.channels * job.scale**2)
            tile = int(math.sqrt(self.memory_budget / per_px)) // 16 * 16
            h, w = job.src.shape[:2]
            if (
                any(s.global_context for s in job.specs)
                and h * w * per_px <= 4 * self.memory_budget
            ):
                # Models that pool over the whole image (CUNet-style) only equal themselves
                # untiled: spend up to 4x the budget to avoid tiling them.
                tile = max(tile, h, w)
        with self._lock:
            if self._oom_tile is not None:
                tile = min(tile, self._oom_tile)
        return max(MIN_TILE, tile)


class _FrameJob:
    """One frame's worth of work: the models, the margins and the per-tile pipeline."""

    def __init__(self, engine: Engine, src, dst, scale, denoise, dn, sr, premultiplied):
        self.src, self.dst = src, dst
        self.scale, self.denoise = scale, denoise
        self.dn: ModelRunner | None = engine.sessions.runner(dn) if dn else None
        self.sr: ModelRunner | None = engine.sessions.runner(sr) if sr else None
        self.specs = [s for s in (dn, sr) if s is not None]
        self.channels = src.shape[2]
        self.premultiplied = premultiplied
        margin = sum(s.receptive_field + s.pad for s in self.specs)
        if self.channels == 4 and scale > 1:
            margin += kernel_support(ALPHA_KERNEL, 1, scale)
        self.margin = margin
        self.align = math.lcm(2, *(s.alignment for s in self.specs))

    def run(self, plan: TilePlan, on_tile) -> None:
        total = len(plan.tiles)
        for i, tile in enumerate(plan.tiles):
            self._tile(plan, tile)
            if on_tile is not None:
                on_tile(i + 1, total)

    def _tile(self, plan: TilePlan, tile: Tile) -> None:
        ry0, ry1, rx0, rx1 = tile.read
        out = self.pixels(to_float(self.src[ry0:ry1, rx0:rx1]))
        s = self.scale
        wy0, wy1, wx0, wx1 = tile.write
        piece = out[(wy0 - ry0) * s : (wy1 - ry0) * s, (wx0 - rx0) * s : (wx1 - rx0) * s]
        target = self.dst[wy0 * s : wy1 * s, wx0 * s : wx1 * s]
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
            piece = piece.copy()
            for rows, cols in ((slice(0, bh), slice(None)), (slice(bh, None), slice(0, bw))):
                w = weight[rows, cols, None]
                piece[rows, cols] = to_float(target[rows, cols]) * (1.0 - w) + piece[rows, cols] * w
        target[...] = from_float(piece, self.dst.dtype)

    def pixels(self, img: np.ndarray) -> np.ndarray:
        """float32 H×W×C (full scale 1.0) -> processed float32 (H*s)×(W*s)×C."""
        if not np.isfinite(img).all():
            # Float frames from a comp can carry NaN/inf pixels; a model would smear them over
            # its receptive field. Render them as black (NaN, -inf) and full scale (+inf).
            img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
        rgb = img[..., :3]
        alpha = img[..., 3] if self.channels == 4 else None
        if alpha is not None and self.premultiplied:
            safe = np.where(alpha > 0, alpha, 1.0)[..., None]
            rgb = np.where(alpha[..., None] > 0, rgb / safe, 0.0).astype(np.float32)
        if self.dn is not None:
            rgb = self._run(self.dn, rgb, self.denoise)
        if self.sr is not None:
            rgb = self._run(self.sr, rgb, None)
        if alpha is None:
            return rgb
        h, w = rgb.shape[:2]
        if self.scale > 1:
            alpha = np.clip(resize(alpha, h, w, ALPHA_KERNEL), 0.0, 1.0)
        if self.premultiplied:
            rgb = rgb * alpha[..., None]
        return np.concatenate([rgb, alpha[..., None]], axis=2)

    @staticmethod
    def _run(runner: ModelRunner, rgb: np.ndarray, strength: float | None) -> np.ndarray:
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
        if spec.noise_input:
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
