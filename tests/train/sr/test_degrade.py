"""Degradation operators (exact against OpenCV/PyTorch), their estimate, back-projection through them."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sonoedge.train.sr import degrade as D
from sonoedge.train.sr.ensemble import back_project
from sonoedge.train.sr.resize import resize

REALUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "realus"


def _image(shape=(96, 128), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 120 + 60 * np.sin(x / 4.0) * np.cos(y / 7.0) + rng.normal(0, 12, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["bicubic-aa", "cubic", "area", "gauss1.5", "gauss0.6"])
def test_kernels_are_normalised_and_symmetric(name):
    k = D.operator(name).kernel
    assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k[::-1]) and len(k) % 2 == 0


@pytest.mark.parametrize("name,flag", [("cubic", cv2.INTER_CUBIC), ("area", cv2.INTER_AREA)])
def test_cubic_and_area_match_opencv_exactly(name, flag):
    hr = _image()
    ours = D.apply(D.operator(name), torch.from_numpy(hr.astype(np.float32))[None, None])[0, 0].numpy()
    theirs = cv2.resize(hr.astype(np.float32), (hr.shape[1] // 4, hr.shape[0] // 4), interpolation=flag)
    assert np.abs(ours - theirs)[1:-1, 1:-1].max() < 1e-3


def test_bicubic_aa_and_gauss_are_close_to_the_library_operators():
    hr = _image()
    ours = D.apply_image(D.operator("bicubic-aa"), hr).astype(float)
    torch_aa = D.degrade_for_eval(hr, "bicubic-aa").astype(float)
    assert np.abs(ours - torch_aa)[2:-2, 2:-2].mean() < 0.5
    gauss = np.abs(D.apply_image(D.operator("gauss1.5"), hr).astype(float)
                   - D.degrade_for_eval(hr, "gauss1.5").astype(float))[2:-2, 2:-2]
    assert gauss.mean() < 0.5


def test_unknown_operator_and_bad_sigma_are_clear_errors():
    with pytest.raises(ValueError, match="unknown; use bicubic-aa"):
        D.operator("lanczos")
    with pytest.raises(ValueError, match="gauss<sigma>"):
        D.operator("gaussx")


def test_speckle_is_seeded_and_unit_mean():
    hr = np.full((64, 64), 128, np.uint8)
    a = D.degrade_for_eval(hr, "area+speckle", seed=3)
    assert np.array_equal(a, D.degrade_for_eval(hr, "area+speckle", seed=3))
    assert abs(a.mean() - 128) < 5 and 0.05 < a.std() / 128 < 0.15


def test_back_projection_through_the_true_operator_makes_lr_consistent():
    hr = torch.from_numpy(_image().astype(np.float32) / 127.5 - 1)[None, None]
    for name in ("cubic", "gauss2.5"):
        op = D.operator(name)
        lr = D.apply(op, hr)
        sr = back_project(resize(lr, scale=4), lr, 8, op=op)
        before = (D.apply(op, resize(lr, scale=4)) - lr).abs().mean()
        after = (D.apply(op, sr) - lr).abs().mean()
        assert after < 0.5 * before


def test_back_projection_stops_at_the_noise_level():
    lr = torch.rand(1, 1, 16, 16) * 2 - 1
    up = resize(lr, scale=4)
    assert torch.equal(back_project(up, lr, 8, op=D.operator("area"), noise=10.0), up.clamp(-1, 1))


def test_too_small_input_keeps_the_assumed_operator():
    est = D.estimate(_image((40, 40)))
    assert est.too_small and est.op.name == "bicubic-aa" and "too small" in est.describe()


def _width(op):
    k = op.kernel
    return float(np.sqrt((k * D._offsets(len(k)) ** 2).sum()))


def test_estimate_orders_sharp_and_blurred_inputs_on_a_real_frame():
    frame = REALUS / "hc18" / "000_HC.png"
    if not frame.is_file():
        pytest.skip(f"real frames not found at {REALUS} (../shared/data/realus); this test needs them")
    hr = cv2.imread(str(frame), cv2.IMREAD_GRAYSCALE)
    hr = np.ascontiguousarray(hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4])
    sharp = D.estimate(D.degrade_for_eval(hr, "cubic"))
    blurred = D.estimate(D.degrade_for_eval(hr, "gauss2.5"))
    assert _width(blurred.op) > _width(sharp.op) + 0.5, (sharp.describe(), blurred.describe())
    noisy = D.estimate(D.degrade_for_eval(hr, "cubic+speckle"))
    assert noisy.noise > sharp.noise
