"""Campaign: broken and hostile model files (not ONNX, wrong shapes, NaN weights, pickles) given to the engine."""

from __future__ import annotations

from pathlib import Path

from reliability.cases import Case, judge_error, run_cli, tree_state
from tests.support.onnx_models import save_model

# -- 1b. broken ONNX models --------------------------------------------------------------------
_SR_META = {"kind": "sr", "scale": 2, "channels": 3, "range": "0-1", "receptive_field": 1}


def _graph_model(
    path: Path,
    nodes,
    inits,
    in_shape,
    out_shape,
    *,
    opset: int = 17,
    meta: dict | None = None,
    in_type=None,
    domain: str = "",
) -> Path:
    """A hand-built ONNX model (possibly wrong on purpose), saved without the checker."""
    from onnx import TensorProto

    return save_model(
        path,
        nodes,
        inits,
        meta=meta,
        in_shape=in_shape,
        out_shape=out_shape,
        in_type=in_type or TensorProto.FLOAT,
        out_type=TensorProto.FLOAT,
        opset=opset,
        domain=domain,
        check=False,
    )


def _weights_to(src: Path, dst: Path, value: float) -> Path:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    for i, init in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(init).copy()
        if a.ndim == 4 and a.shape[2] > 1:  # the 3x3 convs, not the 1x1 pixel shuffle
            a[:] = np.float32(value)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, init.name))
    onnx.save(m, str(dst))
    return dst


