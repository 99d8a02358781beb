"""Train Kwaflux's noise-level-conditioned denoiser on Debian wallpaper photographs."""

from __future__ import annotations

import logging

import data
import degrade
import numpy as np
import torch
from nets import NoiseMapDenoiser
from torch.nn import functional as F
from train_common import base_args, psnr, to_nchw, train

# Noise level (sigma in 0..1 units) that strength 1.0 maps to; training covers a bit beyond it.
MAX_NOISE = 50.0 / 255.0


def main() -> None:
    ap = base_args(__doc__)
    ap.add_argument("--channels", type=int, default=48)
    ap.add_argument("--convs", type=int, default=12)
    ap.add_argument("--patch", type=int, default=96)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    photos = data.load_all()
    weights = np.array([p.shape[0] * p.shape[1] for p in photos], dtype=np.float64)
    weights /= weights.sum()

    vrng = np.random.default_rng(7)
    val_clean = [
        p
        for photo in data.load_all(data.VALIDATION_PHOTOS)
        for p in degrade.textured_patches(vrng, photo, 192, 3)
    ]
    vclean = to_nchw(val_clean)
    vnoisy = vclean + (25.0 / 255.0) * torch.from_numpy(
        vrng.standard_normal(vclean.shape).astype(np.float32)
    )
    vjpeg = to_nchw([degrade.jpeg(vrng, c, 30, 30) for c in val_clean])
    jpeg_level = float(torch.sqrt(torch.mean((vjpeg - vclean) ** 2)))

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        trip = [
            degrade.denoise_pair(
                rng, photos[rng.choice(len(photos), p=weights)], args.patch, MAX_NOISE * 1.1
            )
            for _ in range(n)
        ]
        noisy, clean = to_nchw([t[0] for t in trip]), to_nchw([t[1] for t in trip])
        # Small jitter on the level map so the control is smooth rather than exact-only.
        levels = torch.tensor([t[2] for t in trip], dtype=torch.float32)
        levels = levels * torch.from_numpy(rng.uniform(0.9, 1.1, n).astype(np.float32))
        nmap = levels.view(n, 1, 1, 1).expand(n, 1, args.patch, args.patch).contiguous()
        return noisy, nmap, clean

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        noisy, nmap, clean = batch
        return F.l1_loss(model(noisy, nmap), clean)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        n = vclean.shape[0]
        m25 = torch.full((n, 1, 192, 192), 25.0 / 255.0)
        mj = torch.full((n, 1, 192, 192), jpeg_level)
        return {
            "awgn25_in": round(psnr(vnoisy, vclean), 3),
            "awgn25_out": round(psnr(model(vnoisy, m25), vclean), 3),
            "jpeg30_in": round(psnr(vjpeg, vclean), 3),
            "jpeg30_out": round(psnr(model(vjpeg, mj), vclean), 3),
            "identity0": round(psnr(model(vclean, torch.zeros_like(m25)), vclean), 3),
        }

    model = NoiseMapDenoiser(args.channels, args.convs)
    config = {
        "arch": "NoiseMapDenoiser",
        "channels": args.channels,
        "convs": args.convs,
        "max_noise": MAX_NOISE,
        "patch": args.patch,
    }
    train("denoise", model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
