"""8-way self-ensemble with back-projection and the median (Liu et al. Sec. IV-B)."""
import pytest
import torch

from sonoedge.train.sr.ensemble import back_project, self_ensemble
from sonoedge.train.sr.fathers import dihedral
from sonoedge.train.sr.resize import resize


def _oracle(lr, hr):
    """A model that maps every rotation/flip of ``lr`` to the same rotation/flip of ``hr``."""
    table = [(dihedral(lr, k), dihedral(hr, k)) for k in range(8)]

    def model(x):
        for a, b in table:
            if a.shape == x.shape and torch.equal(a, x):
                return b
        raise AssertionError("the ensemble fed the model an input that is no rotation/flip of lr")
    return model


def test_exact_model_in_exact_output_out():
    torch.manual_seed(0)
    hr = torch.rand(1, 1, 40, 56) * 1.6 - 0.8
    lr = resize(hr, scale=0.25)  # so down(hr) == lr and back-projection has nothing to correct
    out = self_ensemble(_oracle(lr, hr), lr)
    assert out.shape == hr.shape
    assert torch.allclose(out, hr, atol=1e-5)


def test_nearest_upsampling_is_reproduced_without_back_projection():
    lr = torch.rand(1, 1, 7, 9) * 2 - 1
    nearest = lambda x: torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")  # noqa: E731
    out = self_ensemble(nearest, lr, back_projection=0)
    assert torch.equal(out, nearest(lr))


def test_median_rejects_one_bad_view_and_back_projection_restores_the_lr():
    lr = torch.rand(1, 1, 8, 8) * 1.6 - 0.8
    calls = []

    def model(x):
        calls.append(1)
        up = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        return up + (0.9 if len(calls) == 3 else 0.0)  # one of the 8 views is way off
    out = self_ensemble(model, lr, back_projection=0)
    assert len(calls) == 8
    ref = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert (out - ref).abs().max() < 1e-5
    up = resize(lr, scale=4)
    before = (resize(up, size=(8, 8)) - lr).abs().mean()
    after = (resize(back_project(up, lr, iterations=8), size=(8, 8)) - lr).abs().mean()
    assert after < 0.2 * before  # random 8x8 content is hard (much of it near Nyquist); still 5x closer


def test_transform_count_is_checked():
    with pytest.raises(ValueError):
        self_ensemble(lambda x: x, torch.zeros(1, 1, 4, 4), transforms=3)