class _Pickled:
    """Unpickling this would create a file: proof that no model path is ever unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def broken_models(d: Path) -> dict[str, Path]:
    """A model zoo of everything that can be wrong with a model file. {case name: path}."""
    import pickle

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from tests.support.onnx_models import conv_model, sr_model

    d.mkdir(parents=True, exist_ok=True)
    good = sr_model(d / "good-x2.onnx", 2, meta=_SR_META)
    data = good.read_bytes()
    zoo: dict[str, Path] = {}
    for frac in (0.0, 0.02, 0.25, 0.5, 0.9, 0.999):
        cut = int(len(data) * frac)
        p = d / f"truncated-{cut}.onnx"
        p.write_bytes(data[:cut])
        zoo[f"truncated at {frac:.1%} ({cut} of {len(data)} bytes)"] = p
    rng = np.random.default_rng(5)
    p = d / "garbled.onnx"
    garbled = bytearray(data)
    for i in rng.integers(0, len(data), 40):
        garbled[i] ^= 0xFF
    p.write_bytes(bytes(garbled))
    zoo["40 bytes flipped"] = p
    p = d / "random.onnx"
    p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    zoo["random bytes"] = p
    p = d / "text.onnx"
    p.write_text("this is not a model\n")
    zoo["text file named .onnx"] = p
    p = d / "model.pkl"
    p.write_bytes(pickle.dumps(_Pickled(str(d / "UNPICKLED"))))
    zoo["a pickle (would create a file if unpickled)"] = p
    p = d / "model.pt"
    p.write_bytes(pickle.dumps(_Pickled(str(d / "UNPICKLED"))))
    zoo["a torch-style .pt pickle"] = p
    w = numpy_helper.from_array(np.full((3, 3, 3, 3), 1 / 27, np.float32), "w")
    w4 = numpy_helper.from_array(np.full((3, 4, 3, 3), 1 / 36, np.float32), "w")
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])
    zoo["input rank 3 (CHW)"] = _graph_model(
        d / "rank3.onnx",
        [helper.make_node("Identity", ["input"], ["output"])],
        [],
        [3, "H", "W"],
        [3, "H", "W"],
        meta=_SR_META,
    )
    zoo["input rank 5"] = _graph_model(
        d / "rank5.onnx",
        [helper.make_node("Identity", ["input"], ["output"])],
        [],
        [1, 1, 3, "H", "W"],
        [1, 1, 3, "H", "W"],
    )
    zoo["4-channel input (RGBA model)"] = _graph_model(
        d / "rgba.onnx", [conv], [w4], ["N", 4, "H", "W"], ["N", 3, "H", "W"]
    )
    zoo["4-channel input, metadata says 3"] = _graph_model(
        d / "rgba-lies.onnx",
        [conv],
        [w4],
        ["N", 4, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["int8 input"] = _graph_model(
        d / "int8.onnx",
        [helper.make_node("Cast", ["input"], ["output"], to=TensorProto.FLOAT)],
        [],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        in_type=TensorProto.INT8,
    )
    zoo["opset 99 (the runtime lacks it)"] = _graph_model(
        d / "opset99.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        opset=99,
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["opset 99, no metadata (probed)"] = _graph_model(
        d / "opset99-probe.onnx", [conv], [w], ["N", 3, "H", "W"], ["N", 3, "H", "W"], opset=99
    )
    zoo["unknown custom op domain"] = _graph_model(
        d / "custom-op.onnx",
        [helper.make_node("MagicUpscale", ["input"], ["output"], domain="com.example.magic")],
        [],
        ["N", 3, "H", "W"],
        ["N", 3, "H2", "W2"],
        domain="com.example.magic",
        meta=_SR_META,
    )
    zoo["rank-2 output"] = _graph_model(
        d / "flat.onnx",
        [helper.make_node("Flatten", ["input"], ["output"])],
        [],
        ["N", 3, "H", "W"],
        ["N", "K"],
    )
    zoo["rank-2 output, full metadata"] = _graph_model(
        d / "flat-meta.onnx",
        [helper.make_node("Flatten", ["input"], ["output"])],
        [],
        ["N", 3, "H", "W"],
        ["N", "K"],
        meta=_SR_META,
    )
    zoo["metadata says x2, model is x1"] = _graph_model(
        d / "lies-x2.onnx", [conv], [w], ["N", 3, "H", "W"], ["N", 3, "H", "W"], meta=_SR_META
    )
    zoo["output shrinks (valid conv)"] = _graph_model(
        d / "shrinks.onnx",
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["non-integer scale (Resize x1.5)"] = _graph_model(
        d / "x1.5.onnx",
        [helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")],
        [numpy_helper.from_array(np.array([1, 1, 1.5, 1.5], np.float32), "scales")],
        ["N", 3, "H", "W"],
        ["N", 3, "H2", "W2"],
    )
    zoo["kind metadata 'colorize'"] = _graph_model(
        d / "kind.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "kind": "colorize", "scale": 1},
    )
    zoo["scale metadata 'two'"] = _graph_model(
        d / "scale-text.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": "two"},
    )
    zoo["range metadata 'bright'"] = _graph_model(
        d / "range-text.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "range": "bright", "scale": 1, "kind": "denoise"},
    )
    zoo["NaN weights"] = _weights_to(good, d / "nan.onnx", float("nan"))
    zoo["Inf weights"] = _weights_to(good, d / "inf.onnx", float("inf"))
    dn = conv_model(d / "good-dn.onnx", meta={**_SR_META, "kind": "denoise", "scale": 1})
    zoo["NaN weights (denoise model)"] = _weights_to(dn, d / "nan-dn.onnx", float("nan"))
    zoo["missing model file"] = d / "does-not-exist.onnx"
    return zoo


def campaign_models(work: Path) -> list[Case]:
    """Every broken model through `kwaflux upscale` (one clear line naming the model, exit 2,
    no output, input untouched) and `kwaflux models info`."""
    import numpy as np

    from kwaflux_ofx.media.stills import write_image

    work.mkdir(parents=True, exist_ok=True)
    zoo = broken_models(work / "models")
    img = work / "in.png"
    write_image(img, np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8))
    cases = []
    for name, model in zoo.items():
        before = tree_state(work)
        out = work / "out.png"
        for argv in (
            [
                "-q",
                "upscale",
                str(img),
                str(out),
                "--model",
                str(model),
                "--scale",
                "2",
                "--device",
                "cpu",
            ],
            [
                "-q",
                "upscale",
                str(img),
                str(out),
                "--denoise",
                "0.5",
                "--scale",
                "1",
                "--denoise-model",
                str(model),
                "--device",
                "cpu",
            ],
            ["-q", "models", "info", str(model)],
        ):
            run = run_cli(argv, timeout=60)
            what = f"{name} [{argv[1]}{' --denoise-model' if '--denoise-model' in argv else ''}]"
            if run.rc == 0 and not run.exc:
                if argv[1] == "models":
                    continue  # info may describe a model that cannot render; rendering judges it
                outcome, detail = "WRONG", "rendered with a broken model"
            else:
                outcome, detail = judge_error(run, [str(model), model.name])
            after = tree_state(work)
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                outcome, detail = "DAMAGE", f"files changed: {changed[:3]}"
                if out.exists():
                    out.unlink()
            cases.append(Case("models", what, outcome, detail))
    if (work / "models" / "UNPICKLED").exists():
        cases.append(Case("models", "pickle", "DAMAGE", "a pickle was unpickled"))
    return cases
