"""Warping error and short-term variance (runtime/temporal.py) on clips with known motion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonoedge.runtime import temporal
from sonoedge.runtime.errors import InputError


def _moving_clip(frames: int = 6, shift: float = 1.5, seed: int = 0) -> np.ndarray:
    """A smooth random texture translated by ``shift`` px per frame (known motion)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (96, 128)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min()) * 200 + 20
    out = []
    for t in range(frames):
        m = np.float32([[1, 0, shift * t], [0, 1, 0]])
        out.append(cv2.warpAffine(base, m, (128, 96), borderMode=cv2.BORDER_REFLECT))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def test_flow_recovers_a_known_translation():
    clip = _moving_clip(2, shift=2.0)
    w = temporal.flow(clip[1], clip[0])  # frame 1 -> frame 0: content came from 2 px to the left
    inner = w[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-2.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.3)


def test_a_clip_that_only_moves_has_small_warping_error_and_flicker_raises_it():
    clip = _moving_clip()
    steady = temporal.warping_error(clip, clip)
    rng = np.random.default_rng(1)
    noisy = np.clip(clip + rng.normal(0, 8, clip.shape), 0, 255).astype(np.uint8)  # per-frame noise = flicker
    flicker = temporal.warping_error(clip, noisy)
    assert steady["warping_error"] < 1.5
    assert flicker["warping_error"] > 3 * steady["warping_error"]
    assert 0.5 < steady["coverage"] <= 1.0 and steady["frames"] == len(clip)


def test_short_term_std_is_zero_for_a_still_clip_and_grows_with_noise():
    still = np.full((4, 20, 30), 90, np.uint8)
    assert temporal.short_term_std(still) == 0.0
    rng = np.random.default_rng(0)
    noisy = np.clip(still + rng.normal(0, 5, still.shape), 0, 255).astype(np.uint8)
    assert 3.0 < temporal.short_term_std(noisy) < 6.0


def test_report_scores_the_input_and_each_output_with_one_flow():
    clip = _moving_clip(4)
    report = temporal.temporal_report(clip, {"same": clip, "dark": (clip // 2).astype(np.uint8)})
    assert set(report) == {"input", "same", "dark"}
    assert report["same"]["warping_error"] == pytest.approx(report["input"]["warping_error"])
    assert report["dark"]["short_term_std"] < report["input"]["short_term_std"]


@pytest.mark.parametrize("bad", [np.zeros((1, 8, 8), np.uint8), np.zeros((3, 8, 8), np.float32), np.zeros((8, 8), np.uint8)])
def test_bad_clips_are_refused_with_one_sentence(bad):
    with pytest.raises(InputError, match="uint8 grey clip"):
        temporal.warping_error(bad, bad)


def test_mismatched_output_is_refused():
    clip = _moving_clip(3)
    with pytest.raises(InputError, match="must match the input clip"):
        temporal.warping_error(clip, clip[:, :50])
