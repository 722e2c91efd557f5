"""Enhancement generators of Athreya et al. (seeds 000 and 001), registered in ``GENERATORS``.

Every generator here:
- takes (N, C, H, W) float in [-1, 1] and returns (N, C, H, W) in [-1, 1] (tanh), with
  C = ``in_channels`` = ``out_channels`` = 1 (grey B-mode) by default;
- is fully convolutional; H and W must be multiples of ``self.stride`` (callers reflect-pad,
  ``sonoedge.runtime.frames.pad_to_stride``);
- has ``scale = 1`` (enhancement, same size out as in);
- uses only ops that export to ONNX opset 17 (Conv, ConvTranspose, InstanceNormalization, Pad
  reflect, Resize nearest, Concat, Relu/LeakyRelu, Tanh) and no in-place tricks.

    G = GENERATORS.create("resnet", n_blocks=15)      # conference paper generator
    G = GENERATORS.create("unet", depth=8)            # journal paper generator
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.train.registries import GENERATORS


def _norm(channels: int) -> nn.Module:
    # Instance normalisation, Athreya et al. 2024 (conference Sec. 2.2; journal "Generator").
    # No running statistics: train and eval behave the same and ONNX export is exact.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """conv3 + IN + ReLU, conv3 + IN, added to the input (conference Sec. 2.2). (N, ch, h, w) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"), _norm(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@GENERATORS.register("resnet")
class ResnetGenerator(nn.Module):
    """The conference generator (Athreya et al. 2024, seed 000, Sec. 2.2 and Fig. 1b).

    Encoder: 7x7 conv with ``ngf`` (64) channels, then ``n_down`` stride-2 3x3 convs doubling the
    width; ``n_blocks`` (15, "the sequence of 15 residual blocks") residual blocks at the bottom;
    decoder: per level nearest-neighbour x2 up-sampling, concatenation with the encoder feature of
    that resolution (the skip connection), 3x3 conv halving the width; a 7x7 conv to
    ``out_channels`` and tanh. stride = 2 ** n_down.
    """

    scale = 1

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, n_blocks: int = 15,
                 n_down: int = 2):
        super().__init__()
        if n_down < 0 or n_blocks < 0 or ngf < 1:
            raise ValueError(f"resnet generator needs ngf >= 1, n_blocks >= 0, n_down >= 0; got {ngf}, {n_blocks}, {n_down}")
        self.stride = 2 ** n_down
        # 7x7, 64 channels: "a large kernel size to capture broader contextual details" (Sec. 2.2)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode="reflect"), _norm(ngf), nn.ReLU())
        widths = [ngf * 2 ** i for i in range(n_down + 1)]  # width at each resolution level
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, padding_mode="reflect"),
                          _norm(widths[i + 1]), nn.ReLU())
            for i in range(n_down)
        )
        self.blocks = nn.Sequential(*(ResidualBlock(widths[-1]) for _ in range(n_blocks)))
        # up[j] goes from level i+1 to level i, i = n_down - 1 - j; input = upsampled + skip
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, padding=1, padding_mode="reflect"),
                          _norm(widths[i]), nn.ReLU())
            for i in reversed(range(n_down))
        )
        self.head = nn.Conv2d(ngf, out_channels, 7, padding=3, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1]
        skips = [self.stem(x)]
        for layer in self.down:
            skips.append(layer(skips[-1]))
        y = self.blocks(skips.pop())
        for layer in self.up:
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")  # nearest-neighbour, Sec. 2.2
            y = layer(torch.cat([y, skips.pop()], dim=1))
        return torch.tanh(self.head(y))  # (N, C, H, W) in [-1, 1]


@GENERATORS.register("unet")
class UnetGenerator(nn.Module):
    """The journal generator (Athreya et al. 2024, JMIR Biomed Eng, seed 001, "Generator", Fig. 2A).

    pix2pix-style U-Net (Isola et al., the paper's ref. 27): ``depth`` encoder steps, each a 4x4
    stride-2 conv (first with ``ngf`` = 64 channels, doubling up to ``8 * ngf``) + InstanceNorm
    (not on the first and innermost step, as pix2pix) + LeakyReLU(0.2), with dropout on the
    ``dropout_layers`` deepest encoder steps ("dropout layers are included in deeper layers of the
    encoder"); decoder: 4x4 stride-2 transposed convs + InstanceNorm + ReLU, concatenated with the
    encoder feature of the same resolution; a last transposed conv and tanh. stride = 2 ** depth.
    depth = 8 is pix2pix's unet_256 (a 256x256 input reaches 1x1 at the bottom).
    """

    scale = 1

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, depth: int = 8,
                 dropout: float = 0.5, dropout_layers: int = 3):
        super().__init__()
        if depth < 2 or ngf < 1:
            raise ValueError(f"unet generator needs depth >= 2 and ngf >= 1; got depth={depth}, ngf={ngf}")
        self.stride = 2 ** depth
        widths = [ngf * min(2 ** i, 8) for i in range(depth)]  # 64, 128, 256, 512, 512, ... (pix2pix)
        self.encoder = nn.ModuleList()
        for i in range(depth):
            layers: list[nn.Module] = [nn.Conv2d(in_channels if i == 0 else widths[i - 1], widths[i], 4, stride=2, padding=1)]
            if 0 < i < depth - 1:
                layers.append(_norm(widths[i]))
            layers.append(nn.LeakyReLU(0.2))  # LeakyReLU in the encoder; slope 0.2 as pix2pix
            if dropout > 0 and depth - 1 - dropout_layers <= i < depth - 1:
                layers.append(nn.Dropout(dropout))  # deep encoder layers (journal, "Generator")
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList()
        for i in reversed(range(depth - 1)):  # from level i+1 to level i
            c_in = widths[i + 1] if i == depth - 2 else 2 * widths[i + 1]
            self.decoder.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, widths[i], 4, stride=2, padding=1), _norm(widths[i]), nn.ReLU()))
        self.head = nn.ConvTranspose2d(2 * widths[0], out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1]
        skips = []
        y = x
        for layer in self.encoder:
            y = layer(y)
            skips.append(y)
        y = skips.pop()
        for layer in self.decoder:
            y = torch.cat([layer(y), skips.pop()], dim=1)
        return torch.tanh(self.head(y))  # (N, C, H, W) in [-1, 1]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
