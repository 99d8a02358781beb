"""Small fully-convolutional networks for Kwaflux's shipped denoise and super-resolution models."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kwaflux_lab.train.rep import RepConv3x3


def conv3x3(cin: int, cout: int, rep: bool, identity: bool = True) -> nn.Module:
    """A padded 3x3 conv: plain, or re-parameterisable while training (folded at export)."""
    if not rep:
        return nn.Conv2d(cin, cout, 3, padding=1)
    return RepConv3x3(cin, cout, identity=identity)


def weight_of(m: nn.Module) -> torch.Tensor:
    """The 3x3 kernel that initialisation acts on (the 3x3 branch of a RepConv3x3)."""
    return m.conv3.weight if isinstance(m, RepConv3x3) else m.weight


def bias_of(m: nn.Module) -> torch.Tensor:
    return m.conv3.bias if isinstance(m, RepConv3x3) else m.bias


def init_body(layers: list[nn.Module]) -> None:
    """He initialisation for the PReLU body, and a near-zero last conv.

    PyTorch's default conv init shrinks the signal about threefold per layer, so a 12-conv plain
    body starts with features that no longer depend on the input and gradients that vanish: the
    denoiser then sits at the identity and never learns. He init keeps the variance; the small
    last layer still starts the network close to its residual baseline.
    """
    convs = [m for m in layers if isinstance(m, (nn.Conv2d, RepConv3x3))]
    for conv in convs[:-1]:
        nn.init.kaiming_normal_(weight_of(conv), a=0.25, nonlinearity="leaky_relu")
        nn.init.zeros_(bias_of(conv))
    nn.init.normal_(weight_of(convs[-1]), std=1e-3)
    nn.init.zeros_(bias_of(convs[-1]))


class CompactSR(nn.Module):
    """SRVGGNetCompact-like upscaler: a plain conv body at LR resolution, pixel shuffle at the end.

    The body learns only the residual over a bilinear upsample of the input, which makes the
    network start from a sensible image and keeps colours exact in flat areas.
    """

    def __init__(self, scale: int, channels: int = 32, convs: int = 8, rep: bool = False) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [conv3x3(3, channels, rep), nn.PReLU(channels)]
        for _ in range(convs - 2):
            layers += [conv3x3(channels, channels, rep), nn.PReLU(channels)]
        layers.append(conv3x3(channels, 3 * scale * scale, rep))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)
        self.convs = convs
        init_body(layers)

    @property
    def receptive_field(self) -> int:
        """Input pixels on each side that an output pixel depends on (each 3x3 conv adds one;
        the bilinear residual needs one, covered by the first conv)."""
        return self.convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + self.shuffle(self.body(x))


class ResBlock(nn.Module):
    """conv-PReLU-conv with an identity skip; the second conv starts small so each block starts
    near the identity."""

    def __init__(self, channels: int, rep: bool = False) -> None:
        super().__init__()
        # No identity branch inside: the block's own skip already carries the identity.
        self.conv1 = conv3x3(channels, channels, rep, identity=False)
        self.act = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels, rep, identity=False)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(weight_of(conv), a=0.25, nonlinearity="leaky_relu")
            nn.init.zeros_(bias_of(conv))
        with torch.no_grad():
            weight_of(self.conv2).mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class NoiseMapDenoiser(nn.Module):
    """FFDNet-style denoiser: pixel-unshuffle to half resolution, concatenate a noise-level map,
    run a residual-block body, pixel-shuffle back and add to the input (residual learning).

    Working at half resolution quadruples the receptive field per FLOP, which matters on a CPU.
    The skip connections matter too: a plain 12-conv body of this width barely left the identity
    in thousands of CPU steps, the same depth with residual blocks learns within a hundred.
    """

    def __init__(self, channels: int = 48, convs: int = 12, rep: bool = False) -> None:
        super().__init__()
        if convs < 4 or convs % 2:
            raise ValueError("convs must be an even number >= 4 (head + 2 per block + tail)")
        self.convs = convs
        self.head = nn.Sequential(conv3x3(12 + 1, channels, rep), nn.PReLU(channels))
        self.blocks = nn.Sequential(*(ResBlock(channels, rep) for _ in range((convs - 2) // 2)))
        self.tail = conv3x3(channels, 12, rep)
        init_body([self.head[0], self.tail])

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
        # Centre the image around 0 so the first layer's response does not depend on brightness.
        low = F.pixel_unshuffle(xp, 2) - 0.5
        nmap = F.avg_pool2d(npad, 2)
        feats = self.blocks(self.head(torch.cat([low, nmap], dim=1)))
        res = F.pixel_shuffle(self.tail(feats), 2)
        return x + res[..., :h, :w]


class TemporalDenoiser(nn.Module):
    """NoiseMapDenoiser over the shipped fusion's output and the aligned window (FastDVDnet-like,
    one stage): the fused frame and every aligned frame are pixel-unshuffled the same way and the
    first conv reads them all with the fusion's per-pixel noise level as the noise map; the
    residual is added to the fused frame.

    `from_fusion` starts it as a copy of a trained single-frame model that reads only the fused
    frame and the level map (the aligned frames' weights zero): at step 0 it is the shipped
    temporal path (fusion graph, then the single-frame model at the level left), and training
    learns from the raw aligned frames what the fusion's hand-set weights get wrong.
    """

    def __init__(
        self, channels: int = 48, convs: int = 12, rep: bool = False, frames: int = 5
    ) -> None:
        super().__init__()
        if convs < 4 or convs % 2:
            raise ValueError("convs must be an even number >= 4 (head + 2 per block + tail)")
        self.convs, self.frames = convs, frames
        # 12 unshuffled channels for the fused frame, 12 per aligned frame, the noise map last.
        self.head = nn.Sequential(conv3x3(12 * (frames + 1) + 1, channels, rep), nn.PReLU(channels))
        self.blocks = nn.Sequential(*(ResBlock(channels, rep) for _ in range((convs - 2) // 2)))
        self.tail = conv3x3(channels, 12, rep)
        init_body([self.head[0], self.tail])

    @property
    def receptive_field(self) -> int:
        """As NoiseMapDenoiser's (the same body), around the fused and aligned frames."""
        return 2 * self.convs + 2

    @classmethod
    def from_fusion(cls, single: NoiseMapDenoiser, frames: int = 5) -> TemporalDenoiser:
        """A temporal model that computes exactly what `single` computes on (fused, level)."""
        head = single.head[0]
        rep = isinstance(head, RepConv3x3)
        channels = weight_of(head).shape[0]
        model = cls(channels, single.convs, rep=rep, frames=frames)
        src = single.state_dict()
        state = {}
        for name, value in model.state_dict().items():
            old = src[name]
            if old.shape == value.shape:
                state[name] = old.clone()
                continue
            # Only the first conv's input side differs (every branch of a RepConv3x3 alike):
            # 12 unshuffled image channels and the noise map before; the fused frame's 12, 12
            # per aligned frame and the map now. The map is the same per-pixel level the engine
            # feeds the single model (raw, 0..1 scale, 2x2-averaged inside both), so its weights
            # carry over as they are.
            if (
                not name.startswith("head.0.")
                or old.shape[1] != 13
                or old.shape[2:] != value.shape[2:]
            ):
                raise ValueError(f"{name}: cannot map {tuple(old.shape)} to {tuple(value.shape)}")
            new = torch.zeros_like(value)
            new[:, :12] = old[:, :12]
            new[:, -1] = old[:, 12]
            state[name] = new
        model.load_state_dict(state)
        return model

    def forward(
        self, fused: torch.Tensor, frames: torch.Tensor, level: torch.Tensor
    ) -> torch.Tensor:
        """Fused N×3×H×W, aligned window N×K×3×H×W (engine order), level N×1×H×W -> N×3×H×W."""
        n, k, c, h, w = frames.shape
        he, we = (h + 1) // 2 * 2, (w + 1) // 2 * 2
        x = torch.cat([fused[:, None], frames], 1).reshape(n * (k + 1), c, h, w)
        xp = F.pad(x, (0, 1, 0, 1), mode="replicate")[..., :he, :we]
        npad = F.pad(level, (0, 1, 0, 1), mode="replicate")[..., :he, :we]
        low = F.pixel_unshuffle(xp, 2).reshape(n, (k + 1) * 4 * c, he // 2, we // 2) - 0.5
        nmap = F.avg_pool2d(npad, 2)
        feats = self.blocks(self.head(torch.cat([low, nmap], dim=1)))
        res = F.pixel_shuffle(self.tail(feats), 2)
        return fused + res[..., :h, :w]
