"""PatchGAN discriminator with spectral normalisation (Athreya et al. 2024, both versions).

    D = DISCRIMINATORS.create("patchgan")     # (N, 1, 256, 256) -> (N, 1, 30, 30) scores

Conference Sec. 2.2 / journal "Discriminator": a first convolution "that compresses spatial
information and expands depth followed by a LeakyReLU", spectral normalisation on every layer
(1-Lipschitz), ending in a 30x30 grid of depth 1 for a 256x256 input. That is the 70x70 PatchGAN of
Isola et al. (journal ref. 27): three 4x4 stride-2 convs, one 4x4 stride-1 conv, a 4x4 stride-1
conv to one channel (256 -> 128 -> 64 -> 32 -> 31 -> 30). Spectral norm replaces batch/instance
norm. The output is unbounded (LSGAN: compared with targets by MSE).
"""
from __future__ import annotations

import torch
from torch import nn

from sonoedge.train.registries import DISCRIMINATORS


@DISCRIMINATORS.register("patchgan")
class PatchDiscriminator(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, 1, H/8 - 2, W/8 - 2) real/fake scores (30x30 for 256x256)."""

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        from torch.nn.utils.parametrizations import spectral_norm

        layers: list[nn.Module] = []
        c_in, c_out = in_channels, ndf
        for i in range(n_layers):  # stride-2 steps, widths ndf, 2ndf, 4ndf (capped at 8ndf)
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in, c_out = c_out, ndf * min(2 ** (i + 1), 8)
        layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=1, padding=1)), nn.LeakyReLU(0.2)]
        layers += [spectral_norm(nn.Conv2d(c_out, 1, 4, stride=1, padding=1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
