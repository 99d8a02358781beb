"""Fine-tune the shipped SR model into a detail model: L1, spectrum, high-pass energy and a small patch GAN."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from kwaflux_lab.eval.common import HP_SIGMA
from kwaflux_lab.sets import degrade, patches
from kwaflux_lab.train.common import (
    base_args,
    extra_validation,
    load_checkpoint,
    texture_loss,
    to_nchw,
    train,
)
from kwaflux_lab.train.nets import CompactSR
from kwaflux_lab.train.sr import scores, validation_set

ARCH_KEYS = ("arch", "scale", "channels", "convs", "rep", "lr_patch")
LUMA = (0.299, 0.587, 0.114)


def gaussian_kernel(sigma: float = HP_SIGMA) -> torch.Tensor:
    r = math.ceil(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def highpass(x: torch.Tensor, sigma: float = HP_SIGMA) -> torch.Tensor:
    """x minus its Gaussian blur (separable, reflected edges), channel by channel."""
    k = gaussian_kernel(sigma).to(x)
    r = k.numel() // 2
    c = x.shape[1]
    kh = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    kv = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    b = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kh, groups=c)
    b = F.conv2d(F.pad(b, (0, 0, r, r), mode="reflect"), kv, groups=c)
    return x - b


def luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def hf_energy(x: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean square of the luma's high-pass (border of the blur left out)."""
    r = gaussian_kernel().numel() // 2
    hp = highpass(luma(x))[..., r:-r, r:-r]
    return (hp**2).mean(dim=(1, 2, 3))


def local_hf_loss(out: torch.Tensor, target: torch.Tensor, window: int = 8) -> torch.Tensor:
    """L1 between the local RMS of the two luma high-passes in window x window cells: asks for
    as much fine detail as the target has where it has it, not for its phase."""
    e_out = F.avg_pool2d(highpass(luma(out)) ** 2, window)
    e_ref = F.avg_pool2d(highpass(luma(target)) ** 2, window)
    return F.l1_loss(torch.sqrt(e_out + 1e-8), torch.sqrt(e_ref + 1e-8))


class PatchDiscriminator(nn.Module):
    """A small patch discriminator (receptive field about 22 px, one logit per 4x4 cell), with
    spectral normalisation so a few thousand steps of fine-tuning stay stable."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        c = channels
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, c, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * c, 2 * c, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * c, 2 * c, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * c, 1, 3, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    ap = base_args(__doc__)
    ap.set_defaults(lr=1e-4, warmup=50, hours=1.0, checkpoint_every=180.0)
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--init", default="", help="checkpoint to start from (default sr-xSCALE)")
    ap.add_argument("--fft", type=float, default=0.05, help="weight of the spectrum's L1")
    ap.add_argument("--hf", type=float, default=1.0, help="weight of the local high-pass energy")
    ap.add_argument("--adv", type=float, default=3e-3, help="weight of the adversarial term")
    ap.add_argument("--d-lr", type=float, default=2e-4, help="the discriminator's learning rate")
    ap.add_argument("--d-channels", type=int, default=32)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    scale = args.scale
    init = args.init or f"sr-x{scale}"
    start = load_checkpoint(init)
    cfg0 = start["config"]
    if cfg0["arch"] != "CompactSR" or cfg0["scale"] != scale:
        raise SystemExit(f"{init}: not a CompactSR x{scale} checkpoint ({cfg0})")
    lr_patch = cfg0.get("lr_patch") or (48 if scale == 2 else 32)
    tiles, val = patches.load(args.patches or patches.DEFAULT_PATH)
    vlr, vhr = validation_set(val, scale)
    val2 = extra_validation(args.patches)
    v2 = validation_set(val2, scale) if val2 is not None else None
    device = torch.device(args.device)

    model = CompactSR(scale, cfg0["channels"], cfg0["convs"], rep=cfg0.get("rep", False))
    model.load_state_dict(start["ema"])
    disc = PatchDiscriminator(args.d_channels).to(device)
    d_opt = torch.optim.Adam(disc.parameters(), lr=args.d_lr, betas=(0.5, 0.99))
    bce = F.binary_cross_entropy_with_logits

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        pairs = [
            degrade.sr_pair(rng, tiles[rng.integers(len(tiles))], scale, lr_patch) for _ in range(n)
        ]
        return to_nchw([p[0] for p in pairs]), to_nchw([p[1] for p in pairs])

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        lr, hr = batch
        out = net(lr)
        # The discriminator's step, on this batch, before the generator's.
        real, fake = disc(hr), disc(out.detach())
        d_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        for p in disc.parameters():
            p.requires_grad_(False)
        judged = disc(out)
        for p in disc.parameters():
            p.requires_grad_(True)
        loss = texture_loss(out, hr, args.fft) + args.hf * local_hf_loss(out, hr)
        return loss + args.adv * bce(judged, torch.ones_like(judged))

    def figures(run, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, float]:
        out = run(lo)
        ratio = float(hf_energy(out.clamp(0, 1)).sum() / hf_energy(hi).sum())
        return {**scores(lambda _: out, lo, hi, scale), "hf_ratio": round(ratio, 3)}

    def validate(net: torch.nn.Module) -> dict[str, float]:
        def run(x: torch.Tensor) -> torch.Tensor:
            return net(x.to(next(net.parameters()).device)).cpu()

        out = figures(run, vlr, vhr)
        if v2 is not None:
            out.update({f"v2_{k}": v for k, v in figures(run, *v2).items()})
        return out

    config = {
        **{k: cfg0[k] for k in ARCH_KEYS if k in cfg0},
        "lr_patch": lr_patch,
        "init": init,
        "init_step": start["step"],
        "loss": {"l1": 1.0, "fft": args.fft, "hf": args.hf, "hf_sigma": HP_SIGMA},
        "adv": args.adv,
        "d_channels": args.d_channels,
        "d_lr": args.d_lr,
    }
    train(
        f"sr-x{scale}-detail",
        model,
        config,
        args,
        make_batch,
        loss_fn,
        validate,
        extra_state={"disc": disc, "disc_opt": d_opt},
    )


if __name__ == "__main__":
    main()
