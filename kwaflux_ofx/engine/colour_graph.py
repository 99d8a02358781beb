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
        # exp(p·log x) for x > 0 (the curves clamp first): onnxruntime's Exp and Log are
        # vectorised, its Pow with a fractional exponent is not (2-3x slower on a 4K frame).
        return self.exp(self.log(x) * float(p))

    def matrix(self, x, m):
        return self.node("MatMul", x.name, self.operand(np.asarray(m, np.float32).T))


def _to_display(g: _GraphOps, x: _Sym, space: ColourSpace) -> _Sym:
    s = SPACES[space]
    lin = s.decode(g, x)
    if s.to_rec709 is not None:
        lin = g.matrix(lin, s.to_rec709)
    return srgb_encode(g, lin)


def _from_display(g: _GraphOps, x: _Sym, space: ColourSpace) -> _Sym:
    s = SPACES[space]
    lin = srgb_decode(g, x)
    if s.to_rec709 is not None:
        lin = g.matrix(lin, np.linalg.inv(np.asarray(s.to_rec709, np.float64)))
    return s.encode(g, lin)


def _serialise(g: _GraphOps, name: str, inputs: list[str], outputs: dict[str, _Sym]) -> bytes:
    """The graph with float32 H×W×3 inputs and outputs (any H and W), checked."""
    import onnx
    from onnx import TensorProto, helper

    for out, sym in outputs.items():
        g.nodes.append(helper.make_node("Identity", [sym.name], [out]))

    def value(n: str, stem: str):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, [f"{stem}h", f"{stem}w", 3])

    model = helper.make_model(
        helper.make_graph(
            g.nodes,
            name,
            [value(n, n) for n in inputs],
            [value(n, n) for n in outputs],
            g.inits,
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@lru_cache(maxsize=64)
def graph(space: ColourSpace, inverse: bool) -> bytes:
    """ "rgb" (H×W×3 float32) -> "out": to_display of `space` (from_display with `inverse`)."""
    g = _GraphOps()
    x = _Sym(g, "rgb")
    y = _from_display(g, x, space) if inverse else _to_display(g, x, space)
    return _serialise(g, f"kwaflux_colour_{space.value}_{int(inverse)}", ["rgb"], {"out": y})


@lru_cache(maxsize=64)
def graph_in(space: ColourSpace) -> bytes:
    """ "rgb" in `space` -> "inside" (its display encoding clipped to 0..1, what the models see)
    and "excess" (the rest, which goes around them)."""
    g = _GraphOps()
    y = _to_display(g, _Sym(g, "rgb"), space)
    inside = g.node("Clip", y.name, g.operand(0.0), g.operand(1.0))
    excess = y - inside
    return _serialise(
        g, f"kwaflux_colour_in_{space.value}", ["rgb"], {"inside": inside, "excess": excess}
    )


@lru_cache(maxsize=64)
def graph_out(space: ColourSpace, scale: int) -> bytes:
    """ "model" (the models' output, H·scale × W·scale) and "excess" (H × W) -> "out" in
    `space`: the model's 0..1 part kept in it (its overshoot at a clipped edge would ring
    above the highlight), the excess resized bilinearly (no ringing) and added."""
    from onnx import helper

    g = _GraphOps()
    inside = g.node("Clip", "model", g.operand(0.0), g.operand(1.0))
    if scale == 1:
        up = _Sym(g, "excess")
    else:
        out = g._name("resize")
        scales = g.operand(np.array([scale, scale, 1], np.float32))
        g.nodes.append(
            helper.make_node(
                "Resize",
                ["excess", "", scales],
                [out],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
        )
        up = _Sym(g, out)
    y = _from_display(g, inside + up, space)
    return _serialise(
        g, f"kwaflux_colour_out_{space.value}_x{scale}", ["model", "excess"], {"out": y}
    )
