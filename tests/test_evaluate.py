"""python/kwaflux_lab/eval: the metrics, evaluate.py's goal verdicts and how it edits docs/models.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kwaflux_lab.eval import common as cm
from kwaflux_lab.eval import denoise as evd
from kwaflux_lab.eval import evaluate as ev

ROOT = Path(__file__).resolve().parents[1]


def test_luma_and_psnr():
    white = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    assert np.allclose(cm.to_y(white), 235.0) and np.allclose(cm.to_y(black), 16.0)
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[..., :] = 110  # grey step of 10 -> luma step of 10 * 219/255
    expected = 10 * np.log10(255.0**2 / (10 * 219 / 255) ** 2)
    assert cm.psnr_y(a, b) == pytest.approx(expected, abs=1e-9)
    # The border is left out: damage only there does not count.
    c = a.copy()
    c[0, :] = 0
    assert cm.psnr_y(a, c, border=1) > 100
    assert cm.psnr_y(a, c) < 30


def test_write_section_replaces_only_between_markers(tmp_path):
    doc = tmp_path / "models.md"
    doc.write_text("# Models\n\nintro by someone else\n")
    ev.write_section(doc, "first table")
    text = doc.read_text()
    assert text.startswith("# Models\n\nintro by someone else\n")
    assert "<!-- eval -->\nfirst table\n<!-- /eval -->" in text
    doc.write_text(text + "\n## Later section\nkept\n")
    ev.write_section(doc, "second table")
    text = doc.read_text()
    assert "first table" not in text and "second table" in text
    assert text.count("<!-- eval -->") == 1
    assert text.endswith("## Later section\nkept\n")
    assert "intro by someone else" in text


def test_goal_verdicts_follow_the_figures():
    row = cm.Row
    results = {
        "sr2": [
            row("bicubic", 30.0, 0.9),
            row("kwaflux-sr-x2 (ours)", 32.0, 0.93),
            row("waifu2x photo x2", 31.5, 0.92),
        ],
        "compute": {"kwaflux-sr-x2": 80.0, "waifu2x photo x2": 1000.0},
        "speed": {"kwaflux-sr-x2": 500.0, "waifu2x photo x2": 2000.0},
        "sr4": [row("bicubic", 25.0, 0.8), row("kwaflux-sr-x4 (ours)", 26.6, 0.82)],
        "sigma25": [
            row(evd.BM3D, 29.0, 0.8),
            row("kwaflux-denoise (ours, matching strength)", 29.5, 0.85),
        ],
        "sigma5": [
            row(evd.BM3D, 38.0, 0.95),
            row("kwaflux-denoise (ours, matching strength)", 37.6, 0.94),
        ],
        "codec:x264 CRF 35": [
            row(evd.BM3D, 31.0, 0.9),
            row("kwaflux-denoise (ours, auto)", 31.2, 0.9),
        ],
        "curve": [(0.0, 25.0), (0.5, 12.0), (1.0, 3.0)],
        "auto": [
            {"sigma": 0, "strength": [0.0, 0.04], "worst_error": None},
            {"sigma": 5, "strength": [0.1, 0.1], "worst_error": 0.12},
            {"sigma": 50, "strength": [0.9, 0.95], "worst_error": 0.2},
        ],
        "texture": {
            "methods": [evd.BM3D, "ours, auto"],
            evd.BM3D: {5: 0.9, 10: 0.8},
            "ours, auto": {5: 0.95, 10: 0.7},
        },
    }
    results["speed"][evd.BM3D] = 30000.0
    results["speed"]["kwaflux-denoise"] = 500.0
    lines = "\n".join(ev.goals(results))
    assert "x2 >= bicubic + 2.5 dB (ours +2.00 dB): **missed**" in lines
    assert "x4 >= bicubic + 1.5 dB (ours +1.60 dB): met" in lines
    assert (
        "(+0.50 dB) at <= 1/5 of its compute (ours: 0.080 x its MACs, 0.250 x its time): met"
        in lines
    )
    assert (
        "denoise >= reference BM3D at every sigma 5-50 and on codec damage (sigma 5 -0.40 dB, "
        "sigma 25 +0.50 dB, x264 CRF 35 (auto) +0.20 dB): **missed**" in lines
    )
    assert ">= 50x BM3D's speed (60x): met" in lines
    assert (
        "within +-25% of the true sigma 5-50 (worst 20%), nearly 0 on clean input (at most 0.04): met"
        in lines
    )
    assert "(sigma 5: 0.950 vs 0.900, sigma 10: 0.700 vs 0.800): **missed**" in lines
    assert "strength monotone (more strength, less noise left): met" in lines
    results["curve"] = [(0.0, 25.0), (0.5, 12.0), (1.0, 14.0)]
    assert "strength monotone (more strength, less noise left): **missed**" in "\n".join(
        ev.goals(results)
    )


def test_texture_kept_sees_smearing_not_noise():
    from scipy.ndimage import gaussian_filter

    crop = evd.texture_crops()["gravel"]
    assert evd.texture_kept(crop, crop) == pytest.approx(1.0)
    smeared = gaussian_filter(crop.astype(np.float64), (1.5, 1.5, 0))
    assert evd.texture_kept(crop, smeared) < 0.5
    rng = np.random.default_rng(0)
    noisy = crop + rng.normal(0, 15, crop.shape)
    assert evd.texture_kept(crop, noisy) == pytest.approx(1.0, abs=0.05)


def test_codec_damage_is_real():
    clean = evd.clip_frames(128)
    assert len(clean) == 2 and clean[0].shape == (128, 128, 3)
    for _, codec, opts in evd.CODEC_DAMAGE:
        damaged = evd.codec_damage(clean, codec, opts)
        rms = np.sqrt(np.mean((damaged[0].astype(float) - clean[0]) ** 2))
        assert 1.0 < rms < 30.0, codec


def test_noise_estimate_grows_with_noise():
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert evd.noise_level(flat) == 0.0
    levels = [evd.noise_level(cm.gaussian_noise(flat, s, seed=1)) for s in (5, 15, 30)]
    assert levels[0] < levels[1] < levels[2]
    # Equal RGB noise of sigma 15 leaves about 15 * 0.67 on luma (BT.601 weights).
    assert levels[1] == pytest.approx(15 * np.sqrt(0.299**2 + 0.587**2 + 0.114**2), rel=0.15)


def test_sr_video_flicker_sees_frame_to_frame_changes_not_motion():
    """Upscales that follow a moving picture score near the truth's 1; the same upscales with
    fresh noise on each frame score well above it."""
    pytest.importorskip("cv2")
    yy, xx = np.mgrid[0:96, 0:120].astype(np.float64)
    frames = {}
    for t in range(5):  # a smooth texture panning 1.5 px a frame
        x = xx + 1.5 * t
        pic = 128 + 60 * np.sin(x / 7.0) * np.cos(yy / 9.0) + 30 * np.sin((x + yy) / 13.0)
        frames[f"pan #{t}"] = np.clip(np.rint(np.stack([pic] * 3, -1)), 0, 255).astype(np.uint8)[
            :, 12:108
        ]
    rng = np.random.default_rng(0)

    def lanczos(lr):
        return cm.to_u8(ev.resize(lr / 255.0, lr.shape[0] * 2, lr.shape[1] * 2, "lanczos3"))

    def noisy(lr):
        up = lanczos(lr) / 255.0
        return cm.to_u8(up + rng.normal(0, 4 / 255.0, up.shape))

    outputs = {
        name: {k: fn(ev.area_down(f, 2)) for k, f in frames.items()}
        for name, fn in {"still": lanczos, "noisy": noisy}.items()
    }
    ratios = ev.sr_video_flicker(frames, outputs)
    assert 0.6 < ratios["still"]["pan"] < 1.5
    assert ratios["noisy"]["pan"] > 1.5 * ratios["still"]["pan"]
    assert ev.flicker_table(ratios)[2].startswith("| still | ")


def test_sr_video_detail_tells_oversharpening_from_softness():
    """The truth scores 1; Lanczos of its area downscale keeps less of its high-pass; the same
    upscale with an unsharp mask on top keeps more than the truth has."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    frames = {}
    for t in range(3):
        pic = gaussian_filter(rng.uniform(0, 255, (64, 64)), 1.2) * 3 - 250
        frames[f"tex #{t}"] = np.clip(np.rint(np.stack([pic] * 3, -1)), 0, 255).astype(np.uint8)

    def lanczos(lr):
        return ev.resize(lr / 255.0, lr.shape[0] * 2, lr.shape[1] * 2, "lanczos3")

    def sharpened(lr):
        up = lanczos(lr)
        return cm.to_u8(up + 2.5 * (up - gaussian_filter(up, (1.5, 1.5, 0))))

    outputs = {
        "truth": dict(frames),
        "lanczos": {k: cm.to_u8(lanczos(ev.area_down(f, 2))) for k, f in frames.items()},
        "sharpened": {k: sharpened(ev.area_down(f, 2)) for k, f in frames.items()},
    }
    detail = ev.sr_video_detail(frames, outputs, border=2)
    assert detail["truth"]["tex"] == pytest.approx(1.0)
    assert detail["lanczos"]["tex"] < 0.8
    assert detail["sharpened"]["tex"] > 1.2
    # The table's detail columns beside given flicker figures (measuring flicker needs OpenCV's
    # optical flow, the eval extra; the flicker test above covers it).
    table = ev.flicker_table({m: {"tex": 1.0} for m in outputs}, detail)
    assert "detail / truth, tex" in table[0]
    assert table[3] == f"| lanczos | 1.000 | {detail['lanczos']['tex']:.3f} |"


