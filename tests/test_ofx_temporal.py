"""Temporal denoise through the real OFX bundle: neighbours fetched from the test host equal the
engine's process_sequence / process_window on the same frames, whatever the threads and order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.engine.engine import from_float, to_float
from kwaflux_ofx.engine.resample import resize
from tests.support.ofx import run_host, sr_x2_model
from tests.support.onnx_models import noise_denoiser

SR = "org.kwaflux.SuperResolution"
DENOISE = "org.kwaflux.Denoise"
FRAMES = 5
NO_TEMPORAL_LINE = "offers no temporal clip access"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        # Calibrated, so it takes a noise level: the engine's temporal path uses it.
        "dn": noise_denoiser(d / "dn.onnx", meta={"noise_level": "rms"}),
        "sr": sr_x2_model(d / "sr2.onnx"),
    }


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(device="cpu")


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A smooth picture under noise: neighbours (the picture rolled a pixel) differ a little."""
    h, w = 14, 18
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx / w, yy / h, 0.5 + 0.0 * xx], -1) * 180 + 30
    noisy = clean + np.random.default_rng(5).normal(0, 10, clean.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def host_frames(img: np.ndarray, n: int = FRAMES) -> list[np.ndarray]:
    """The test host's frames: frame t is the picture rolled t pixels right."""
    return [np.roll(img, t, axis=1) for t in range(n)]


def manual(models, radius: int = 2) -> dict:
    # A fixed strength, Auto off: the check is exact (Auto measures each window on its own).
    return {"model": models["dn"], "autoStrength": 0, "strength": 0.5, "temporalRadius": radius}


def run(tmp: Path, img: np.ndarray, plugin: str, params: dict, *flags: str, frames=FRAMES):
    np.save(tmp / "in.npy", img)
    args = ["--plugin", plugin, "--input", str(tmp / "in.npy"), "--output", str(tmp / "out.npy")]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    proc = run_host(args + ["--frames", str(frames), *flags], tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "outside the frames needed" not in proc.stdout  # fetched only what it asked for
    assert "refused fetch" not in proc.stdout
    return proc


def outputs(tmp: Path, frames: int = FRAMES) -> list[np.ndarray]:
    return [np.load(tmp / f"out.{t}.npy") for t in range(frames)]


def needed(proc) -> dict[int, str]:
    """What the plugin asked for per frame, from the host's "frames needed t=T: A..B" lines."""
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("frames needed t=")]
    return {int(ln.split("=")[1].split(":")[0]): ln.split(": ", 1)[1] for ln in lines}


def log(tmp: Path) -> str:
    path = tmp / "logs" / "ofx.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    "flags",
    [
        (),
        ("--threads", "3", "--render-order", "reverse"),
        ("--threads", "2", "--render-order", "3,0,4,1,2"),
    ],
    ids=["in-order", "threads-reverse", "threads-shuffled"],
)
def test_radius_2_equals_process_sequence(tmp_path, models, engine, picture, flags):
    proc = run(tmp_path, picture, DENOISE, manual(models), *flags)
    frames = host_frames(picture)
    want = list(
        engine.process_sequence(frames, denoise=0.5, temporal_radius=2, denoise_model=models["dn"])
    )
    got = outputs(tmp_path)
    for t in range(FRAMES):
        np.testing.assert_array_equal(got[t], want[t], err_msg=f"frame {t}")
    # The neighbours changed the result: not the frame denoised alone.
    alone = engine.process(frames[2], denoise=0.5, denoise_model=models["dn"])
    assert not np.array_equal(got[2], alone)
    # [t-2, t+2] clamped to the clip's frames 0..4: the ends use fewer neighbours.
    assert needed(proc) == {0: "0..2", 1: "0..3", 2: "0..4", 3: "1..4", 4: "2..4"}
    assert proc.stdout.count("host: fetch t=") == 2 + 3 + 4 + 3 + 2
    assert proc.stdout.count("status=0") == FRAMES


def test_sr_denoise_stage_is_temporal_too(tmp_path, models, engine, picture):
    # SR's denoise stage uses the default (shipped) denoiser; the model parameter is the SR's.
    params = {"model": models["sr"], "autoDenoise": 0, "denoise": 0.5, "temporalRadius": 1}
    proc = run(tmp_path, picture, SR, params, "--threads", "2", frames=3)
    want = list(
        engine.process_sequence(
            host_frames(picture, 3), scale=2, denoise=0.5, temporal_radius=1, sr_model=models["sr"]
        )
    )
    for t, got in enumerate(outputs(tmp_path, 3)):
        np.testing.assert_array_equal(got, want[t], err_msg=f"frame {t}")
    assert needed(proc) == {0: "0..1", 1: "0..2", 2: "1..2"}


