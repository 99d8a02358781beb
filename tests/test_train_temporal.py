"""The multi-frame denoiser's trainer: real motion, alignment and fusion, a start equal to the
shipped temporal path, resuming."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the model factory needs the [train] extra")
pytest.importorskip("onnxruntime")


# The committed checkpoints (python/checkpoints/).
CHECKPOINTS_DIR = Path(__file__).resolve().parents[1] / "python" / "checkpoints"


@pytest.fixture(scope="module")
def mods():
    """The factory's modules (python/ is on the suite's path: pyproject.toml)."""
    from kwaflux_lab.sets import temporal_data
    from kwaflux_lab.train import common, nets, rep, temporal

    return argparse.Namespace(
        nets=nets, rep=rep, temporal_data=temporal_data, common=common, temporal=temporal
    )


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A photo-like uint8 patch: smoothed colour noise at several scales, so block matching has
    something to lock on to everywhere."""
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal((side, side, 3))
    img = sum(gaussian_filter(noise, (s, s, 0)) * s for s in (1.0, 2.5, 6.0))
    img = 0.5 + 0.2 * img / img.std()
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def test_pure_translation_is_moved_and_aligned_back(mods):
    td = mods.temporal_data
    rng = np.random.default_rng(4)
    patch = _texture(rng, 128)
    # t = -2..2, (dy, dx). No shift is 2 px modulo 4: the shipped alignment ends its search at
    # +-1 px around a 4 px block level, so it cannot land on those (it misses them by a pixel).
    shifts = ((-9, 7), (-3, 4), (0, 0), (4, -3), (8, -5))
    motion = td.Motion(shifts)
    frames = td.render(patch, td.FRAME, motion)
    room = (128 - td.FRAME) // 2
    for (dy, dx), f in zip(shifts, frames, strict=True):
        # Each frame is the patch seen through a moved window: an exact shifted crop.
        assert np.array_equal(
            f, patch[room + dy : room + dy + td.FRAME, room + dx : room + dx + td.FRAME]
        )

    sigma = 10.0 / 255.0
    noisy = frames.astype(np.float32) / 255.0 + sigma * rng.standard_normal(frames.shape).astype(
        np.float32
    )
    ordered = td.in_engine_order(np.clip(noisy, 0.0, 1.0))
    aligned = td.align(td.align_session(), ordered, sigma)
    clean_centre = frames[td.RADIUS].astype(np.float32) / 255.0
    assert np.array_equal(aligned[0], ordered[0])  # the centre goes through untouched
    inner = np.s_[16:-16, 16:-16]  # away from the border, where moved content has no match
    for slot in range(1, len(td.ORDER)):
        dy, dx = shifts[td.ORDER[slot] + td.RADIUS]
        # The neighbour moved back by its shift: what a perfect alignment returns.
        ideal = np.roll(ordered[slot], (dy, dx), axis=(0, 1))
        assert not (ordered[slot] == ideal).all(-1)[inner].any()
        right = (aligned[slot] == ideal).all(-1)[inner].mean()
        # The shipped search misses by a pixel in places even at this noise (which training
        # must see); most pixels are exact.
        assert right > 0.35, (td.ORDER[slot], right)
        before = np.abs(ordered[slot] - clean_centre)[inner].mean()
        after = np.abs(aligned[slot] - clean_centre)[inner].mean()
        assert after < 0.5 * before, (td.ORDER[slot], before, after)


def test_window_damage_is_one_kind_with_fresh_noise_per_frame(mods):
    td = mods.temporal_data
    rng = np.random.default_rng(9)
    patch = _texture(rng, 128)
    still = td.render(patch, td.FRAME, td.Motion(tuple((0, 0) for _ in range(5))))
    independent = 0
    for seed in range(8):
        noisy, clean, level = td.damage(np.random.default_rng(seed), still)
        res = noisy.astype(np.float32) - clean.astype(np.float32)
        rms = np.sqrt((res**2).mean(axis=(1, 2, 3))) / 255.0
        assert abs(level - rms[td.RADIUS]) < 1e-6
        # One kind and level of damage for the whole window, not one per frame.
        assert rms.max() <= 1.5 * rms.min() + 2.0 / 255.0, rms
        if rms.min() > 0.01:
            corr = np.corrcoef(res[0].ravel(), res[1].ravel())[0, 1]
            independent += corr < 0.5
    assert independent >= 3


