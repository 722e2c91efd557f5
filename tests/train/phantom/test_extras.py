"""PhantomConfig extras: long bright boundaries, bone shadows, dark regions with points, and display
variation; off by default (earlier seeds give the same images)."""
from __future__ import annotations

import numpy as np

from sonoedge.train.phantom import PhantomConfig, TissueModel, simulate_pair


def test_default_seeds_are_unchanged_by_the_new_streams():
    a = simulate_pair(3, PhantomConfig(size=(96, 96)))
    b = simulate_pair(3, PhantomConfig(size=(96, 96), tissue=TissueModel(extras=False)))
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_extras_add_a_bright_boundary_and_dark_background():
    cfg = PhantomConfig(size=(128, 128), geometry="linear", misregistration_px=0.0,
                        tissue=TissueModel(extras=True, bone_probability=0.0, dark_probability=1.0))
    plain = PhantomConfig(size=(128, 128), geometry="linear", misregistration_px=0.0)
    brights, darks = [], []
    for seed in range(3):
        _, high, _ = simulate_pair(seed, cfg)
        _, base, _ = simulate_pair(seed, plain)
        brights.append(np.mean(high >= 170) - np.mean(base >= 170))
        darks.append(np.mean(high < 15) - np.mean(base < 15))
    assert min(brights) > 0.005  # the boundary band: grey >= 170 along a line across the image
    assert min(darks) > 0.05  # the large anechoic region


def test_display_variation_spans_gain_and_keeps_the_pair_consistent():
    cfg = PhantomConfig(size=(96, 96), geometry="linear", display_variation=True)
    medians = []
    for seed in range(6):
        low, high, _ = simulate_pair(seed, cfg)
        medians.append(np.median(high))
        ratio = np.median(low) / max(np.median(high), 1)
        assert 0.6 < ratio < 1.6  # both images of a pair share the display gain
    assert max(medians) - min(medians) > 30
