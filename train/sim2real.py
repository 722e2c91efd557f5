"""Grimwood et al. 2022 (seed 004) for the CycleGAN trainer: the denoiser-guarded discriminator and
the linear learning-rate decay, options of ``train/trainer.py`` usable by every preset.

Steganography guard (Sec. 2.2): "A small pre-trained Gaussian denoising network was added before
each discriminator to prevent the generator from embedding information capable of facilitating
loss minimization without improving image-to-image translation" (Porav et al. 2019; DnCNN, Zhang
et al. 2017). A CycleGAN generator can hide the source image in low-amplitude high-frequency noise
so the other generator can undo the translation (cycle loss) while the discriminator, which sees
that noise, is not what forces realism. With the guard, each discriminator judges the image after a
denoiser, so a hidden high-frequency code buys the generator nothing from D.

Deviation, said wherever it matters: no pretrained DnCNN weights exist on this machine, so the
denoiser here is the fixed Gaussian one (``model.discriminator_denoiser = "gaussian"``, standard
deviation ``model.denoiser_sigma`` pixels), the minimum-mean-square-error linear denoiser for a
smooth image under white noise up to the choice of sigma. It removes the same band; it has no
parameters, so checkpoints keep the discriminators' keys unchanged.

    guard_discriminator(D, "gaussian", sigma=1.0)    # D(x) now scores gaussian_blur(x)
    LinearDecay(constant_epochs=100, total_epochs=200)   # LambdaLR factor: 1, then linearly to 0
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sonoedge.runtime.errors import InputError

DENOISERS = ("none", "gaussian")


class GaussianDenoiser(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): separable Gaussian filter, reflect-padded, no parameters."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if not sigma > 0:
            raise InputError(f"model.denoiser_sigma must be positive, got {sigma}")
        radius = max(1, math.ceil(3 * sigma))  # +-3 sigma holds 99.7 % of the kernel
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (x / sigma) ** 2)
        self.register_buffer("kernel", k / k.sum(), persistent=False)  # not in the state dict
        self.radius = radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, r = x.shape[1], self.radius
        k = self.kernel.to(x.dtype)
        x = nn.functional.pad(x, (r, r, r, r), mode="reflect")
        x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _denoise_input(module: nn.Module, args: tuple) -> tuple:
    return (module.denoiser(args[0]), *args[1:])


def guard_discriminator(d: nn.Module, denoiser: str, sigma: float = 1.0) -> nn.Module:
    """``d`` scoring its input after ``denoiser`` ("none": unchanged). Returns ``d`` itself."""
    if denoiser not in DENOISERS:
        raise InputError(f"model.discriminator_denoiser must be one of {', '.join(DENOISERS)}, got '{denoiser}'")
    if denoiser == "none":
        return d
    d.denoiser = GaussianDenoiser(sigma)
    d.register_forward_pre_hook(_denoise_input)
    return d


class LinearDecay:
    """LambdaLR factor: 1 for ``constant_epochs``, then linearly to 0 at ``total_epochs`` (Grimwood et
    al. 2022 Sec. 2.3, "decayed linearly after 100 epochs"; the CycleGAN "linear" policy). A class,
    not a lambda, so the scheduler's state dict holds plain numbers."""

    def __init__(self, constant_epochs: int, total_epochs: int):
        self.constant_epochs, self.total_epochs = int(constant_epochs), int(total_epochs)

    def __call__(self, epoch: int) -> float:
        decay = max(1, self.total_epochs - self.constant_epochs)
        return max(0.0, 1.0 - max(0, epoch - self.constant_epochs) / decay)


def make_scheduler(optimizer: torch.optim.Optimizer, optim_cfg, epochs: int):
    """The per-epoch scheduler of ``optim.lr_policy``: "step" (StepLR) or "linear" (LinearDecay)."""
    if optim_cfg.lr_policy == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(optim_cfg.lr_step_epochs, epochs))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim_cfg.lr_step_epochs, gamma=optim_cfg.lr_gamma)
