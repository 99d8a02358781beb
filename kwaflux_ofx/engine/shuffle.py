"""A model's final pixel shuffle, rebuilt so the wrapped graph gives channels-last pixels cheaply.

Most upscalers end in a pixel shuffle (DepthToSpace, or PyTorch's Reshape/Transpose/Reshape),
perhaps followed by elementwise ops with scalar constants. Wrapped as it is, that tail costs the
shuffle (a 6-D transpose, slow in onnxruntime's CPU provider) and then a full-frame NCHW -> HWC
transpose. Rebuilt, the shuffle's input, 1×(r·r·C)×H×W, is taken in DCR channel order (sub-row,
sub-column, colour; a CRD model's last Conv has its output channels reordered to match, which
changes no value) and seen as r×(r·C)×H×W; the elementwise work (the model's, then range, clip
and cast to the host type) runs there. wrap.py then transposes it once to r×H×W×(r·C), each
sub-row's pixels channels-last, one band of output rows each, and once more from r×H×(W·r·C)
to H×r×(W·r·C), which moves whole rows and lays the bands into the host's H·r×W·r×C buffer.
Both moves are in the host type, a quarter of the bytes for 8-bit frames. Every value is
computed as before, so the pixels are bit-identical.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Ops that act on each value alone: with scalar constants for their other inputs they commute
# with any rearrangement of the values, so they may run on the rearranged values instead.
ELEMENTWISE = {
    "Abs", "Add", "Cast", "Ceil", "Clip", "Div", "Elu", "Exp", "Floor", "HardSigmoid",
    "Identity", "LeakyRelu", "Log", "Max", "Min", "Mul", "Neg", "Pow", "Reciprocal", "Relu",
    "Round", "Selu", "Sigmoid", "Softplus", "Sqrt", "Sub", "Tanh",
}  # fmt: skip
CRD_PERM, DCR_PERM = [0, 1, 4, 2, 5, 3], [0, 3, 4, 1, 5, 2]


@dataclasses.dataclass(frozen=True)
class Tail:
    """The model's pixel shuffle (block r, DCR or CRD), the elementwise ops between it and the
    output, and for CRD the Conv before it, whose output channels are reordered."""

    conv: object | None
    shuffle: tuple
    chain: tuple
    block: int
    mode: str

    @property
    def nodes(self) -> list:
        """The model's nodes the rebuilt tail replaces."""
        return [n for n in (self.conv, *self.shuffle, *self.chain) if n is not None]


class _Graph:
    def __init__(self, graph):
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.uses: dict[str, int] = {}
        for n in graph.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in graph.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1

    def array(self, name: str) -> np.ndarray | None:
        """A constant's value (initializer or Constant node), else None."""
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
        return None

    def sole_use(self, name: str) -> bool:
        """Only one node reads `name` and it is not a graph output: it may be rebuilt."""
        return self.uses.get(name, 0) == 1 and name not in {o.name for o in self.graph.output}


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _data_input(g: _Graph, node) -> str | None:
    """The one non-constant input of an elementwise node whose constants are all scalars."""
    data = [i for i in node.input if i and g.array(i) is None]
    consts = [g.array(i) for i in node.input if i and g.array(i) is not None]
    if len(data) != 1 or any(c.size != 1 for c in consts):
        return None
    return data[0]


