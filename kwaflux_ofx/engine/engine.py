"""The Engine: frames in, frames out — denoise at a strength, then upscale, tiled, any dtype."""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

import numpy as np

from kwaflux_ofx import settings
from kwaflux_ofx.engine import blacks, noise, temporal
from kwaflux_ofx.engine import colour as colours
from kwaflux_ofx.engine.graph_job import GraphJob
from kwaflux_ofx.engine.job import FrameJob, from_float, to_float
from kwaflux_ofx.engine.sessions import SessionCache, is_out_of_memory
from kwaflux_ofx.engine.spec import TEMPORAL_KIND, ModelSpec
from kwaflux_ofx.engine.temporal import TemporalJob
from kwaflux_ofx.engine.tiling import TilePlan
from kwaflux_ofx.errors import KwafluxError, ModelError, checked, first_line

log = logging.getLogger(__name__)

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32)
DEFAULT_BUDGET_BYTES = int(os.environ.get("KWAFLUX_TILE_BUDGET_MB", "1024")) * 2**20
MIN_TILE = 32
__all__ = ["MIN_TILE", "Engine", "from_float", "to_float"]  # conversions other layers use


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
        streams: int | None = None,
        wrap: bool = True,
        temporal_method: settings.TemporalMethod | str = settings.TEMPORAL_METHOD_DEFAULT,
    ):
        if tile is not None and int(tile) < MIN_TILE:
            raise KwafluxError(f"tile size must be at least {MIN_TILE} px, not {tile}")
        self.device = device
        self.tile = int(tile) if tile is not None else None
        self.memory_budget = memory_budget or DEFAULT_BUDGET_BYTES
        # streams: frames in flight on one CUDA card (a session each); the CPU shares one.
        self.sessions = SessionCache(device=device, threads=threads, streams=streams)
        # wrap=False keeps every model on the numpy path (the reference the wrapped one matches).
        self.wrap = bool(wrap)
        # The temporal path windows take unless a call names one (settings.TemporalMethod).
        self.temporal_method = checked(
            settings.check_temporal_method, temporal_method, "temporal method"
        )
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
            if sr.kind == TEMPORAL_KIND:
                raise ModelError("is a temporal model, which the engine runs itself", sr.path)
            if sr.scale != scale:
                raise ModelError(f"is a x{sr.scale} model but x{scale} was asked for", sr.path)
        return dn, sr

    def auto_strength(
        self,
        frames: list[np.ndarray],
        *,
        denoise_model: str | os.PathLike | None = None,
        colour: settings.ColourSpace | str = settings.ColourSpace.DISPLAY,
    ) -> noise.AutoStrength:
        """The denoise strength for these frames (one frame, or a few sampled from a clip) from
        their measured noise level, read on the picture the model sees (brought from `colour`
        into its encoding); refused for a model whose noise input is not calibrated."""
        from kwaflux_ofx.models.registry import default_model_for

        spec = self.model_spec(denoise_model or default_model_for("denoise", 1))
        if not spec.noise_calibrated:
            raise ModelError(
                "has no calibrated noise-level input (kwaflux.noise_level=rms), so 'auto' "
                "cannot choose its strength: give --denoise a number",
                spec.path,
            )
        frames = [self._check_frame(f, "frame") for f in frames]
        space = self._colour(colour)
        if space is not settings.ColourSpace.DISPLAY:
            t = colours.transforms_for(self)
            frames = [colours.convert_in(t, to_float(f), space, True).inside for f in frames]
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
        colour: settings.ColourSpace | str = settings.ColourSpace.DISPLAY,
        keep_levels: bool = True,
    ) -> None:
        """Write the processed `src` into `dst` (any strides); allocates only tile-sized buffers.
        `denoise` is a strength 0..1, or "auto" to measure this frame's noise and choose it.
        `colour` is the encoding `src` is in (settings.ColourSpace); the output leaves in it.
        `keep_levels` takes the bias of noise clipped at black and white out (engine/blacks.py)."""
        src = self._check_frame(src, "source")
        dst = self._check_frame(dst, "destination")
        scale = checked(settings.check_scale, scale, "scale")
        denoise = checked(settings.check_denoise_or_auto, denoise, "denoise strength")
        space = self._colour(colour)
        if space is not settings.ColourSpace.DISPLAY:
            options = dict(sr_model=sr_model, denoise_model=denoise_model, on_tile=on_tile)
            options["keep_levels"] = keep_levels
            self._converted([src], 0, dst, space, scale, denoise, premultiplied, options)
            return
        if denoise == settings.DENOISE_AUTO:
            denoise = self.auto_strength([src], denoise_model=denoise_model).strength
        h, w, c = src.shape
        self._check_destination(src, dst, scale)
        dn, sr = self._models(scale, denoise, sr_model, denoise_model)
        if dn is None and sr is None:
            # Nothing to do: an exact pass-through, bit for bit.
            if dst.dtype == src.dtype:
                np.copyto(dst, src)
            else:
                dst[...] = from_float(to_float(src), dst.dtype)
            return
        # The wrapped graph does the pixel work where it can; the numpy path does the rest.
        job = None
        if self.wrap:
            job = GraphJob.create(self, src, dst, scale, denoise, dn, sr, premultiplied)
        if job is None:
            job = FrameJob(self, src, dst, scale, denoise, dn, sr, premultiplied)
        tile = self._tile_size(job)
        while True:
            plan = TilePlan.plan(h, w, tile, job.margin, align=job.align)
            try:
                job.run(plan, on_tile)
                if keep_levels and dn is not None:
                    self._keep_levels(src, dst, denoise * dn.max_noise, scale)
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

    def process_window(
        self, window: list[np.ndarray], centre: int, *, scale: int = 1, **options
    ) -> np.ndarray:
        """The frame window[centre] rendered with its neighbours (the frames around it in time
        order; missing ones simply left out); `options` are process_window_into's."""
        frame = self._check_frame(window[centre] if 0 <= centre < len(window) else None, "frame")
        h, w, c = frame.shape
        scale = checked(settings.check_scale, scale, "scale")
        out = np.empty((h * scale, w * scale, c), dtype=frame.dtype)
        self.process_window_into(window, centre, out, scale=scale, **options)
        return out

    def process_window_into(
        self,
        window: list[np.ndarray],
        centre: int,
        dst: np.ndarray,
        *,
        scale: int = 1,
        denoise: float | str = 0.0,
        sr_model: str | os.PathLike | None = None,
        denoise_model: str | os.PathLike | None = None,
        premultiplied: bool = True,
        temporal_method: settings.TemporalMethod | str | None = None,
        colour: settings.ColourSpace | str = settings.ColourSpace.DISPLAY,
        keep_levels: bool = True,
    ) -> None:
        """process_into for window[centre], denoised with the frames around it (temporal.py).
        "auto" measures the window. Without neighbours, at strength 0, or with a denoiser that
        takes no noise level, this is exactly process_into of the frame alone.
        `temporal_method` (default: the engine's) picks the learned model or the fusion path."""
        if not 0 <= centre < len(window):
            raise KwafluxError(f"centre {centre} is outside a window of {len(window)} frames")
        frames = [self._check_frame(f, f"window frame {i}") for i, f in enumerate(window)]
        first = frames[centre]
        for i, f in enumerate(frames):
            if f.shape != first.shape or f.dtype != first.dtype:
                raise KwafluxError(
                    f"window frame {i} is {f.shape} {f.dtype}, the frame rendered is "
                    f"{first.shape} {first.dtype}"
                )
        denoise = checked(settings.check_denoise_or_auto, denoise, "denoise strength")
        space = self._colour(colour)
        if space is not settings.ColourSpace.DISPLAY:
            scale = checked(settings.check_scale, scale, "scale")
            options = dict(sr_model=sr_model, denoise_model=denoise_model)
            options.update(temporal_method=temporal_method, keep_levels=keep_levels)
            self._converted(frames, centre, dst, space, scale, denoise, premultiplied, options)
            return
        if denoise == settings.DENOISE_AUTO:
            denoise = self.auto_strength(frames, denoise_model=denoise_model).strength
        options = dict(sr_model=sr_model, denoise_model=denoise_model, premultiplied=premultiplied)
        dn, sr = self._models(scale, denoise, sr_model, denoise_model)
        if len(frames) == 1 or dn is None or not dn.takes_noise_level:
            if len(frames) > 1 and dn is not None:
                log.info("%s takes no noise level: denoising frame by frame", dn.name)
            self.process_into(
                first, dst, scale=scale, denoise=denoise, keep_levels=keep_levels, **options
            )
            return
        self._check_destination(first, self._check_frame(dst, "destination"), scale)
        h, w, c = first.shape
        method = self._temporal_method(temporal_method)
        learned = temporal.learned_for(self, dn, len(frames), centre, method)
        job = TemporalJob(self, frames, centre, dst, scale, denoise, dn, sr, premultiplied, learned)
        job.run(TilePlan.plan(h, w, self._tile_size(job), job.margin, align=job.align), None)
        if keep_levels:
            self._keep_levels(first, dst, denoise * dn.max_noise, scale)

    def process_sequence(
        self,
        frames: Iterable[np.ndarray],
        *,
        scale: int = 1,
        denoise: float | str = 0.0,
        temporal_radius: int = settings.TEMPORAL_RADIUS_DEFAULT,
        sr_model: str | os.PathLike | None = None,
        denoise_model: str | os.PathLike | None = None,
        premultiplied: bool = True,
        temporal_method: settings.TemporalMethod | str | None = None,
        colour: settings.ColourSpace | str = settings.ColourSpace.DISPLAY,
        keep_levels: bool = True,
    ) -> Iterator[np.ndarray]:
        """Yield each frame of `frames` processed with up to `temporal_radius` frames on each
        side (fewer at the clip's ends), in order, holding at most 2r+1 inputs. "auto" measures
        the first window once for the whole sequence; radius 0 is exactly process()."""
        radius = checked(settings.check_temporal_radius, temporal_radius, "temporal radius")
        denoise = checked(settings.check_denoise_or_auto, denoise, "denoise strength")
        method = self._temporal_method(temporal_method)
        space = self._colour(colour)
        options = dict(scale=scale, sr_model=sr_model, denoise_model=denoise_model)
        options.update(premultiplied=premultiplied, colour=space, keep_levels=keep_levels)
        held: collections.deque[np.ndarray] = collections.deque()
        first_index = 0  # sequence index of held[0]
        done = 0  # frames yielded so far
        shape = None
        source = iter(frames)
        exhausted = False
        while True:
            while not exhausted and len(held) < done - first_index + radius + 1:
                try:
                    frame = next(source)
                except StopIteration:
                    exhausted = True
                    break
                frame = self._check_frame(frame, f"frame {first_index + len(held)}")
                if shape is None:
                    shape = (frame.shape, frame.dtype)
                elif (frame.shape, frame.dtype) != shape:
                    raise KwafluxError(
                        f"frame {first_index + len(held)} is {frame.shape} {frame.dtype}, "
                        f"the sequence started as {shape[0]} {shape[1]}"
                    )
                held.append(frame)
            if done - first_index >= len(held):
                return
            if denoise == settings.DENOISE_AUTO:
                est = self.auto_strength(list(held), denoise_model=denoise_model, colour=space)
                denoise = est.strength
            centre = done - first_index
            if radius == 0:
                yield self.process(held[centre], denoise=denoise, **options)
            else:
                yield self.process_window(
                    list(held), centre, denoise=denoise, temporal_method=method, **options
                )
            done += 1
            while done - first_index > radius:
                held.popleft()
                first_index += 1

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
        job = FrameJob(self, dummy, dummy, scale, denoise, dn, sr, True)
        return TilePlan.plan(h, w, self._tile_size(job), job.margin, align=job.align)

    def temporal_method_for(
        self,
        frames: int,
        centre: int,
        *,
        denoise_model: str | os.PathLike | None = None,
        temporal_method: settings.TemporalMethod | str | None = None,
    ) -> tuple[settings.TemporalMethod, str]:
        """The path a window of `frames` frames rendering frame `centre` takes, and why not the
        learned one ("" when it is); for tools and evaluations that must know which ran."""
        method = self._temporal_method(temporal_method)
        dn, _ = self._models(1, 1.0, None, denoise_model)
        spec, _, why = temporal.choose(self, dn, frames, centre, method)
        return (
            (settings.TemporalMethod.LEARNED, "") if spec else (settings.TemporalMethod.FUSION, why)
        )

    @property
    def providers(self) -> list[str]:
        return self.sessions.providers_in_use

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _keep_levels(src: np.ndarray, dst: np.ndarray, sigma: float, scale: int) -> None:
        """Take the clipped-noise bias out of the denoised `dst` (engine/blacks.py)."""
        levels = blacks.Levels.of(to_float(src), sigma)
        if levels is None:
            return
        work = dst if dst.dtype == np.float32 else to_float(dst)  # ints scaled to 0..1
        levels.correct(work, scale)
        if work is not dst:
            dst[...] = from_float(work, dst.dtype)

    @staticmethod
    def _colour(value) -> settings.ColourSpace:
        space = checked(settings.check_colour_space, value, "colour space")
        if space == settings.COLOUR_AUTO:
            # Auto is the host's or the file's word: the caller decides it, the engine is told.
            raise KwafluxError("colour space 'auto' is decided by the host or the file; name one")
        return space

    def _converted(self, frames, centre, dst, space, scale, denoise, premultiplied, options):
        """process_window_into (process_into for one frame) of frames in `space`: brought into
        the models' encoding, rendered there, and back (engine/colour.py)."""
        t = colours.transforms_for(self)
        conv = [colours.convert_in(t, to_float(f), space, premultiplied) for f in frames]
        # The models see a clipped picture, but its noise was clipped only if the frame was.
        options["keep_levels"] = options.get("keep_levels", True) and (
            blacks.carries_clipped_noise(conv[centre].original)
        )
        inside = [c.inside for c in conv]
        self._check_destination(frames[centre], dst, scale)
        h, w, ch = frames[centre].shape
        out = np.empty((h * scale, w * scale, ch), np.float32)
        # Premultiplied colour was divided out on the way in: the models get it straight.
        inner_premult = premultiplied and conv[centre].alpha is None
        if denoise == settings.DENOISE_AUTO:
            denoise = self.auto_strength(
                inside, denoise_model=options.get("denoise_model")
            ).strength
        if len(inside) == 1:
            self.process_into(
                inside[0], out, scale=scale, denoise=denoise, premultiplied=inner_premult, **options
            )
        else:
            self.process_window_into(
                inside,
                centre,
                out,
                scale=scale,
                denoise=denoise,
                premultiplied=inner_premult,
                **options,
            )
        dst[...] = from_float(colours.convert_out(t, conv[centre], out, space, scale), dst.dtype)

    def _temporal_method(self, value) -> settings.TemporalMethod:
        if value is None:
            return self.temporal_method
        return checked(settings.check_temporal_method, value, "temporal method")

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

    @staticmethod
    def _check_destination(src: np.ndarray, dst: np.ndarray, scale: int) -> None:
        h, w, c = src.shape
        if dst.shape != (h * scale, w * scale, c):
            raise KwafluxError(
                f"destination is {dst.shape}, expected {(h * scale, w * scale, c)} for x{scale}"
            )

    def _tile_size(self, job: FrameJob) -> int:
        if self.tile is not None:
            tile = self.tile
        else:
            # No models (scale 1, denoise 0: a plain transcode) need no room for layers.
            widest = max((_widest_layer(str(s.path)) for s in job.specs), default=0)
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
