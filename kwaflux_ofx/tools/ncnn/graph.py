"""Turn ncnn layers into ONNX nodes over NCHW tensors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import ModelError
from kwaflux_ofx.tools.ncnn.convolutions import ConvolutionLayers
from kwaflux_ofx.tools.ncnn.parser import NcnnLayer
from kwaflux_ofx.tools.ncnn.weights import WeightReader

OPSET = 17


# activation_type values of Convolution/Deconvolution/InnerProduct.
ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID, ACT_MISH, ACT_HARDSWISH = range(7)


@dataclasses.dataclass
class _Blob:
    name: str  # ONNX tensor name
    vector: bool = False  # an ncnn 1-D blob (after global pooling), held as (N, C, 1, 1)
    radius: float = 0.0  # receptive radius in input pixels
    step: float = 1.0  # input pixels per pixel of this blob


class _GraphBuilder(ConvolutionLayers):
    """Turns ncnn layers into ONNX nodes over NCHW tensors."""

    def __init__(self, param_path: Path, reader: WeightReader):
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.param_path = param_path
        self.reader = reader
        self.nodes: list = []
        self.inits: list = []
        self.blobs: dict[str, _Blob] = {}
        self.used: set[str] = set()
        self.global_context = False
        # Multiply-accumulates per input pixel (borders ignored): the model's compute cost.
        self.macs_per_pixel = 0.0
        self._n = 0

    # -- small helpers -------------------------------------------------------------------
    def uid(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value, stem: str, dtype=None) -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.uid(stem)
        self.inits.append(self.numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        out = self.uid(stem)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def err(self, layer: NcnnLayer, msg: str) -> ModelError:
        return ModelError(f"line {layer.line}: {layer.type} {layer.name}: {msg}", self.param_path)

    def inp(self, layer: NcnnLayer, i: int = 0) -> _Blob:
        try:
            blob = self.blobs[layer.inputs[i]]
        except (IndexError, KeyError):
            raise self.err(layer, "input blob is not produced by any earlier layer") from None
        self.used.add(layer.inputs[i])
        return blob

    def set_out(self, layer: NcnnLayer, tensor: str, like: _Blob, **changes) -> None:
        self.blobs[layer.outputs[0]] = dataclasses.replace(like, name=tensor, **changes)

    def set_merged(self, layer: NcnnLayer, tensor: str, blobs: list[_Blob]) -> None:
        base, changes = self._merge(blobs)
        self.set_out(layer, tensor, base, **changes)

    def activation(self, x: str, act: int, params: list, layer: NcnnLayer) -> str:
        if act == ACT_NONE:
            return x
        if act == ACT_RELU:
            return self.node("Relu", [x], "relu")
        if act == ACT_LEAKY:
            return self.node("LeakyRelu", [x], "lrelu", alpha=float(params[0]) if params else 0.0)
        if act == ACT_CLIP:
            lo = self.const(np.float32(params[0]), "clip_min")
            hi = self.const(np.float32(params[1]), "clip_max")
            return self.node("Clip", [x, lo, hi], "clip")
        if act == ACT_SIGMOID:
            return self.node("Sigmoid", [x], "sigmoid")
        if act == ACT_MISH:
            sp = self.node("Softplus", [x], "softplus")
            return self.node("Mul", [x, self.node("Tanh", [sp], "tanh")], "mish")
        if act == ACT_HARDSWISH:
            alpha = float(params[0]) if params else 0.2
            beta = float(params[1]) if len(params) > 1 else 0.5
            hs = self.node("HardSigmoid", [x], "hsig", alpha=alpha, beta=beta)
            return self.node("Mul", [x, hs], "hswish")
        raise self.err(layer, f"activation_type {act} is not supported")

    # -- layers --------------------------------------------------------------------------
    def add(self, layer: NcnnLayer) -> None:
        handler = getattr(self, "layer_" + layer.type, None)
        if handler is None:
            raise self.err(layer, "layer type is not supported by the converter")
        handler(layer)

    def layer_Input(self, layer: NcnnLayer) -> None:  # noqa: N802 (ncnn layer names)
        self.blobs[layer.outputs[0]] = _Blob("input")

    def layer_PReLU(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        n = max(layer.int(0, 0), 1)
        slope = self.reader.raw(n, f"{layer.name} slopes")
        slope = slope.reshape(n, 1, 1) if n > 1 else slope.reshape(1)
        y = self.node("PRelu", [x.name, self.const(slope, f"{layer.name}_slope")], "prelu")
        self.set_out(layer, y, x)

    def layer_ReLU(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        slope = layer.float(0, 0.0)
        y = (
            self.node("Relu", [x.name], "relu")
            if slope == 0.0
            else self.node("LeakyRelu", [x.name], "lrelu", alpha=slope)
        )
        self.set_out(layer, y, x)

    def layer_Sigmoid(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        self.set_out(layer, self.node("Sigmoid", [x.name], "sigmoid"), x)

    def layer_TanH(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        self.set_out(layer, self.node("Tanh", [x.name], "tanh"), x)

    def layer_Clip(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        lo = self.const(np.float32(layer.float(0, -3.4028235e38)), "clip_min")
        hi = self.const(np.float32(layer.float(1, 3.4028235e38)), "clip_max")
        self.set_out(layer, self.node("Clip", [x.name, lo, hi], "clip"), x)

    def layer_Dropout(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        scale = layer.float(0, 1.0)
        if scale == 1.0:
            self.blobs[layer.outputs[0]] = x
        else:
            y = self.node("Mul", [x.name, self.const(np.float32(scale), "scale")], "dropout")
            self.set_out(layer, y, x)

    def layer_Noop(self, layer: NcnnLayer) -> None:  # noqa: N802
        self.blobs[layer.outputs[0]] = self.inp(layer)

    def layer_Split(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        for out in layer.outputs:
            self.blobs[out] = x

    def layer_PixelShuffle(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        r = layer.int(0, 1)
        # mode 0: channel = outc*r*r + sh*r + sw (PyTorch's order, ONNX CRD);
        # mode 1: channel = (sh*r + sw)*outc + outc index (ONNX DCR).
        mode = "CRD" if layer.int(1, 0) == 0 else "DCR"
        y = self.node("DepthToSpace", [x.name], "d2s", blocksize=r, mode=mode)
        self.set_out(layer, y, x, step=x.step / r)

    def _spatial_shape(self, x: str) -> str:
        shape = self.node("Shape", [x], "shape")
        return self.node(
            "Slice",
            [shape, self.const([2], "s", np.int64), self.const([4], "e", np.int64)],
            "hw",
        )

    def layer_Interp(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        if len(layer.inputs) > 1 or layer.int(5, 0):
            raise self.err(layer, "dynamic target size is not supported")
        rtype = layer.int(0, 0)
        align = layer.int(6, 0)
        out_h, out_w = layer.int(3, 0), layer.int(4, 0)
        hs, ws = layer.float(1, 1.0), layer.float(2, 1.0)
        shape = self.node("Shape", [x.name], "shape")
        nc = self.node(
            "Slice", [shape, self.const([0], "s", np.int64), self.const([2], "e", np.int64)], "nc"
        )
        if out_h > 0 and out_w > 0:
            hw = self.const(np.array([out_h, out_w], np.int64), "size")
        else:
            # ncnn sizes the output as floor(size * scale) and then samples with the
            # size ratio, which ONNX Resize does when given sizes rather than scales.
            hw_in = self.node("Cast", [self._spatial_shape(x.name)], "hwf", to=1)
            scaled = self.node(
                "Mul", [hw_in, self.const(np.array([hs, ws], np.float32), "sc")], "hws"
            )
            hw = self.node("Cast", [self.node("Floor", [scaled], "floor")], "hwi", to=7)
        sizes = self.node("Concat", [nc, hw], "sizes", axis=0)
        if rtype == 1:
            attrs = dict(
                mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
            )
            reach = 0.5
        elif rtype == 2:
            attrs = dict(
                mode="linear",
                coordinate_transformation_mode="align_corners" if align else "half_pixel",
            )
            reach = 1.0
        elif rtype == 3:
            attrs = dict(
                mode="cubic",
                cubic_coeff_a=-0.75,
                coordinate_transformation_mode="align_corners" if align else "half_pixel",
            )
            reach = 2.0
        else:
            raise self.err(layer, f"resize_type {rtype} is not supported")
        y = self.node("Resize", [x.name, "", "", sizes], "resize", **attrs)
        scale = max(hs, ws) if not (out_h and out_w) else 1.0
        self.set_out(layer, y, x, radius=x.radius + reach * x.step, step=x.step / max(scale, 1e-6))

    def _binary(self, a: str, b: str, op: int, layer: NcnnLayer) -> str:
        ops = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div", 4: "Max", 5: "Min", 6: "Pow"}
        if op in ops:
            return self.node(ops[op], [a, b], ops[op].lower())
        if op == 7:  # RSUB: b - a
            return self.node("Sub", [b, a], "rsub")
        if op == 8:  # RDIV: b / a
            return self.node("Div", [b, a], "rdiv")
        raise self.err(layer, f"BinaryOp op_type {op} is not supported")

    def layer_BinaryOp(self, layer: NcnnLayer) -> None:  # noqa: N802
        op = layer.int(0, 0)
        a = self.inp(layer)
        if layer.int(1, 0):
            b_name = self.const(np.float32(layer.float(2, 0.0)), "scalar")
            self.set_out(layer, self._binary(a.name, b_name, op, layer), a)
            return
        b = self.inp(layer, 1)
        # Vectors are held as (N, C, 1, 1), so numpy-style broadcasting matches ncnn's
        # per-channel rule for a 1-D blob against a 3-D one.
        y = self._binary(a.name, b.name, op, layer)
        self.set_merged(layer, y, [a, b])

    def _merge(self, blobs: list[_Blob]) -> tuple[_Blob, dict]:
        spatial = [b for b in blobs if not b.vector] or blobs
        base = spatial[0]
        return base, dict(
            vector=all(b.vector for b in blobs),
            radius=max(b.radius for b in blobs),
            step=min(b.step for b in spatial),
        )

    def layer_Eltwise(self, layer: NcnnLayer) -> None:  # noqa: N802
        xs = [self.inp(layer, i) for i in range(len(layer.inputs))]
        op = layer.int(0, 1)
        coeffs = [float(c) for c in layer.array(1)]
        names = [x.name for x in xs]
        if op == 1 and coeffs and any(c != 1.0 for c in coeffs):
            if len(coeffs) != len(names):
                raise self.err(layer, "coeffs count does not match the inputs")
            names = [
                self.node("Mul", [n, self.const(np.float32(c), "coeff")], "scaled")
                for n, c in zip(names, coeffs, strict=True)
            ]
        onnx_op = {0: "Mul", 1: "Sum", 2: "Max"}.get(op)
        if onnx_op is None:
            raise self.err(layer, f"Eltwise op_type {op} is not supported")
        y = self.node(onnx_op, names, "eltwise")
        self.set_merged(layer, y, xs)

    def layer_Scale(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        size = layer.int(0, 0)
        if size == -233:
            s = self.inp(layer, 1)
            self.set_merged(layer, self.node("Mul", [x.name, s.name], "scale"), [x, s])
            return
        scale = self.reader.raw(size, f"{layer.name} scale").reshape(size, 1, 1)
        y = self.node("Mul", [x.name, self.const(scale, f"{layer.name}_scale")], "scale")
        if layer.int(1, 0):
            bias = self.reader.raw(size, f"{layer.name} bias").reshape(size, 1, 1)
            y = self.node("Add", [y, self.const(bias, f"{layer.name}_bias")], "bias")
        self.set_out(layer, y, x)

    def layer_BatchNorm(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        n = layer.int(0)
        eps = layer.float(1, 0.0)
        slope, mean, var, bias = (
            self.reader.raw(n, f"{layer.name} {w}") for w in ("slope", "mean", "var", "bias")
        )
        a = slope / np.sqrt(var + eps)
        b = bias - mean * a
        y = self.node("Mul", [x.name, self.const(a.reshape(n, 1, 1), "bn_a")], "bn")
        y = self.node("Add", [y, self.const(b.reshape(n, 1, 1).astype(np.float32), "bn_b")], "bn")
        self.set_out(layer, y, x)

    def layer_Concat(self, layer: NcnnLayer) -> None:  # noqa: N802
        xs = [self.inp(layer, i) for i in range(len(layer.inputs))]
        axis = layer.int(0, 0)
        dims = 1 if xs[0].vector else 3
        if axis < 0:
            axis += dims
        if not 0 <= axis < dims:
            raise self.err(layer, f"axis {layer.int(0, 0)} out of range")
        y = self.node("Concat", [x.name for x in xs], "concat", axis=axis + 1)
        self.set_merged(layer, y, xs)

    def layer_Padding(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        top, bottom, left, right = (layer.int(k, 0) for k in range(4))
        ptype = layer.int(4, 0)
        if len(layer.inputs) > 1 or layer.int(6, 0) or layer.int(7, 0) or layer.int(8, 0):
            raise self.err(layer, "only spatial padding is supported")
        mode = {0: "constant", 1: "edge", 2: "reflect"}.get(ptype)
        if mode is None:
            raise self.err(layer, f"padding type {ptype} is not supported")
        pads = self.const(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), "pads")
        inputs = [x.name, pads]
        if mode == "constant":
            inputs.append(self.const(np.float32(layer.float(5, 0.0)), "padval"))
        self.set_out(layer, self.node("Pad", inputs, "pad", mode=mode), x)

    def layer_Crop(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        if x.vector:
            raise self.err(layer, "crop of a 1-D blob is not supported")
        if len(layer.inputs) == 2:
            ref = self.inp(layer, 1)
            woff, hoff = layer.int(0, 0), layer.int(1, 0)
            # Crop to the reference blob's height and width, starting at the offsets.
            starts = self.const(np.array([hoff, woff], np.int64), "starts")
            ends = self.node("Add", [self._spatial_shape(ref.name), starts], "ends")
            axes = self.const(np.array([2, 3], np.int64), "axes")
            y = self.node("Slice", [x.name, starts, ends, axes], "crop")
            self.set_out(layer, y, x, radius=max(x.radius, ref.radius))
            return
        starts, ends, axes = layer.array(9), layer.array(10), layer.array(11)
        if not starts:
            raise self.err(layer, "only the starts/ends/axes form of Crop is supported")
        if not axes:
            axes = list(range(len(starts)))
        if not (len(starts) == len(ends) == len(axes)):
            raise self.err(layer, "starts, ends and axes differ in length")
        # ncnn counts axes of the 3-D blob (c, h, w); ONNX has the batch axis in front.
        onnx_axes = [(a + 3 if a < 0 else a) + 1 for a in axes]
        big = np.iinfo(np.int64).max
        ends = [big if e == -233 else e for e in ends]
        y = self.node(
            "Slice",
            [
                x.name,
                self.const(np.array(starts, np.int64), "starts"),
                self.const(np.array(ends, np.int64), "ends"),
                self.const(np.array(onnx_axes, np.int64), "axes"),
            ],
            "crop",
        )
        self.set_out(layer, y, x)
