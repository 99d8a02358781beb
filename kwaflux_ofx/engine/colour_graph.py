"""The colour transforms as ONNX graphs: the curves of engine/colour_curves.py traced into nodes."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kwaflux_ofx.engine.colour_curves import SPACES, srgb_decode, srgb_encode
from kwaflux_ofx.settings import ColourSpace


class _Sym:
    """A tensor in an ONNX graph under construction: arithmetic with numbers adds nodes."""

    def __init__(self, g: _GraphOps, name: str):
        self.g, self.name = g, name

    def _bin(self, op, other, swap=False):
        o = self.g.operand(other)
        a, b = (o, self.name) if swap else (self.name, o)
        return self.g.node(op, a, b)

    def __add__(self, o):
        return self._bin("Add", o)

    __radd__ = __add__

    def __sub__(self, o):
        return self._bin("Sub", o)

    def __rsub__(self, o):
        return self._bin("Sub", o, swap=True)

    def __mul__(self, o):
        return self._bin("Mul", o)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return self._bin("Div", o)

    def __rtruediv__(self, o):
        return self._bin("Div", o, swap=True)

    def __neg__(self):
        return self.g.node("Neg", self.name)

    def __lt__(self, o):
        return self._bin("Less", o)

    def __le__(self, o):
        return self._bin("LessOrEqual", o)

    def __gt__(self, o):
        return self._bin("Greater", o)

    def __ge__(self, o):
        return self._bin("GreaterOrEqual", o)


class _GraphOps:
    """The curves' operations as ONNX nodes (opset 17)."""

    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def operand(self, v) -> str:
        if isinstance(v, _Sym):
            return v.name
        from onnx import numpy_helper

        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(v, np.float32), name))
        return name

    def node(self, op: str, *inputs: str) -> _Sym:
        from onnx import helper

        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out]))
        return _Sym(self, out)

    def where(self, cond, a, b):
        return self.node("Where", cond.name, self.operand(a), self.operand(b))

    def exp(self, x):
        return self.node("Exp", x.name)

    def log(self, x):
        return self.node("Log", x.name)

    def sqrt(self, x):
        return self.node("Sqrt", x.name)

    def maximum(self, x, v):
        return self.node("Max", x.name, self.operand(v))

    def power(self, x, p):
        return self.node("Pow", x.name, self.operand(p))

    def matrix(self, x, m):
        return self.node("MatMul", x.name, self.operand(np.asarray(m, np.float32).T))


@lru_cache(maxsize=64)
def graph(space: ColourSpace, inverse: bool) -> bytes:
    """A serialised ONNX model: "rgb" (any shape ending in 3, float32) -> "out", to_display of
    `space` (from_display with `inverse`)."""
    import onnx
    from onnx import TensorProto, helper

    s = SPACES[space]
    g = _GraphOps()
    x = _Sym(g, "rgb")
    if not inverse:
        lin = s.decode(g, x)
        if s.to_rec709 is not None:
            lin = g.matrix(lin, s.to_rec709)
        y = srgb_encode(g, lin)
    else:
        lin = srgb_decode(g, x)
        if s.to_rec709 is not None:
            lin = g.matrix(lin, np.linalg.inv(np.asarray(s.to_rec709, np.float64)))
        y = s.encode(g, lin)
    g.nodes.append(helper.make_node("Identity", [y.name], ["out"]))
    shape = ["n", 3]
    model = helper.make_model(
        helper.make_graph(
            g.nodes,
            f"kwaflux_colour_{space.value}{'_inverse' if inverse else ''}",
            [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
            g.inits,
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
