"""HR fathers, LR sons, crops and the 8 rotations/flips."""
import numpy as np
import pytest
import torch

from sonoedge.train.sr.fathers import FatherSet, default_scales, dihedral, dihedral_inverse, make_son


def test_dihedral_group_is_8_distinct_invertible_maps():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    seen = set()
    for k in range(8):
        y = dihedral(x, k)
        assert torch.equal(dihedral_inverse(y, k), x)
        seen.add(tuple(y.flatten().tolist()) + tuple(y.shape))
    assert len(seen) == 8


def test_son_is_quarter_bicubic_of_father():
    father = torch.rand(2, 1, 64, 48) * 2 - 1
    son = make_son(father)
    assert son.shape == (2, 1, 16, 12)
    flat = torch.zeros(1, 1, 32, 32) + 0.3
    assert torch.allclose(make_son(flat), torch.full((1, 1, 8, 8), 0.3), atol=1e-5)


def test_fathers_at_scales_and_crops():
    src = torch.rand(1, 1, 135, 200) * 2 - 1
    scales = default_scales(0.5, 6)
    assert scales == (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
    fs = FatherSet([src], scales, crop=64)
    assert [tuple(f.shape[-2:]) for f in fs.fathers][0] == (135, 200)
    assert tuple(fs.fathers[-1].shape[-2:]) == (68, 100)
    assert fs.probabilities[0] > fs.probabilities[-1] and np.isclose(fs.probabilities.sum(), 1)
    son, hr = fs.sample(5, np.random.default_rng(0))
    assert son.shape == (5, 1, 16, 16) and hr.shape == (5, 1, 64, 64)
    assert torch.allclose(son, make_son(hr))
    assert hr.min() >= -1 and hr.max() <= 1


def test_crops_come_from_the_image_under_some_rotation_or_flip():
    src = torch.rand(1, 1, 64, 64)
    fs = FatherSet([src], (1.0,), crop=64)
    _, hr = fs.sample(6, np.random.default_rng(1))
    variants = [dihedral(src, k) for k in range(8)]
    assert all(any(torch.equal(h[None], v) for v in variants) for h in hr)


def test_too_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller crop"):
        FatherSet([torch.rand(1, 1, 30, 30)], (1.0, 0.5), crop=64)
    with pytest.raises(ValueError, match="multiple of 4"):
        FatherSet([torch.rand(1, 1, 80, 80)], (1.0,), crop=62)
