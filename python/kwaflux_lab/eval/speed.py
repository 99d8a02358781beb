"""How fast a model runs in the engine and how much compute its convolutions take."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def macs_per_pixel(path: str | Path) -> float:
    """Multiply-accumulates per input pixel of a model's convolutions: the import-ncnn metadata
    when present, else counted from the tensor shapes of one 64x64 run in onnxruntime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "kwaflux.macs_per_pixel" in meta:
        return float(meta["kwaflux.macs_per_pixel"])
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    convs = [
        nd
        for nd in model.graph.node
        if nd.op_type in ("Conv", "ConvTranspose") and nd.input[1] in weights
    ]
    # Conv: each output element costs in/group*kh*kw; ConvTranspose: each input element
    # costs out/group*kh*kw. Expose those tensors as outputs to read their shapes.
    probes = [nd.output[0] if nd.op_type == "Conv" else nd.input[0] for nd in convs]
    known = {o.name for o in model.graph.output}
    for name in dict.fromkeys(probes):
        if name not in known:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    n = 64
    feeds = {}
    for inp in sess.get_inputs():
        c = inp.shape[1] if isinstance(inp.shape[1], int) else 3
        feeds[inp.name] = np.full((1, c, n, n), 0.1, np.float32)
    names = [o.name for o in sess.get_outputs()]
    shapes = dict(zip(names, (v.shape for v in sess.run(names, feeds)), strict=True))
    total = sum(
        int(np.prod(shapes[name])) * int(np.prod(weights[nd.input[1]][1:]))
        for nd, name in zip(convs, probes, strict=True)
    )
    return total / (n * n)


# -- speed -------------------------------------------------------------------------------------
def speed(engine, model: str, scale: int, kind: str, budget_s: float) -> tuple[float, str]:
    """ms per 1920x1080 input frame; measured on a smaller frame and scaled by the pixel count
    when a full frame would take longer than budget_s (tiles make the cost linear in area)."""
    rng = np.random.default_rng(0)

    def run(h, w) -> float:
        x = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        kw = (
            dict(scale=scale, sr_model=model)
            if kind == "sr"
            else dict(scale=1, denoise=0.5, denoise_model=model)
        )
        engine.process(x[:64, :64], **kw)  # session warm-up
        t0 = time.perf_counter()
        engine.process(x, **kw)
        return (time.perf_counter() - t0) * 1000.0

    # Heavy models (Real-ESRGAN x4plus: minutes per frame) are timed on a smaller frame.
    tiny = run(135, 240)
    if tiny * 64 / 1000.0 > 4 * budget_s:
        return tiny * 64, "240x135 x64"
    small = run(270, 480)
    if small * 16 / 1000.0 > budget_s:
        return small * 16, "480x270 x16"
    return run(1080, 1920), "1920x1080"