def test_footage_frames_are_the_held_out_fifth_of_each_clip(monkeypatch, tmp_path):
    """eval/footage.py scores SR on the frames train/sr.py keeps out of training: the last fifth
    of each clip, consecutive, centre-cropped; a clip too small for the crop is left out."""
    from kwaflux_lab.eval import footage
    from kwaflux_lab.sets import real_video

    big, small = tmp_path / "big.mp4", tmp_path / "small.mp4"
    big.write_bytes(b"x")
    small.write_bytes(b"x")
    clips = (
        real_video.RealClip("p", str(big), "CC0-1.0", "a", 2),
        real_video.RealClip("p", str(small), "CC0-1.0", "a", 2),
    )
    sizes = {str(big): 200, str(small): 100}

    def read_clip(path, shrink, max_frames):
        assert shrink == 1  # half the temporal model's factor, as the SR trainer reads it
        n, side = 50, sizes[str(path)]
        return (
            np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, side, side, 3))
        ).astype(np.uint8)

    monkeypatch.setattr(real_video, "CLIPS", clips)
    monkeypatch.setattr(real_video, "installed", lambda c: Path(c.path))
    monkeypatch.setattr(real_video, "read_clip", read_clip)
    got = footage.held_out_frames(side=160, frames=4)
    assert list(got) == [f"big.mp4 #{i}" for i in range(4)]
    assert [int(f[0, 0, 0]) for f in got.values()] == [40, 41, 42, 43]  # frames 40..49 held out
    assert all(f.shape == (160, 160, 3) for f in got.values())


