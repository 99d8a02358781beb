"""The effects' *Input colour space* through the real bundle in the test host: Auto as Natron,
as an OFX 1.5 colour-managed host, as Resolve, and chosen by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.engine import colour_curves as curves
from kwaflux_ofx.hosts.ofx import colour as ofx_colour
from kwaflux_ofx.settings import ColourSpace
from tests.support.ofx import run_host, sr_x2_model

SR = "org.kwaflux.SuperResolution"


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    return sr_x2_model(tmp_path_factory.mktemp("m") / "sr2.onnx")


def _scene(space: ColourSpace) -> np.ndarray:
    """A display-referred RGBA picture (opaque) handed over in `space`."""
    rng = np.random.default_rng(4)
    disp = rng.random((12, 16, 3), dtype=np.float32)
    rgb = curves.from_display(disp, space)
    return np.concatenate([rgb, np.ones((12, 16, 1), np.float32)], -1).astype(np.float32)


def _render(tmp_path, img, sr, *flags, params=()):
    np.save(tmp_path / "in.npy", img)
    args = ["--plugin", SR, "--input", str(tmp_path / "in.npy"), "--output",
            str(tmp_path / "out.npy"), "--param", f"model={sr}"]  # fmt: skip
    for p in params:
        args += ["--param", p]
    proc = run_host(args + list(flags), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, np.load(tmp_path / "out.npy")


@pytest.mark.parametrize(
    "flags, params, space",
    [
        (("--natron",), (), ColourSpace.LINEAR),
        (("--resolve", "--multires", "1"), (), ColourSpace.DISPLAY),
        (("--resolve", "--multires", "1"),
         ("colourSpace=DaVinci Intermediate (DaVinci Wide Gamut)",),
         ColourSpace.DAVINCI_INTERMEDIATE),
        (("--colour-managed", "davinci_intermediate_widegamut"), (),
         ColourSpace.DAVINCI_INTERMEDIATE),
        (("--colour-managed", "lin_rec709_srgb"), (), ColourSpace.LINEAR),
    ],
    ids=["natron-auto", "resolve-auto", "resolve-chosen", "ofx15-di", "ofx15-linear"],
)  # fmt: skip
def test_auto_and_chosen_spaces_render_as_the_engine_does(tmp_path, sr, flags, params, space):
    img = _scene(space)
    proc, out = _render(tmp_path, img, sr, *flags, params=params)
    want = Engine(device="cpu").process(img, scale=2, sr_model=sr, colour=space)
    np.testing.assert_allclose(out, want, atol=2e-6)
    if space is not ColourSpace.DISPLAY:
        # What the effects did before: the values fed to the models as they came.
        plain = Engine(device="cpu").process(img, scale=2, sr_model=sr)
        assert np.abs(out - plain).max() > 1e-3
    if "--colour-managed" in flags:
        asked = next(ln for ln in proc.stdout.splitlines() if ln.startswith("preferred"))
        assert asked.split(":")[1].split() == list(ofx_colour.PREFERRED)
