"""Model wrapping: the host's pixel work (cast, range, layout, noise map, clip) built into the graph.

A model on disk takes N×C×H×W float in its own value range. The engine wraps it in memory, once
per (host dtype, channels) pair, so that the session takes the frame's H×W×C pixels as the host
stores them and gives them back the same way. On CUDA all of that then runs on the device; on
the CPU it runs in onnxruntime's threads instead of single-threaded numpy. The file on disk is
never touched; a model that cannot be wrapped keeps the numpy path (`unwrappable` says why).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kwaflux_ofx.engine import shuffle
from kwaflux_ofx.engine.spec import ModelSpec

PREFIX = "kwaflux_wrap/"
PIXELS, STRENGTH = "kwaflux_pixels", "kwaflux_strength"
OUT, CHECK = "kwaflux_out", "kwaflux_check"
MIN_OPSET = 13  # Unsqueeze/Squeeze/ReduceSum take their axes as inputs from opset 13
DTYPES = ("uint8", "uint16", "float16", "float32")


@dataclasses.dataclass(frozen=True)
class Wrap:
    """What one wrapped session takes and gives: host dtype and channel count on each side.

    Four channels mean RGBA with an opaque alpha: the graph drops alpha on the way in and writes
    full scale on the way out (other alphas keep the numpy path, which resizes alpha apart)."""

    in_dtype: str
    in_channels: int
    out_dtype: str
    out_channels: int

    def __post_init__(self):
        if self.in_dtype not in DTYPES or self.out_dtype not in DTYPES:
            raise ValueError(f"wrap dtypes must be among {DTYPES}: {self}")
        if self.in_channels not in (3, 4) or self.out_channels not in (3, 4):
            raise ValueError(f"wrap channels must be 3 or 4: {self}")


def takes_strength(spec: ModelSpec) -> bool:
    """The wrapped graph has a STRENGTH input: the noise level, or a blend for plain denoisers."""
    return bool(spec.noise_input) or spec.kind == "denoise"


def peak(dtype: str) -> float | None:
    """Full scale of an integer pixel type; None for float types (full scale 1.0)."""
    kind = np.dtype(dtype)
    return float(np.iinfo(kind).max) if kind.kind == "u" else None


def unwrappable(model, spec: ModelSpec) -> str | None:
    """Why this model cannot be wrapped (one phrase), or None when it can."""
    from onnx import TensorProto

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        return f"opset {opset} is older than {MIN_OPSET}"
    if spec.pad:
        return "it expects edge padding (kwaflux.pad)"
    image_in = next(i for i in graph.input if i.name == spec.input_name)
    tt = image_in.type.tensor_type
    if tt.elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        return "its input is not float32/float16"
    if not tt.HasField("shape"):
        return "its input has no fixed rank"
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if len(dims) != 4:
        return f"its input has rank {len(dims)}, not 4"
    if dims[3] in (1, 3) and dims[1] != spec.channels:  # a static width of 3 would be absurd
        return "its input looks channels-last (NHWC)"
    if dims[1] not in (None, spec.channels):
        return f"its input has {dims[1]} channels"
    out = next((o for o in graph.output if o.name == spec.output_name), None)
    if out is None or out.type.tensor_type.elem_type != tt.elem_type:
        return "its output type differs from its input type"
    return None


class _Builder:
    """Appends wrapper nodes and constants with names that cannot clash with the model's."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{PREFIX}{hint}_{self._n}"

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        from onnx import helper

        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _tensor_type(dtype: str) -> int:
    from onnx import TensorProto

    return {
        "uint8": TensorProto.UINT8,
        "uint16": TensorProto.UINT16,
        "float16": TensorProto.FLOAT16,
        "float32": TensorProto.FLOAT,
    }[dtype]


def _pixels_in(b: _Builder, spec: ModelSpec, wrap: Wrap) -> str | None:
    """Host H×W×C pixels -> the model's input; returns the float32 3×H×W colour at full scale
    1.0 where a plain denoiser's strength needs it to blend with, else None.

    Same operations in the same order as engine.to_float and FrameJob._run, so the wrapped and
    the numpy path give the same numbers. Non-finite float pixels are not cleaned here: the
    output check sees them and the tile is redone on the numpy path, which cleans them."""
    # The transpose to planes comes first, in the host type: a quarter of the bytes for 8-bit
    # pixels, half for 16-bit ones (each value is converted alike in either order).
    x = b.op("Transpose", PIXELS, perm=[2, 0, 1])
    if wrap.in_channels == 4:  # alpha is opaque: leave it out
        x = b.op("Slice", x, b.const([0], np.int64), b.const([3], np.int64), _axes(b, 0))
    full = peak(wrap.in_dtype)
    if full is not None:
        # One pass: DequantizeLinear is float(x) × scale, which is to_float's cast and multiply.
        scale, zero = b.const(np.float32(1.0 / full)), b.const(0, np.dtype(wrap.in_dtype))
        x = b.op("DequantizeLinear", x, scale, zero, domain=_quant_domain(wrap.in_dtype))
    elif wrap.in_dtype != "float32":
        x = b.op("Cast", x, to=_tensor_type("float32"))
    colour = x
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        x = b.op("Add", b.const(np.float32(lo)), b.op("Mul", x, b.const(np.float32(hi - lo))))
    if spec.input_dtype == "float16":
        x = b.op("Cast", x, to=_tensor_type("float16"))
    # RGB models take 1×3×H×W; grey models 3×1×H×W, each colour a grey image of its own.
    b.op("Unsqueeze", x, _axes(b, 1 if spec.channels == 1 else 0), out=spec.input_name)
    if spec.channels == 1:
        return colour
    return colour if spec.kind == "denoise" and not spec.noise_input else None


