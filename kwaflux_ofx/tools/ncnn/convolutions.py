"""ncnn convolution, deconvolution, fully connected and pooling layers as ONNX nodes."""

from __future__ import annotations

import math

import numpy as np

from kwaflux_ofx.tools.ncnn.parser import NcnnLayer


class ConvolutionLayers:
    """The weighted and pooling layers of the graph builder (a mixin: the builder supplies
    node(), const(), inp(), err() and the weight reader)."""

    @staticmethod
    def _xy(layer: NcnnLayer, key: int, default: int | None = None) -> tuple[int, int]:
        """ncnn stores x at `key` and y at `key` + 10, y defaulting to x."""
        x = layer.int(key) if default is None else layer.int(key, default)
        return x, layer.int(key + 10, x)

    @staticmethod
    def _pads(layer: NcnnLayer, key: int) -> tuple[int, int, int, int]:
        """Left, top, right, bottom padding stored at key, key + 10, key + 11, key + 12."""
        pl = layer.int(key, 0)
        pt = layer.int(key + 10, pl)
        return pl, pt, layer.int(key + 11, pl), layer.int(key + 12, pt)

    def _kernel_params(self, layer: NcnnLayer):
        kw, kh = self._xy(layer, 1)
        dw, dh = self._xy(layer, 2, 1)
        sw, sh = self._xy(layer, 3, 1)
        return kw, kh, dw, dh, sw, sh, *self._pads(layer, 4)

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
        kw, kh = self._xy(layer, 1)
        sw, sh = self._xy(layer, 2, 1)
        pl, pt, pr, pb = self._pads(layer, 3)
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