def test_window_shapes_and_training_set_round_trip(mods, tmp_path):
    td = mods.temporal_data
    rng = np.random.default_rng(1)
    tiles = np.stack([_texture(rng, 128) for _ in range(3)])
    photos = [_texture(rng, 300)]
    out = td.build(tmp_path / "w.npz", count=3, seed=2, tiles=tiles, photos=photos, real=[])
    w = td.load(out)
    assert w["noisy"].shape == (3, 5, td.CROP, td.CROP, 3) and w["noisy"].dtype == np.uint8
    assert w["clean"].shape == (3, td.CROP, td.CROP, 3) and w["level"].shape == (3,)
    assert np.all(w["level"] >= 0) and np.all(w["level"] < 0.5)
    assert w["fused"].shape == (3, td.CROP, td.CROP, 3) and w["fused"].dtype == np.float16
    assert w["level_map"].shape == (3, td.CROP, td.CROP)
    for lv, lmap in zip(w["level"], w["level_map"].astype(np.float32), strict=True):
        # The fusion keeps the centre at weight 1 and adds up to four more: the noise left is
        # between the level alone and a fifth of its variance.
        assert lmap.max() <= lv * 1.001 + 1e-3 and lmap.min() >= lv / np.sqrt(5) - 1e-3


def test_fast_pans_move_far_and_reach_the_frame_edge(mods):
    """bikes.mp4 pans 17.6 px a frame: the pans move 8-24 px a frame (less where the path had
    to shrink to stay inside the patch)."""
    td = mods.temporal_data
    rng = np.random.default_rng(3)
    photos = [_texture(rng, 400)]
    speeds = []
    for _ in range(12):
        patch = td.pan_patch(rng, photos)
        assert patch.shape == (td.PAN_PATCH, td.PAN_PATCH, 3)
        frames, motion = td.clip(rng, patch, None, td.FRAME, pan=True)
        assert frames.shape == (5, td.FRAME, td.FRAME, 3)
        step = np.diff(np.asarray(motion.shifts), axis=0)
        speeds.append(np.hypot(*step.T).mean())
        dy, dx = (round(v) for v in motion.shifts[td.RADIUS + 1])
        assert abs(dy) + abs(dx) >= 4
    assert min(speeds) > 4.0 and max(speeds) > 12.0, speeds
    session, fusion = td.align_session(), td.fusion_session()
    w = td.make_window(rng, td.pan_patch(rng, photos), photos[0][:128, :128], session, fusion,
                       pan=True)  # fmt: skip
    assert w["noisy"].shape == (5, td.CROP, td.CROP, 3)
    assert w["clean"].shape == (td.CROP, td.CROP, 3)


def _randomised(nets, rep: bool):
    single = nets.NoiseMapDenoiser(16, 6, rep=rep)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in single.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return single.eval(), g


def test_temporal_model_starts_as_the_fusion_path(mods):
    nets = mods.nets
    for rep in (True, False):
        single, g = _randomised(nets, rep)
        temporal = nets.TemporalDenoiser.from_fusion(single).eval()
        fused = torch.rand(2, 3, 37, 30, generator=g)  # odd sizes, as the engine's tiles
        frames = torch.rand(2, 5, 3, 37, 30, generator=g)
        level = 0.2 * torch.rand(2, 1, 37, 30, generator=g)
        with torch.no_grad():
            a = single(fused, level)
            b = temporal(fused, frames, level)
            # The aligned frames really are inputs, with zero weight at the start.
            c = temporal(fused, torch.rand(2, 5, 3, 37, 30), level)
            d = temporal(fused, frames, level.flip(-1))
        assert 0.05 < (a - fused).abs().max() < 5.0  # the model does something
        assert (a - b).abs().max() < 1e-5 and (a - c).abs().max() < 1e-5
        assert (d - b).abs().max() > 1e-3  # and the level map is read per pixel
        assert isinstance(temporal.head[0], mods.rep.RepConv3x3) == rep