def _axes(b: _Builder, axis: int) -> str:
    return b.const([axis], np.int64)


def _noise_map(b: _Builder, spec: ModelSpec) -> None:
    """The denoiser's N×1×H×W noise-level input, filled in the graph from the strength scalar
    (the engine passes sigma = strength × max_noise, as the numpy path fills its map)."""
    shape = b.op("Shape", spec.input_name)
    n = b.op("Slice", shape, b.const([0], np.int64), b.const([1], np.int64))
    hw = b.op("Slice", shape, b.const([2], np.int64), b.const([4], np.int64))
    target = b.op("Concat", n, b.const([1], np.int64), hw, axis=0)
    sigma = b.op("Reshape", STRENGTH, b.const([1, 1, 1, 1], np.int64))
    if spec.input_dtype == "float16":
        sigma = b.op("Cast", sigma, to=_tensor_type("float16"))
    b.op("Expand", sigma, target, out=spec.noise_input)


def _quant_domain(dtype: str) -> str:
    """Standard (De)QuantizeLinear takes 16-bit types only from opset 21; onnxruntime's own
    com.microsoft versions take them at any opset."""
    return "com.microsoft" if dtype == "uint16" else ""


def _to_host_type(b: _Builder, y: str, dtype: str) -> str:
    """float32 at full scale 1.0 -> the host type: integers as engine.from_float makes them,
    rint(clip(y, 0, 1) × peak), in two passes (QuantizeLinear rounds half to even and
    saturates, which is that clip; scale 1 keeps the product bit-identical to numpy's)."""
    full = peak(dtype)
    if full is None:
        return y if dtype == "float32" else b.op("Cast", y, to=_tensor_type(dtype))
    y = b.op("Mul", y, b.const(np.float32(full)))
    zero = b.const(0, np.dtype(dtype))
    return b.op("QuantizeLinear", y, b.const(np.float32(1.0)), zero, domain=_quant_domain(dtype))


def _pad_alpha(b: _Builder, y: str, dtype: str, rank: int, axis: int) -> str:
    """Opaque alpha after the colours on `axis`: full scale of `dtype` (1.0 for floats)."""
    pads = [0] * (2 * rank)
    pads[rank + axis] = 1
    alpha = b.const(peak(dtype) or 1.0, np.dtype(dtype))
    return b.op("Pad", y, b.const(pads, np.int64), alpha, mode="constant")


def _alpha_late(wrap: Wrap) -> bool:
    """onnxruntime's CPU Pad takes no uint16: RGBA uint16 gets its alpha as 1.0 before the
    conversion, which makes it exactly 65535."""
    return wrap.out_channels == 4 and wrap.out_dtype == "uint16"


def _to_unit(b: _Builder, spec: ModelSpec, y: str, check: str | None = None) -> tuple[str, str]:
    """Model output values -> float32 at full scale 1.0, and their sum: finite exactly when
    every value is (the numpy path's NaN/inf test, in one pass)."""
    if spec.input_dtype == "float16":
        y = b.op("Cast", y, to=_tensor_type("float32"))
    total = b.op("ReduceSum", y, keepdims=0, out=check)
    lo, hi = spec.value_range
    if (lo, hi) != (0.0, 1.0):
        y = b.op("Div", b.op("Sub", y, b.const(np.float32(lo))), b.const(np.float32(hi - lo)))
    return y, total


