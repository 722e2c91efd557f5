"""The losses of Liu et al. Eq. 2-7 and the history buffer of generated images.

With G: LR -> HR (the generator), F: HR -> LR (the degradation), x an LR son and y its HR father
(all (N, 1, h, w) in [-1, 1]):

    Eq. 2  L_pixel = |G(x) - y|_1 + |F(y) - x|_1
    Eq. 3  L_percp = |phi(G(x)) - phi(y)|_2 + |phi(F(y)) - phi(x)|_2     phi = VGG16 conv12 (Sec. III-D)
    Eq. 5  L_adv   = -log D_hr(G(x)) - log D_lr(F(y))                     (Eq. 4 per generator)
    Eq. 6  L_cyc   = |F(G(x)) - x|_1 + |G(F(y)) - y|_1
    Eq. 7  L_total = alpha L_pixel + beta L_percp + gamma L_adv + eta L_cyc

Norms are means over pixels (the 1/N of the equations, per pixel), so the weights do not depend on
the crop size. phi sees LR images bicubic-up-sampled to the HR size, the 64 x 64 of the paper's
discriminator inputs (Sec. III-C: "all with size of 64 x 64"); D_lr sees them the same way.
"""
from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F


@dataclasses.dataclass
class LossWeights:
    """Liu et al. Sec. IV-B: "alpha, beta, gamma and eta are empirically set with 5, 0.1, 5 and 0.3"."""

    pixel: float = 5.0        # alpha, Eq. 7 (L_pixel, Eq. 2)
    perceptual: float = 0.1   # beta, Eq. 7 (L_percp, Eq. 3)
    adversarial: float = 5.0  # gamma, Eq. 7 (L_adv, Eq. 5)
    cycle: float = 0.3        # eta, Eq. 7 (L_cyc, Eq. 6)


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, lr_fake: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """Eq. 2: L1 of G(x) against y plus L1 of F(y) against x."""
    return F.l1_loss(sr, hr) + F.l1_loss(lr_fake, lr)


def perceptual_loss(phi, sr: torch.Tensor, hr: torch.Tensor, lr_fake_up: torch.Tensor, lr_up: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean squared distance of phi features; ``phi`` returns a list of feature maps.

    The targets' features carry no gradient (they are data)."""
    total = sr.new_zeros(())
    for fake, real in ((sr, hr), (lr_fake_up, lr_up)):
        with torch.no_grad():
            target = [t.detach() for t in phi(real)]
        for a, b in zip(phi(fake), target):
            total = total + F.mse_loss(a, b)
    return total


def generator_adversarial(logits_hr: torch.Tensor, logits_lr: torch.Tensor) -> torch.Tensor:
    """Eq. 5 with D = sigmoid(logits): -log D_hr(G(x)) - log D_lr(F(y)), mean over patches."""
    ones = torch.ones_like
    return (F.binary_cross_entropy_with_logits(logits_hr, ones(logits_hr))
            + F.binary_cross_entropy_with_logits(logits_lr, ones(logits_lr)))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's side of Eq. 4: -log D(real) - log(1 - D(fake)), mean over patches."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def cycle_loss(lr_cycle: torch.Tensor, lr: torch.Tensor, hr_cycle: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Eq. 6: L1 of F(G(x)) against x plus L1 of G(F(y)) against y."""
    return F.l1_loss(lr_cycle, lr) + F.l1_loss(hr_cycle, hr)


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Eq. 7 over the terms present (``pixel``, ``perceptual``, ``adversarial``, ``cycle``)."""
    total = None
    for name, value in terms.items():
        weighted = getattr(weights, name) * value
        total = weighted if total is None else total + weighted
    if total is None:
        raise ValueError("no loss term to sum")
    return total


class HistoryBuffer:
    """Past generated images for the discriminator update (Shrivastava et al. 2017 [35], Sec. 2.3).

    ``query(batch)`` returns a batch of the same shape where each image is, with probability 1/2
    once the buffer is full, a stored older image (the new one taking its place), else the new one.
    Shrivastava et al. use half current, half history; the buffer of 50 is CycleGAN's (Zhu et al.).
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch.detach()
        out = []
        for image in batch.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)
