"""Train the learned multi-frame denoiser (issue #14), starting as the shipped temporal path.

python -m kwaflux_lab.sets.temporal_data     # the cached windows, once
python -m kwaflux_lab.train.temporal --hours 6 --minutes 30   # one stint; resumes checkpoints/temporal.pt
python -m kwaflux_lab.train.temporal --hours 6 --minutes 30 --refresh   # ... on windows made anew
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from kwaflux_lab.sets import patches
from kwaflux_lab.sets import temporal_data as td
from kwaflux_lab.train import common as train_common
from kwaflux_lab.train.common import base_args, psnr, strength_targets, texture_loss, train
from kwaflux_lab.train.nets import NoiseMapDenoiser, TemporalDenoiser
from kwaflux_lab.train.rep import deploy

NAME = "temporal"
SIGMAS = (25.0, 15.0)
# Refreshed sets are seeded from here plus the step the stint starts at: never the default
# build's seed 1, and a new set for every stint that starts where another ended.
REFRESH_SEED = 100_000


def refresh_seed(step: int) -> int:
    """The seed of the training windows a stint starting at `step` rebuilds with --refresh."""
    return REFRESH_SEED + step


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
    """td.validation_windows as tensors (channels before height and width)."""
    sets = td.validation_windows(val, td.align_session(), td.fusion_session(), SIGMAS)
    return {s: {k: to_tensor(v) for k, v in d.items()} for s, d in sets.items()}


def baselines(single: torch.nn.Module, sets: dict) -> dict[str, float]:
    """Validation PSNR of the noisy centre, the single-frame model on it, and the shipped path."""
    out = {}
    for sigma, d in sets.items():
        s = int(sigma)
        centre, clean = d["frames"][:, 0], d["clean"]
        nmap = torch.full((centre.shape[0], 1) + centre.shape[2:], sigma / 255.0)
        with torch.no_grad():
            single_out = single(centre, nmap)
            # The shipped temporal path: fusion graph, then this model at the level left; the
            # temporal model computes exactly this at step 0.
            fusion_out = single(d["fused"], d["level"])
        out[f"t{s}_in"] = round(psnr(centre, clean), 3)
        out[f"t{s}_single"] = round(psnr(single_out, clean), 3)
        out[f"t{s}_fusion"] = round(psnr(fusion_out, clean), 3)
    return out


def log_start(metrics: dict[str, float], device: str) -> None:
    """The step-0 line of a new run's log (train() logs only after steps)."""
    path = train_common.CHECKPOINTS_DIR / f"{NAME}.log.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"step": 0, "hours": 0.0, "device": device, "time": round(time.time())}
    with open(path, "a") as f:
        f.write(json.dumps({**record, **metrics}) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = base_args(__doc__)
    # Fine-tuning a trained network: a lower peak rate than from scratch, or the first hundred
    # steps undo the body before the aligned frames' weights have learnt anything.
    ap.set_defaults(lr=3e-4, warmup=100)
    ap.add_argument("--windows", type=Path, default=td.DEFAULT_PATH, help="cached windows (.npz)")
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="single-frame checkpoint a new run starts from (default checkpoints/denoise.pt)",
    )
    ap.add_argument("--partial", type=float, default=0.3, help="as train/denoise.py")
    ap.add_argument("--over", type=float, default=0.1, help="as train/denoise.py")
    ap.add_argument("--fft-weight", type=float, default=0.05, help="as train/denoise.py")
    ap.add_argument(
        "--refresh",
        action="store_true",
        help="rebuild --windows before the stint (as many windows, seed from the step it starts "
        "at); the validation windows stay the fixed ones",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    tiles, val = patches.load(args.patches or patches.DEFAULT_PATH)
    sets = validation_sets(val)
    ckpt = train_common.checkpoint_path(NAME)
    fresh = args.fresh or not ckpt.exists()
    if not fresh:
        # Resuming: the start (and its validation figures) is the one recorded at step 0,
        # whatever checkpoints/denoise.pt has become since.
        init = torch.load(ckpt, map_location="cpu", weights_only=False)["config"]["init"]
        model = TemporalDenoiser(
            init["channels"], init["convs"], rep=init["rep"], frames=len(td.ORDER)
        )
    else:
        init_path = args.init or train_common.CHECKPOINTS_DIR / "denoise.pt"
        single, init = load_single(init_path, plain=args.no_rep)
        model = TemporalDenoiser.from_fusion(single, frames=len(td.ORDER))
        init["val"] = baselines(single, sets)
        logging.info("start %s", init)

    if args.refresh:
        # Fresh windows each stint instead of one small set reused at every step (the first
        # stint fitted its 760 windows and lost to the fusion on real video). Rebuilt rather
        # than cycled among a few pre-built sets: a new set costs a few minutes of the stint
        # (outside its training clock) and never repeats, where a cycle of N sets would hold N
        # times the disk and still come round again.
        step = 0 if fresh else int(torch.load(ckpt, map_location="cpu", weights_only=False)["step"])
        count = (
            td.read_meta(args.windows).get("count", td.COUNT) if args.windows.exists() else td.COUNT
        )
        logging.info("refresh: %d windows, seed %d", count, refresh_seed(step))
        td.build(
            args.windows,
            count=count,
            seed=refresh_seed(step),
            tiles=tiles,
            photos=td.pan_photos(args.patches),
        )
    cached = td.load(args.windows)
    # uint8 / float16 in memory (N x K x 3 x C x C ...): converted per batch.
    noisy_all = torch.from_numpy(cached["noisy"]).movedim(-1, -3).contiguous()
    clean_all = torch.from_numpy(cached["clean"]).movedim(-1, -3).contiguous()
    fused_all = torch.from_numpy(cached["fused"]).movedim(-1, -3).contiguous()
    lmap_all = torch.from_numpy(cached["level_map"])[:, None].contiguous()
    # The neighbours' slots in reversed time (ORDER is centre, -2, -1, +1, +2).
    reverse = [td.ORDER.index(-t) for t in td.ORDER]

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(len(noisy_all), size=n)
        noisy = noisy_all[idx].float() / 255.0
        clean = clean_all[idx].float() / 255.0
        fused = fused_all[idx].float()
        lmap = lmap_all[idx].float()
        # Flips, quarter turns and reversed time are still video: eight times the windows.
        turns, flips, back = rng.integers(0, 4, n), rng.random(n) < 0.5, rng.random(n) < 0.5
        for i in range(n):
            parts = [noisy[i], clean[i], fused[i], lmap[i]]
            if back[i]:
                # The fusion weighs every neighbour alike: its output does not change.
                parts[0] = parts[0][reverse]
            parts = [torch.rot90(p, int(turns[i]), (-2, -1)) for p in parts]
            if flips[i]:
                parts = [p.flip(-1) for p in parts]
            noisy[i], clean[i], fused[i], lmap[i] = parts
        # The strength control, as train/denoise.py trains it: the map carries the true level
        # (jittered +-10%) and the target is clean, or a lower level with a target that keeps
        # that share of the damage, or a higher one. Strength 0..1 then means what it means
        # for the single-frame model. The windows were fused at the true level (strength =
        # level / max_noise); at another strength the engine's level map scales with its sigma,
        # so the cached map is scaled by the same factor (the fusion's weights, which also move
        # a little with sigma, are kept).
        share, scale = strength_targets(rng, n, args.partial, args.over)
        centre = noisy[:, 0]
        target = centre + share.view(n, 1, 1, 1) * (clean - centre)
        nmap = lmap * scale.view(n, 1, 1, 1)
        return fused, noisy, nmap, target

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        fused, noisy, nmap, target = batch
        return texture_loss(model(fused, noisy, nmap), target, args.fft_weight)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        dev = next(model.parameters()).device
        metrics = dict(init["val"])
        for sigma, d in sets.items():
            s = int(sigma)
            parts = zip(
                d["fused"].split(4), d["aligned"].split(4), d["level"].split(4), strict=True
            )
            with torch.no_grad():
                out = torch.cat([model(f.to(dev), a.to(dev), m.to(dev)).cpu() for f, a, m in parts])
            metrics[f"t{s}_out"] = round(psnr(out, d["clean"]), 3)
            metrics[f"t{s}_gain"] = round(metrics[f"t{s}_out"] - metrics[f"t{s}_single"], 3)
            # What the model is for: beating the shipped path it starts as.
            metrics[f"t{s}_over_fusion"] = round(metrics[f"t{s}_out"] - metrics[f"t{s}_fusion"], 3)
        return metrics

    config = {
        "arch": "TemporalDenoiser",
        "input": "fusion",  # the fused frame, the aligned frames and the fusion's level map
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
    if fresh:
        # Before any step: the model must read exactly the fusion column here.
        model.eval()
        start = validate(model)
        logging.info("step 0 %s", start)
        log_start(start, args.device)
        model.train()
    train(NAME, model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
