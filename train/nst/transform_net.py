"""The image transform network of Johnson et al. 2016 as Menini 2020 uses it (Sec. 2.3, 3.3),
with StyleGAN-like learned noise injection in the decoder (Karras et al. 2019; thesis Sec. 3.3).

    G = GENERATORS.create("johnson", ngf=32, noise=True)   # (N, 1, H, W) -> (N, 1, H, W), H, W multiples of 4

Johnson et al. (supplementary, "Network architectures"): 9x9 conv (32), two stride-2 3x3 convs
(64, 128), five residual blocks (128), two x2 up-sampling 3x3 convs (64, 32), 9x9 conv to the image,
instance normalisation and ReLU after every conv but the last, tanh at the end ([-1, 1]).
Up-sampling is nearest x2 then a 3x3 conv (no transposed conv: no checkerboard).

Noise injection (thesis Sec. 3.3): "weighted gaussian noise, whose weighting can be learnt by the
network, and are active both at training and test time"; three such layers in the decoder ("three
noise injection layers in the decoding section", Sec. 4.3): after the residual blocks and after each
up-sampling conv. As in StyleGAN, one noise image per sample is scaled by a learned per-channel
weight, initialised to zero (the untrained network is the noiseless one). ``noise=False`` ablates them.
"""
from __future__ import annotations

import torch
from torch import nn

from sonoedge.train.registries import GENERATORS


class NoiseInjection(nn.Module):
    """x + w_c * n, n ~ N(0, 1) of shape (N, 1, H, W), w learned per channel (StyleGAN, Sec. 2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.weight * noise


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode="reflect"),
                               nn.InstanceNorm2d(c_out, affine=True)]
    return layers + ([nn.ReLU()] if relu else [])


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(c, c, 3), *_conv(c, c, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@GENERATORS.register("johnson")
class TransformNet(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, C, H, W) in [-1, 1]; H and W multiples of ``stride`` (4)."""

    stride = 4
    scale = 1

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 32, n_blocks: int = 5, noise: bool = True):
        super().__init__()
        self.encoder = nn.Sequential(*_conv(in_channels, ngf, 9), *_conv(ngf, 2 * ngf, 3, 2), *_conv(2 * ngf, 4 * ngf, 3, 2),
                                     *(_Residual(4 * ngf) for _ in range(n_blocks)))
        noise_layer = NoiseInjection if noise else (lambda c: nn.Identity())
        self.decoder = nn.Sequential(
            noise_layer(4 * ngf),
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv(4 * ngf, 2 * ngf, 3), noise_layer(2 * ngf),
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv(2 * ngf, ngf, 3), noise_layer(ngf),
            nn.Conv2d(ngf, out_channels, 9, padding=4, padding_mode="reflect"), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
