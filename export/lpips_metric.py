"""LPIPS for the accuracy reports (the export side of the gates; runtime/bundle/gates.py has the thresholds).

LPIPS is reported, not thresholded. It needs the VGG16 trunk weights file; without one
(``--lpips-trunk`` / ``SONOEDGE_LPIPS_TRUNK`` / the torchvision cache, see
``sonoedge.train.lpips_offline``) the export stops and says so, unless the user names the random
trunk (``--lpips-trunk random``; the manifest records it in ``lpips_trunk``: such values rank
outputs but are not comparable with published LPIPS) or skips LPIPS (``--no-lpips``).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import denormalise


def build_metric(trunk: str | None, progress=print) -> Any:
    """An LPIPSMetric on the given or located trunk; ``"random"`` only when named (a random trunk is not comparable to published LPIPS).

    With no trunk file found and none named, the export stops with lpips_offline's sentence naming
    the missing file, plus the two other ways on: name ``random`` or skip LPIPS.
    """
    from sonoedge.train.lpips_offline import resolve_trunk

    try:
        resolved = str(resolve_trunk("vgg", trunk))
    except InputError as exc:
        if trunk is not None:
            raise
        raise InputError(f"{exc}; or pass --lpips-trunk random (values not comparable with published LPIPS) "
                         "or --no-lpips (LPIPS is reported, never gated)") from None
    progress(f"export: LPIPS trunk {resolved}")
    return _cached_lpips(resolved)


@functools.lru_cache(maxsize=2)
def _cached_lpips(trunk: str) -> Any:
    """Building VGG16 twice costs seconds; one frozen metric per trunk is reused within a process."""
    from sonoedge.train.lpips_offline import build_lpips

    return build_lpips("vgg", trunk)


def mean_lpips(metric: Any, outputs: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> float:
    """Mean LPIPS over frames of model outputs (1, 1, H, W) in [-1, 1], compared as uint8 images."""
    values = []
    for out, ref in zip(outputs, references):
        a, b = denormalise(out[:, :1]), denormalise(ref[:, :1])
        if min(a.shape) < 16:
            raise InputError(f"LPIPS needs frames of at least 16 x 16 pixels, got {a.shape}")
        values.append(metric.distance(a, b))
    return float(np.mean(values))
