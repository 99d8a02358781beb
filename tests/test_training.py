"""The model factory (python/kwaflux_lab): re-parameterised blocks fold exactly, resumed training continues the
same run, and the video-codec damage is real codec output."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from tests.support.training import tiny_args, tiny_batch

torch = pytest.importorskip("torch", reason="the model factory needs the [train] extra")


@pytest.fixture(scope="module")
def factory():
    """The factory's modules (python/ is on the suite's path: pyproject.toml)."""
    from kwaflux_lab.sets import degrade
    from kwaflux_lab.train import common, denoise, nets, rep, sr

    return argparse.Namespace(
        rep=rep, nets=nets, degrade=degrade, common=common, denoise=denoise, sr=sr
    )


def _randomise(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("cin,cout", [(3, 8), (8, 8), (8, 12)])
def test_repconv_folds_into_one_conv(factory, cin, cout):
    block = factory.rep.RepConv3x3(cin, cout)
    _randomise(block)
    # Odd sizes: the border is where a wrong fold shows.
    x = torch.randn(2, cin, 13, 11, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        branched = block.branches(x)
        folded = block.to_conv()(x)
        trained = block(x)
    assert branched.abs().max() > 1.0  # the branches really contribute
    assert torch.allclose(branched, folded, atol=1e-5)
    assert torch.allclose(branched, trained, atol=1e-5)


def test_repconv_gradients_equal_the_branched_form(factory):
    # In float64: the two forms sum the same terms in another order, and float32's rounding of
    # gradients in the hundreds can exceed any fixed elementwise tolerance on a near-zero one.
    block = factory.rep.RepConv3x3(6, 6)
    _randomise(block)
    block = block.double()
    x = torch.randn(1, 6, 9, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    params = list(block.parameters())
    g_branch = torch.autograd.grad(block.branches(x).square().sum(), params)
    g_fused = torch.autograd.grad(block(x).square().sum(), params)
    assert max(g.abs().max() for g in g_branch) > 1.0  # the gradients are not all near zero
    for a, b in zip(g_branch, g_fused, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["sr2", "sr4", "denoise"])
def test_deployed_network_is_the_plain_network(factory, kind):
    nets = factory.nets
    if kind == "denoise":
        rep, plain = nets.NoiseMapDenoiser(16, 6, rep=True), nets.NoiseMapDenoiser(16, 6)
        args = (torch.rand(1, 3, 21, 17), torch.full((1, 1, 21, 17), 0.1))
    else:
        s = int(kind[-1])
        rep, plain = nets.CompactSR(s, 12, 5, rep=True), nets.CompactSR(s, 12, 5)
        args = (torch.rand(1, 3, 21, 17),)
    _randomise(rep)
    with torch.no_grad():
        before = rep(*args)
        deployed = factory.rep.deploy(rep)
        # The folded network loads into the plain architecture: the exported graph is unchanged.
        plain.load_state_dict(deployed.state_dict())
        after = plain(*args)
    assert not any(isinstance(m, factory.rep.RepConv3x3) for m in deployed.modules())
    assert torch.allclose(before, after, atol=1e-4)


def _tiny_run(factory, tmp_path, monkeypatch, stint: int, fresh: bool) -> dict:
    tc = factory.common
    monkeypatch.setattr(tc, "CHECKPOINTS_DIR", tmp_path)
    torch.manual_seed(0)
    model = factory.nets.CompactSR(2, 8, 3, rep=True)
    args = tiny_args(tc, stint, fresh)

    def loss_fn(m, batch):
        return torch.nn.functional.l1_loss(m(batch[0]), batch[1])

    tc.train("tiny", model, {"arch": "tiny"}, args, tiny_batch, loss_fn, lambda m: {})
    return torch.load(tmp_path / "tiny.pt", weights_only=False)


def test_resumed_training_continues_the_same_run(factory, tmp_path, monkeypatch):
    whole = _tiny_run(factory, tmp_path / "a", monkeypatch, stint=6, fresh=True)
    _tiny_run(factory, tmp_path / "b", monkeypatch, stint=3, fresh=True)
    resumed = _tiny_run(factory, tmp_path / "b", monkeypatch, stint=3, fresh=False)
    assert resumed["step"] == whole["step"] == 6
    for key in ("model", "ema"):
        for name, value in whole[key].items():
            assert torch.allclose(value, resumed[key][name], atol=1e-6), (key, name)
    log = (tmp_path / "b" / "tiny.log.jsonl").read_text().splitlines()
    assert len(log) == 2  # one validation record per stint, with its training hours


def test_resume_refuses_another_architecture(factory, tmp_path, monkeypatch):
    _tiny_run(factory, tmp_path, monkeypatch, stint=1, fresh=True)
    tc = factory.common
    args = tc.base_args("t").parse_args(["--steps", "2"])
    with pytest.raises(SystemExit, match="checkpoint is for"):
        tc.train("tiny", factory.nets.CompactSR(2, 8, 3), {"arch": "other"}, args, None, None, None)


def test_video_codec_damage_is_real_and_seeded(factory):
    yy, xx = np.mgrid[0:64, 0:64]
    clean = np.stack([(xx % 16) / 15.0, (yy % 8) / 7.0, ((xx + yy) % 5) / 4.0], -1)
    clean = clean.astype(np.float32)
    a = factory.degrade.video_codec(np.random.default_rng(5), clean)
    b = factory.degrade.video_codec(np.random.default_rng(5), clean)
    assert a.shape == clean.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    rms = float(np.sqrt(np.mean((a - clean) ** 2)))
    assert 0.01 < rms < 0.4  # damaged, but still the same picture
    # 4:2:0 chroma: colour detail finer than 2 px is gone, luma detail partly kept.
    assert np.corrcoef(a[..., 0].ravel(), clean[..., 0].ravel())[0, 1] > 0.5


def test_validation_figures_measure_what_they_name(factory):
    """The trainers' validation (also what kwaflux_lab.eval.compare_shipped holds the shipped models
    to): a denoiser that returns its input scores the damaged input's figures, bicubic scores
    bicubic's, and a better guess scores better."""
    rng = np.random.default_rng(0)
    val = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    sets = factory.denoise.validation_set(val)
    same = factory.denoise.scores(lambda x, level: x, sets)
    assert same["awgn25_out"] == same["awgn25_in"] and same["jpeg30_out"] == same["jpeg30_in"]
    assert same["awgn5_out"] == same["awgn5_in"] and same["identity0"] > 100
    perfect = factory.denoise.scores(lambda x, level: sets["clean"], sets)
    assert perfect["awgn25_out"] > 100 > same["awgn25_out"]

    vlr, vhr = factory.sr.validation_set(val, 2)
    assert vlr.shape[2:] == (16, 16) and vhr.shape[2:] == (32, 32)
    bicubic = torch.nn.functional.interpolate(
        vlr, scale_factor=2, mode="bicubic", align_corners=False
    )
    got = factory.sr.scores(lambda x: bicubic, vlr, vhr, 2)
    assert got["val_psnr"] == got["bicubic_psnr"]
    assert factory.sr.scores(lambda x: vhr, vlr, vhr, 2)["val_psnr"] > got["bicubic_psnr"]


