"""ofx_entry.render on numpy views laid out like host buffers, without the C++ shell."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine, KwafluxError
from kwaflux_ofx.hosts.ofx import entry as ofx_entry
from tests.support.ofx import sr_x2_model


@pytest.fixture(scope="module")
def sr_model(tmp_path_factory):
    return sr_x2_model(tmp_path_factory.mktemp("m") / "sr2.onnx")


def params(**extra) -> dict:
    base = {
        "effect": "sr", "scale": "2x", "denoise": 0.0, "sourceScale": 0.0, "splitView": False,
        "model": "", "tileSize": 0, "device": "CPU", "render_scale": (1.0, 1.0),
        "host_multires": True, "premultiplication": "OfxImageAlphaPremultiplied",
    }  # fmt: skip
    return base | extra


def host_view(h: int, w: int, c: int, fill: float = -1.0) -> np.ndarray:
    """A bottom-up buffer seen top-down, as the shell hands it over (negative row stride)."""
    return np.full((h, w, c), fill, np.float32)[::-1]


def test_render_window_inside_the_output_writes_only_the_window(sr_model):
    rng = np.random.default_rng(3)
    src = rng.random((6, 8, 4), dtype=np.float32)
    dst = host_view(12, 16, 4)
    # Output bounds (10, 20)-(26, 32); the host asks for x 14..22, y 24..30 only.
    p = params(
        model=str(sr_model),
        src_bounds=(5, 10, 13, 16),
        dst_bounds=(10, 20, 26, 32),
        window=(14, 24, 22, 30),
    )
    ofx_entry.render(src, dst, p)
    full = Engine(device="cpu").process(src, scale=2, sr_model=sr_model)
    # Top-down rows: y in [24, 30) is rows 32-30 .. 32-24 = 2..8; x 14..22 is columns 4..12.
    np.testing.assert_array_equal(dst[2:8, 4:12], full[2:8, 4:12])
    untouched = np.ones(dst.shape[:2], bool)
    untouched[2:8, 4:12] = False
    assert np.all(dst[untouched] == -1.0)


def test_window_beyond_the_source_is_zeroed_not_left_stale(sr_model):
    src = np.random.default_rng(4).random((4, 4, 3), dtype=np.float32)
    dst = host_view(10, 10, 3)
    p = params(
        model=str(sr_model), src_bounds=(0, 0, 4, 4), dst_bounds=(0, 0, 10, 10),
        window=(0, 0, 10, 10),
    )  # fmt: skip
    ofx_entry.render(src, dst, p)
    full = Engine(device="cpu").process(src, scale=2, sr_model=sr_model)
    np.testing.assert_array_equal(dst[2:, :8], full)  # y 0..8 is the bottom 8 rows
    assert np.all(dst[:2] == 0) and np.all(dst[:, 8:] == 0)


def test_bad_parameters_raise_clear_errors(sr_model):
    src = np.zeros((4, 4, 3), np.float32)
    dst = host_view(8, 8, 3)
    p = params(src_bounds=(0, 0, 4, 4), dst_bounds=(0, 0, 8, 8), window=(0, 0, 8, 8))
    with pytest.raises(KwafluxError, match="unknown device"):
        ofx_entry.render(src, dst, p | {"device": "TPU"})
    with pytest.raises(KwafluxError, match="strength must be auto or between 0 and 1"):
        ofx_entry.render(src, dst, p | {"model": str(sr_model), "denoise": 1.5})


def test_neighbours_go_to_the_temporal_path_within_the_radius(tmp_path, sr_model):
    from tests.support.onnx_models import noise_denoiser

    dn = noise_denoiser(tmp_path / "dn.onnx", meta={"noise_level": "rms"})
    rng = np.random.default_rng(6)
    # One picture under independent noise: the neighbours agree, so they count.
    base = np.linspace(0.2, 0.8, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    frames = [base + rng.normal(0, 0.04, base.shape).astype(np.float32) for _ in range(5)]
    src = frames[2]
    # Offsets as the shell passes them, in any order; 2 is beyond a radius of 1.
    neighbours = [(1, frames[3]), (-2, frames[0]), (-1, frames[1]), (2, frames[4])]
    p = params(effect="denoise", autoStrength=False, strength=0.5, model=str(dn), temporalRadius=1)
    p |= {"src_bounds": (0, 0, 8, 6), "dst_bounds": (0, 0, 8, 6), "window": (0, 0, 8, 6)}
    engine = Engine(device="cpu")
    kw = {"denoise": 0.5, "denoise_model": dn}
    dst = host_view(6, 8, 3)
    ofx_entry.render(src, dst, p, neighbours=neighbours)
    np.testing.assert_array_equal(dst, engine.process_window(frames[1:4], 1, **kw))
    assert not np.array_equal(dst, engine.process(src, **kw))
    # Radius 0, or no neighbour at all: the frame alone, exactly as process().
    for extra, nbs in (({"temporalRadius": 0}, neighbours), ({}, [])):
        dst = host_view(6, 8, 3)
        ofx_entry.render(src, dst, p | extra, neighbours=nbs)
        np.testing.assert_array_equal(dst, engine.process(src, **kw))