@pytest.fixture(scope="module")
def shipped_start(mods, tmp_path_factory):
    """denoise.pt, the temporal model from it, its ONNX export and a window of
    generated texture."""
    path = CHECKPOINTS_DIR / "denoise.pt"
    if not path.exists():
        pytest.skip("no single-frame checkpoint")
    td, tt = mods.temporal_data, mods.temporal
    single, info = tt.load_single(path, plain=False)
    temporal = mods.nets.TemporalDenoiser.from_fusion(single).eval()
    onnx_path = tmp_path_factory.mktemp("dn") / "dn.onnx"
    _export_denoiser(mods.rep.deploy(single).eval(), info["max_noise"], onnx_path)

    rng = np.random.default_rng(21)
    tiles = np.stack([_texture(rng, 128) for _ in range(2)])
    frames, _ = td.clip(rng, tiles[0], tiles[1], td.FRAME)
    noise = 20.0 * rng.standard_normal(frames.shape)
    noisy = np.clip(np.rint(frames + noise), 0, 255).astype(np.uint8)  # time order
    return argparse.Namespace(
        single=single, temporal=temporal, onnx=onnx_path, noisy=noisy, max_noise=info["max_noise"]
    )


def _export_denoiser(model, max_noise: float, path: Path) -> None:
    """The single-frame model as kwaflux_lab.train.export ships it (metadata the engine reads)."""
    import onnx

    example = (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64))
    dyn = {2: "height", 3: "width"}
    torch.onnx.export(model, example, str(path), input_names=["input", "noise_level"],
                      output_names=["output"], opset_version=17, dynamo=False,
                      dynamic_axes={n: dyn for n in ("input", "noise_level", "output")})  # fmt: skip
    m = onnx.load(str(path))
    meta = {"kind": "denoise", "scale": "1", "channels": "3", "range": "0-1",
            "noise_input": "noise_level", "max_noise": f"{max_noise:.6f}", "noise_level": "rms",
            "receptive_field": str(model.receptive_field), "name": "dn"}  # fmt: skip
    for k, v in meta.items():
        m.metadata_props.add(key=f"kwaflux.{k}", value=v)
    onnx.save(m, str(path))


def _engine_inputs(td, start, sigma: float):
    """The window's fused frame, aligned frames and level at `sigma`, as TemporalJob makes them."""
    ordered = td.in_engine_order(start.noisy)
    fused, level = td.fuse(td.fusion_session(), ordered, sigma)
    aligned = td.align(td.align_session(), ordered, sigma)
    t = torch.from_numpy
    return (
        t(fused.transpose(2, 0, 1).copy())[None],
        t(aligned.transpose(0, 3, 1, 2).copy())[None],
        t(level.copy())[None, None],
    )


def test_shipped_checkpoint_starts_as_the_fusion_path(mods, shipped_start):
    fused, aligned, level = _engine_inputs(mods.temporal_data, shipped_start, 20.0 / 255.0)
    assert 0.2 < float(level.min() * 255) and float(level.max() * 255) <= 20.01
    with torch.no_grad():
        ref = shipped_start.single(fused, level)
        out = shipped_start.temporal(fused, aligned, level)
    assert (ref - fused).abs().mean() > 2e-3  # the denoiser does work on this window
    assert (out - ref).abs().max() < 1e-4


