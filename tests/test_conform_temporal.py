"""--temporal-radius in upscale and conform: each output frame is the engine's temporal render of
the media frames around it, neighbours taken from beyond the rendered range where the media has
them; radius 0 is the frame-by-frame render."""

from __future__ import annotations

import numpy as np
import pytest

from kwaflux_ofx import Engine
from kwaflux_ofx.cli import main
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from kwaflux_ofx.media.stills import read_image
from tests.support.media import make_video
from tests.support.onnx_models import noise_denoiser

STRENGTH = 0.5


def _noisy_picture(k: int, w: int = 64, h: int = 48) -> np.ndarray:
    """The same picture every frame under fresh noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(xx * 0.3) * np.cos(yy * 0.2)
    rng = np.random.default_rng(100 + k)
    img = np.clip(base[..., None] + rng.normal(0, 12, (h, w, 3)), 0, 255)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    model = noise_denoiser(d / "dn.onnx", meta={"noise_level": "rms"})
    path = make_video(d / "src.mkv", 12, codec="ffv1", size=(64, 48), frame_fn=_noisy_picture)
    info = probe(path)
    frames = [f for _, f in read_frames(info, 0, info.frames)]
    return path, model, frames


def _upscale(clip, out, radius: int, start: int, end: int) -> list[np.ndarray]:
    path, model, _ = clip
    argv = ["-q", "upscale", str(path), str(out), "--scale", "1", "--codec", "png"]
    argv += ["--denoise", str(STRENGTH), "--denoise-model", str(model)]
    argv += ["--temporal-radius", str(radius), "--start", str(start), "--end", str(end)]
    assert main(argv) == 0
    imgs = [read_image(p)[0] for p in sorted(out.iterdir()) if p.suffix == ".png"]
    # The PNG sequence is 16-bit: 8-bit frames are stored exactly, times 257.
    assert all(i.dtype == np.uint16 and not (i % 257).any() for i in imgs)
    return [(i // 257).astype(np.uint8)[..., :3] for i in imgs]


@pytest.mark.parametrize("start,end", [(4, 9), (0, 3), (9, 12)])
def test_every_frame_is_the_engines_temporal_render(clip, tmp_path, start, end):
    _, model, frames = clip
    got = _upscale(clip, tmp_path / "out", 2, start, end)
    assert len(got) == end - start
    engine = Engine(device="cpu")
    for k, img in enumerate(got, start=start):
        lo, hi = max(0, k - 2), min(len(frames), k + 3)  # beyond the range, within the media
        want = engine.process_window(frames[lo:hi], k - lo, denoise=STRENGTH, denoise_model=model)
        np.testing.assert_array_equal(img, want, err_msg=f"frame {k}")


def test_radius_zero_is_frame_by_frame(clip, tmp_path):
    _, model, frames = clip
    got = _upscale(clip, tmp_path / "out", 0, 2, 5)
    engine = Engine(device="cpu")
    for k, img in enumerate(got, start=2):
        want = engine.process(frames[k], denoise=STRENGTH, denoise_model=model)
        np.testing.assert_array_equal(img, want)


def test_temporal_default_and_bad_radius(clip, tmp_path, capsys):
    from kwaflux_ofx.conform.plan import ConformSettings

    assert ConformSettings(denoise=0.3).temporal_radius == 2
    assert ConformSettings(denoise=0.0).temporal_radius == 0
    path, model, _ = clip
    rc = main(["-q", "upscale", str(path), str(tmp_path / "o"), "--codec", "png",
               "--temporal-radius", "9"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--temporal-radius must be a whole number from 0 to 3" in err[0]
