"""The detail trainer's pieces (python/kwaflux_lab/train/detail.py): the high-pass it trains on is
the evaluation's, its loss asks for the target's fine detail, and a run with a discriminator
resumes exactly (common.train's extra_state)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.training import tiny_args, tiny_batch

torch = pytest.importorskip("torch", reason="the model factory needs the [train] extra")


def test_highpass_energy_is_the_evaluations():
    from scipy.ndimage import gaussian_filter

    from kwaflux_lab.train import detail

    rng = np.random.default_rng(4)
    img = rng.random((40, 36, 3)).astype(np.float32)
    y = img @ np.array(detail.LUMA, np.float32)
    blur = gaussian_filter(y.astype(np.float64), detail.HP_SIGMA, mode="mirror", truncate=3.0)
    ref = y - blur  # scipy with the trainer's radius (5 px); eval/detail.py keeps 6: within 1e-4
    got = detail.highpass(torch.from_numpy(y)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    r = 5  # the blur's radius, left out of the energy
    assert float(detail.hf_energy(x)) == pytest.approx(float(np.mean(ref[r:-r, r:-r] ** 2)), 1e-4)
    assert float(detail.hf_energy(torch.full((1, 3, 20, 20), 0.3))) == pytest.approx(0, abs=1e-10)


def test_local_hf_loss_gives_a_smoothed_picture_its_detail_back():
    from kwaflux_lab.train import detail

    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 32, 32, generator=g)
    smooth = target - detail.highpass(target)  # the target's Gaussian blur
    x = smooth.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    before = detail.local_hf_loss(x, target).item()
    for _ in range(30):
        opt.zero_grad()
        loss = detail.local_hf_loss(x, target)
        loss.backward()
        opt.step()
    assert detail.local_hf_loss(x, target).item() < 0.5 * before
    e_smooth, e_x, e_t = (float(detail.hf_energy(t).sum()) for t in (smooth, x.detach(), target))
    assert e_smooth < 0.5 * e_t and abs(e_x / e_t - 1) < abs(e_smooth / e_t - 1) / 2


def _gan_run(tmp_path, monkeypatch, stint: int, fresh: bool) -> dict:
    from kwaflux_lab.train import common as tc
    from kwaflux_lab.train.detail import PatchDiscriminator
    from kwaflux_lab.train.nets import CompactSR

    monkeypatch.setattr(tc, "CHECKPOINTS_DIR", tmp_path)
    torch.manual_seed(0)
    model = CompactSR(2, 8, 3, rep=True)
    disc = PatchDiscriminator(4)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    args = tiny_args(tc, stint, fresh)

    def loss_fn(m, batch):
        out = m(batch[0])
        fake = disc(out.detach())
        d_loss = torch.nn.functional.softplus(fake).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        return torch.nn.functional.l1_loss(out, batch[1]) + 0.01 * disc(out).mean()

    tc.train(
        "gan", model, {"arch": "gan"}, args, tiny_batch, loss_fn, lambda m: {},
        extra_state={"disc": disc, "disc_opt": d_opt},
    )  # fmt: skip
    return torch.load(tmp_path / "gan.pt", weights_only=False)


def test_a_run_with_a_discriminator_resumes_the_same_run(tmp_path, monkeypatch):
    whole = _gan_run(tmp_path / "a", monkeypatch, stint=6, fresh=True)
    _gan_run(tmp_path / "b", monkeypatch, stint=3, fresh=True)
    resumed = _gan_run(tmp_path / "b", monkeypatch, stint=3, fresh=False)
    assert resumed["step"] == whole["step"] == 6
    for name, value in whole["extra"]["disc"].items():
        assert torch.allclose(value, resumed["extra"]["disc"][name], atol=1e-6), name
    for name, value in whole["model"].items():
        assert torch.allclose(value, resumed["model"][name], atol=1e-6), name
    assert resumed["extra"]["disc_opt"]["state"]  # the optimizer's moments came back too