def test_shipped_checkpoint_starts_as_the_engine(mods, shipped_start):
    from kwaflux_ofx import Engine
    from kwaflux_ofx.engine.spec import ModelSpec

    td = mods.temporal_data
    max_noise = ModelSpec.from_onnx(shipped_start.onnx).max_noise  # as the metadata rounds it
    strength = (20.0 / 255.0) / max_noise
    engine = Engine(device="cpu", threads=1)
    window = list(shipped_start.noisy)
    # The black-level step after the model (engine/blacks.py) is not the model's: left out.
    got = engine.process_window(
        window,
        td.RADIUS,
        denoise=strength,
        denoise_model=str(shipped_start.onnx),
        keep_levels=False,
    )
    # The sigma TemporalJob passes the fusion: strength * max_noise.
    fused, aligned, level = _engine_inputs(td, shipped_start, strength * max_noise)
    with torch.no_grad():
        out = shipped_start.temporal(fused, aligned, level)[0].permute(1, 2, 0).numpy()
    want = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    # onnxruntime against torch (~1e-6) only moves values across an 8-bit rounding edge.
    assert diff.max() <= 2, diff.max()
    assert (diff > 0).mean() < 0.01


def _tiny_run(mods, tmp_path, monkeypatch, seed: int, count: int):
    """A tiny training set-up in tmp_path: checkpoints there, a patches file of texture, `count`
    windows, and a small single-frame checkpoint (step 7) to start from. Returns the windows."""
    td, tc, nets = mods.temporal_data, mods.common, mods.nets
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(tc, "CHECKPOINTS_DIR", tmp_path / "ck")
    tc.CHECKPOINTS_DIR.mkdir()
    tiles = np.stack([_texture(rng, 128) for _ in range(4)])
    val = np.stack([_texture(rng, 192) for _ in range(2)])
    # Its own pictures for the fast pans too: the trainer never reaches for installed photos.
    pan = np.stack([_texture(rng, 320) for _ in range(2)])
    np.savez(tmp_path / "patches.npz", train=tiles, val=val, pan=pan)
    windows = td.build(
        tmp_path / "w.npz", count=count, seed=1, tiles=tiles, photos=list(pan), real=[]
    )
    single = nets.NoiseMapDenoiser(8, 4, rep=True)
    config = {"arch": "NoiseMapDenoiser", "channels": 8, "convs": 4, "rep": True,
              "max_noise": 50 / 255}  # fmt: skip
    state = single.state_dict()
    torch.save({"config": config, "ema": state, "model": state, "step": 7}, tmp_path / "dn.pt")
    return windows


def _tiny_argv(tmp_path, windows) -> list[str]:
    return ["--windows", str(windows), "--patches", str(tmp_path / "patches.npz"),
            "--init", str(tmp_path / "dn.pt"), "--batch", "2", "--hours", "1"]  # fmt: skip


