"""Shared training loop: seeded batches, Adam with cosine decay, periodic atomic checkpoints."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

RUNS_DIR = Path(__file__).resolve().parent / "runs"


def base_args(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument(
        "--steps", type=int, default=4000, help="optimizer steps (sets the lr schedule)"
    )
    ap.add_argument("--minutes", type=float, default=0.0, help="stop early after this wall time")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--resume", action="store_true", help="continue from runs/NAME/latest.pt")
    return ap


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.clamp(0, 1) - b) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    name: str,
    model: torch.nn.Module,
    config: dict,
    args: argparse.Namespace,
    make_batch: Callable[[np.random.Generator, int], tuple[torch.Tensor, ...]],
    loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    validate: Callable[[torch.nn.Module], dict[str, float]],
) -> Path:
    """Train `model` and return the path of its final checkpoint.

    `make_batch(rng, batch)` builds one batch from a seeded generator, so a run is reproducible
    for a given seed and step count (wall-time stops only change where it ends).
    """
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = RUNS_DIR / name
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "latest.pt"
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    step = 0
    elapsed_before = 0.0  # training seconds spent by earlier runs this one resumes
    rng = np.random.default_rng(args.seed)
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step = ck["step"]
        elapsed_before = ck.get("elapsed", 0.0)
        rng.bit_generator.state = ck["rng"]
        log.info("resumed %s at step %d", name, step)

    def progress(s: int) -> float:
        # With a wall-time cap the cosine follows whichever budget runs out first, so a run
        # that is cut short by a busy machine still ends with a fully decayed learning rate.
        # Without --minutes the schedule is purely step-based and the run reproducible.
        p = s / args.steps
        if args.minutes:
            p = max(p, (elapsed_before + time.time() - start) / (args.minutes * 60))
        return min(p, 1.0)

    def lr_at(s: int) -> float:
        return 1e-5 + 0.5 * (args.lr - 1e-5) * (1.0 + math.cos(math.pi * progress(s)))

    def checkpoint() -> None:
        model.eval()
        with torch.no_grad():
            metrics = validate(model)
        model.train()
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "rng": rng.bit_generator.state,
                "config": config,
                "metrics": metrics,
                "seed": args.seed,
                "steps_planned": args.steps,
                "elapsed": elapsed_before + time.time() - start,
            },
            ckpt_path,
        )
        with open(run / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        log.info("%s step %d/%d %s", name, step, args.steps, metrics)

    start = time.time()
    first_step = step
    last_ck = start
    running = 0.0
    model.train()
    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = make_batch(rng, args.batch)
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
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
        if args.minutes and elapsed_before + now - start > args.minutes * 60:
            log.info("%s: time budget reached at step %d", name, step)
            break
    checkpoint()
    return ckpt_path


def to_nchw(batch: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(batch).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
