"""Train the learned multi-frame denoiser (issue #14), starting from the single-frame denoiser.

python temporal_data.py                           # the cached windows, once
python train_temporal.py --hours 4 --minutes 30   # one stint; resumes checkpoints/temporal.pt
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import patches
import temporal_data as td
import torch
import train_common
from nets import NoiseMapDenoiser, TemporalDenoiser
from rep import deploy
from torch.nn import functional as F
from train_common import base_args, psnr, train

from kwaflux_ofx.engine.temporal import fusion_model

NAME = "temporal"
SIGMAS = (25.0, 15.0)


def load_single(path: Path, plain: bool) -> tuple[NoiseMapDenoiser, dict]:
    """The single-frame checkpoint's EMA weights (what it validates and exports), and where it
    came from."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    if cfg["arch"] != "NoiseMapDenoiser":
        raise SystemExit(f"{path}: not a NoiseMapDenoiser checkpoint ({cfg['arch']})")
    model = NoiseMapDenoiser(cfg["channels"], cfg["convs"], rep=cfg.get("rep", False))
    model.load_state_dict(ck["ema"] if "ema" in ck else ck["model"])
    if plain:
        model = deploy(model)
    info = {
        "from": path.name,
        "step": int(ck["step"]),
        "channels": cfg["channels"],
        "convs": cfg["convs"],
        "rep": cfg.get("rep", False) and not plain,
        "max_noise": cfg["max_noise"],
    }
    return model.eval(), info


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """... x H x W x 3 (0..1) -> ... x 3 x H x W float32."""
    t = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    return t.movedim(-1, -3).contiguous()


def validation_sets(val: np.ndarray) -> dict[float, dict[str, torch.Tensor]]:
    """td.validation_windows as tensors: frames/aligned N x K x 3 x H x W, clean N x 3 x H x W."""
    sets = td.validation_windows(val, td.align_session(), SIGMAS)
    return {s: {k: to_tensor(v) for k, v in d.items()} for s, d in sets.items()}


