"""The accuracy gates (thresholds written once) and the reference pipeline shared by export and verify."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sonoedge.runtime.bundle.gates import GATES, PSNR_CAP_DB, check_gate, compare_outputs
from sonoedge.runtime.bundle.verify import run_frame
from sonoedge.runtime.errors import InputError


def test_thresholds_are_the_issue_values():
    assert GATES["fp32"].required() == {"max_abs": 1e-4}
    assert GATES["fp16"].required() == {"psnr": 45.0}
    assert GATES["int8"].required() == {"psnr": 35.0, "ssim": 0.97}


def _pair(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = np.tanh(rng.normal(size=(1, 1, 40, 48))).astype(np.float32)
    return ref + noise * rng.normal(size=ref.shape).astype(np.float32), ref


def test_compare_outputs_worst_frame():
    good, ref = _pair(1e-6)
    bad, ref2 = _pair(1e-2, seed=1)
    one = compare_outputs([good], [ref])
    both = compare_outputs([good, bad], [ref, ref2])
    assert one["max_abs"] < 1e-5 and one["psnr"] > 100
    assert both["psnr"] < 50 and both["max_abs"] > 1e-2 and both["frames"] == 2
    assert compare_outputs([ref], [ref])["psnr"] == PSNR_CAP_DB


def test_gates_pass_and_fail():
    good, ref = _pair(1e-6)
    assert check_gate("fp32", compare_outputs([good], [ref])).passed
    noisy, ref = _pair(3e-3)
    metrics = compare_outputs([noisy], [ref])
    assert not check_gate("fp32", metrics).passed
    assert check_gate("fp16", metrics).passed  # ~56 dB
    result = check_gate("int8", {**metrics, "ssim": 0.5})
    assert not result.passed and "SSIM" in result.failures[0]


@pytest.mark.parametrize("metrics", [{}, {"psnr": float("nan"), "ssim": 0.99}, {"psnr": 40.0}])
def test_a_metric_that_cannot_be_computed_fails(metrics):
    result = check_gate("int8", metrics)
    assert not result.passed and any("could not be computed" in f for f in result.failures)


def test_compare_refuses_bad_inputs():
    _, ref = _pair(0)
    with pytest.raises(InputError):
        compare_outputs([ref[..., :-1]], [ref])
    with pytest.raises(InputError):
        compare_outputs([np.full_like(ref, np.nan)], [ref])
    with pytest.raises(InputError):
        compare_outputs([], [])
    with pytest.raises(InputError):
        check_gate("bf16", {})


def test_run_frame_pads_to_the_stride_and_crops_back():
    seen = []

    def model(x):  # a 2x "SR" that repeats pixels
        seen.append(x.shape)
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    image = (np.arange(30 * 45) % 256).astype(np.uint8).reshape(30, 45)
    out = run_frame(model, image, stride=8, scale=2)
    assert seen == [(1, 1, 32, 48)] and out.shape == (1, 1, 60, 90)
    assert out[0, 0, 0, 0] == pytest.approx(image[0, 0] / 127.5 - 1)
    with pytest.raises(InputError, match="does not match"):
        run_frame(lambda x: x[..., :-1], image, stride=8)
    assert math.isfinite(float(out.mean()))
