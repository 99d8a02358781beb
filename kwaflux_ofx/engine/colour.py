"""Frames in any input colour space through the models: into their encoding, around them, back.

The models learned display-referred pictures (sRGB / Rec.709 gamma). A frame in another space is
brought into that encoding by its graph (engine/colour_graph.py, run per pixel on its own
session), rendered, and taken back. Values outside display black and white go around the models:
they see the picture clipped to 0..1 and the excess is resized beside it and added back, so a
highlight at 4.0 stays far above 1 and ACEScg's negatives come back as they went in.
Non-finite samples are set aside and restored where they were.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from kwaflux_ofx.engine import colour_graph
from kwaflux_ofx.settings import ColourSpace


class Transforms:
    """The colour graphs of one engine (engine/colour_graph.py), one onnxruntime session each,
    made on first use (sessions are thread-safe to run)."""

    def __init__(self, threads: int | None):
        self.threads = threads
        self._sessions: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _session(self, key: tuple, make):
        with self._lock:
            sess = self._sessions.get(key)
            if sess is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                if self.threads:
                    opts.intra_op_num_threads = int(self.threads)
                sess = ort.InferenceSession(make(), opts, providers=["CPUExecutionProvider"])
                self._sessions[key] = sess
        return sess

    def apply(self, rgb: np.ndarray, space: ColourSpace, inverse: bool) -> np.ndarray:
        """to_display (from_display with `inverse`) of H×W×3 float32, through the graph."""
        sess = self._session(("one", space, inverse), lambda: colour_graph.graph(space, inverse))
        return sess.run(["out"], {"rgb": _c(rgb)})[0]

    def split(self, rgb: np.ndarray, space: ColourSpace) -> tuple[np.ndarray, np.ndarray]:
        """(inside, excess): the display encoding clipped to 0..1, and what lies outside."""
        sess = self._session(("in", space), lambda: colour_graph.graph_in(space))
        inside, excess = sess.run(["inside", "excess"], {"rgb": _c(rgb)})
        return inside, excess

    def join(
        self, model: np.ndarray, excess: np.ndarray, space: ColourSpace, scale: int
    ) -> np.ndarray:
        """The models' output with the excess resized and added, back in `space`."""
        sess = self._session(("out", space, scale), lambda: colour_graph.graph_out(space, scale))
        return sess.run(["out"], {"model": _c(model), "excess": _c(excess)})[0]


def _c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


_transforms: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_transforms_lock = threading.Lock()


def transforms_for(engine) -> Transforms:
    with _transforms_lock:
        t = _transforms.get(engine)
        if t is None:
            t = _transforms[engine] = Transforms(engine.sessions.threads)
        return t


@dataclass(frozen=True)
class Converted:
    """A frame in the models' encoding: `inside` (0..1, what the models see; alpha as it came,
    colour straight), `excess` (what lies outside 0..1, passed around the models; None where
    nothing does) and `bad` (the non-finite samples, restored as they were; None: none)."""

    inside: np.ndarray
    excess: np.ndarray | None
    bad: np.ndarray | None
    original: np.ndarray  # the float frame as it came, for the non-finite samples
    alpha: np.ndarray | None  # premultiplying alpha, where the colour was divided by it


def convert_in(
    transforms: Transforms, frame: np.ndarray, space: ColourSpace, premultiplied: bool
) -> Converted:
    """Bring a float32 H×W×C frame (C = 3 or 4) from `space` into the models' encoding."""
    rgb = frame[..., :3]
    alpha = None
    if frame.shape[-1] == 4 and premultiplied:
        # The curves act on colour, not on colour times coverage: divide it out first.
        alpha = frame[..., 3:4]
        with np.errstate(all="ignore"):
            rgb = np.where(alpha > 0, rgb / np.where(alpha > 0, alpha, 1), 0).astype(np.float32)
    bad_mask = ~np.isfinite(rgb)
    bad = bad_mask if bad_mask.any() else None
    if bad is not None:
        rgb = np.where(bad, 0.0, rgb).astype(np.float32)
    inside, excess = transforms.split(rgb, space)
    if frame.shape[-1] == 4:
        inside = np.concatenate([inside, frame[..., 3:4]], axis=-1)
    return Converted(inside, excess if excess.any() else None, bad, frame, alpha)


def convert_out(
    transforms: Transforms, conv: Converted, out: np.ndarray, space: ColourSpace, scale: int
) -> np.ndarray:
    """The models' float32 output `out` (H*scale × W*scale × C, colour straight) back into
    `space`, with the excess resized and added and the non-finite samples put back."""
    if conv.excess is None:
        rgb = transforms.apply(out[..., :3], space, inverse=True)
    else:
        rgb = transforms.join(out[..., :3], conv.excess, space, scale)
    if out.shape[-1] == 4:
        a = out[..., 3:4]
        if conv.alpha is not None:
            rgb = rgb * a
        rgb = np.concatenate([rgb, a], axis=-1)
    if conv.bad is not None:
        # Nearest neighbour: a NaN covers the pixels it became, and nothing else.
        bad = conv.bad.repeat(scale, 0).repeat(scale, 1)
        orig = conv.original[..., :3].repeat(scale, 0).repeat(scale, 1)
        rgb[..., :3] = np.where(bad, orig, rgb[..., :3])
    return rgb
