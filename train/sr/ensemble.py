"""Inference as Liu et al. do it (Sec. IV-B): "we combine self-ensemble and back projection
techniques to get corrected median image as final super-resolved image" (after ZSSR [14], Sec. 4).

For each of the 8 rotations/flips T_k of the LR input x, the output is T_k^-1(G(T_k(x))), corrected by
iterative back-projection (Irani & Peleg 1991): sr <- sr + up(x - down(sr)), so that down(sr) comes
back to x. The 8 corrected outputs are combined by their pixelwise median, and the median is
back-projected once more (ZSSR's final step).
"""
from __future__ import annotations

from typing import Callable

import torch

from sonoedge.train.sr.degrade import Operator, apply
from sonoedge.train.sr.fathers import dihedral, dihedral_inverse
from sonoedge.train.sr.resize import resize

Model = Callable[[torch.Tensor], torch.Tensor]  # (N, 1, h, w) in [-1, 1] -> (N, 1, 4h, 4w)


def back_project(sr: torch.Tensor, lr: torch.Tensor, iterations: int = 8, scale: int = 4,
                 op: Operator | None = None, noise: float = 0.0) -> torch.Tensor:
    """Iterative back-projection of ``sr`` (N, 1, 4h, 4w) onto ``lr`` (N, 1, h, w): down-scaling by
    ``op`` (degrade.py; None: the anti-aliased bicubic of resize.py), the error up-scaled bicubic.

    The down-scaling must be the operator that made ``lr``: back-projecting through the wrong one
    forces the wrong consistency (ZSSR Sec. 4 and KernelGAN use the estimated kernel here too).
    8 iterations: ZSSR's default number of back-projection steps (our choice of constant).

    ``noise`` (RMS, in the [-1, 1] units of ``lr``) stops early by the discrepancy principle (Morozov):
    once ``lr - down(sr)`` is no larger than the noise, further steps fit the noise, not the image
    (back-projecting speckle into the output is what made it worse than bicubic on noisy input)."""
    for _ in range(iterations):
        down = resize(sr, size=tuple(lr.shape[-2:])) if op is None else apply(op, sr)
        error = lr - down
        if noise and float(error.pow(2).mean().sqrt()) <= noise:
            break
        sr = sr + resize(error, size=tuple(sr.shape[-2:]))
    return torch.clamp(sr, -1.0, 1.0)


@torch.no_grad()
def self_ensemble(model: Model, lr: torch.Tensor, transforms: int = 8, back_projection: int = 8,
                  scale: int = 4, progress: Callable[[int], None] | None = None,
                  op: Operator | None = None, noise: float = 0.0) -> torch.Tensor:
    """(1, 1, h, w) in [-1, 1] -> (1, 1, 4h, 4w) in [-1, 1]: median of ``transforms`` (1, 4 or 8)
    geometric variants, each back-projected ``back_projection`` times; 0 turns back-projection off.

    ``progress(k)`` is called after each variant (for a progress bar); ``op`` is the degradation
    back-projection inverts (:func:`back_project`). A flipped/rotated view is back-projected in the
    original orientation, so a kernel need not be symmetric."""
    if transforms not in (1, 4, 8):
        raise ValueError(f"transforms must be 1, 4 or 8, got {transforms}")
    outputs = []
    for k in _variants(transforms):
        sr = dihedral_inverse(model(dihedral(lr, k)), k)
        if back_projection:
            sr = back_project(sr, lr, back_projection, scale, op, noise)
        outputs.append(sr)
        if progress is not None:
            progress(k)
    median = _median(torch.stack(outputs, dim=0))
    if back_projection:
        median = back_project(median, lr, back_projection, scale, op, noise)
    return median


def _median(stack: torch.Tensor) -> torch.Tensor:
    """The true median over axis 0 (mean of the two middle values for an even count, as numpy)."""
    ordered = stack.sort(dim=0).values
    n = ordered.shape[0]
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def _variants(transforms: int) -> list[int]:
    return {1: [0], 4: [0, 1, 2, 3], 8: list(range(8))}[transforms]