def _pixels_out(b: _Builder, spec: ModelSpec, wrap: Wrap, chw: str | None) -> None:
    """The model's N×C×H'×W' output -> host H'×W'×C pixels in OUT, and CHECK."""
    y, _ = _to_unit(b, spec, spec.output_name, CHECK)
    y = b.op("Squeeze", y, _axes(b, 0 if spec.channels == 3 else 1))
    if chw is not None:
        # A denoiser without a noise input: strength blends it with the source (1: model only).
        mixed = b.op("Add", chw, b.op("Mul", STRENGTH, b.op("Sub", y, chw)))
        y = b.op("Where", b.op("Less", STRENGTH, b.const(np.float32(1.0))), mixed, y)
    late = _alpha_late(wrap)
    y = y if late else _to_host_type(b, y, wrap.out_dtype)
    if wrap.out_channels == 4:
        y = _pad_alpha(b, y, "float32" if late else wrap.out_dtype, 3, 0)
    y = _to_host_type(b, y, wrap.out_dtype) if late else y
    b.op("Transpose", y, perm=[1, 2, 0], out=OUT)


def _bands_out(b: _Builder, spec: ModelSpec, wrap: Wrap, model, tail: shuffle.Tail) -> None:
    """The rebuilt pixel shuffle (shuffle.py): r×(r·C)×H×W converted to the host type, one
    transpose to r×H×W×(r·C) (a band of output rows per sub-row, channels-last; in the host
    type, where it is smaller), then one row-moving transpose into OUT, H×r×(W·r·C)."""
    r, c = tail.block, spec.channels
    y, _ = _to_unit(b, spec, shuffle.planes(b, model, tail, c), CHECK)
    late = _alpha_late(wrap)
    y = y if late else _to_host_type(b, y, wrap.out_dtype)
    y = b.op("Reshape", b.op("Transpose", y, perm=[0, 2, 3, 1]), b.const([0, 0, 0, r, c], np.int64))
    if wrap.out_channels == 4:
        y = _pad_alpha(b, y, "float32" if late else wrap.out_dtype, 5, 4)
    y = _to_host_type(b, y, wrap.out_dtype) if late else y
    y = b.op("Reshape", y, b.const([r, 0, -1], np.int64))
    b.op("Transpose", y, perm=[1, 0, 2], out=OUT)


def out_block(model) -> int:
    """r when the wrapped model gives OUT as H×r×(W·r·C) (a rebuilt pixel shuffle), else 0:
    the caller binds its H·r×W·r×C buffer with that shape, which is the same memory."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value) if dims[1].HasField("dim_value") else 0


def wrap_model(model, spec: ModelSpec, wrap: Wrap, bands: bool = False):
    """A copy of `model` whose graph takes PIXELS (H×W×C, wrap.in_dtype) and STRENGTH (float32
    [1]) and gives OUT (H·s×W·s×C, wrap.out_dtype) and CHECK (float32 scalar).

    bands: rebuild a final pixel shuffle so that OUT comes channels-last without a full-frame
    transpose (shuffle.py; out_block says whether it did). Same pixels; faster on the CPU."""
    import onnx
    from onnx import helper

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    graph = wrapped.graph
    b = _Builder()
    chw = _pixels_in(b, spec, wrap)
    if spec.noise_input:
        _noise_map(b, spec)
    tail = None
    # float16 models are left alone: onnxruntime's CPU provider runs them through casts that it
    # places and drops per graph, so a rebuilt tail could round differently.
    if bands and chw is None and spec.channels == 3 and spec.input_dtype == "float32":
        tail = shuffle.find_tail(wrapped, spec.output_name, spec.channels)
    if tail is None:
        _pixels_out(b, spec, wrap, chw)
    else:
        _bands_out(b, spec, wrap, wrapped, tail)
    if not any(o.domain == "com.microsoft" for o in wrapped.opset_import):
        wrapped.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model_inputs = {spec.input_name, spec.noise_input}
    kept = [i for i in graph.input if i.name not in model_inputs]
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(
            PIXELS, _tensor_type(wrap.in_dtype), ["H", "W", wrap.in_channels]
        )
    )
    if takes_strength(spec):
        graph.input.append(helper.make_tensor_value_info(STRENGTH, _tensor_type("float32"), [1]))
    graph.input.extend(kept)
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(
                OUT,
                _tensor_type(wrap.out_dtype),
                ["OH", "OW", wrap.out_channels] if tail is None else ["H", tail.block, "WRC"],
            ),
            helper.make_tensor_value_info(CHECK, _tensor_type("float32"), []),
        ]
    )
    # The model's own nodes stay first: wrapper nodes feeding its input go before them.
    rebuilt = {n.output[0] for n in tail.nodes} if tail else set()
    model_nodes = [n for n in graph.node if n.output[0] not in rebuilt]
    n_in = next(i for i, n in enumerate(b.nodes) if spec.input_name in n.output)
    n_noise = next(
        (i for i, n in enumerate(b.nodes) if spec.noise_input and spec.noise_input in n.output),
        n_in,
    )
    split = max(n_in, n_noise) + 1
    del graph.node[:]
    graph.node.extend(b.nodes[:split] + model_nodes + b.nodes[split:])
    graph.initializer.extend(b.inits)
    if tail is not None:
        shuffle.drop_unused_initializers(graph)
    return wrapped