def test_curve_reports_the_change_over_the_last_hour(factory):
    """docs/models.md's training curve says what the last CPU-hour bought per figure (the figure
    that shows a goal out of reach), from the latest record at least an hour before the end."""
    from kwaflux_lab.train import export

    records = [
        {"hours": 0.2, "step": 100, "awgn25_out": 30.0, "awgn5_out": 39.0},
        {"hours": 1.0, "step": 500, "awgn25_out": 32.0, "awgn5_out": 40.0},
        {"hours": 1.5, "step": 800, "awgn25_out": 32.5, "awgn5_out": 40.1, "flat25_shift": 3.0},
        {"hours": 2.1, "step": 1200, "awgn25_out": 33.25, "awgn5_out": 39.9, "flat25_shift": 2.5},
    ]
    keys = ("awgn25_out", "awgn5_out", "flat25_shift")
    line = export.last_hour(records, keys)[-1]
    # From the 1.0 h record (the 1.5 h one is not an hour back); a key missing there is left out.
    assert line == "Over the last hour (1.00 to 2.10 h): awgn25_out +1.25, awgn5_out -0.10."
    assert export.last_hour(records[2:], keys) == []  # less than an hour of history


def _labelled_clip(n: int, side: int, base: int) -> np.ndarray:
    """n frames, each one flat grey level base + its index: a frame says where it came from."""
    return (base + np.arange(n, dtype=np.uint8))[:, None, None, None] * np.ones(
        (1, side, side, 3), np.uint8
    )


