"""Convert an ncnn model to an ONNX model the engine runs: build, probe its geometry, wrap."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import ModelError, first_line
from kwaflux_ofx.tools.ncnn.graph import OPSET, _GraphBuilder
from kwaflux_ofx.tools.ncnn.parser import parse_param
from kwaflux_ofx.tools.ncnn.weights import WeightReader

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Geometry:
    """How the raw ncnn graph maps input size to output size (found by probing)."""

    scale: int
    pad: int  # edge padding per side, in input pixels, that the model consumes
    multiple: int  # the padded input size must be congruent to `residue` modulo this
    residue: int
    out_offset: int  # output pixels to drop at the top/left after padding


@dataclasses.dataclass
class ImportResult:
    path: Path
    geometry: Geometry
    receptive_field: int
    global_context: bool
    metadata: dict[str, str]


def _build_raw(param: Path, bin_path: Path):
    """The ncnn graph as ONNX, no padding or cropping added. Returns (builder, output blob)."""
    layers = parse_param(param)
    reader = WeightReader(bin_path)
    builder = _GraphBuilder(param, reader)
    inputs = [ly for ly in layers if ly.type == "Input"]
    if len(inputs) != 1:
        raise ModelError(f"expected one Input layer, found {len(inputs)}", param)
    for layer in layers:
        builder.add(layer)
    consumed = {b for ly in layers for b in ly.inputs}
    # Unused Split branches also end nowhere; the image is what a real layer produces last.
    outputs = [
        b
        for ly in layers
        if ly.type not in ("Split", "Input")
        for b in ly.outputs
        if b not in consumed
    ]
    if not outputs:
        raise ModelError("no output blob: every blob feeds another layer", param)
    if len(outputs) > 1:
        log.warning(
            "%s: several unused blobs %s; taking the last, %s", param, outputs[:5], outputs[-1]
        )
        outputs = outputs[-1:]
    if reader.offset != len(reader.data):
        log.warning(
            "%s: %d bytes of the weight file were not used",
            bin_path,
            len(reader.data) - reader.offset,
        )
    return builder, builder.blobs[outputs[0]]


def _model(builder: _GraphBuilder, nodes: list, inits: list, out: str, channels: int):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, "H", "W"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", channels, "OH", "OW"])
    nodes = list(nodes) + [helper.make_node("Identity", [out], ["output"], name="output")]
    graph = helper.make_graph(nodes, "ncnn_import", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.producer_name = "kwaflux import-ncnn"
    return model


def _session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    # Probe runs fail on purpose for sizes the graph rejects: keep those out of the log.
    opts.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


PROBE_SIZES = range(72, 80)


def _probe_geometry(model, channels: int, path: Path) -> Geometry:
    """Run the raw graph on square inputs of several sizes; fit out = scale * n - crop.

    Graphs with stride-2 stages accept any size but are only aligned on some (e.g. even ones):
    the smallest period with a consistent linear fit wins, and within it the residue that
    loses the fewest pixels.
    """
    sess = _session(model)
    rng = np.random.default_rng(0)
    results: dict[int, int] = {}
    for n in PROBE_SIZES:
        if len(results) == 4 and sorted(results) == list(PROBE_SIZES[:4]):
            # Four consecutive sizes on one line: no size rule, skip the costly rest.
            ns = sorted(results)
            slope = results[ns[1]] - results[ns[0]]
            if slope >= 1 and all(results[k] - results[k - 1] == slope for k in ns[1:]):
                break
        x = rng.uniform(0, 1, (1, channels, n, n)).astype(np.float32)
        try:
            y = sess.run(None, {"input": x})[0]
        except Exception:  # onnxruntime raises on sizes the graph cannot add or crop
            continue
        if y.ndim == 4 and y.shape[2] == y.shape[3] and y.shape[1] == channels:
            results[n] = y.shape[2]
    if not results:
        raise ModelError(
            f"converted graph runs on no input size in {PROBE_SIZES.start}-"
            f"{PROBE_SIZES.stop - 1} px or does not return a square RGB image",
            path,
        )
    for m in (1, 2, 4):
        fits = []
        for r in range(m):
            pts = {n: o for n, o in results.items() if n % m == r}
            probed = [n for n in PROBE_SIZES if n <= max(results)]
            if len(pts) < 2 or any(n not in results for n in probed if n % m == r):
                continue
            ns = sorted(pts)
            slope = (pts[ns[-1]] - pts[ns[0]]) / (ns[-1] - ns[0])
            if slope < 1 or slope != int(slope):
                continue
            crops = {int(slope) * n - o for n, o in pts.items()}
            if len(crops) == 1 and min(crops) >= 0:
                fits.append((min(crops), r, int(slope)))
        if fits:
            crop, residue, scale = min(fits)
            break
    else:
        raise ModelError(f"output size is not scale * input - constant ({results})", path)
    pad = math.ceil(crop / (2 * scale))
    out_offset = scale * pad - crop // 2
    # The wrapper pads to 2*pad + size; keep that congruent to a probed size that fits.
    return Geometry(scale, pad, m, residue, out_offset)


def _wrap(builder: _GraphBuilder, core_out: str, geo: Geometry) -> tuple[list, list, str]:
    """Nodes that edge-pad the input for the ncnn graph and crop the output to scale * (H, W)."""
    from onnx import helper, numpy_helper

    pre: list = []
    inits: list = []
    counter = [0]

    def const(v, dtype=np.int64) -> str:
        counter[0] += 1
        name = f"wrap_c{counter[0]}"
        inits.append(numpy_helper.from_array(np.asarray(v, dtype=dtype), name))
        return name

    def node(op, ins, **attrs) -> str:
        counter[0] += 1
        out = f"wrap_{op.lower()}{counter[0]}"
        pre.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    shape = node("Shape", ["input"])
    hw = node("Slice", [shape, const([2]), const([4])])
    p, m = geo.pad, geo.multiple
    # Extra pixels at the bottom/right so the padded size lands on a size the graph accepts.
    extra = node(
        "Mod",
        [
            node(
                "Sub", [const([geo.residue, geo.residue]), node("Add", [hw, const([2 * p, 2 * p])])]
            ),
            const([m, m]),
        ],
    )
    end_pads = node("Add", [extra, const([p, p])])
    pads = node("Concat", [const([0, 0, p, p]), const([0, 0]), end_pads], axis=0)
    padded = node("Pad", ["input", pads], mode="edge")
    # The ncnn graph used to read "input"; point it at the padded tensor instead.
    for n in builder.nodes:
        for i, name in enumerate(n.input):
            if name == "input":
                n.input[i] = padded
    out_hw = node("Mul", [hw, const([geo.scale, geo.scale])])
    post: list = []
    starts = const([geo.out_offset, geo.out_offset])
    ends = node("Add", [out_hw, starts])
    # Slice is appended after the core graph.
    counter[0] += 1
    cropped = f"wrap_crop{counter[0]}"
    post.append(
        helper.make_node("Slice", [core_out, starts, ends, const([2, 3])], [cropped], name=cropped)
    )
    return pre + builder.nodes + post, inits + builder.inits, cropped


def import_ncnn(
    param: str | os.PathLike,
    bin_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    license: str = "",
    description: str = "",
    bake_padding: bool = True,
    add_input: str | None = None,
) -> ImportResult:
    """Convert an ncnn model to an ONNX file with kwaflux metadata; returns what it found.

    add_input="nearest" adds the input, upscaled by nearest neighbour, to the output: the step
    the ncnn wrappers of Real-CUGAN x4 do outside the graph.
    """
    import onnx

    param, bin_path, out = Path(param), Path(bin_path), Path(out)
    for p in (param, bin_path):
        if not p.is_file():
            raise ModelError("file not found", p)
    builder, core = _build_raw(param, bin_path)
    channels = 3
    raw_model = _model(builder, builder.nodes, builder.inits, core.name, channels)
    try:
        onnx.checker.check_model(raw_model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"converted graph is not valid ONNX: {first_line(exc)}", param) from None
    geo = _probe_geometry(raw_model, channels, param)
    needs_wrap = bool(geo.pad or geo.multiple > 1 or geo.out_offset)
    if bake_padding and needs_wrap:
        nodes, inits, final = _wrap(builder, core.name, geo)
        pad_meta = 0
    else:
        nodes, inits, final = builder.nodes, builder.inits, core.name
        pad_meta = geo.pad
    if add_input is not None:
        if add_input != "nearest":
            raise ModelError(f"add_input must be 'nearest', not {add_input!r}", param)
        if needs_wrap and not bake_padding:
            raise ModelError("adding the input needs the padding built in", param)
        nodes, inits, final = _add_upscaled_input(nodes, inits, final, geo.scale)
    model = _model(builder, nodes, inits, final, channels)
    rf = math.ceil(core.radius)
    meta = {
        "kind": "sr" if geo.scale > 1 else "denoise",
        "scale": str(geo.scale),
        "channels": str(channels),
        "range": "0-1",
        "noise_input": "",
        "receptive_field": str(rf),
        "pad": str(pad_meta),
        "global_context": "1" if builder.global_context else "0",
        "name": name or param.stem,
        "description": description
        or f"Imported from the ncnn model {param.name} by kwaflux import-ncnn",
        "license": license or "see the package the ncnn model came from",
        "training_data": "unknown (third-party model)",
        "source": f"ncnn:{param.name}",
        "ncnn_prepad": str(geo.pad),
        "ncnn_size_multiple": str(geo.multiple),
        "macs_per_pixel": str(round(builder.macs_per_pixel)),
    }
    onnx.helper.set_model_props(model, {f"kwaflux.{k}": v for k, v in meta.items()})
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot write ONNX file ({exc.strerror})", out) from None
    log.info("%s -> %s: x%d, pad %d, multiple %d", param, out, geo.scale, geo.pad, geo.multiple)
    return ImportResult(out, geo, int(meta["receptive_field"]), builder.global_context, meta)


def _add_upscaled_input(nodes: list, inits: list, out: str, scale: int) -> tuple[list, list, str]:
    """Output + nearest-neighbour upscale of the input (a residual some wrappers add outside)."""
    from onnx import helper, numpy_helper

    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "residual_scales")
    up = helper.make_node(
        "Resize",
        ["input", "", "residual_scales"],
        ["residual_up"],
        name="residual_up",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    add = helper.make_node("Add", [out, "residual_up"], ["residual_sum"], name="residual_sum")
    return [*nodes, up, add], [*inits, scales], "residual_sum"
