"""The shipped models: present, small, loadable, described by metadata, and better than bicubic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kwaflux_ofx.engine.spec import ModelSpec
from kwaflux_ofx.models.registry import DEFAULTS, resolve_model

MODELS = Path(__file__).resolve().parent.parent / "kwaflux_ofx" / "models"
# Every built-in model the registry names, with its scale (models/registry.py holds the list).
SCALES = {name: scale for (_kind, scale, _look), name in DEFAULTS.items()}
NAMES = tuple(SCALES)
SR_NAMES = [(n, s) for n, s in SCALES.items() if n != "kwaflux-denoise"]
REQUIRED_KEYS = (
    "kind",
    "scale",
    "channels",
    "range",
    "noise_input",
    "max_noise",
    "receptive_field",
    "name",
    "description",
    "license",
    "training_data",
)


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sessions() -> dict[str, ort.InferenceSession]:
    return {name: _session(MODELS / f"{name}.onnx") for name in NAMES}


def _meta(path: Path) -> dict[str, str]:
    m = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix("kwaflux."): p.value for p in m.metadata_props}


def _photo_crop(size: int = 192) -> np.ndarray:
    """A detailed crop of scikit-image's astronaut photo (evaluation set, never trained on)."""
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()
    return img[64 : 64 + size, 160 : 160 + size].astype(np.float32) / 255.0


def _nchw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


@pytest.mark.parametrize("name", NAMES)
def test_files_are_shipped_small_and_valid(name: str) -> None:
    for suffix in (".onnx", ".fp16.onnx"):
        path = MODELS / f"{name}{suffix}"
        assert path.is_file(), path
        assert path.stat().st_size <= 5 * 1024 * 1024
        onnx.checker.check_model(onnx.load(str(path)))
    sidecar = json.loads((MODELS / f"{name}.json").read_text())
    assert sidecar["file"] == f"{name}.onnx"
    assert sidecar["parity_fp32_max_abs"] <= 1e-4  # torch vs onnxruntime, measured at export


@pytest.mark.parametrize("name", NAMES)
def test_metadata_describes_the_model(name: str) -> None:
    for path in (MODELS / f"{name}.onnx", MODELS / f"{name}.fp16.onnx"):
        meta = _meta(path)
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        assert not missing, (path.name, missing)
        assert meta["name"] == name
        assert meta["license"] == "Apache-2.0"
        assert meta["channels"] == "3" and meta["range"] == "0-1"
        assert int(meta["receptive_field"]) > 0
        assert "Debian" in meta["training_data"]
        if name == "kwaflux-denoise":
            assert (meta["kind"], meta["scale"], meta["noise_input"]) == (
                "denoise",
                "1",
                "noise_level",
            )
            assert 0.0 < float(meta["max_noise"]) <= 1.0
        else:
            assert (meta["kind"], meta["noise_input"]) == ("sr", "")
            assert meta["scale"] == str(SCALES[name])


@pytest.mark.parametrize("name", NAMES)
def test_engine_reads_spec_from_metadata_without_probing(name: str) -> None:
    path = resolve_model(name)
    assert path.resolve() == (MODELS / f"{name}.onnx").resolve()
    spec = ModelSpec.from_onnx(path)
    assert not spec.probed
    assert spec.kind == ("denoise" if name == "kwaflux-denoise" else "sr")
    assert spec.scale == SCALES[name]
    assert spec.input_name == "input" and spec.output_name == "output"
    fp16 = ModelSpec.from_onnx(MODELS / f"{name}.fp16.onnx")
    assert fp16.input_dtype == "float16" and fp16.kind == spec.kind


@pytest.mark.parametrize(("name", "scale"), SR_NAMES)
def test_sr_output_shape_on_odd_sizes(sessions, name: str, scale: int) -> None:
    x = np.random.default_rng(0).random((1, 3, 17, 23), dtype=np.float32)
    out = sessions[name].run(["output"], {"input": x})[0]
    assert out.shape == (1, 3, 17 * scale, 23 * scale)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n, s in SR_NAMES if s == 2])
def test_sr_x2_beats_bicubic_on_held_out_photo(sessions, name: str) -> None:
    from PIL import Image

    hr = _photo_crop(192)
    lr_img = Image.fromarray(np.rint(hr * 255).astype(np.uint8)).resize(
        (96, 96), Image.Resampling.BICUBIC
    )
    lr = np.asarray(lr_img, dtype=np.float32) / 255.0
    bicubic = np.asarray(lr_img.resize((192, 192), Image.Resampling.BICUBIC), np.float32) / 255
    out = sessions[name].run(["output"], {"input": _nchw(lr)})[0][0].transpose(1, 2, 0)
    # Compare away from the borders, where neither method has full context.
    inner = (slice(8, -8), slice(8, -8))
    gain = _psnr(out[inner], hr[inner]) - _psnr(bicubic[inner], hr[inner])
    assert gain > 0.5, f"{name} only {gain:+.2f} dB over bicubic"


def test_denoise_removes_noise_and_strength_is_monotone(sessions) -> None:
    clean = _photo_crop(128)
    rng = np.random.default_rng(3)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    sess = sessions["kwaflux-denoise"]

    def run(img: np.ndarray, sigma: float) -> np.ndarray:
        nmap = np.full((1, 1, *img.shape[:2]), sigma, np.float32)
        out = sess.run(["output"], {"input": _nchw(img), "noise_level": nmap})[0]
        return out[0].transpose(1, 2, 0)

    out25 = run(noisy, 25 / 255)
    assert _psnr(out25, clean) > _psnr(noisy, clean) + 5.0
    # More strength removes more: the change from the input grows with the noise level fed in.
    changes = [float(np.sqrt(np.mean((run(noisy, s / 255) - noisy) ** 2))) for s in (5, 15, 25, 40)]
    assert changes == sorted(changes), changes
    # A clean image at noise level 0 is left almost exactly alone (residual network).
    assert _psnr(run(clean, 0.0), clean) > 40.0


def test_denoise_odd_size_keeps_shape(sessions) -> None:
    x = np.random.default_rng(1).random((1, 3, 31, 45), dtype=np.float32)
    nmap = np.full((1, 1, 31, 45), 10 / 255, np.float32)
    out = sessions["kwaflux-denoise"].run(["output"], {"input": x, "noise_level": nmap})[0]
    assert out.shape == x.shape and np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_fp16_variant_matches_fp32(sessions, name: str) -> None:
    """The fp16 file (for GPUs) computes the same image as the fp32 one, to fp16 precision."""
    x = np.random.default_rng(2).random((1, 3, 24, 20), dtype=np.float32)
    feeds = {"input": x}
    if name == "kwaflux-denoise":
        feeds["noise_level"] = np.full((1, 1, 24, 20), 15 / 255, np.float32)
    ref = sessions[name].run(["output"], feeds)[0]
    half = _session(MODELS / f"{name}.fp16.onnx")
    out = half.run(["output"], {k: v.astype(np.float16) for k, v in feeds.items()})[0]
    assert out.dtype == np.float16 and out.shape == ref.shape
    assert np.abs(out.astype(np.float32) - ref).max() < 1e-2