def test_footage_is_split_in_time_and_small_clips_left_out(factory):
    clips = [_labelled_clip(20, 100, 0), _labelled_clip(10, 100, 100), _labelled_clip(10, 40, 200)]
    train_parts, val = factory.sr.split_video(clips, side=96)
    assert [len(p) for p in train_parts] == [16, 8]  # the 40-px clip is smaller than a patch
    seen = {int(v) for p in train_parts for v in np.unique(p)}
    held = {int(v[0, 0, 0]) for v in val}
    assert held == {16, 18, 19, 108, 109}  # three crops over each clip's last fifth
    assert not seen & held  # no validation frame is trained on
    assert all(v.shape == (96, 96, 3) for v in val)
    lr, hr = factory.sr.video_validation_set(val, 2)
    assert lr.shape[-2:] == (48, 48) and hr.shape[-2:] == (96, 96)


def test_video_share_draws_training_sources_from_footage_only(factory, tmp_path, monkeypatch):
    """With --video-share 1 every training sample is cut from a clip's training frames, never a
    photo tile or a held-out frame, at the --footage-blur share; the run's checkpoint records
    both and scores footage."""
    from kwaflux_lab.sets import patches, real_video

    sr, tc = factory.sr, factory.common
    tiles = np.full((4, 128, 128, 3), 250, np.uint8)  # photos: level 250, no frame has it
    val = np.zeros((2, 96, 96, 3), np.uint8)
    monkeypatch.setattr(patches, "load", lambda path: (tiles, val))
    monkeypatch.setattr(real_video, "load_all", lambda **kw: [_labelled_clip(20, 100, 0)])
    monkeypatch.setattr(tc, "CHECKPOINTS_DIR", tmp_path)
    drawn = []
    real_pair = factory.degrade.sr_pair

    def spy(rng, photo, scale, lr_size, blur_share=factory.degrade.SR_BLUR_SHARE):
        drawn.append((int(photo[0, 0, 0]), blur_share))
        return real_pair(rng, photo, scale, lr_size, blur_share)

    monkeypatch.setattr(sr.degrade, "sr_pair", spy)
    argv = ["sr", "--scale", "2", "--channels", "8", "--convs", "2", "--steps", "3"]
    argv += ["--batch", "4", "--video-share", "1", "--hours", "1e6", "--name-suffix=-t"]
    monkeypatch.setattr("sys.argv", argv + ["--footage-blur", "0", "--photo-blur", "1"])
    sr.main()
    assert len(drawn) == 12 and {level for level, _ in drawn} <= set(range(16))  # frames 0..15
    assert {share for _, share in drawn} == {0.0}
    ck = torch.load(tmp_path / "sr-x2-t.pt", weights_only=False)
    cfg = ck["config"]
    assert cfg["video_share"] == 1.0 and (cfg["footage_blur"], cfg["photo_blur"]) == (0.0, 1.0)
    assert ck["metrics"]["video_val_psnr"] > 0 and "video_bicubic_psnr" in ck["metrics"]


