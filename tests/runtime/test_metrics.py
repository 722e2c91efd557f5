"""runtime/metrics.py: agreement with scikit-image on real frames, hand-checkable cases, refusals."""
from __future__ import annotations

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from sonoedge.runtime import metrics
from sonoedge.runtime.errors import InputError

skm = pytest.importorskip("skimage.metrics")


def _sk_ssim(a, b):
    return skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )


def _real_pairs(realus):
    """Pairs of real frames of equal size: neighbouring files, and a frame vs a degraded copy."""
    groups = [
        sorted((realus / "hc18").glob("*.png"))[:4],
        sorted((realus / "clips" / "plus_toolkit" / "frames_png").glob("BoneUltrasound_L14_frame00*.png"))[:3],
        sorted((realus / "hip_spj" / "standard_ultrasound").glob("standard_[2-9].png"))[:3],
    ]
    pairs = []
    for files in groups:
        images = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        assert all(im is not None for im in images), files
        pairs += [(files[i].name, images[i], images[i + 1]) for i in range(len(images) - 1)]
        rng = np.random.default_rng(0)
        degraded = cv2.GaussianBlur(images[0], (5, 5), 1.2).astype(np.float64) + rng.normal(0, 8, images[0].shape)
        pairs.append((files[0].name + "+blur+noise", images[0], np.clip(degraded, 0, 255).astype(np.uint8)))
    return pairs


@pytest.mark.realus
def test_ssim_psnr_agree_with_scikit_image_on_real_frames(realus):
    pairs = _real_pairs(realus)
    assert len(pairs) >= 8
    for name, a, b in pairs:
        assert metrics.ssim(a, b) == pytest.approx(_sk_ssim(a, b), abs=1e-3), name
        assert metrics.psnr(a, b) == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-3), name


def test_ssim_psnr_agree_with_scikit_image_on_phantom():
    from sonoedge.train.phantom import PhantomConfig, simulate_pair

    for seed, geometry in ((1, "linear"), (2, "convex")):
        low, high, _ = simulate_pair(seed, PhantomConfig(size=(128, 128), geometry=geometry))
        assert metrics.ssim(low, high) == pytest.approx(_sk_ssim(low, high), abs=1e-3)
        assert metrics.psnr(low, high) == pytest.approx(skm.peak_signal_noise_ratio(high, low, data_range=255), abs=1e-3)


def test_ssim_on_float_images_with_data_range():
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (40, 50))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1)
    expected = skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0
    )
    assert metrics.ssim(a, b, data_range=2.0) == pytest.approx(expected, abs=1e-9)
    assert metrics.ssim(a, a, data_range=2.0) == pytest.approx(1.0)


def test_psnr_hand_values():
    a = np.zeros((16, 16), np.uint8)
    b = np.full((16, 16), 5, np.uint8)  # MSE 25
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert metrics.psnr(a, a) == math.inf  # documented: identical images


def test_lncc_hand_cases():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (64, 64))
    assert metrics.lncc(a, 2 * a + 3) == pytest.approx(1.0, abs=1e-9)  # gain and offset invariant
    assert metrics.lncc(a, -a) == pytest.approx(-1.0, abs=1e-9)
    independent = rng.uniform(0, 255, (64, 64))
    assert abs(metrics.lncc(a, independent)) < 0.05
    # flat in one image only -> 0 correlation
    assert metrics.lncc(a, np.full_like(a, 7.0)) == 0.0


def test_lncc_ignores_windows_flat_in_both_images():
    rng = np.random.default_rng(3)
    a = np.zeros((64, 64))
    a[:, 32:] = rng.uniform(0, 255, (64, 32))  # left half black in both, like outside a sector
    assert metrics.lncc(a, a) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(InputError, match="flat"):
        metrics.lncc(np.zeros((32, 32)), np.zeros((32, 32)))


def test_abs_error_stats():
    a = np.zeros(100)
    b = np.arange(100, dtype=float)
    stats = metrics.abs_error_stats(a, b)
    assert stats["max"] == 99 and stats["mean"] == pytest.approx(49.5)
    assert stats["p99"] == pytest.approx(np.percentile(b, 99))
    assert metrics.abs_error_stats(np.ones((1, 1, 4, 4)), np.ones((1, 1, 4, 4)))["max"] == 0


def test_cnr_gcnr_speckle_snr_hand_cases():
    image = np.zeros((4, 4), np.uint8)
    roi = np.zeros((4, 4), bool)
    roi[:2] = True
    bg = ~roi
    image[0], image[1] = 0, 2  # roi: mean 1, var 1
    image[2], image[3] = 4, 6  # bg: mean 5, var 1
    assert metrics.cnr(image, roi, bg) == pytest.approx(4 / math.sqrt(2))
    assert metrics.gcnr(image, roi, bg) == pytest.approx(1.0)  # disjoint histograms
    assert metrics.gcnr(image, roi, roi) == pytest.approx(0.0)  # identical
    image[3] = 2  # bg = {4, 2}: half of the bg mass overlaps roi's value 2 (p=0.5 each)
    assert metrics.gcnr(image, roi, bg) == pytest.approx(0.5)
    assert metrics.speckle_snr(np.array([[1, 3], [1, 3]], np.uint8), np.ones((2, 2), bool)) == pytest.approx(2.0)
    floats = image.astype(np.float32) / 10
    assert metrics.gcnr(floats, roi, roi) == pytest.approx(0.0)


def test_refusals_name_the_problem():
    a = np.zeros((20, 20))
    with pytest.raises(InputError, match="shape"):
        metrics.ssim(a, np.zeros((20, 21)))
    with pytest.raises(InputError, match="NaN"):
        metrics.psnr(a, np.full((20, 20), np.nan))
    with pytest.raises(InputError, match="at least 11"):
        metrics.ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(InputError, match="empty"):
        metrics.cnr(a, np.zeros((20, 20), bool), np.ones((20, 20), bool))
    with pytest.raises(InputError, match="mask has shape"):
        metrics.gcnr(a, np.ones((5, 5), bool), np.ones((20, 20), bool))
    with pytest.raises(InputError, match="constant"):
        metrics.speckle_snr(a, np.ones((20, 20), bool))
    with pytest.raises(InputError, match="grey"):
        metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match="data_range"):
        metrics.psnr(a, a + 1, data_range=0)


def test_metrics_module_does_not_import_torch():
    code = "import sys, sonoedge.runtime.metrics; assert 'torch' not in sys.modules and 'skimage' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