def test_a_failed_fetch_is_a_missing_neighbour(tmp_path, models, engine, picture):
    proc = run(tmp_path, picture, DENOISE, manual(models), "--fail-fetch", "1")
    f = host_frames(picture)
    got = outputs(tmp_path)
    kw = {"denoise": 0.5, "denoise_model": models["dn"]}
    # Frame 2's window without frame 1; frame 1 itself (fetched as the centre) is whole.
    np.testing.assert_array_equal(got[2], engine.process_window([f[0], f[2], f[3], f[4]], 1, **kw))
    np.testing.assert_array_equal(got[1], engine.process_window([f[0], f[1], f[2], f[3]], 1, **kw))
    np.testing.assert_array_equal(got[0], engine.process_window([f[0], f[2]], 0, **kw))
    assert proc.stdout.count("failed (--fail-fetch)") == 3  # as a neighbour of 0, 2 and 3
    assert proc.stdout.count("status=0") == FRAMES
    assert "render t=2: no source frame at t=1; denoising without it" in log(tmp_path)


def test_a_neighbour_of_another_size_is_left_out(tmp_path, models, engine, picture):
    proc = run(tmp_path, picture, DENOISE, manual(models), "--odd-frame", "3", frames=4)
    f = host_frames(picture, 4)
    kw = {"denoise": 0.5, "denoise_model": models["dn"]}
    got = outputs(tmp_path, 4)
    np.testing.assert_array_equal(got[2], engine.process_window([f[0], f[1], f[2]], 2, **kw))
    np.testing.assert_array_equal(got[3], engine.process_window([f[1], f[2], f[3]], 2, **kw))
    assert proc.stdout.count("status=0") == 4
    assert "render t=1: the source frame at t=3 differs from this one" in log(tmp_path)


@pytest.mark.parametrize("plugin", [DENOISE, SR])
def test_radius_0_is_todays_single_frame_render(tmp_path, models, engine, picture, plugin):
    if plugin == DENOISE:
        params = manual(models, radius=0)
        kw = {"denoise": 0.5, "denoise_model": models["dn"]}
    else:
        params = {"model": models["sr"], "autoDenoise": 0, "denoise": 0.5, "temporalRadius": 0}
        kw = {"scale": 2, "denoise": 0.5, "sr_model": models["sr"]}
    proc = run(tmp_path, picture, plugin, params, "--threads", "2", frames=3)
    for t, got in enumerate(outputs(tmp_path, 3)):
        np.testing.assert_array_equal(got, engine.process(host_frames(picture, 3)[t], **kw))
    assert needed(proc) == {0: "0..0", 1: "1..1", 2: "2..2"}
    assert "host: fetch" not in proc.stdout


def test_denoise_off_fetches_no_neighbours(tmp_path, models, engine, picture):
    # SR without its denoise stage: the radius has nothing to act on, so nothing is fetched.
    params = {"model": models["sr"], "autoDenoise": 0, "denoise": 0, "temporalRadius": 3}
    proc = run(tmp_path, picture, SR, params, frames=3)
    assert needed(proc) == {0: "0..0", 1: "1..1", 2: "2..2"}
    assert "host: fetch" not in proc.stdout
    frames = host_frames(picture, 3)
    for t, got in enumerate(outputs(tmp_path, 3)):
        np.testing.assert_array_equal(
            got, engine.process(frames[t], scale=2, sr_model=models["sr"])
        )


def test_a_host_without_temporal_access_gets_single_frames_and_one_line(
    tmp_path, models, engine, picture
):
    proc = run(tmp_path, picture, DENOISE, manual(models), "--no-temporal", "--threads", "2")
    for t, got in enumerate(outputs(tmp_path)):
        want = engine.process(host_frames(picture)[t], denoise=0.5, denoise_model=models["dn"])
        np.testing.assert_array_equal(got, want)
    assert proc.stdout.count("status=0") == FRAMES and "frames needed" not in proc.stdout
    assert "host: done, 0 failed renders, 0 messages" in proc.stdout
    assert log(tmp_path).count(NO_TEMPORAL_LINE) == 1


def test_resolve_path_shrinks_the_neighbours_too(tmp_path, models, engine, picture):
    params = {"model": models["sr"], "autoDenoise": 0, "denoise": 0.5, "temporalRadius": 1}
    run(tmp_path, picture, SR, params, "--resolve", "--render-order", "1", frames=3)
    h, w = picture.shape[:2]
    small = [resize(to_float(f), h // 2, w // 2, "area") for f in host_frames(picture, 3)]
    up = engine.process_window(small, 1, scale=2, denoise=0.5, sr_model=models["sr"])
    want = resize(up, h, w, "lanczos3") if up.shape[:2] != (h, w) else up
    got = np.load(tmp_path / "out.1.npy")
    np.testing.assert_array_equal(got, from_float(want, picture.dtype))
    # The neighbours mattered: the frame alone gives other pixels.
    alone = engine.process(small[1], scale=2, denoise=0.5, sr_model=models["sr"])
    assert not np.array_equal(up, alone)


def test_the_defaults_auto_and_radius_2(tmp_path, models, engine, picture):
    # What a user gets: Auto strength measures each frame's window, five frames wide.
    run(tmp_path, picture, DENOISE, {"model": models["dn"]}, "--threads", "2", frames=4)
    f = host_frames(picture, 4)
    for t, got in enumerate(outputs(tmp_path, 4)):
        lo, hi = max(0, t - 2), min(3, t + 2)
        want = engine.process_window(
            f[lo : hi + 1], t - lo, denoise="auto", denoise_model=models["dn"]
        )
        np.testing.assert_array_equal(got, want, err_msg=f"frame {t}")