def test_training_smoke_run_resumes(mods, tmp_path, monkeypatch):
    windows = _tiny_run(mods, tmp_path, monkeypatch, seed=3, count=4)
    argv = [*_tiny_argv(tmp_path, windows), "--stint-steps", "10", "--warmup", "5"]
    mods.temporal.main(argv)
    first = torch.load(tmp_path / "ck" / "temporal.pt", weights_only=False)
    assert first["step"] == 10 and first["config"]["init"]["step"] == 7
    mods.temporal.main(argv)
    second = torch.load(tmp_path / "ck" / "temporal.pt", weights_only=False)
    assert second["step"] == 20  # resumed, not restarted
    assert second["config"] == first["config"]
    moved = [k for k in first["model"] if not torch.equal(first["model"][k], second["model"][k])]
    assert moved  # the second stint trained
    log = [
        json.loads(line)
        for line in (tmp_path / "ck" / "temporal.log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log] == [0, 10, 20]
    for key in ("t25_in", "t25_single", "t25_fusion", "t25_out", "t15_in", "t15_single", "t15_out"):
        assert np.isfinite(log[-1][key]), key
    # Before training the model is the shipped path: the temporal column reads the fusion's.
    for s in (25, 15):
        assert abs(log[0][f"t{s}_out"] - log[0][f"t{s}_fusion"]) <= 0.001, log[0]
        assert log[0][f"t{s}_fusion"] != log[0][f"t{s}_single"]
    assert any(r["t25_out"] != log[0]["t25_out"] for r in log[1:])  # and training moves it
    # The baselines are measured once and carried along.
    assert log[0]["t25_single"] == log[2]["t25_single"]
    assert log[0]["t25_fusion"] == log[2]["t25_fusion"]


def test_subpixel_translation_interpolates_and_alignment_cannot_copy_it(mods):
    td = mods.temporal_data
    # A ramp of 2 levels per pixel: a half-pixel move lands exactly between two samples.
    ramp = np.tile((2 * np.arange(128)).astype(np.uint8)[None, :, None], (128, 1, 3))
    half = td.Motion(tuple((0.0, 0.5 * t) for t in range(-td.RADIUS, td.RADIUS + 1)))
    frames = td.render(ramp, td.FRAME, half)
    room = (128 - td.FRAME) // 2
    x = np.arange(td.FRAME)
    for i, t in enumerate(range(-td.RADIUS, td.RADIUS + 1)):
        # The cubic spline reproduces a linear ramp: 2 * (room + x + t / 2), odd levels at
        # odd times, which no whole-pixel crop of the ramp contains.
        want = 2 * (room + x) + t
        assert np.array_equal(frames[i, 50, 8:-8, 0], want[8:-8]), t
    assert np.array_equal(frames[:, :, :, 0], frames[:, :, :, 2])

    rng = np.random.default_rng(4)
    patch = _texture(rng, 128)
    shifts = ((-8.5, 6.5), (-4.25, 3.5), (0.0, 0.0), (3.5, -4.5), (8.5, -7.25))
    clean = td.render(patch, td.FRAME, td.Motion(shifts))
    ordered = td.in_engine_order(clean.astype(np.float32) / 255.0)
    aligned = td.align(td.align_session(), ordered, 2.0 / 255.0)
    inner = np.s_[16:-16, 16:-16]
    for slot in range(1, len(td.ORDER)):
        err = np.abs(aligned[slot] - ordered[0])[inner]
        # Whole-pixel picking gets close to the centre but can no longer copy it: real footage's
        # neighbours never match exactly either.
        assert (err.max(-1) < 0.5 / 255.0).mean() < 0.2, (td.ORDER[slot], err.mean())
        assert err.mean() < 0.5 * np.abs(ordered[slot] - ordered[0])[inner].mean()


def test_random_motion_is_subpixel_with_shake_blur_and_local_motion(mods):
    td = mods.temporal_data
    rng = np.random.default_rng(12)
    motions = [td.random_motion(rng) for _ in range(200)]
    moving = [m for m in motions if any(s != (0.0, 0.0) for s in m.shifts)]
    frac = np.concatenate([np.abs(np.asarray(m.shifts) % 1.0) for m in moving]).ravel()
    assert np.mean((frac > 0.05) & (frac < 0.95)) > 0.8  # not whole pixels any more
    assert 0.3 < np.mean([max(m.exposure) > 0 for m in moving]) < 0.7
    assert 0.25 < np.mean([m.local is not None for m in moving]) < 0.55
    # Blur only on frames that move fast; a path's shake leaves it off a straight line.
    for m in moving:
        speed = np.hypot(*np.gradient(np.asarray(m.shifts), axis=0).T)
        assert all(e == 0.0 or s > td.BLUR_SPEED for e, s in zip(m.exposure, speed, strict=True))
    # Shake: what a smooth (quadratic) path through the five positions leaves over.
    a = np.vander(np.arange(-td.RADIUS, td.RADIUS + 1), 3)
    paths = [np.asarray(m.shifts) for m in moving]
    shake = [np.abs(p - a @ np.linalg.lstsq(a, p, rcond=None)[0]).max() for p in paths]
    assert np.median(shake) > 0.05

    # A smeared frame is the average of the sharp views along its move: smoother than sharp.
    patch = _texture(rng, 128)
    shifts = tuple((0.0, 5.0 * t) for t in range(-td.RADIUS, td.RADIUS + 1))
    sharp = td.render(patch, td.FRAME, td.Motion(shifts)).astype(np.float32)
    # 3/4 of the interval open at 5 px per frame: a 3.75 px smear.
    smeared = td.render(patch, td.FRAME, td.Motion(shifts, exposure=(0.75,) * 5)).astype(np.float32)
    dx_sharp = np.abs(np.diff(sharp[td.RADIUS], axis=1)).mean()
    dx_smeared = np.abs(np.diff(smeared[td.RADIUS], axis=1)).mean()
    dy_sharp = np.abs(np.diff(sharp[td.RADIUS], axis=0)).mean()
    dy_smeared = np.abs(np.diff(smeared[td.RADIUS], axis=0)).mean()
    # Along the motion, far more than across it.
    assert dx_smeared < 0.7 * dx_sharp and dx_smeared / dx_sharp < dy_smeared / dy_sharp - 0.1


def _varied_tiles(rng, n: int) -> np.ndarray:
    """Patches that differ in detail as training photos do: texture of growing contrast."""
    tiles = [_texture(rng, 128).astype(np.float32) for _ in range(n)]
    amounts = np.linspace(0.2, 1.0, n)
    return np.stack(
        [np.clip(128 + a * (t - 128), 0, 255) for t, a in zip(tiles, amounts, strict=True)]
    ).astype(np.uint8)


def test_training_set_stays_within_limits(mods, tmp_path):
    td = mods.temporal_data
    rng = np.random.default_rng(8)
    tiles = _varied_tiles(rng, 48)
    photos = [_texture(rng, 400)]
    out = td.build(tmp_path / "w.npz", count=24, seed=5, tiles=tiles, photos=photos, real=[])
    per_window = out.stat().st_size / 24
    # A 24-window sample of the committed default (COUNT windows under 60 MiB); windows vary
    # by about a tenth with their photo, so the sample is held to 60 MiB plus that.
    assert per_window * td.COUNT < 1.1 * 60 * 2**20, per_window
    w = td.load(out)
    assert td.read_meta(out)["count"] == 24
    assert w["noisy"].shape == (24, 5, td.CROP, td.CROP, 3)
    assert np.isfinite(w["fused"].astype(np.float32)).all()


def test_refresh_rebuilds_training_windows_not_validation(mods, tmp_path, monkeypatch):
    td, tt = mods.temporal_data, mods.temporal
    windows = _tiny_run(mods, tmp_path, monkeypatch, seed=6, count=3)
    before = td.load(windows)
    seen = []
    real_sets = tt.validation_sets
    monkeypatch.setattr(tt, "validation_sets", lambda v: seen.append(real_sets(v)) or seen[-1])
    argv = [*_tiny_argv(tmp_path, windows), "--stint-steps", "4", "--warmup", "2", "--refresh"]
    tt.main(argv)
    first = td.load(windows)
    assert td.read_meta(windows)["seed"] == tt.refresh_seed(0)
    assert td.read_meta(windows)["count"] == 3  # as many as before
    assert not np.array_equal(first["noisy"], before["noisy"])
    tt.main(argv)
    second = td.load(windows)
    assert td.read_meta(windows)["seed"] == tt.refresh_seed(4)  # the step it resumed at
    assert not np.array_equal(second["noisy"], first["noisy"])
    assert not np.array_equal(second["clean"], first["clean"])
    # The validation windows are the fixed ones, stint after stint.
    assert len(seen) == 2
    for sigma in tt.SIGMAS:
        for k in ("frames", "aligned", "fused", "clean"):
            assert torch.equal(seen[0][sigma][k], seen[1][sigma][k]), (sigma, k)
    log = [json.loads(x) for x in (tmp_path / "ck" / "temporal.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 4, 8]