def _shuffle(g: _Graph, node, channels: int) -> tuple[tuple, int, str, str] | None:
    """(nodes, block, mode, input) of the pixel shuffle that ends in `node`, else None."""
    if node.op_type == "DepthToSpace":
        mode = _attr(node, "mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        return (node,), int(_attr(node, "blocksize")), mode, node.input[0]
    if node.op_type != "Reshape" or node.input[0] not in g.producer:
        return None
    transpose = g.producer[node.input[0]]
    if transpose.op_type != "Transpose" or not g.sole_use(transpose.output[0]):
        return None
    first = g.producer.get(transpose.input[0])
    if first is None or first.op_type != "Reshape" or not g.sole_use(first.output[0]):
        return None
    shape, out_shape = g.array(first.input[1]), g.array(node.input[1])
    if shape is None or out_shape is None or shape.size != 6 or out_shape.size != 4:
        return None
    perm, dims = list(_attr(transpose, "perm", [])), [int(d) for d in shape]
    if perm == CRD_PERM and dims[1] == channels and dims[2] == dims[3] > 1:
        mode, block = "CRD", dims[2]
    elif perm == DCR_PERM and dims[1] == dims[2] > 1 and dims[3] == channels:
        mode, block = "DCR", dims[1]
    else:
        return None
    return (first, transpose, node), block, mode, first.input[0]


def find_tail(model, output_name: str, channels: int) -> Tail | None:
    """The final pixel shuffle (+ scalar elementwise ops) of `model`, when it ends so and every
    value on the way is used by the next node alone (for CRD, after a Conv whose output
    channels can be reordered); None otherwise."""
    g = _Graph(model.graph)
    chain, name = [], output_name
    node = g.producer.get(name)
    while node is not None and node.op_type in ELEMENTWISE:
        data = _data_input(g, node)
        if data is None or not g.sole_use(data) or len(node.output) != 1:
            return None
        chain.insert(0, node)
        node = g.producer.get(data)
    if node is None or len(node.output) != 1:
        return None
    found = _shuffle(g, node, channels)
    if found is None:
        return None
    shuffle, block, mode, shuffled = found
    if block < 2 or mode not in ("DCR", "CRD"):
        return None
    if mode == "DCR":  # already in the order the rebuilt tail takes
        return Tail(None, tuple(shuffle), tuple(chain), block, mode)
    conv = g.producer.get(shuffled)
    if conv is None or conv.op_type != "Conv" or not g.sole_use(shuffled):
        return None
    if int(_attr(conv, "group", 1)) != 1:
        return None
    weight = g.array(conv.input[1])
    has_bias = len(conv.input) > 2 and bool(conv.input[2])
    if weight is None or weight.ndim != 4 or weight.shape[0] != channels * block * block:
        return None
    if has_bias and g.array(conv.input[2]) is None:
        return None
    return Tail(conv, tuple(shuffle), tuple(chain), block, mode)


def dcr_order(block: int, channels: int) -> list[int]:
    """CRD channel numbers in DCR order: (sub-row, sub-column, colour), colour fastest."""
    r = block
    return [c * r * r + i * r + j for i in range(r) for j in range(r) for c in range(channels)]


def planes(b, model, tail: Tail, channels: int) -> str:
    """Emit (through the wrap builder `b`) the shuffle's input in DCR order as r×(r·C)×H×W,
    the chain applied; returns that value's name (in the model's type)."""
    from onnx import helper

    g = _Graph(model.graph)
    r = tail.block
    x = tail.shuffle[0].input[0]
    if tail.conv is not None:
        conv, order = tail.conv, dcr_order(r, channels)
        inputs = [conv.input[0]]
        for name in conv.input[1:3]:
            if name:
                value = g.array(name)
                inputs.append(b.const(value[order], value.dtype))
        x = b.name("conv")
        node = helper.make_node("Conv", inputs, [x])
        node.attribute.extend(conv.attribute)
        b.nodes.append(node)
    x = b.op("Reshape", x, b.const([r, r * channels, 0, 0], np.int64))
    for node in tail.chain:
        data = _data_input(g, node)
        step = helper.make_node(
            node.op_type,
            [x if i == data else i for i in node.input],
            [b.name(node.op_type.lower())],
            domain=node.domain,
        )
        step.attribute.extend(node.attribute)
        b.nodes.append(step)
        x = step.output[0]
    return x


def drop_unused_initializers(graph) -> None:
    """Drop the initializers no node reads any more (a reordered conv's original weights), and
    their graph inputs where an old model lists initializers as inputs too."""
    used = {i for n in graph.node for i in n.input}
    dropped = {t.name for t in graph.initializer if t.name not in used}
    if dropped:
        kept = [t for t in graph.initializer if t.name not in dropped]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        inputs = [i for i in graph.input if i.name not in dropped]
        del graph.input[:]
        graph.input.extend(inputs)
