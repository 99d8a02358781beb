"""A trainer's run in miniature for the tests of python/kwaflux_lab/train: six steps of x2 on random
8×8 crops, cut into stints as asked, so resuming can be checked against one whole run."""

from __future__ import annotations

import numpy as np


def tiny_args(common, stint: int, fresh: bool):
    """common.base_args parsed for a six-step run, `stint` steps at a time."""
    return common.base_args("t").parse_args(
        ["--steps", "6", "--hours", "1e6", "--batch", "2", "--warmup", "2"]
        + ["--stint-steps", str(stint)]
        + (["--fresh"] if fresh else [])
    )


def tiny_batch(rng: np.random.Generator, n: int):
    """n random LR crops and their nearest-neighbour x2 as targets (NCHW tensors)."""
    import torch

    lr = torch.from_numpy(rng.random((n, 3, 8, 8), dtype=np.float32))
    return lr, torch.nn.functional.interpolate(lr, scale_factor=2)
