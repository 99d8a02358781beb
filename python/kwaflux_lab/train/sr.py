"""Train Kwaflux's x2 or x4 super-resolution model on Debian wallpaper photographs."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from kwaflux_lab.sets import degrade, patches
from kwaflux_lab.train.common import base_args, extra_validation, psnr, to_nchw, train
from kwaflux_lab.train.nets import CompactSR


def validation_set(val: np.ndarray, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Low and high resolution NCHW tensors: plain bicubic-downscaled crops of held-out photos
    (the usual SR benchmark)."""
    val_hr = [v.astype(np.float32) / 255.0 for v in val]
    size = val.shape[1]
    val_lr = [
        degrade.from_pil(
            degrade.to_pil(hr).resize(
                (size // scale, size // scale), degrade.Image.Resampling.BICUBIC
            )
        )
        for hr in val_hr
    ]
    return to_nchw(val_lr), to_nchw(val_hr)


def scores(run, vlr: torch.Tensor, vhr: torch.Tensor, scale: int) -> dict[str, float]:
    """The validation figures of `run` (NCHW low-res tensor -> high-res tensor) and bicubic's."""
    bic = F.interpolate(vlr, scale_factor=scale, mode="bicubic", align_corners=False)
    return {"val_psnr": round(psnr(run(vlr), vhr), 3), "bicubic_psnr": round(psnr(bic, vhr), 3)}


def main() -> None:
    ap = base_args(__doc__)
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--channels", type=int, default=40)
    ap.add_argument("--convs", type=int, default=10)
    ap.add_argument("--lr-patch", type=int, default=0, help="LR patch size (default 48 / 32)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    scale = args.scale
    lr_patch = args.lr_patch or (48 if scale == 2 else 32)
    tiles, val = patches.load(args.patches or patches.DEFAULT_PATH)

    vlr, vhr = validation_set(val, scale)
    # Beside the old crops (the curve's val_psnr), crops of photos held out from every source.
    val2 = extra_validation(args.patches)
    v2 = validation_set(val2, scale) if val2 is not None else None

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        pairs = [
            degrade.sr_pair(rng, tiles[rng.integers(len(tiles))], scale, lr_patch) for _ in range(n)
        ]
        return to_nchw([p[0] for p in pairs]), to_nchw([p[1] for p in pairs])

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        lr, hr = batch
        return F.l1_loss(model(lr), hr)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        def run(x: torch.Tensor) -> torch.Tensor:
            return model(x.to(next(model.parameters()).device)).cpu()

        out = scores(run, vlr, vhr, scale)
        if v2 is not None:
            out.update({f"v2_{k}": v for k, v in scores(run, *v2, scale).items()})
        return out

    model = CompactSR(scale, args.channels, args.convs, rep=not args.no_rep)
    config = {
        "arch": "CompactSR",
        "scale": scale,
        "channels": args.channels,
        "convs": args.convs,
        "rep": not args.no_rep,
        "lr_patch": lr_patch,
    }
    train(f"sr-x{scale}", model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
