"""Convert ncnn image models (.param + .bin) to ONNX NCHW float32 models the engine runs.

Covers the layers used by the SR/denoise models that ship inside PyPI wheels (waifu2x
photo/anime/CUNet, Real-ESRGAN x4plus and animevideov3, Real-CUGAN): convolutions,
deconvolutions, activations, pixel shuffle, interpolation, element-wise ops, crops and the
squeeze-excitation blocks (global pooling + InnerProduct). Formats follow ncnn's
"param and model file structure" and "operators" documents.

Many ncnn SR models expect the caller to pad the input (waifu2x photo: 7 px of edge padding)
and some need sizes that are a multiple of 2 or 4. The converter finds both by probing the
converted graph and, by default, bakes edge padding and the final crop into the ONNX graph, so
the result maps H x W to exactly scale*H x scale*W like any other model the engine takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import ModelError

log = logging.getLogger(__name__)

PARAM_MAGIC = 7767517
OPSET = 17

# Storage tags that prefix a flagged weight buffer in the .bin file.
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_BF16 = 0x01348B83
TAG_INT8 = 0x000D4B38

# activation_type values of Convolution/Deconvolution/InnerProduct.
ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID, ACT_MISH, ACT_HARDSWISH = range(7)


@dataclasses.dataclass
class NcnnLayer:
    """One line of a .param file."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, object]
    line: int

    def get(self, key: int, default=None):
        return self.params.get(key, default)

    def int(self, key: int, default: int = 0) -> int:
        v = self.params.get(key, default)
        if isinstance(v, list):
            raise ModelError(f"layer {self.name}: param {key} is an array, expected a number")
        return int(v)

    def float(self, key: int, default: float = 0.0) -> float:
        v = self.params.get(key, default)
        if isinstance(v, list):
            raise ModelError(f"layer {self.name}: param {key} is an array, expected a number")
        return float(v)

    def array(self, key: int, default: list | None = None) -> list:
        v = self.params.get(key)
        if v is None:
            return list(default or [])
        return v if isinstance(v, list) else [v]


