"""The loss terms of Athreya et al. 2024 (conference seed 000 Sec. 2.3-2.4, Eqs. 1-7; journal seed 001
"Loss Function"), each a small function of tensors.

Images are (N, C, H, W) in [-1, 1]; discriminator outputs are (N, 1, h, w) unbounded scores.
Every function returns a scalar tensor. ``phi`` is a perceptual distance: a callable taking two
(N, C, H, W) tensors in [-1, 1] and returning (N,) distances, e.g. the LPIPS of
``sonoedge.train.lpips_offline.build_lpips`` (grey repeated to 3 channels there).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Phi = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Label smoothing of the discriminator (conference Eq. 7; journal "Discriminator Loss"): real
# images are labelled 1.0 while the mean real scores are below 0.9, else 0.9.
SMOOTH_THRESHOLD = 0.9
SMOOTH_TARGET = 0.9


def adversarial_g(*fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss, sum over domains of MSE(1, D(fake)) (conference Eq. 3; journal L_adv)."""
    return sum(F.mse_loss(s, torch.ones_like(s)) for s in fake_scores)


def cycle_l1(real_h: torch.Tensor, cycled_h: torch.Tensor, real_l: torch.Tensor, cycled_l: torch.Tensor) -> torch.Tensor:
    """||H - G_H(G_L(H))||_1 + ||L - G_L(G_H(L))||_1 (conference Eq. 4), mean absolute error per term."""
    return F.l1_loss(cycled_h, real_h) + F.l1_loss(cycled_l, real_l)


def identity_l1(real_h: torch.Tensor, g_h_of_h: torch.Tensor, real_l: torch.Tensor, g_l_of_l: torch.Tensor) -> torch.Tensor:
    """||H - G_H(H)||_1 + ||L - G_L(L)||_1 (conference Eq. 5)."""
    return F.l1_loss(g_h_of_h, real_h) + F.l1_loss(g_l_of_l, real_l)


def paired_l1(real_h: torch.Tensor, fake_h: torch.Tensor, real_l: torch.Tensor, fake_l: torch.Tensor) -> torch.Tensor:
    """||H - G_H(L)||_1 + ||L - G_L(H)||_1 (journal L_L1); needs paired (registered) L and H."""
    return F.l1_loss(fake_h, real_h) + F.l1_loss(fake_l, real_l)


def perceptual(phi: Phi, real_h: torch.Tensor, other_h: torch.Tensor, real_l: torch.Tensor, other_l: torch.Tensor) -> torch.Tensor:
    """Phi(H, H*) + Phi(L, L*) averaged over the batch (conference Eq. 2; journal L_per).

    The papers' model uses H* = G_H(L), L* = G_L(H) (paired data); the conference Table 2 ablation
    "Phi(H, H-bar)" passes the cycled images instead.
    """
    return phi(real_h, other_h).mean() + phi(real_l, other_l).mean()


def real_target(mean_real_h: float, mean_real_l: float, enabled: bool = True,
                threshold: float = SMOOTH_THRESHOLD, smoothed: float = SMOOTH_TARGET) -> float:
    """The real label of Eq. 7: 1.0 while both mean real scores are below ``threshold``, else ``smoothed``."""
    if enabled and not (mean_real_h < threshold and mean_real_l < threshold):
        return smoothed
    return 1.0


def real_target_tensor(mean_real_h: torch.Tensor, mean_real_l: torch.Tensor, enabled: bool = True,
                       threshold: float = SMOOTH_THRESHOLD, smoothed: float = SMOOTH_TARGET) -> torch.Tensor:
    """:func:`real_target` computed on the scores' device (a 0-dim float32 tensor): the training step
    decides the label without waiting for the GPU."""
    one = torch.ones((), dtype=torch.float32, device=mean_real_h.device)
    if not enabled:
        return one
    below = (mean_real_h < threshold) & (mean_real_l < threshold)
    return torch.where(below, one, torch.full_like(one, smoothed))


def discriminator_lsgan(real_scores: torch.Tensor, fake_scores: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """One discriminator: MSE(target, D(real)) + MSE(0, D(fake)) (LSGAN; fake label 0, Eq. 7 text);
    ``target`` a number or a 0-dim tensor (:func:`real_target_tensor`)."""
    real = torch.full_like(real_scores, target) if not torch.is_tensor(target) else target.to(real_scores.dtype).expand_as(real_scores)
    return F.mse_loss(real_scores, real) + F.mse_loss(fake_scores, torch.zeros_like(fake_scores))


def lowpass(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Area down-sampling by ``pixels`` (mean over pixels x pixels blocks; the map at a scale where
    speckle is averaged out, the echogenicity map a reader sees). Sides not divisible are cropped."""
    if pixels <= 1:
        return image
    h, w = image.shape[-2:]
    return F.avg_pool2d(image[..., : h - h % pixels, : w - w % pixels], pixels)


def lowpass_l1(source: torch.Tensor, output: torch.Tensor, pixels: int) -> torch.Tensor:
    """||lowpass(G(x)) - lowpass(x)||_1: the generator keeps the input's echogenicity map at the
    speckle-removed scale (no bright boundary erased, no dark blob invented), while it stays free
    to change texture below that scale. Not from the papers; the structure-holding term of
    DESIGN.md's fidelity contract, ablated in docs/results/training.md."""
    return F.l1_loss(lowpass(output, pixels), lowpass(source, pixels))


def dark_hinge(source: torch.Tensor, output: torch.Tensor, pixels: int, ratio: float = 0.5,
               not_dark: float = 0.6, fine: int = 7) -> torch.Tensor:
    """Penalty on holes the input does not have: mean of relu(ratio * m - o) where the input is
    not itself dark (its ``fine`` x ``fine`` mean >= ``not_dark`` x m), with m the input's local
    mean over ``pixels`` x ``pixels`` (its echogenicity at the scale of the gate's low-pass map,
    sigma 1.5 speckle cells) and o the output's ``fine`` x ``fine`` mean (the gate's fine map,
    sigma 0.5 cell), grey in [0, 1].

    The fidelity gate counts an output below 0.35 x the input's echogenicity where the input is not
    dark as an invented structure (runtime/fidelity.py, DARK_RATIO, SOURCE_NOT_DARK); ``ratio`` 0.5
    keeps a margin above it. Deepening a hypoechoic region into an anechoic one is what a model
    trained on phantom cysts (grey clutter in the handheld image, black in the console's) learns."""
    s, o = (source + 1) / 2, (output + 1) / 2
    k = pixels + 1 - pixels % 2  # odd window, same size output
    m = F.avg_pool2d(s, k, stride=1, padding=k // 2, count_include_pad=False)
    s_fine = F.avg_pool2d(s, fine, stride=1, padding=fine // 2, count_include_pad=False)
    o_fine = F.avg_pool2d(o, fine, stride=1, padding=fine // 2, count_include_pad=False)
    weight = (s_fine >= not_dark * m).to(o.dtype)
    return (F.relu(ratio * m - o_fine) * weight).mean()
