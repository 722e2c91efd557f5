"""Gatys neural style transfer by optimisation, as Menini 2020 runs it (Sec. 3.2, 4.2; Table 4.1).

    cfg = NSTConfig()                                   # LQ-to-HQ weights of Table 4.1
    out, history = stylize(content, [style1, style2], cfg, net)   # uint8 (H, W) in, uint8 (H, W) out

The output image itself is the variable: initialised from the content image, Adam (lr 5e-3), for
``iterations`` steps (3000 in the thesis), minimising content_weight * Lc + style_weight * Ls on
VGG19 features (content block5_conv2, style block1_conv1 .. block5_conv1), pixel values clipped to
[-1, 1] after each step. Variants: several style images with an average style ("feature" or "gram"),
the augmented style loss with segmentation masks (``content_labels``, optional ``style_labels``),
and local NST (one optimisation per mask, composed).

No total-variation term: "its smoothing effect is unwanted in our application" (Sec. 3.2).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sonoedge.runtime.errors import InputError
from sonoedge.train.nst import losses as L
from sonoedge.train.nst.config import NSTConfig


def _tensor(image: np.ndarray) -> torch.Tensor:
    from sonoedge.runtime.frames import normalise

    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise InputError(f"NST takes uint8 (H, W) grey images, got {image.dtype} {image.shape}")
    return torch.from_numpy(normalise(image))  # (1, 1, H, W) in [-1, 1]


def _resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    if image.shape == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def style_targets(net, styles: list[np.ndarray], cfg: NSTConfig, shape: tuple[int, int],
                  style_labels: list[np.ndarray] | None = None, masks: torch.Tensor | None = None) -> dict[str, Any]:
    """{layer: target}: a (C, C) Gram (plain loss) or a (D, C, C) stack (augmented loss: style masked
    by its own label masks when given, Eq. 2.5, else by the content's, Eq. 3.1)."""
    images = [_resized(s, shape) for s in styles]  # one size: feature-space averaging needs it
    with torch.no_grad():
        feats = [net(_tensor(s)) for s in images]
    if masks is None:
        return L.style_grams(feats, cfg.style_layers, cfg.average)
    out = {}
    for layer in cfg.style_layers:
        grams = []
        for i, f in enumerate(feats):
            m = masks if style_labels is None else torch.from_numpy(
                L.label_masks(_resized_labels(style_labels[i], shape), cfg.min_label_fraction))
            if len(m) != len(masks):
                raise InputError("style and content label maps give different numbers of masks; use labels common to both")
            grams.append(L.masked_gram(f[layer], L.masks_at(m, layer))[0])
        stacked = torch.stack(grams)  # (S, D, C, C)
        out[layer] = stacked.mean(0)  # average in Gram space across style images, per mask
    return out


def _resized_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    if labels.shape == shape:
        return labels
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _optimise(net, content: torch.Tensor, targets: dict[str, Any], cfg: NSTConfig, masks: torch.Tensor | None,
              progress: bool, desc: str) -> tuple[torch.Tensor, list[dict[str, float]]]:
    from tqdm import tqdm

    with torch.no_grad():
        content_feats = net(content)
    if cfg.init == "noise":
        image = (torch.rand_like(content) * 2 - 1).requires_grad_(True)
    else:
        image = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([image], lr=cfg.lr)
    history = []
    for step in tqdm(range(cfg.iterations), desc=desc, unit="it", disable=not progress):
        feats = net(image)
        lc = sum(L.content_loss(content_feats[k], feats[k]) for k in cfg.content_layers)
        if masks is None:
            ls = sum(L.style_loss(targets[k], feats[k]) for k in cfg.style_layers)
        else:
            ls = sum(L.augmented_style_loss(targets[k], feats[k], L.masks_at(masks, k)) for k in cfg.style_layers)
        loss = cfg.content_weight * lc + cfg.style_weight * ls
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            image.clamp_(-1.0, 1.0)
        history.append({"step": step + 1, "loss": loss.item(), "content": float(lc.detach()), "style": float(ls.detach())})
    return image.detach(), history


def stylize(content: np.ndarray, styles: list[np.ndarray], cfg: NSTConfig, net=None,
            content_labels: np.ndarray | None = None, style_labels: list[np.ndarray] | None = None,
            progress: bool = False) -> tuple[np.ndarray, list[dict[str, float]]]:
    """(stylised uint8 (H, W), per-step losses) of ``content`` in the (average) style of ``styles``.

    ``content_labels``: an integer label map of the content (H, W): augmented style loss, or with
    ``cfg.local`` one optimisation per mask. ``net``: a :func:`vgg19_features` extractor (built from
    ``cfg.vgg_trunk`` when None)."""
    from sonoedge.runtime.frames import denormalise
    from sonoedge.train.nst.vgg19 import vgg19_features

    cfg.check()
    if net is None:
        net = vgg19_features(cfg.vgg_trunk or None, (*cfg.style_layers, *cfg.content_layers), seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    x = _tensor(content)
    shape = content.shape
    if content_labels is None:
        if cfg.local:
            raise InputError("local NST needs a label map of the content (--content-labels)")
        out, history = _optimise(net, x, style_targets(net, styles, cfg, shape), cfg, None, progress, "nst")
        return denormalise(out.numpy()), history
    masks = torch.from_numpy(L.label_masks(_resized_labels(content_labels, shape), cfg.min_label_fraction))
    if not cfg.local:
        targets = style_targets(net, styles, cfg, shape, style_labels, masks)
        out, history = _optimise(net, x, targets, cfg, masks, progress, "nst (augmented style)")
        return denormalise(out.numpy()), history
    # local NST (Sec. 3.2): each mask cuts its region out of the content, optimised on its own; the
    # regions are composed, and pixels outside every mask keep the content (nothing is invented there)
    targets = style_targets(net, styles, cfg, shape)
    regions = masks[:-1] if len(masks) > 1 else masks  # the last mask is the whole object: not a region
    composed, covered, history = torch.zeros_like(x), torch.zeros_like(x), []
    for d, m in enumerate(regions):
        m = m[None, None]
        local = x * m + (-1.0) * (1 - m)  # outside the region: black, as a masked B-mode image
        out, h = _optimise(net, local, targets, cfg, None, progress, f"local nst {d + 1}/{len(regions)}")
        composed += out * m * (1 - covered)
        covered = torch.clamp(covered + m, max=1.0)
        history += [{**r, "region": d} for r in h]
    composed += x * (1 - covered)
    return denormalise(composed.numpy()), history