def test_sr_pairs_blur_share_sets_how_soft_the_inputs_are(factory):
    """sr_pair's blur share is the blur before the downscale: all blurred inputs keep less of a
    sharp pattern's fine detail than none blurred, drawn from the same seeds."""
    degrade = factory.degrade
    yy, xx = np.mgrid[0:96, 0:96]
    photo = np.repeat((((xx // 2 + yy // 3) % 2) * 0.8 + 0.1)[..., None], 3, -1).astype(np.float32)

    def detail(share: float) -> float:
        lrs = [degrade.sr_pair(np.random.default_rng(s), photo, 2, 40, share)[0] for s in range(12)]
        return float(np.mean([np.mean(np.abs(np.diff(lr, axis=1))) for lr in lrs]))

    assert detail(1.0) < 0.8 * detail(0.0)


def test_a_footage_fine_tune_says_what_it_trained_on(factory, tmp_path, monkeypatch):
    """An exported run fine-tuned from a v2 run with footage names the v2 photos, the clips and
    the share in its metadata (not the 36 photos of v1, nor the detail look's losses)."""
    import onnx

    from kwaflux_lab.sets import photos_v2, real_video
    from kwaflux_lab.train import export

    tc = factory.common
    monkeypatch.setattr(tc, "CHECKPOINTS_DIR", tmp_path)
    model = factory.nets.CompactSR(2, 8, 2, rep=True)
    cfg = {"arch": "CompactSR", "scale": 2, "channels": 8, "convs": 2, "rep": True}
    cfg.update(lr_patch=48, video_share=0.3, init="sr-x2-v2", init_step=7)
    state = model.state_dict()
    torch.save(
        {"model": state, "ema": state, "step": 11, "config": cfg, "seed": 1, "metrics": {}},
        tmp_path / "sr-x2-video.pt",
    )
    export.export_one("sr-x2-video", "kwaflux-sr-x2", tmp_path)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "kwaflux-sr-x2.onnx")).metadata_props}
    n_v2 = sum(e.role == "train" for e in photos_v2.read_tsv())
    assert meta["kwaflux.training_data"].startswith(f"{n_v2} photographs")
    assert f"frames of {len(real_video.CLIPS)} video clips" in meta["kwaflux.training_data"]
    assert (
        "fine-tuned from sr-x2-v2 with 30% of each batch from real footage"
        in (meta["kwaflux.description"])
    )
    assert "patch-GAN" not in meta["kwaflux.description"]
    # A fine-tune of that fine-tune still trained on the v2 photos: the lineage is followed.
    cfg2 = {**cfg, "init": "sr-x2-video", "init_step": 11}
    torch.save(
        {"model": state, "ema": state, "step": 5, "config": cfg2, "seed": 1, "metrics": {}},
        tmp_path / "sr-x2-again.pt",
    )
    assert export.lineage("sr-x2-again", cfg2) == ["sr-x2-again", "sr-x2-video", "sr-x2-v2"]
    export.export_one("sr-x2-again", "kwaflux-sr-x2", tmp_path)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "kwaflux-sr-x2.onnx")).metadata_props}
    assert meta["kwaflux.training_data"].startswith(f"{n_v2} photographs")


@pytest.mark.parametrize("flag", ["--video-share", "--photo-blur", "--footage-blur"])
def test_sr_shares_outside_0_to_1_are_refused_in_one_line(
    factory, tmp_path, monkeypatch, flag, capsys
):
    """A share outside 0..1 stops train/sr.py before any training: exit 2, one line naming the
    flag and the value, and no checkpoint written."""
    monkeypatch.setattr(factory.common, "CHECKPOINTS_DIR", tmp_path)
    argv = ["sr", "--scale", "2", "--channels", "8", "--convs", "2", "--steps", "1"]
    monkeypatch.setattr("sys.argv", argv + ["--name-suffix=-bad", flag, "1.5"])
    with pytest.raises(SystemExit) as stop:
        factory.sr.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{flag} 1.5: must be within 0..1" in err
    assert not list(tmp_path.iterdir())