def baselines(single: torch.nn.Module, sets: dict) -> dict[str, float]:
    """What the model starts from and what it is up against, on the validation windows: the
    noisy centre frame, the single-frame denoiser on it (the temporal model at step 0) and the
    shipped temporal path (fusion graph with alignment, then the same single-frame model at
    the level left per pixel)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    fusion = ort.InferenceSession(fusion_model(True), opts, providers=["CPUExecutionProvider"])
    out = {}
    for sigma, d in sets.items():
        s = int(sigma)
        centre, clean = d["frames"][:, 0], d["clean"]
        nmap = torch.full((centre.shape[0], 1) + centre.shape[2:], sigma / 255.0)
        with torch.no_grad():
            single_out = single(centre, nmap)
            fused = []
            for frames in d["frames"]:
                f, level = fusion.run(
                    ["fused", "level"],
                    {
                        "input_frames": frames.numpy(),
                        "sigma": np.array([sigma / 255.0], np.float32),
                    },
                )
                fused.append(single(torch.from_numpy(f), torch.from_numpy(level)))
        out[f"t{s}_in"] = round(psnr(centre, clean), 3)
        out[f"t{s}_single"] = round(psnr(single_out, clean), 3)
        out[f"t{s}_fusion"] = round(psnr(torch.cat(fused), clean), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = base_args(__doc__)
    # Fine-tuning a trained network: a lower peak rate than from scratch, or the first hundred
    # steps undo the body before the neighbours' weights have learnt anything.
    ap.set_defaults(lr=3e-4, warmup=100)
    ap.add_argument("--windows", type=Path, default=td.DEFAULT_PATH, help="cached windows (.npz)")
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="single-frame checkpoint a new run starts from (default checkpoints/denoise.pt)",
    )
    ap.add_argument("--partial", type=float, default=0.3, help="as train_denoise.py")
    ap.add_argument("--over", type=float, default=0.1, help="as train_denoise.py")
    ap.add_argument("--fft-weight", type=float, default=0.05, help="as train_denoise.py")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    _, val = patches.load(args.patches or patches.DEFAULT_PATH)
    sets = validation_sets(val)
    ckpt = train_common.checkpoint_path(NAME)
    if ckpt.exists() and not args.fresh:
        # Resuming: the start (and its validation figures) is the one recorded at step 0,
        # whatever checkpoints/denoise.pt has become since.
        init = torch.load(ckpt, map_location="cpu", weights_only=False)["config"]["init"]
        model = TemporalDenoiser(
            init["channels"], init["convs"], rep=init["rep"], frames=len(td.ORDER)
        )
    else:
        init_path = args.init or train_common.CHECKPOINTS_DIR / "denoise.pt"
        single, init = load_single(init_path, plain=args.no_rep)
        model = TemporalDenoiser.from_single(single, frames=len(td.ORDER))
        init["val"] = baselines(single, sets)
        logging.info("start %s", init)

    noisy_np, clean_np, level_np = td.load(args.windows)
    # uint8 in memory (N x K x 3 x C x C): a quarter of float32; converted per batch.
    noisy_all = torch.from_numpy(noisy_np).movedim(-1, -3).contiguous()
    clean_all = torch.from_numpy(clean_np).movedim(-1, -3).contiguous()
    levels_all = torch.from_numpy(level_np)
    # The neighbours' slots in reversed time (ORDER is centre, -2, -1, +1, +2).
    reverse = [td.ORDER.index(-t) for t in td.ORDER]

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(len(noisy_all), size=n)
        noisy = noisy_all[idx].float() / 255.0
        clean = clean_all[idx].float() / 255.0
        levels = levels_all[idx].clone()
        # Flips, quarter turns and reversed time are still video: eight times the windows.
        turns, flips, back = rng.integers(0, 4, n), rng.random(n) < 0.5, rng.random(n) < 0.5
        for i in range(n):
            x, y = noisy[i], clean[i]
            if back[i]:
                x = x[reverse]
            x, y = torch.rot90(x, int(turns[i]), (-2, -1)), torch.rot90(y, int(turns[i]), (-2, -1))
            if flips[i]:
                x, y = x.flip(-1), y.flip(-1)
            noisy[i], clean[i] = x, y
        # The strength control, as train_denoise.py trains it: the map carries the true level
        # (jittered +-10%) and the target is clean, or a lower level with a target that keeps
        # that share of the damage, or a higher one. Strength 0..1 then means what it means
        # for the single-frame model.
        share = torch.ones(n)
        scale = torch.from_numpy(rng.uniform(0.9, 1.1, n).astype(np.float32))
        kind = rng.random(n)
        lower = torch.from_numpy(kind < args.partial)
        higher = torch.from_numpy((kind >= args.partial) & (kind < args.partial + args.over))
        u = torch.from_numpy(rng.uniform(0.0, 1.0, n).astype(np.float32))
        share = torch.where(lower, u, share)
        scale = torch.where(lower, u, scale)
        scale = torch.where(higher, 1.0 + 0.5 * u, scale)
        centre = noisy[:, 0]
        target = centre + share.view(n, 1, 1, 1) * (clean - centre)
        size = noisy.shape[-2:]
        nmap = (levels * scale).view(n, 1, 1, 1).expand(n, 1, *size).contiguous()
        return noisy, nmap, target

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        noisy, nmap, target = batch
        out = model(noisy, nmap)
        loss = F.l1_loss(out, target)
        if args.fft_weight:
            # As train_denoise.py: L1 alone smooths texture the noise hides; the spectrum's
            # magnitude asks for its energy back.
            mag = torch.fft.rfft2(out, norm="ortho").abs()
            ref = torch.fft.rfft2(target, norm="ortho").abs()
            loss = loss + args.fft_weight * F.l1_loss(mag, ref)
        return loss

    def validate(model: torch.nn.Module) -> dict[str, float]:
        dev = next(model.parameters()).device
        metrics = dict(init["val"])
        for sigma, d in sets.items():
            s = int(sigma)
            aligned = d["aligned"]
            nmap = torch.full((aligned.shape[0], 1) + aligned.shape[-2:], sigma / 255.0)
            out = torch.cat(
                [
                    model(a.to(dev), m.to(dev)).cpu()
                    for a, m in zip(aligned.split(4), nmap.split(4), strict=True)
                ]
            )
            metrics[f"t{s}_out"] = round(psnr(out, d["clean"]), 3)
            metrics[f"t{s}_gain"] = round(metrics[f"t{s}_out"] - metrics[f"t{s}_single"], 3)
        return metrics

    config = {
        "arch": "TemporalDenoiser",
        "frames": len(td.ORDER),
        "order": list(td.ORDER),
        "channels": init["channels"],
        "convs": init["convs"],
        "rep": init["rep"],
        "max_noise": init["max_noise"],
        "fft_weight": args.fft_weight,
        "partial": args.partial,
        "over": args.over,
        "init": init,
    }
    logging.info("%d cached windows from %s", len(noisy_all), args.windows)
    train(NAME, model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
