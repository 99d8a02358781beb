"""One frame's work on the wrapped path: host pixels through the wrapped graph, tile by tile.

The graph (wrap.py) converts, transposes, runs the model and converts back, so Python only
places tiles: an untiled frame whose destination is C-contiguous is written by onnxruntime
straight into it; tiles go through one reused staging buffer and are copied into place once.
"""

from __future__ import annotations

import numpy as np

from kwaflux_ofx.engine.job import FrameJob
from kwaflux_ofx.engine.sessions import GraphRunner
from kwaflux_ofx.engine.tiling import Tile, TilePlan
from kwaflux_ofx.engine.wrap import Wrap, peak


def is_opaque(frame: np.ndarray) -> bool:
    """Every alpha value is full scale: the colour needs no (un)premultiplying and the alpha no
    resizing, so the graph can carry RGBA. Read once per frame."""
    full = peak(frame.dtype.name) or 1.0
    return bool((frame[..., 3] == frame.dtype.type(full)).all())


class GraphJob(FrameJob):
    """A frame whose models all run wrapped; FrameJob's numpy path stays on hand for the tiles
    whose output is not finite (NaN/inf pixels in, or a broken model)."""

    @classmethod
    def create(cls, engine, src, dst, scale, denoise, dn, sr, premultiplied) -> GraphJob | None:
        """The job, or None when the numpy path must do it: translucent alpha, or a model that
        cannot be wrapped (logged once by the session cache)."""
        channels = src.shape[2]
        if channels == 4 and not is_opaque(src):
            return None
        specs = [s for s in (dn, sr) if s is not None]
        host_in, host_out = (src.dtype.name, channels), (dst.dtype.name, channels)
        # Between two models the frame stays float32 RGB, unclipped, as on the numpy path.
        ends = [host_in, ("float32", 3), host_out] if len(specs) == 2 else [host_in, host_out]
        runners = []
        for spec, (a, b) in zip(specs, zip(ends, ends[1:], strict=False), strict=True):
            runner = engine.sessions.graph_runner(spec, Wrap(a[0], a[1], b[0], b[1]))
            if runner is None:
                return None
            runners.append(runner)
        job = cls(engine, src, dst, scale, denoise, dn, sr, premultiplied)
        job.runners: list[GraphRunner] = runners
        return job

    def run(self, plan: TilePlan, on_tile) -> None:
        total = len(plan.tiles)
        self._buffers: dict[str, np.ndarray] = {}
        # Straight into dst when it is one contiguous block and not the source itself
        # (onnxruntime would overwrite pixels it has still to read).
        direct = (
            total == 1
            and self.dst.flags.c_contiguous
            and not np.may_share_memory(self.src, self.dst)
        )
        for i, tile in enumerate(plan.tiles):
            self._graph_tile(plan, tile, direct)
            if on_tile is not None:
                on_tile(i + 1, total)

    def _graph_tile(self, plan: TilePlan, tile: Tile, direct: bool) -> None:
        ry0, ry1, rx0, rx1 = tile.read
        h, w, s = ry1 - ry0, rx1 - rx0, self.scale
        pixels = self.src[ry0:ry1, rx0:rx1]
        if not pixels.flags.c_contiguous:
            pixels = self._staged("in", pixels.shape, pixels.dtype, plan)
            np.copyto(pixels, self.src[ry0:ry1, rx0:rx1])
        out = self.dst if direct else self._staged("out", (h * s, w * s), self.dst.dtype, plan)
        for k, runner in enumerate(self.runners):
            last = k == len(self.runners) - 1
            into = out if last else self._staged("mid", (h, w, 3), np.dtype(np.float32), plan)
            strength = self.denoise if runner.spec.kind == "denoise" else None
            if runner.spec.noise_input:
                strength = (strength or 0.0) * runner.spec.max_noise
            if not runner.run_into(pixels, into, strength):
                self._tile(plan, tile)  # the numpy path cleans NaN/inf or names the model
                return
            pixels = into
        if not direct:
            self._write(plan, tile, out)

    def _staged(self, name: str, shape: tuple, dtype: np.dtype, plan: TilePlan) -> np.ndarray:
        """A C-contiguous view of one buffer per role, sized once for the plan's largest tile
        and reused by every tile of the frame."""
        if len(shape) == 2:
            shape = (*shape, self.channels)
        need = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None:
            rows = max(t.read[1] - t.read[0] for t in plan.tiles)
            cols = max(t.read[3] - t.read[2] for t in plan.tiles)
            s = self.scale if name == "out" else 1
            size = max(need, rows * s * cols * s * shape[2])
            buf = self._buffers[name] = np.empty(size, dtype)
        return buf[:need].reshape(shape)
