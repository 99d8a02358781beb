"""Small fully-convolutional networks for Kwaflux's shipped denoise and super-resolution models."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CompactSR(nn.Module):
    """SRVGGNetCompact-like upscaler: a plain conv body at LR resolution, pixel shuffle at the end.

    The body learns only the residual over a bilinear upsample of the input, which makes the
    network start from a sensible image and keeps colours exact in flat areas.
    """

    def __init__(self, scale: int, channels: int = 32, convs: int = 8) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.PReLU(channels)]
        for _ in range(convs - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels)]
        layers.append(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)
        self.convs = convs
        # Zero the last conv so training starts at exactly the bilinear upsample.
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    @property
    def receptive_field(self) -> int:
        """Input pixels on each side that an output pixel depends on (each 3x3 conv adds one;
        the bilinear residual needs one, covered by the first conv)."""
        return self.convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + self.shuffle(self.body(x))


class NoiseMapDenoiser(nn.Module):
    """FFDNet-style denoiser: pixel-unshuffle to half resolution, concatenate a noise-level map,
    run a plain conv body, pixel-shuffle back and add to the input (residual learning).

    Working at half resolution quadruples the receptive field per FLOP, which matters on a CPU.
    """

    def __init__(self, channels: int = 48, convs: int = 10) -> None:
        super().__init__()
        self.convs = convs
        layers: list[nn.Module] = [nn.Conv2d(12 + 1, channels, 3, padding=1), nn.PReLU(channels)]
        for _ in range(convs - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels)]
        layers.append(nn.Conv2d(channels, 12, 3, padding=1))
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    @property
    def receptive_field(self) -> int:
        """Input pixels on each side an output pixel depends on: each conv at half resolution
        reaches two full-resolution pixels, plus the 2x2 grouping. Even on purpose: the
        unshuffle grid only lines up between tiles that start at even offsets."""
        return 2 * self.convs + 2

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        # Odd sizes: replicate one row/column, crop to even, and crop the result back. Always
        # padding (rather than branching on h % 2) keeps the exported graph valid for any size.
        he, we = (h + 1) // 2 * 2, (w + 1) // 2 * 2
        xp = F.pad(x, (0, 1, 0, 1), mode="replicate")[..., :he, :we]
        npad = F.pad(noise_level, (0, 1, 0, 1), mode="replicate")[..., :he, :we]
        low = F.pixel_unshuffle(xp, 2)
        nmap = F.avg_pool2d(npad, 2)
        res = F.pixel_shuffle(self.body(torch.cat([low, nmap], dim=1)), 2)
        return x + res[..., :h, :w]
