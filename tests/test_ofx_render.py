"""Frames through the real OFX bundle in the test host equal Engine.process on the same pixels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.engine.resample import resize
from tests.support.ofx import denoise_model, run_host, sr_x2_model
from tests.support.onnx_models import noise_denoiser

SR = "org.kwaflux.SuperResolution"
DENOISE = "org.kwaflux.Denoise"
DTYPES = [np.uint8, np.uint16, np.float16, np.float32]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "sr": sr_x2_model(d / "sr2.onnx"),
        "box": denoise_model(d / "box.onnx"),
        # A strength-controlled smoother whose noise input is calibrated: "auto" may use it.
        "calibrated": noise_denoiser(d / "calibrated.onnx", meta={"noise_level": "rms"}),
    }


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(device="cpu")


def picture(h: int, w: int, c: int, dtype, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, (h, w, c), endpoint=True).astype(dtype)
    return rng.random((h, w, c), dtype=np.float32).astype(dtype)


def render(tmp: Path, img: np.ndarray, plugin: str, params: dict, *flags: str, expect_rc=0):
    np.save(tmp / "in.npy", img)
    args = ["--plugin", plugin, "--input", str(tmp / "in.npy"), "--output", str(tmp / "out.npy")]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    proc = run_host(args + list(flags), tmp)
    assert proc.returncode == expect_rc, proc.stdout + proc.stderr
    return proc


def bounds(proc) -> tuple[int, ...]:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("output bounds"))
    return tuple(int(v) for v in line.split()[2:])


@pytest.mark.parametrize("channels", [4, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sr_every_depth_matches_engine(tmp_path, models, engine, dtype, channels):
    img = picture(10, 14, channels, dtype)
    proc = render(tmp_path, img, SR, {"model": models["sr"]})
    out = np.load(tmp_path / "out.npy")
    ref = engine.process(img, scale=2, sr_model=models["sr"])
    assert out.dtype == img.dtype and out.shape == (20, 28, channels)
    np.testing.assert_array_equal(out, ref)
    # Multi-resolution host: the region of definition is the source's times the scale.
    assert "rod 0 0 28 20" in proc.stdout
    assert bounds(proc) == (0, 0, 28, 20)


@pytest.mark.parametrize(
    "flags",
    [
        ("--negative-rowbytes",),
        ("--offset", "6,-4"),
        ("--row-pad", "13"),
        ("--negative-rowbytes", "--offset", "3,5", "--row-pad", "7", "--context", "general"),
    ],
    ids=["negative-rowbytes", "offset-bounds", "row-padding", "all-at-once"],
)
def test_host_buffer_layouts(tmp_path, models, engine, flags):
    img = picture(7, 9, 4, np.float32, seed=3)  # odd sizes
    proc = render(tmp_path, img, SR, {"model": models["sr"]}, *flags)
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(img, scale=2, sr_model=models["sr"])
    )
    if "--offset" in flags:
        ox, oy = (int(v) for v in flags[flags.index("--offset") + 1].split(","))
        assert bounds(proc) == (2 * ox, 2 * oy, 2 * (ox + 9), 2 * (oy + 7))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (3, 2)])
def test_tiny_and_odd_frames(tmp_path, models, engine, shape):
    img = picture(*shape, 3, np.uint16, seed=5)
    render(tmp_path, img, SR, {"model": models["sr"]}, "--negative-rowbytes")
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(img, scale=2, sr_model=models["sr"])
    )


def test_denoise_matches_engine_and_zero_is_identity(tmp_path, models, engine):
    img = picture(12, 10, 4, np.uint8, seed=9)
    manual = {"autoStrength": 0, "model": models["box"]}
    proc = render(tmp_path, img, DENOISE, manual | {"strength": 0.6})
    ref = engine.process(img, denoise=0.6, denoise_model=models["box"])
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, ref)
    assert not np.array_equal(out, img)
    assert bounds(proc) == (0, 0, 10, 12)
    # Strength 0: the plugin tells the host it is an identity; pixels come back untouched.
    proc = render(tmp_path, img, DENOISE, manual | {"strength": 0})
    assert "identity=1" in proc.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), img)


def _noisy(h: int, w: int, sigma: float, seed: int = 5) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx / w, yy / h, 0.5 + 0.0 * xx], -1) * 200 + 20
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("plugin", [DENOISE, SR])
def test_auto_is_the_default_and_equals_the_engine(tmp_path, models, engine, plugin):
    img = _noisy(64, 80, 12)
    if plugin == DENOISE:
        params = {"model": models["calibrated"]}
        ref = engine.process(img, denoise="auto", denoise_model=models["calibrated"])
    else:
        # SR's denoise stage takes the default (calibrated, shipped) denoiser.
        params = {"model": models["sr"]}
        ref = engine.process(img, scale=2, denoise="auto", sr_model=models["sr"])
    render(tmp_path, img, plugin, params)
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, ref)
    strength = engine.auto_strength([img]).strength
    assert strength > 0.1  # the frame really was denoised, not passed through


def test_measure_noise_fills_the_label(tmp_path, models):
    img = _noisy(64, 80, 12)
    np.save(tmp_path / "in.npy", img)
    args = ["--plugin", DENOISE, "--input", str(tmp_path / "in.npy")]
    args += ["--param", f"model={models['calibrated']}", "--changed", "measureNoise"]
    proc = run_host(args, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("value measuredNoise = "))
    assert line.startswith("value measuredNoise = measured noise 1")  # ~12/255 measured
    assert line.endswith("(calibrated)")
    assert "-> denoise 0." in line


def test_auto_with_an_uncalibrated_model_is_one_clear_message(tmp_path, models):
    img = _noisy(32, 32, 8)
    proc = render(tmp_path, img, DENOISE, {"model": models["box"]}, expect_rc=3)
    msg = next(ln for ln in proc.stdout.splitlines() if ln.startswith("persistent message: "))
    assert "box.onnx" in msg and "calibrated noise-level input" in msg
    # Measuring with it says the same in the label, and renders nothing wrong.
    args = ["--plugin", DENOISE, "--input", str(tmp_path / "in.npy"), "--param"]
    args += [f"model={models['box']}", "--param", "autoStrength=0", "--changed", "measureNoise"]
    proc = run_host(args, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "value measuredNoise = not measured: " in proc.stdout


@pytest.mark.parametrize("source_scale", [0.0, 0.75])
def test_resolve_path_works_at_timeline_resolution(tmp_path, models, engine, source_scale):
    img = picture(12, 16, 4, np.float32, seed=11)
    params = {"model": models["sr"], "sourceScale": source_scale}
    proc = render(tmp_path, img, SR, params, "--resolve")
    out = np.load(tmp_path / "out.npy")
    assert out.shape == img.shape and bounds(proc) == (0, 0, 16, 12)
    ss = source_scale or 0.5
    small = resize(img, round(12 * ss), round(16 * ss), "area")
    up = engine.process(small, scale=2, sr_model=models["sr"])
    if up.shape[:2] != (12, 16):
        up = resize(up, 12, 16, "lanczos3")
    np.testing.assert_array_equal(out, up)
    # Real SR happened: not the host's frame handed back.
    assert np.abs(out - img).mean() > 1e-3


def test_render_scale_is_honoured(tmp_path, models, engine):
    img = picture(12, 18, 4, np.float32, seed=13)
    proc = render(tmp_path, img, SR, {"model": models["sr"]}, "--render-scale-down", "2")
    proxy = img[::2, ::2]
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(proxy, scale=2, sr_model=models["sr"])
    )
    # The RoD stays in full-resolution canonical coordinates; the image is at render scale.
    assert "rod 0 0 36 24" in proc.stdout
    assert bounds(proc) == (0, 0, 18, 12)


def test_straight_alpha_is_passed_to_the_engine(tmp_path, models, engine):
    img = picture(6, 9, 4, np.float32, seed=29)
    render(tmp_path, img, SR, {"model": models["sr"]}, "--unpremultiplied")
    out = np.load(tmp_path / "out.npy")
    straight = engine.process(img, scale=2, sr_model=models["sr"], premultiplied=False)
    np.testing.assert_array_equal(out, straight)
    assert not np.array_equal(out, engine.process(img, scale=2, sr_model=models["sr"]))


def test_split_view(tmp_path, models, engine):
    img = picture(8, 10, 4, np.float32, seed=17)
    render(tmp_path, img, SR, {"model": models["sr"], "splitView": 1})
    out = np.load(tmp_path / "out.npy")
    after = engine.process(img, scale=2, sr_model=models["sr"])
    before = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(out[:, :10], before[:, :10])
    np.testing.assert_array_equal(out[:, 10:], after[:, 10:])


def test_many_render_threads_on_one_instance(tmp_path, models, engine):
    img = picture(16, 20, 4, np.float32, seed=19)
    # Threads against threads, frame by frame (tests/test_ofx_temporal.py covers the windows).
    params = {"model": models["sr"], "temporalRadius": 0}
    proc = render(tmp_path, img, SR, params, "--threads", "4", "--frames", "8")
    assert proc.stdout.count("status=0") == 8
    for t in range(8):
        # Frame t is the picture rolled t pixels right: a mix-up between threads would show.
        ref = engine.process(np.roll(img, t, axis=1), scale=2, sr_model=models["sr"])
        np.testing.assert_array_equal(np.load(tmp_path / f"out.{t}.npy"), ref)


OUR_LIBPYTHON = Path(sysconfig.get_config_var("LIBDIR")) / sysconfig.get_config_var("INSTSONAME")
# A distribution's own build of the same version, as a host linked to it would load.
DISTRO_LIBPYTHON = Path("/usr/lib/x86_64-linux-gnu") / sysconfig.get_config_var("INSTSONAME")


@pytest.mark.parametrize("libpython", [OUR_LIBPYTHON, DISTRO_LIBPYTHON], ids=["ours", "distro"])
def test_reuses_a_host_python_of_the_same_version(tmp_path, models, engine, libpython):
    if not libpython.is_file():
        pytest.skip(f"{libpython} not installed")
    img = picture(6, 8, 3, np.float32, seed=23)
    proc = render(tmp_path, img, SR, {"model": models["sr"]}, "--host-python", str(libpython))
    assert "host python 3.11" in proc.stdout
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(img, scale=2, sr_model=models["sr"])
    )
    assert "adopted the host's Python" in (tmp_path / "logs" / "ofx.log").read_text()


def test_a_host_python_of_another_version_gets_the_worker(tmp_path, models, engine):
    # Built here, not by CMake: a test stub has no place in users' environments.
    fake = tmp_path / "libkwaflux-fake-python.so"
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert cxx, "a C++ compiler is needed (it built the plugin too)"
    source = Path(__file__).resolve().parent.parent / "bridge" / "test_host" / "fake_python.cpp"
    subprocess.run([cxx, "-shared", "-fPIC", "-o", str(fake), str(source)], check=True)
    img = picture(4, 4, 4, np.float32)
    render(tmp_path, img, SR, {"model": models["sr"]}, "--host-python", str(fake))
    # Decided before any Python symbol is touched: the stub has none of the calls a start needs.
    assert "already runs Python 2.7.18" in (tmp_path / "logs" / "ofx.log").read_text()
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(img, scale=2, sr_model=models["sr"])
    )
