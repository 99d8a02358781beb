"""Re-parameterisable convolutions: several parallel branches while training, one 3x3 conv at export.

Training capacity without inference cost (RepVGG, ECBSR): a 3x3 conv trained beside a 1x1 conv,
an identity and fixed edge filters (Sobel x, Sobel y, Laplacian, each after its own 1x1 mixing
conv) reaches better optima than the plain conv, yet every branch is linear, so their sum is
exactly one 3x3 kernel and one bias. `fold()` computes that kernel; `deploy()` swaps every
`RepConv3x3` in a model for the plain `nn.Conv2d` it equals, so the exported ONNX graph is the
same plain network as before.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Fixed 3x3 edge filters; each branch learns a 1x1 mix before it and a per-channel scale after.
EDGE_FILTERS = {
    "sobel_x": ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0)),
    "sobel_y": ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0)),
    "laplacian": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),
}


class RepConv3x3(nn.Module):
    """A 3x3 conv (padding 1) trained as 3x3 + 1x1 + identity + three edge branches."""

    def __init__(self, cin: int, cout: int, identity: bool = True) -> None:
        super().__init__()
        self.cin, self.cout = cin, cout
        self.conv3 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = nn.Conv2d(cin, cout, 1)
        # Edge branches: 1x1 mix (cin -> cout), then a fixed depthwise filter times a learned
        # per-channel scale. The scale starts small so the block starts as its 3x3 branch.
        self.edge_mix = nn.ModuleList(nn.Conv2d(cin, cout, 1) for _ in EDGE_FILTERS)
        self.edge_scale = nn.Parameter(torch.full((len(EDGE_FILTERS), cout), 0.1))
        self.register_buffer(
            "edge_kernels", torch.tensor(list(EDGE_FILTERS.values())).unsqueeze(1)
        )  # (E, 1, 3, 3)
        self.identity = identity and cin == cout
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every branch is linear, so the branched sum *is* one 3x3 conv whose kernel is a
        # (differentiable) function of the branch parameters. Running that conv gives the same
        # outputs and the same gradients for every branch as running the branches one by one,
        # at the cost of a plain conv: on a CPU the branched form trained 3-4x slower.
        w, b = self.fold()
        return F.conv2d(x, w, b, padding=1)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        """The branches run one by one (the definition that fold() must equal; used in tests)."""
        y = self.conv3(x) + self.conv1(x)
        if self.identity:
            y = y + x
        for i, mix in enumerate(self.edge_mix):
            k = (self.edge_kernels[i] * self.edge_scale[i].view(-1, 1, 1, 1)).expand(
                self.cout, 1, 3, 3
            )
            # The 1x1 mix's bias goes around the depthwise step (times the kernel's sum): at
            # the border a zero-padded 3x3 conv sees zeros, not the bias.
            y = y + F.conv2d(F.conv2d(x, mix.weight), k, padding=1, groups=self.cout)
            y = y + (mix.bias * k.sum(dim=(1, 2, 3))).view(1, -1, 1, 1)
        return y

    def fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of the single 3x3 conv that equals this block exactly."""
        w = self.conv3.weight + F.pad(self.conv1.weight, (1, 1, 1, 1))
        b = self.conv3.bias + self.conv1.bias
        if self.identity:
            eye = torch.eye(self.cout, dtype=w.dtype, device=w.device).view(
                self.cout, self.cin, 1, 1
            )
            w = w + F.pad(eye, (1, 1, 1, 1))
        for i, mix in enumerate(self.edge_mix):
            k = self.edge_kernels[i, 0] * self.edge_scale[i].view(-1, 1, 1)  # (cout, 3, 3)
            # depthwise(k_o) after a 1x1 mix M[o, c]: kernel[o, c] = M[o, c] * k_o.
            w = w + mix.weight[:, :, 0, 0].unsqueeze(-1).unsqueeze(-1) * k.unsqueeze(1)
            b = b + mix.bias * k.sum(dim=(1, 2))
        return w, b

    @torch.no_grad()
    def to_conv(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.cin, self.cout, 3, padding=1)
        w, b = self.fold()
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
        return conv


def deploy(model: nn.Module) -> nn.Module:
    """Replace every RepConv3x3 in `model` (in place) by its folded plain conv; returns `model`."""
    for name, child in list(model.named_children()):
        if isinstance(child, RepConv3x3):
            setattr(model, name, child.to_conv())
        else:
            deploy(child)
    return model
