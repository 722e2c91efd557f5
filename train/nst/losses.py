"""The perceptual losses of Menini 2020 (seed 003), each a small function of feature tensors.

Features are (N, C, H, W) VGG19 outputs (``vgg19.py``); Gram matrices (N, C, C) or (C, C).

    L = sum_l alpha_l Lc_l + sum_l beta_l Ls_l                 Eq. 2.1 (one weight per kind here)
    Lc_l = 1 / (2 M N C) sum (F[C] - F[O])^2                    Eq. 2.2
    G_l(c, d) = 1 / (M N) sum_ij F(i, j, c) F(i, j, d)           Eq. 2.3
    Ls_l = 1 / (2 C^2) sum (G[S] - G[O])^2                      Eq. 2.4
    Ls+_l = sum_d 1 / (2 C^2) sum (G_d[S] - G_d[O])^2,  F_d = F M_d   Eqs. 2.5 (style masks), 3.1 (content masks)

Average style (Sec. 3.2, "by averaging over (1) the feature space, and (2) the Gram space"):
``"feature"`` averages the style images' feature maps (all resized to one size) and takes the Gram
of the mean; ``"gram"`` averages the Gram matrices.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sonoedge.runtime.errors import InputError
from sonoedge.train.nst.config import AVERAGES, MIN_LABEL_FRACTION
from sonoedge.train.nst.vgg19 import layer_indices


def gram(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), averaged over the H W locations (Eq. 2.3)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def content_loss(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Eq. 2.2, averaged over the batch: 1/(2 M N C) sum of squared differences = half the MSE."""
    return 0.5 * F.mse_loss(output, target.expand_as(output))


def style_loss(target_gram: torch.Tensor, output_features: torch.Tensor) -> torch.Tensor:
    """Eq. 2.4 against a (C, C) or (N, C, C) target, averaged over the batch."""
    g = gram(output_features)
    c = g.shape[-1]
    return ((g - target_gram.expand_as(g)) ** 2).sum(dim=(1, 2)).mean() / (2 * c * c)


def masked_gram(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) features, (D, H, W) masks at that size -> (N, D, C, C) Grams of F * M_d."""
    f = features[:, None] * masks[None, :, None]  # (N, D, C, H, W)
    n, d, c, h, w = f.shape
    f = f.reshape(n, d, c, h * w)
    return f @ f.transpose(2, 3) / (h * w)


def augmented_style_loss(target_grams: torch.Tensor, output_features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eqs. 2.5 / 3.1: the style loss summed over the D masks; ``target_grams`` (D, C, C) from the
    style image masked by its own masks (2.5) or by the content's (3.1)."""
    g = masked_gram(output_features, masks)  # (N, D, C, C)
    c = g.shape[-1]
    return ((g - target_grams[None]) ** 2).sum(dim=(1, 2, 3)).mean() / (2 * c * c)


# ----------------------------------------------------------------------------- masks

def label_masks(labels: np.ndarray, min_fraction: float = MIN_LABEL_FRACTION, whole: bool = True) -> np.ndarray:
    """(D, H, W) float32 binary masks from an integer label map (H, W): one per label whose area
    exceeds ``min_fraction`` of the image (Sec. 3.2), label 0 (background) excluded, plus the whole
    object (their union) when ``whole`` and there are at least two."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"a label map must be one (H, W) image, got shape {labels.shape}")
    masks = []
    for value in np.unique(labels):
        m = labels == value
        if value != 0 and m.mean() > min_fraction:
            masks.append(m)
    if not masks:
        raise InputError(f"the label map has no label other than 0 covering more than {min_fraction:.2%} of the image")
    if whole and len(masks) > 1:
        masks.append(np.any(masks, axis=0))
    return np.stack(masks).astype(np.float32)


def masks_at(masks: torch.Tensor, layer: str) -> torch.Tensor:
    """(D, H, W) masks resized to ``layer``'s feature map by the thesis's fake operations (Sec. 3.2):
    a 3x3 average for every 3x3 conv ("fake_conv") and nearest halving for every max-pool ("fake_pool")."""
    target = layer_indices()[layer]
    m = masks[:, None]
    for name, index in sorted(layer_indices().items(), key=lambda kv: kv[1]):
        if index > target:
            break
        if name.endswith("_pool"):
            m = m[:, :, ::2, ::2][:, :, : m.shape[2] // 2, : m.shape[3] // 2]
        else:
            m = F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False)
    return m[:, 0]


# ----------------------------------------------------------------------------- targets

def style_grams(feature_sets: list[dict[str, torch.Tensor]], layers, average: str = "feature") -> dict[str, torch.Tensor]:
    """{layer: (C, C) target Gram} from the features of one or more style images (each {layer: (1, C, h, w)}).

    ``average``: "none" (exactly one style image), "feature" (Gram of the mean feature map; the maps
    must have one size) or "gram" (mean of the Grams)."""
    if average not in AVERAGES:
        raise InputError(f"average style must be one of {', '.join(AVERAGES)}, got '{average}'")
    if not feature_sets:
        raise InputError("no style image given")
    if average == "none" and len(feature_sets) != 1:
        raise InputError(f"{len(feature_sets)} style images need an average style ('feature' or 'gram'), not 'none'")
    out = {}
    for layer in layers:
        maps = [fs[layer] for fs in feature_sets]
        if average == "gram":
            out[layer] = torch.stack([gram(m)[0] for m in maps]).mean(0)
        else:
            if len({tuple(m.shape) for m in maps}) != 1:
                raise InputError("averaging style in feature space needs style images of one size; resize them first")
            out[layer] = gram(torch.cat(maps).mean(0, keepdim=True))[0]
    return out
