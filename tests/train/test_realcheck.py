"""train/realcheck.py: the quick fidelity checks a training run watches, on real frames."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.train import realcheck


def test_identity_keeps_everything_and_a_black_hole_is_caught(realus):
    import cv2

    from sonoedge.runtime.readers import read_image

    frame = read_image(realus / "hc18" / "150_HC.png")
    outline = realcheck.hc18_outline(realus / "hc18" / "150_HC.png", realus.parent / "annotations" / "hc18")
    if outline is None:
        pytest.skip("the HC18 annotations are not beside the realus folder")
    mask = np.ones(frame.shape, bool)
    same = realcheck.check_frame(frame, frame, mask, outline)
    assert same["erased"] == 0 and same["blobs"] == 0
    assert same["lowpass_corr"] == pytest.approx(1.0) and same["skull_kept"] == pytest.approx(1.0)
    # bright anatomy turned black and a dark disc painted into tissue
    holed = frame.copy()
    holed[frame >= 100] = 0
    ys, xs = np.nonzero(cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 3) >= 60)
    cv2.circle(holed, (int(xs[len(xs) // 2]), int(ys[len(ys) // 2])), 12, 0, -1)
    bad = realcheck.check_frame(frame, holed, mask, outline)
    assert bad["erased"] == 1.0 and bad["blobs"] >= 1 and bad["skull_kept"] < 0.5


def test_enhance_as_deployed_pastes_back_inside_the_region():
    frame = np.zeros((100, 140), np.uint8)
    frame[20:90, 30:120] = 80
    out, mask = realcheck.enhance_as_deployed(frame, lambda x: np.full_like(x, 1.0))
    assert (out[mask] == 255).all() and (out[~mask] == 0).all() and mask[50, 70] and not mask[5, 5]
