"""denoise="auto": the engine measures the noise and picks the strength a calibrated model needs;
an uncalibrated model refuses with one line naming it."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from kwaflux_ofx import Engine, KwafluxError
from kwaflux_ofx.engine import noise
from kwaflux_ofx.errors import ModelError
from tests.support.onnx_models import noise_denoiser


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def _noisy(sigma: float) -> np.ndarray:
    clean = skdata.astronaut()[:256, :256].astype(np.float32)
    rng = np.random.default_rng(4)
    return np.clip(np.rint(clean + sigma * rng.standard_normal(clean.shape)), 0, 255).astype(
        np.uint8
    )


def test_auto_matches_the_measured_strength(engine, tmp_path):
    model = noise_denoiser(tmp_path / "dn.onnx", max_noise=0.2, meta={"noise_level": "rms"})
    frame = _noisy(20)
    auto = engine.auto_strength([frame], denoise_model=model)
    assert auto.strength == pytest.approx(20 / 255 / 0.2, rel=0.15)
    assert auto.model == "dn" and auto.describe().endswith(f"denoise {auto.strength:.2f} (dn)")
    out_auto = engine.process(frame, denoise="auto", denoise_model=model)
    out_num = engine.process(frame, denoise=auto.strength, denoise_model=model)
    assert np.array_equal(out_auto, out_num)
    assert not np.array_equal(out_auto, frame)


def test_auto_on_a_clean_flat_frame_is_an_exact_pass_through(engine, tmp_path):
    model = noise_denoiser(tmp_path / "dn.onnx", meta={"noise_level": "rms"})
    flat = np.full((64, 80, 3), 0.25, np.float32)
    assert engine.auto_strength([flat], denoise_model=model).strength == 0.0
    out = engine.process(flat, denoise="auto", denoise_model=model)
    assert np.array_equal(out, flat)


def test_uncalibrated_model_refuses_auto_naming_the_model(engine, tmp_path):
    model = noise_denoiser(tmp_path / "their_denoiser.onnx")  # no kwaflux.noise_level
    with pytest.raises(ModelError) as err:
        engine.process(_noisy(10), denoise="auto", denoise_model=model)
    msg = str(err.value)
    assert "their_denoiser.onnx" in msg and "\n" not in msg and "number" in msg
    # A number still works with the same model.
    assert engine.process(_noisy(10), denoise=0.3, denoise_model=model).shape == (256, 256, 3)


def test_shipped_denoiser_is_calibrated(engine):
    spec = engine.model_spec("kwaflux-denoise")
    assert spec.noise_calibrated
    auto = engine.auto_strength([_noisy(25)])
    assert auto.strength == pytest.approx(25 / 50, rel=0.25)


@pytest.mark.parametrize("bad", ["automatic", "-0.1", 1.5, None])
def test_bad_strength_is_one_clear_line(engine, bad):
    with pytest.raises(KwafluxError, match="auto or between 0 and 1"):
        engine.process(np.zeros((8, 8, 3), np.uint8), denoise=bad)


def test_estimate_describes_itself():
    est = noise.NoiseEstimate(10 / 255, 2 / 255, 0.0)
    text = noise.AutoStrength(est, 0.2, "kwaflux-denoise").describe()
    assert text == "measured noise 10.0/255, compression 2.0/255 -> denoise 0.20 (kwaflux-denoise)"


def test_lossless_synthetic_clip_gets_no_denoise_and_block_codecs_are_seen(engine, tmp_path):
    from skimage import data

    from tests.support.media import encode_frames as _encoded
    from tests.support.media import index_frame

    synth = [index_frame(k, 320, 240) for k in range(5)]
    lossless = _encoded(synth, tmp_path / "s.mp4", "libx264", {"qp": "0"}, "yuv444p")
    assert engine.auto_strength(lossless).strength <= 0.01
    photo = data.astronaut()[100:340, 100:420]
    clean = [np.roll(photo, 3 * k, axis=1) for k in range(5)]
    for codec, opts, pix in (("cinepak", {}, "rgb24"), ("mpeg1video", {"b": "200k"}, "yuv420p")):
        damaged = _encoded(clean, tmp_path / f"{codec}.avi", codec, opts, pix)
        est = engine.auto_strength(damaged).estimate
        assert est.compression * 255 > 1.0, (codec, est.compression * 255)
