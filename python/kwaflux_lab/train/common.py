"""Shared training loop: seeded batches, Adam with cosine decay over a time budget, an EMA of the
weights, and resumable atomic checkpoints under python/checkpoints/ (small enough to commit)."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kwaflux_lab import jobs, paths

log = logging.getLogger(__name__)

# Read at call time (checkpoint_path): the tests and eval/check_temporal.py point it elsewhere.
CHECKPOINTS_DIR = paths.CHECKPOINTS_DIR
EMA_DECAY = 0.999


def base_args(description: str) -> argparse.ArgumentParser:
    ap = jobs.parser(description)
    ap.add_argument(
        "--hours",
        type=float,
        default=8.0,
        help="training hours the whole run is planned for, over all stints (sets the lr schedule)",
    )
    ap.add_argument(
        "--steps", type=int, default=10**9, help="stop (and end the schedule) at this step"
    )
    ap.add_argument("--minutes", type=float, default=0.0, help="length of this stint (0: no cap)")
    ap.add_argument("--stint-steps", type=int, default=0, help="steps in this stint (0: no cap)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300, help="linear warm-up steps of a new run")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds")
    ap.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming the checkpoint"
    )
    ap.add_argument("--patches", type=Path, default=None, help="prepared patches (.npz)")
    ap.add_argument("--no-rep", action="store_true", help="plain convs, no re-parameterisation")
    ap.add_argument(
        "--name-suffix",
        default="",
        help="appended to the checkpoint name (e.g. -v2: sr-x2-v2.pt beside the shipped sr-x2.pt)",
    )
    return ap


def extra_validation(path: Path | None) -> np.ndarray | None:
    """The second validation set of a patches file (`val_v2`: crops of photos held out from every
    source, sets/patches_v2.py), or None where the file has none."""
    if path is None or not Path(path).exists():
        return None
    with np.load(path) as z:
        return z["val_v2"] if "val_v2" in z.files else None


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.clamp(0, 1) - b) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_path(name: str) -> Path:
    return CHECKPOINTS_DIR / f"{name}.pt"


def load_checkpoint(name: str) -> dict:
    return torch.load(checkpoint_path(name), map_location="cpu", weights_only=False)


def train(
    name: str,
    model: torch.nn.Module,
    config: dict,
    args: argparse.Namespace,
    make_batch: Callable[[np.random.Generator, int], tuple[torch.Tensor, ...]],
    loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    validate: Callable[[torch.nn.Module], dict[str, float]],
    extra_state: dict | None = None,
) -> Path:
    """Train `model` for one stint and return the path of its checkpoint.

    `make_batch(rng, batch)` builds one CPU batch from a seeded generator, so a run is
    reproducible for a given seed and step count (wall-time stops only change where it ends).
    The learning rate follows a cosine over the planned `--hours` of training (summed over every
    stint that resumes this run) or `--steps`, whichever ends first; validation and export use an
    exponential moving average of the weights, which is what a stint can stop at cleanly.
    `extra_state` names further objects with state_dict/load_state_dict (a discriminator and its
    optimizer) saved in the checkpoint and restored on resume.
    """
    name = name + getattr(args, "name_suffix", "")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    CHECKPOINTS_DIR.mkdir(parents=True, exist_ok=True)
    ckpt_path = checkpoint_path(name)
    model.to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    step = 0
    elapsed_before = 0.0  # training seconds spent by earlier stints of this run
    rng = np.random.default_rng(args.seed)
    if not args.fresh and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["config"] != config:
            raise SystemExit(
                f"{ckpt_path}: checkpoint is for {ck['config']}, not {config}; "
                "pass --fresh to start a new run"
            )
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        step = ck["step"]
        elapsed_before = ck.get("elapsed", 0.0)
        rng.bit_generator.state = ck["rng"]
        for key, obj in (extra_state or {}).items():
            obj.load_state_dict(ck["extra"][key])
        log.info("resumed %s at step %d after %.2f h", name, step, elapsed_before / 3600)
    start = time.time()
    # Training time is what the curve in docs/models.md is plotted against. On the CPU it is
    # this process's CPU time (divided by its threads), so a machine shared with other work, or
    # a trainer paused with SIGSTOP while a benchmark runs, does not count as training; on CUDA
    # it is wall time, the GPU's time. (Stints before 2026-12-01 counted wall time on one
    # thread, close to this on a core of its own.)
    clock = time.time if device.type == "cuda" else time.process_time
    clock_start = clock()
    per_thread = 1 if device.type == "cuda" else max(args.threads, 1)

    def elapsed() -> float:
        return elapsed_before + (clock() - clock_start) / per_thread

    def lr_at(s: int) -> float:
        p = min(max(s / args.steps, elapsed() / (args.hours * 3600)), 1.0)
        warm = min(1.0, (s + 1) / args.warmup) if args.warmup else 1.0
        return warm * (1e-5 + 0.5 * (args.lr - 1e-5) * (1.0 + math.cos(math.pi * p)))

    def checkpoint() -> dict[str, float]:
        with torch.no_grad():
            metrics = validate(ema)
        save_atomic(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "rng": rng.bit_generator.state,
                "config": config,
                "metrics": metrics,
                "seed": args.seed,
                "hours_planned": args.hours,
                "elapsed": elapsed(),
                "device": args.device,
                **(
                    {"extra": {k: o.state_dict() for k, o in extra_state.items()}}
                    if extra_state
                    else {}
                ),
            },
            ckpt_path,
        )
        # The validation curve against training hours (docs/models.md is written from it).
        record = {"step": step, "hours": round(elapsed() / 3600, 4), "device": args.device}
        with open(CHECKPOINTS_DIR / f"{name}.log.jsonl", "a") as f:
            f.write(json.dumps({**record, "time": round(time.time()), **metrics}) + "\n")
        log.info("%s step %d %.2f h %s", name, step, elapsed() / 3600, metrics)
        return metrics

    first_step = step
    last_ck = time.time()
    running = 0.0
    model.train()
    while step < args.steps and elapsed() < args.hours * 3600:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = tuple(t.to(device, non_blocking=True) for t in make_batch(rng, args.batch))
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(EMA_DECAY, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1.0 - decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > first_step + 1 else loss.item()
        if step % 50 == 0:
            log.info(
                "%s step %d loss %.5f lr %.2e %.2fs/step",
                name,
                step,
                running,
                lr_at(step),
                (time.time() - start) / max(step - first_step, 1),
            )
        now = time.time()
        if now - last_ck > args.checkpoint_every:
            checkpoint()
            last_ck = now
        if (args.minutes and now - start > args.minutes * 60) or (
            args.stint_steps and step - first_step >= args.stint_steps
        ):
            log.info("%s: stint done at step %d", name, step)
            break
    checkpoint()
    return ckpt_path


def strength_targets(
    rng: np.random.Generator, n: int, partial: float, over: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the share of the damage the target removes and the factor on the noise level
    the network is told: mostly (1, 0.9..1.1, jittered so the control is smooth); with
    probability `partial` (u, u) for u uniform in 0..1, a lower strength whose target keeps the
    rest of the damage; with probability `over` (1, 1..1.5), a higher one with a clean target.
    So the level is a strength control the network must obey: 0 keeps the input, and low
    strengths keep grain and texture."""
    share = torch.ones(n)
    scale = torch.from_numpy(rng.uniform(0.9, 1.1, n).astype(np.float32))
    kind = rng.random(n)
    lower = torch.from_numpy(kind < partial)
    higher = torch.from_numpy((kind >= partial) & (kind < partial + over))
    u = torch.from_numpy(rng.uniform(0.0, 1.0, n).astype(np.float32))
    share = torch.where(lower, u, share)
    scale = torch.where(lower, u, scale)
    scale = torch.where(higher, 1.0 + 0.5 * u, scale)
    return share, scale


def texture_loss(out: torch.Tensor, target: torch.Tensor, fft_weight: float) -> torch.Tensor:
    """L1, plus `fft_weight` times the L1 of the two spectra's magnitudes. L1 alone is minimised
    by the conditional median, which smooths texture whose phase the noise hides; matching the
    spectrum's magnitude asks for its energy back."""
    from torch.nn import functional as F

    loss = F.l1_loss(out, target)
    if fft_weight:
        mag = torch.fft.rfft2(out, norm="ortho").abs()
        ref = torch.fft.rfft2(target, norm="ortho").abs()
        loss = loss + fft_weight * F.l1_loss(mag, ref)
    return loss


def to_nchw(batch: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(batch).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