def _parse_value(text: str):
    # A float is spelled with a decimal point or an exponent; everything else is an int.
    if any(ch in text for ch in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(path: str | os.PathLike) -> list[NcnnLayer]:
    """Parse a text .param file into layers, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read ncnn param file ({type(exc).__name__})", path) from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or lines[0] != str(PARAM_MAGIC):
        raise ModelError(
            f"not an ncnn text .param file (first line must be {PARAM_MAGIC}; "
            "binary .param.bin files are not supported)",
            path,
        )
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ModelError("line 2 must hold '<layer count> <blob count>'", path) from None
    layers: list[NcnnLayer] = []
    for lineno, ln in enumerate(lines[2:], start=3):
        parts = ln.split()
        try:
            ltype, lname, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
            ins = parts[4 : 4 + n_in]
            outs = parts[4 + n_in : 4 + n_in + n_out]
            if len(ins) != n_in or len(outs) != n_out:
                raise ValueError
            params: dict[int, object] = {}
            for kv in parts[4 + n_in + n_out :]:
                k, v = kv.split("=", 1)
                key = int(k)
                if key <= -23300:
                    # Array: -23300-index=count,v1,v2,...
                    items = v.split(",")
                    count = int(items[0])
                    values = [_parse_value(x) for x in items[1 : 1 + count]]
                    if len(values) != count:
                        raise ValueError
                    params[-23300 - key] = values
                elif "," in v:
                    # Modern files may spell an array without the count prefix.
                    params[key] = [_parse_value(x) for x in v.split(",")]
                else:
                    params[key] = _parse_value(v)
        except (IndexError, ValueError):
            raise ModelError(f"line {lineno}: malformed layer line: {ln[:80]!r}", path) from None
        layers.append(NcnnLayer(ltype, lname, ins, outs, params, lineno))
    if len(layers) != layer_count:
        raise ModelError(f"header says {layer_count} layers, file has {len(layers)}", path)
    return layers


class WeightReader:
    """Sequential reader of a .bin file: flagged buffers (fp32/fp16/bf16) and raw float32 ones."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read ncnn weight file ({exc.strerror})", path) from None
        self.offset = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ModelError(
                f"weight file too short: {what} needs {nbytes} bytes at offset {self.offset}, "
                f"file has {len(self.data)} (does the .bin belong to this .param?)",
                self.path,
            )
        chunk = self.data[self.offset : end]
        # Every buffer is padded to 4-byte alignment.
        self.offset = end + (-nbytes) % 4
        return chunk

    def flagged(self, count: int, what: str) -> np.ndarray:
        """A weight buffer that starts with a storage-type tag."""
        tag = int(np.frombuffer(self._take(4, what), dtype="<u4")[0])
        if tag == TAG_FP16:
            return np.frombuffer(self._take(2 * count, what), dtype="<f2").astype(np.float32)
        if tag == TAG_BF16:
            raw = np.frombuffer(self._take(2 * count, what), dtype="<u2").astype(np.uint32)
            return (raw << 16).view(np.float32)
        if tag == TAG_FP32:
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)
        raise ModelError(
            f"{what}: quantized weights (storage tag 0x{tag:08x}) are not supported; "
            "use an fp32 or fp16 model",
            self.path,
        )

    def raw(self, count: int, what: str) -> np.ndarray:
        """A float32 buffer with no tag (biases, slopes, scales)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)


@dataclasses.dataclass
class _Blob:
    name: str  # ONNX tensor name
    vector: bool = False  # an ncnn 1-D blob (after global pooling), held as (N, C, 1, 1)
    radius: float = 0.0  # receptive radius in input pixels
    step: float = 1.0  # input pixels per pixel of this blob


class _GraphBuilder:
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

    def _kernel_params(self, layer: NcnnLayer):
        kw = layer.int(1)
        kh = layer.int(11, kw)
        dw = layer.int(2, 1)
        dh = layer.int(12, dw)
        sw = layer.int(3, 1)
        sh = layer.int(13, sw)
        pl = layer.int(4, 0)
        pt = layer.int(14, pl)
        pr = layer.int(15, pl)
        pb = layer.int(16, pt)
        return kw, kh, dw, dh, sw, sh, pl, pt, pr, pb

    def _conv(self, layer: NcnnLayer, group: int) -> None:
        x = self.inp(layer)
        if x.vector:
            raise self.err(layer, "convolution over a 1-D blob is not supported")
        num_out = layer.int(0)
        kw, kh, dw, dh, sw, sh, pl, pt, pr, pb = self._kernel_params(layer)
        if layer.int(8, 0):
            raise self.err(layer, "int8 quantized convolutions are not supported")
        if layer.int(19, 0):
            raise self.err(layer, "dynamic-weight convolutions are not supported")
        wsize = layer.int(6)
        if num_out <= 0 or kw <= 0 or wsize % (num_out * kw * kh):
            raise self.err(layer, f"weight_data_size {wsize} does not fit {num_out}x{kh}x{kw}")
        num_in = wsize // (num_out * kw * kh) * group
        if group > 1 and (num_in % group or num_out % group):
            raise self.err(layer, f"group {group} does not divide channels {num_in}/{num_out}")
        w = self.reader.flagged(wsize, f"{layer.name} weights")
        # Stored outermost first as [num_output][num_input/group][kh][kw], as ONNX wants it.
        w = w.reshape(num_out, num_in // group, kh, kw)
        inputs = [x.name, self.const(w, f"{layer.name}_w")]
        if layer.int(5, 0):
            inputs.append(
                self.const(self.reader.raw(num_out, f"{layer.name} bias"), f"{layer.name}_b")
            )
        attrs: dict = dict(kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw], group=group)
        pad_value = layer.float(18, 0.0)
        if pl == -233 or pl == -234:
            # 'same' padding: upper puts the odd pixel at the end, lower at the start.
            attrs["auto_pad"] = "SAME_UPPER" if pl == -233 else "SAME_LOWER"
            if pad_value != 0.0:
                raise self.err(layer, "'same' padding with a non-zero pad value is not supported")
        elif min(pl, pt, pr, pb) < 0:
            raise self.err(layer, f"unsupported padding ({pl}, {pt}, {pr}, {pb})")
        elif pad_value != 0.0 and max(pl, pt, pr, pb) > 0:
            pads = self.const(np.array([0, 0, pt, pl, 0, 0, pb, pr], np.int64), "pads")
            val = self.const(np.float32(pad_value), "padval")
            inputs[0] = self.node("Pad", [x.name, pads, val], "pad", mode="constant")
        else:
            attrs["pads"] = [pt, pl, pb, pr]
        y = self.node("Conv", inputs, "conv", **attrs)
        y = self.activation(y, layer.int(9, 0), layer.array(10), layer)
        radius = x.radius + x.step * max(dh * (kh - 1), dw * (kw - 1)) / 2
        self.macs_per_pixel += num_out * (num_in // group) * kh * kw / (x.step**2 * sh * sw)
        self.set_out(layer, y, x, radius=radius, step=x.step * max(sh, sw))

    def layer_Convolution(self, layer: NcnnLayer) -> None:  # noqa: N802
        self._conv(layer, 1)

    def layer_ConvolutionDepthWise(self, layer: NcnnLayer) -> None:  # noqa: N802
        self._conv(layer, layer.int(7, 1))

    def _deconv(self, layer: NcnnLayer, group: int) -> None:
        x = self.inp(layer)
        if x.vector:
            raise self.err(layer, "deconvolution over a 1-D blob is not supported")
        num_out = layer.int(0)
        kw, kh, dw, dh, sw, sh, pl, pt, pr, pb = self._kernel_params(layer)
        if min(pl, pt, pr, pb) < 0:
            raise self.err(layer, "'same' padding on deconvolution is not supported")
        if layer.int(20, 0) or layer.int(21, 0):
            raise self.err(layer, "fixed output_w/output_h on deconvolution is not supported")
        opr = layer.int(18, 0)
        opb = layer.int(19, opr)
        wsize = layer.int(6)
        if num_out <= 0 or kw <= 0 or wsize % (num_out * kw * kh):
            raise self.err(layer, f"weight_data_size {wsize} does not fit {num_out}x{kh}x{kw}")
        num_in = wsize // (num_out * kw * kh) * group
        w = self.reader.flagged(wsize, f"{layer.name} weights")
        # ncnn stores [group][num_output/group][num_input/group][kh][kw]; ONNX ConvTranspose
        # wants [num_input][num_output/group][kh][kw].
        w = w.reshape(group, num_out // group, num_in // group, kh, kw).transpose(0, 2, 1, 3, 4)
        w = np.ascontiguousarray(w.reshape(num_in, num_out // group, kh, kw))
        inputs = [x.name, self.const(w, f"{layer.name}_w")]
        if layer.int(5, 0):
            inputs.append(
                self.const(self.reader.raw(num_out, f"{layer.name} bias"), f"{layer.name}_b")
            )
        y = self.node(
            "ConvTranspose",
            inputs,
            "deconv",
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            dilations=[dh, dw],
            group=group,
            pads=[pt, pl, pb, pr],
            output_padding=[opb, opr],
        )
        y = self.activation(y, layer.int(9, 0), layer.array(10), layer)
        stride = max(sh, sw)
        self.macs_per_pixel += num_in * (num_out // group) * kh * kw / x.step**2
        span = max(dh * (kh - 1), dw * (kw - 1)) / 2
        radius = x.radius + x.step * math.ceil(span / stride)
        self.set_out(layer, y, x, radius=radius, step=x.step / stride)

    def layer_Deconvolution(self, layer: NcnnLayer) -> None:  # noqa: N802
        self._deconv(layer, 1)

    def layer_DeconvolutionDepthWise(self, layer: NcnnLayer) -> None:  # noqa: N802
        self._deconv(layer, layer.int(7, 1))

    def layer_InnerProduct(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        if not x.vector:
            raise self.err(layer, "InnerProduct is only supported after global pooling")
        if layer.int(8, 0):
            raise self.err(layer, "int8 quantized InnerProduct is not supported")
        num_out = layer.int(0)
        wsize = layer.int(2)
        if num_out <= 0 or wsize % num_out:
            raise self.err(layer, f"weight_data_size {wsize} does not fit {num_out} outputs")
        w = self.reader.flagged(wsize, f"{layer.name} weights").reshape(num_out, -1, 1, 1)
        # A (N, C, 1, 1) vector through a 1x1 convolution is the fully connected layer.
        inputs = [x.name, self.const(w, f"{layer.name}_w")]
        if layer.int(1, 0):
            inputs.append(
                self.const(self.reader.raw(num_out, f"{layer.name} bias"), f"{layer.name}_b")
            )
        y = self.node("Conv", inputs, "fc", kernel_shape=[1, 1])
        y = self.activation(y, layer.int(9, 0), layer.array(10), layer)
        self.set_out(layer, y, x)

    def layer_Pooling(self, layer: NcnnLayer) -> None:  # noqa: N802
        x = self.inp(layer)
        ptype = layer.int(0, 0)
        if ptype not in (0, 1):
            raise self.err(layer, f"pooling_type {ptype} is not supported")
        if layer.int(4, 0):
            op = "GlobalMaxPool" if ptype == 0 else "GlobalAveragePool"
            y = self.node(op, [x.name], "gpool")
            # The whole image feeds every output pixel from here on; the receptive field
            # tracked below is that of the convolutional path only.
            self.global_context = True
            self.set_out(layer, y, x, vector=True)
            return
        if layer.int(7, 0):
            raise self.err(layer, "adaptive pooling is not supported")
        kw = layer.int(1)
        kh = layer.int(11, kw)
        sw = layer.int(2, 1)
        sh = layer.int(12, sw)
        pl = layer.int(3, 0)
        pt = layer.int(13, pl)
        pr = layer.int(14, pl)
        pb = layer.int(15, pt)
        pad_mode = layer.int(5, 0)
        attrs: dict = dict(kernel_shape=[kh, kw], strides=[sh, sw])
        if pad_mode == 1:
            attrs["pads"] = [0, 0, 0, 0]
        elif pad_mode in (2, 3):
            attrs["auto_pad"] = "SAME_UPPER" if pad_mode == 2 else "SAME_LOWER"
        else:
            # Caffe-style "full" padding rounds the output size up.
            attrs["pads"] = [pt, pl, pb, pr]
            attrs["ceil_mode"] = 1
        if ptype == 1:
            attrs["count_include_pad"] = layer.int(6, 0)
        y = self.node("MaxPool" if ptype == 0 else "AveragePool", [x.name], "pool", **attrs)
        radius = x.radius + x.step * max(kh - 1, kw - 1) / 2
        self.set_out(layer, y, x, radius=radius, step=x.step * max(sh, sw))

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
        raise ModelError(
            f"converted graph is not valid ONNX: {str(exc).splitlines()[0]}", param
        ) from None
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


# -- CLI ---------------------------------------------------------------------------------------
def _run_cli(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise ModelError("exists already (pass --overwrite to replace it)", out)
    if out.resolve() in (Path(args.param).resolve(), Path(args.bin).resolve()):
        raise ModelError("output would overwrite an input file", out)
    res = import_ncnn(
        args.param,
        args.bin,
        args.output,
        name=args.name,
        license=args.license or "",
        bake_padding=not args.no_bake_padding,
        add_input=args.add_input,
    )
    g = res.geometry
    print(
        f"{res.path}: sr x{g.scale}, edge pad {g.pad} px"
        f"{' (baked in)' if not args.no_bake_padding else ''}, size multiple {g.multiple}, "
        f"receptive field {res.receptive_field} px"
        f"{', global pooling (tiles see only their own context)' if res.global_context else ''}"
    )
    return 0


def add_models_subcommand(models_subparsers) -> None:
    """Add `import-ncnn` under `kwaflux models` (called by the models command's parser)."""
    p = models_subparsers.add_parser(
        "import-ncnn",
        help="convert an ncnn model (.param + .bin) to ONNX for the engine",
        description=(
            "Convert an ncnn SR/denoise model (waifu2x, Real-ESRGAN, Real-CUGAN...) to an ONNX "
            "model with kwaflux metadata. Edge padding and size rounding the model needs are "
            "found by probing and built into the ONNX graph."
        ),
    )
    p.add_argument("param", help="the ncnn .param file (text format)")
    p.add_argument("bin", help="the ncnn .bin weight file")
    p.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    p.add_argument("--name", help="model name stored in the metadata (default: the file stem)")
    p.add_argument("--license", help="licence text stored in the metadata")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument(
        "--no-bake-padding",
        action="store_true",
        help="do not build the input padding into the graph; record it as kwaflux.pad instead",
    )
    p.add_argument(
        "--add-input",
        choices=["nearest"],
        help="add the input, upscaled this way, to the output (Real-CUGAN x4 needs 'nearest')",
    )
    p.set_defaults(func=_run_cli)