def test_lens_down_loses_detail_that_area_down_keeps():
    """eval/footage.py's lens-blurred set: same size as the area downscale, with less of a fine
    pattern left in it, and flat areas untouched."""
    from kwaflux_lab.eval import footage

    yy, xx = np.mgrid[0:64, 0:64]
    stripes = np.where((xx // 2) % 2 == 0, 40, 200).astype(np.uint8)
    img = np.repeat(stripes[..., None], 3, -1)
    sharp, soft = ev.area_down(img, 2), footage.lens_down(img, 2)
    assert soft.shape == sharp.shape == (32, 32, 3)
    contrast = [float(np.std(a[4:-4, 4:-4, 0].astype(np.float64))) for a in (sharp, soft)]
    assert contrast[1] < 0.8 * contrast[0]
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(footage.lens_down(flat, 2), ev.area_down(flat, 2))


def test_native_sharpening_scores_against_lanczos():
    """eval/footage.py's native figure: Lanczos-3 scores 1 by definition, bicubic (softer)
    below it, and the shipped x2 model, which restores edges, above it."""
    from scipy.ndimage import gaussian_filter

    from kwaflux_lab.eval import footage
    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import resolve_model

    rng = np.random.default_rng(2)
    frames = {}
    for t in range(2):
        pic = gaussian_filter(rng.uniform(0, 255, (48, 48)), 1.0) * 3 - 250
        frames[f"tex #{t}"] = np.clip(np.rint(np.stack([pic] * 3, -1)), 0, 255).astype(np.uint8)
    models = {"ours": str(resolve_model("kwaflux-sr-x2"))}
    got = footage.native_sharpening(frames, 2, models, Engine(device="cpu", threads=1))
    assert set(got) == {"bicubic", "Lanczos-3", "ours"}
    assert got["Lanczos-3"] == pytest.approx(1.0)
    assert got["bicubic"] < 0.95 and got["ours"] > 1.05
