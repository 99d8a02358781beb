"""Train Kwaflux's noise-level-conditioned denoiser on Debian wallpaper photographs."""

from __future__ import annotations

import logging

import numpy as np
import torch

from kwaflux_lab.sets import degrade, patches
from kwaflux_lab.train.common import (
    base_args,
    extra_validation,
    psnr,
    strength_targets,
    texture_loss,
    to_nchw,
    train,
)
from kwaflux_lab.train.nets import NoiseMapDenoiser

# Noise level (sigma in 0..1 units) that strength 1.0 maps to; training covers a bit beyond it.
MAX_NOISE = 50.0 / 255.0
FLAT_LEVELS = (200.0, 230.0)  # bright greys of unsaturated video whites (0..255)


def validation_set(val: np.ndarray) -> dict[str, torch.Tensor | float]:
    """Held-out crops, clean and damaged three ways (fixed seed): Gaussian sigma 25 and 5, and
    JPEG quality 30 with its measured level."""
    vrng = np.random.default_rng(7)
    val_clean = [v.astype(np.float32) / 255.0 for v in val]
    clean = to_nchw(val_clean)
    noisy = clean + (25.0 / 255.0) * torch.from_numpy(
        vrng.standard_normal(clean.shape).astype(np.float32)
    )
    noisy5 = clean + (5.0 / 255.0) * torch.from_numpy(
        vrng.standard_normal(clean.shape).astype(np.float32)
    )
    jpeg = to_nchw([degrade.jpeg(vrng, c, 30, 30) for c in val_clean])
    level = float(torch.sqrt(torch.mean((jpeg - clean) ** 2)))
    # Flat bright grey under sigma-25 noise, clipped and quantised as 8-bit footage is: a
    # denoiser must not shift its level (one trained on photographs, whose highlights are often
    # pure white, learned to brighten such patches: +2 levels at 200, +6 at 230).
    flat = torch.tensor(FLAT_LEVELS).view(-1, 1, 1, 1).expand(-1, 3, 64, 64) / 255.0
    flat_noisy = flat + (25.0 / 255.0) * torch.from_numpy(
        vrng.standard_normal(flat.shape).astype(np.float32)
    )
    flat_noisy = torch.round(flat_noisy.clamp(0.0, 1.0) * 255.0) / 255.0
    return {
        "clean": clean,
        "noisy": noisy,
        "noisy5": noisy5,
        "jpeg": jpeg,
        "jpeg_level": level,
        "flat": flat,
        "flat_noisy": flat_noisy,
    }


def scores(run, sets: dict) -> dict[str, float]:
    """The validation figures of `run` (NCHW tensor, noise level 0..1 -> tensor)."""
    clean, noisy, noisy5, jpeg = sets["clean"], sets["noisy"], sets["noisy5"], sets["jpeg"]
    return {
        "awgn25_in": round(psnr(noisy, clean), 3),
        "awgn25_out": round(psnr(run(noisy, 25 / 255), clean), 3),
        "awgn5_in": round(psnr(noisy5, clean), 3),
        "awgn5_out": round(psnr(run(noisy5, 5 / 255), clean), 3),
        "jpeg30_in": round(psnr(jpeg, clean), 3),
        "jpeg30_out": round(psnr(run(jpeg, sets["jpeg_level"]), clean), 3),
        "identity0": round(psnr(run(clean, 0.0), clean), 3),
        # Half strength on sigma-25 noise should keep about half of it (PSNR ~ in + 6 dB).
        "awgn25_half": round(psnr(run(noisy, 12.5 / 255), clean), 3),
        # Mean |level shift| (0..255) of the flat patches: lower is better.
        "flat25_shift": round(level_shift(run(sets["flat_noisy"], 25 / 255), sets["flat"]), 2),
    }


def level_shift(out: torch.Tensor, flat: torch.Tensor) -> float:
    """Mean absolute difference, in 8-bit levels, between each patch's mean and its true level."""
    return float((out.mean(dim=(1, 2, 3)) - flat.mean(dim=(1, 2, 3))).abs().mean() * 255.0)


def main() -> None:
    ap = base_args(__doc__)
    ap.add_argument("--channels", type=int, default=48)
    ap.add_argument("--convs", type=int, default=16)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument(
        "--partial", type=float, default=0.3, help="share of samples with a lower level map"
    )
    ap.add_argument("--over", type=float, default=0.1, help="share with a higher level map")
    ap.add_argument(
        "--fft-weight",
        type=float,
        default=0.05,
        help="weight of the spectrum-magnitude loss that keeps texture energy",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tiles, val = patches.load(args.patches or patches.DEFAULT_PATH)

    sets = validation_set(val)
    # Beside the old crops, one crop of each photo held out from every source, at sigma 25 only
    # (each denoiser pass over them costs seconds on one thread).
    val2 = extra_validation(args.patches)
    clean2 = (
        to_nchw([v.astype(np.float32) / 255.0 for v in val2[::2]]) if val2 is not None else None
    )
    if clean2 is not None:
        noise2 = np.random.default_rng(9).standard_normal(clean2.shape).astype(np.float32)
        noisy2 = clean2 + (25.0 / 255.0) * torch.from_numpy(noise2)

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        trip = [
            degrade.denoise_pair(rng, tiles[rng.integers(len(tiles))], args.patch, MAX_NOISE * 1.1)
            for _ in range(n)
        ]
        noisy, clean = to_nchw([t[0] for t in trip]), to_nchw([t[1] for t in trip])
        levels = torch.tensor([t[2] for t in trip], dtype=torch.float32)
        # How much of the damage the target removes per sample, and the level the map says.
        share, scale = strength_targets(rng, n, args.partial, args.over)
        target = noisy + share.view(n, 1, 1, 1) * (clean - noisy)
        nmap = (levels * scale).view(n, 1, 1, 1).expand(n, 1, args.patch, args.patch).contiguous()
        return noisy, nmap, target

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        noisy, nmap, target = batch
        return texture_loss(model(noisy, nmap), target, args.fft_weight)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        dev = next(model.parameters()).device

        def run(x: torch.Tensor, level: float) -> torch.Tensor:
            nmap = torch.full((x.shape[0], 1) + x.shape[2:], level, device=dev)
            return model(x.to(dev), nmap).cpu()

        out = scores(run, sets)
        if clean2 is not None:
            out["v2_awgn25_in"] = round(psnr(noisy2, clean2), 3)
            out["v2_awgn25_out"] = round(psnr(run(noisy2, 25 / 255), clean2), 3)
        return out

    model = NoiseMapDenoiser(args.channels, args.convs, rep=not args.no_rep)
    config = {
        "arch": "NoiseMapDenoiser",
        "channels": args.channels,
        "convs": args.convs,
        "rep": not args.no_rep,
        "max_noise": MAX_NOISE,
        "patch": args.patch,
        "fft_weight": args.fft_weight,
        "partial": args.partial,
        "over": args.over,
    }
    train("denoise", model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
