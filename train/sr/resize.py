"""The one bicubic resize of the SR code: degradation (LR sons, the hc18 test inputs), the bicubic
baseline, G's low-frequency input, F's residual base and back-projection all use it, so "4x bicubic
down-scaling" means the same operator everywhere.

Down-scaling is anti-aliased (the MATLAB ``imresize`` convention that SR papers, ZSSR included,
evaluate with); up-scaling is plain bicubic (anti-aliasing has no effect there) so it exports to
ONNX as one ``Resize`` node.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, h, w), bicubic; give ``scale`` (h = round(H * scale)) or ``size``."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if size is None:
        h, w = x.shape[-2:]
        if scale >= 1 and float(scale).is_integer():  # exportable: Resize with a constant scale
            return F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)
        size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=down)


def resize_image(image, scale: float):
    """uint8 (H, W) numpy -> uint8 (round(H*scale), round(W*scale)) numpy with :func:`resize`."""
    import numpy as np

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = resize(x, scale=scale)[0, 0].numpy()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
