"""Input colour spaces: each transform against OpenColorIO on the same pixels, and the engine
giving a linear, log or ACES picture the quality of the same picture display-referred."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from kwaflux_ofx import Engine, settings
from kwaflux_ofx.engine import colour_curves as curves
from kwaflux_ofx.engine.colour_graph import graph
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.settings import ColourSpace

ocio = pytest.importorskip("PyOpenColorIO", reason="OpenColorIO is the reference ([test] extra)")
DISPLAY_NAME = "sRGB Encoded Rec.709 (sRGB)"
NOT_DISPLAY = [s for s in ColourSpace if s is not ColourSpace.DISPLAY]


@pytest.fixture(scope="module")
def config():
    return ocio.Config.CreateFromFile("ocio://studio-config-latest")


def _ocio(config, src: str, dst: str, rgb: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    config.getProcessor(src, dst).getDefaultCPUProcessor().applyRGB(out)
    return out


def _display_samples() -> np.ndarray:
    """Display-referred colours: the whole cube, a little above white and below black."""
    rng = np.random.default_rng(0)
    parts = [rng.uniform(0, 1, (3000, 3)), rng.uniform(1, 1.8, (300, 3))]
    parts.append(rng.uniform(-0.15, 0, (200, 3)))
    grey = np.linspace(0, 1, 256)[:, None].repeat(3, 1)
    return np.concatenate(parts + [grey]).astype(np.float32)


def _photo(size: int = 96) -> np.ndarray:
    from skimage import data

    return data.astronaut()[120 : 120 + size, 200 : 200 + size].astype(np.float32) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-20))


@pytest.mark.parametrize("space", list(ColourSpace), ids=lambda s: s.value)
def test_each_space_matches_ocio_both_ways_in_numpy_and_in_its_graph(config, space):
    disp = _display_samples()
    name = curves.SPACES[space].ocio_name
    want = _ocio(config, DISPLAY_NAME, name, disp)  # OCIO: display -> the space
    got = curves.from_display(disp, space)
    assert np.abs(got - want).max() < 5e-4, np.abs(got - want).max()
    back = curves.to_display(want, space)
    assert np.abs(back - _ocio(config, name, DISPLAY_NAME, want)).max() < 5e-4
    assert np.abs(back - disp).max() < 5e-4  # and it is the inverse
    for inverse, x, ref in ((False, want, back), (True, disp, got)):
        sess = ort.InferenceSession(graph(space, inverse), providers=["CPUExecutionProvider"])
        out = sess.run(["out"], {"rgb": x[None]})[0][0]  # H×W×3: one row of samples
        assert np.abs(out - ref).max() < 1e-5, (inverse, np.abs(out - ref).max())


@pytest.mark.parametrize(
    "space",
    [
        ColourSpace.LINEAR,
        ColourSpace.ACESCCT,
        ColourSpace.DAVINCI_INTERMEDIATE,
        ColourSpace.ARRI_LOGC3,
        ColourSpace.SONY_SLOG3,
    ],  # fmt: skip
    ids=lambda s: s.value,
)
def test_sr_of_a_converted_picture_is_the_display_result(config, space):
    img = _photo()
    engine = Engine(device="cpu", threads=1)
    ref = engine.process(img, scale=2)
    handed = _ocio(config, DISPLAY_NAME, curves.SPACES[space].ocio_name, img)  # as a host would
    out = engine.process(handed, scale=2, colour=space)
    seen = _ocio(config, curves.SPACES[space].ocio_name, DISPLAY_NAME, out)
    naive = _ocio(
        config, curves.SPACES[space].ocio_name, DISPLAY_NAME, engine.process(handed, scale=2)
    )
    # OCIO's float round trip (~1e-4) is all that separates them; fed as-is the model loses dBs.
    assert _psnr(seen, ref) > 60, _psnr(seen, ref)
    assert _psnr(naive, ref) < 45


def test_highlights_negatives_and_non_finite_samples_come_out_as_they_went_in():
    engine = Engine(device="cpu", threads=1)
    frame = np.full((48, 48, 3), 0.18, np.float32)
    frame[20:28, 20:28] = 4.0  # a highlight two stops over display white
    frame[4:8, 4:8] = (-0.05, 0.3, 0.1)  # ACEScg holds such negatives
    frame[40, 40, 0], frame[41, 10, 2] = np.nan, np.inf
    for space in (ColourSpace.LINEAR, ColourSpace.ACESCG):
        out = engine.process(frame, scale=2, colour=space)
        assert out[46:50, 46:50].min() > 3.5  # the highlight's middle, still far above 1
        assert np.nanmax(np.where(np.isinf(out), 0, out)) <= 4.0 + 1e-3  # no ringing above it
        assert out[10:14, 10:14, 0].max() < -0.03  # the negative survives
        nan, inf = np.isnan(out), np.isinf(out)
        assert nan.sum() == 4 and nan[80:82, 80:82, 0].all()
        assert inf.sum() == 4 and inf[82:84, 20:22, 2].all() and (out[82:84, 20:22, 2] > 0).all()


def test_display_is_the_engine_as_before_and_alpha_passes():
    engine = Engine(device="cpu", threads=1)
    img = _photo(64)
    assert np.array_equal(
        engine.process(img, scale=2), engine.process(img, scale=2, colour="display")
    )
    rgba = np.concatenate([img, np.full((64, 64, 1), 0.5, np.float32)], -1)
    rgba[..., :3] *= 0.5  # premultiplied, as OFX hands it over
    lin = rgba.copy()
    lin[..., :3] = curves.srgb_decode(curves._NumpyOps, img) * 0.5
    out = engine.process(lin, scale=2, colour=ColourSpace.LINEAR)
    ref = engine.process(rgba, scale=2)
    assert np.allclose(out[..., 3], 0.5, atol=1e-6)
    disp = curves.srgb_encode(curves._NumpyOps, out[..., :3] / 0.5)
    assert _psnr(disp, ref[..., :3] / 0.5) > 50


def test_auto_strength_on_linear_light_reads_the_display_noise():
    engine = Engine(device="cpu", threads=1)
    rng = np.random.default_rng(3)
    noisy = np.clip(_photo(128) + rng.normal(0, 10 / 255, (128, 128, 3)), 0, 1).astype(np.float32)
    lin = curves.srgb_decode(curves._NumpyOps, noisy).astype(np.float32)
    shown = engine.auto_strength([noisy]).strength
    read = engine.auto_strength([lin], colour=ColourSpace.LINEAR).strength
    assert shown > 0.05 and abs(read - shown) <= 0.1 * shown, (shown, read)
    naive = engine.auto_strength([lin]).strength
    assert abs(naive - shown) > 0.1 * shown  # read off the linear values it is another figure


def test_names_labels_and_bad_names():
    for space in ColourSpace:
        assert settings.check_colour_space(space.value) is space
        assert settings.check_colour_space(space.label) is space
    assert settings.check_colour_space("Auto") == settings.COLOUR_AUTO
    with pytest.raises(ValueError) as err:
        settings.check_colour_space("rec2020-pq")
    msg = str(err.value)
    assert "\n" not in msg and "'rec2020-pq'" in msg and "arri-logc3" in msg and "auto" in msg
    with pytest.raises(KwafluxError):
        Engine(device="cpu").process(_photo(16), scale=2, colour="auto")


def _entry_params(**extra) -> dict:
    base = {
        "effect": "sr", "scale": "2x", "denoise": 0.0, "sourceScale": 0.0, "splitView": False,
        "model": "", "tileSize": 0, "device": "CPU", "render_scale": (1.0, 1.0),
        "host_multires": True, "premultiplication": "OfxImageAlphaPremultiplied",
        "src_bounds": (0, 0, 48, 48), "dst_bounds": (0, 0, 96, 96), "window": (0, 0, 96, 96),
    }  # fmt: skip
    return base | extra


@pytest.mark.parametrize(
    "extra, space",
    [
        ({"host_name": "fr.inria.Natron"}, ColourSpace.LINEAR),
        ({"host_name": "DaVinciResolve"}, ColourSpace.DISPLAY),
        ({"host_name": "DaVinciResolve", "colourSpace": "DaVinci Intermediate (DaVinci Wide Gamut)"},
         ColourSpace.DAVINCI_INTERMEDIATE),
        ({"host_name": "fr.inria.Natron", "colourSpace": "Display (sRGB / Rec.709)"},
         ColourSpace.DISPLAY),
        ({"host_name": "some.host", "clipColourspace": "davinci_intermediate_widegamut"},
         ColourSpace.DAVINCI_INTERMEDIATE),
        ({"host_name": "some.host", "clipColourspace": "ofx_scene_linear"}, ColourSpace.LINEAR),
        ({"colourSpace": 5}, ColourSpace.DAVINCI_INTERMEDIATE),  # the menu's index
    ],
)  # fmt: skip
def test_the_effects_input_colour_space_auto_and_chosen(extra, space):
    from kwaflux_ofx.hosts.ofx import entry

    img = _photo(48)
    handed = curves.from_display(img, space)
    dst = np.full((96, 96, 3), -1.0, np.float32)
    entry.render(handed, dst, _entry_params(**extra))
    want = Engine(device="cpu").process(handed, scale=2, colour=space)
    np.testing.assert_allclose(dst, want, atol=1e-6)
    if space is not ColourSpace.DISPLAY:
        assert np.abs(dst - Engine(device="cpu").process(handed, scale=2)).max() > 1e-3


def test_the_effects_measure_noise_on_the_converted_picture():
    from kwaflux_ofx.hosts.ofx import entry

    rng = np.random.default_rng(5)
    noisy = np.clip(_photo(128) + rng.normal(0, 10 / 255, (128, 128, 3)), 0, 1).astype(np.float32)
    lin = curves.srgb_decode(curves._NumpyOps, noisy).astype(np.float32)
    p = {"effect": "denoise", "autoStrength": True, "strength": 0.5, "model": "", "tileSize": 0,
         "device": "CPU"}  # fmt: skip
    shown = entry.measure(noisy, p | {"host_name": "DaVinciResolve"})
    natron = entry.measure(lin, p | {"host_name": "fr.inria.Natron"})
    strength = [float(t.split("-> denoise ")[1].split()[0]) for t in (shown, natron)]
    assert strength[0] > 0.05 and abs(strength[1] - strength[0]) <= 0.1 * strength[0], strength
    # Read off the linear values as they are, the same frame would measure another noise.
    assert entry.measure(lin, p | {"host_name": "DaVinciResolve"}) != shown
    with pytest.raises(KwafluxError) as err:
        entry.render(noisy, noisy.copy(), _entry_params(colourSpace="Rec.2020 PQ"))
    assert "input colour space must be one of auto, display" in str(err.value)
