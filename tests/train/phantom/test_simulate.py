"""train/phantom simulate_pair and simulate_clip: determinism, geometry, physics that can fail."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from sonoedge.runtime import metrics
from sonoedge.runtime.errors import InputError
from sonoedge.train import phantom
from sonoedge.train.phantom import PhantomConfig, TissueModel, simulate_clip, simulate_pair

SMALL = PhantomConfig(size=(96, 96))


def test_deterministic_per_seed():
    a = simulate_pair(5, SMALL)
    b = simulate_pair(5, SMALL)
    c = simulate_pair(6, SMALL)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("geometry", ["linear", "convex"])
def test_shapes_and_sector(geometry):
    cfg = dataclasses.replace(SMALL, size=(80, 112), geometry=geometry)
    low, high, info = simulate_pair(1, cfg)
    assert low.shape == high.shape == (80, 112) and low.dtype == high.dtype == np.uint8
    assert info["geometry"] == geometry and info["organ"] in phantom.ORGANS
    sector = info["regions"]["sector"]
    if geometry == "convex":  # black outside the fan, for the region detector
        assert not sector[0, 0] and not sector[-1, 0] and not sector[0, -1]
        assert (low[~sector] == 0).all() and (high[~sector] == 0).all()
        assert 0.3 < sector.mean() < 0.9
    else:
        assert sector.all()
    assert high[sector].mean() > 20 and low[sector].mean() > 20  # an image, not black


def test_low_and_high_speckle_are_independent():
    cfg = dataclasses.replace(SMALL, geometry="linear", misregistration_px=0.0)
    low, high, info = simulate_pair(3, cfg)
    region = info["regions"]["speckle"]
    # same tissue, independent speckle: raw pixels barely correlate
    assert abs(np.corrcoef(low[region].astype(float), high[region].astype(float))[0, 1]) < 0.4


def test_high_image_has_better_measured_quality():
    better_gcnr = better_snr = cases = 0
    for seed in range(6):
        low, high, info = simulate_pair(seed, PhantomConfig(size=(128, 128)))
        regions = info["regions"]
        assert regions["speckle"].sum() > 200
        better_snr += metrics.speckle_snr(high, regions["speckle"]) > metrics.speckle_snr(low, regions["speckle"])
        if "cyst" in regions and regions["cyst"].sum() > 10 and regions["cyst_background"].sum() > 10:
            cases += 1
            better_gcnr += metrics.gcnr(high, regions["cyst"], regions["cyst_background"]) > metrics.gcnr(
                low, regions["cyst"], regions["cyst_background"])
    assert better_snr == 6
    assert cases >= 4 and better_gcnr == cases


def _point_width_mm(image: np.ndarray, row: float, col: float, dr_db: float, pixel_mm: float) -> float:
    """Lateral -6 dB width of a point target around (row, col), from the log-compressed image."""
    r, c = int(round(row)), int(round(col))
    patch = image[max(r - 3, 0): r + 4, max(c - 30, 0): c + 31].astype(float) * dr_db / 255.0  # dB
    peak_row = patch[np.unravel_index(np.argmax(patch), patch.shape)[0]]
    above = peak_row >= peak_row.max() - 6.0
    return float(above.sum()) * pixel_mm


def test_point_target_is_sharper_on_the_high_end_device():
    tissue = TissueModel(cysts=(0, 0), vessels=(0, 0), interfaces=(0, 0), points=(1, 1),
                         calcification_probability=0.0, point_db=34.0)
    cfg = PhantomConfig(size=(160, 160), geometry="linear", tissue=tissue, misregistration_px=0.0)
    widths_low, widths_high = [], []
    for seed in range(3):
        low, high, info = simulate_pair(seed, cfg)
        row, col = info["points_px"][0]
        widths_low.append(_point_width_mm(low, row, col, cfg.low.dynamic_range_db, info["pixel_mm"]))
        widths_high.append(_point_width_mm(high, row, col, cfg.high.dynamic_range_db, info["pixel_mm"]))
    assert np.median(widths_high) < 0.7 * np.median(widths_low), (widths_high, widths_low)


def _blur(image):
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3)


def _shift(a, b):
    (dx, dy), _ = cv2.phaseCorrelate(_blur(a), _blur(b))
    return dx, dy


def test_misregistration_zero_gives_aligned_structure():
    aligned, moved = [], []
    for seed in (2, 7):
        base = dataclasses.replace(PhantomConfig(size=(128, 128)), geometry="linear")
        low0, high0, _ = simulate_pair(seed, dataclasses.replace(base, misregistration_px=0.0))
        low8, high8, _ = simulate_pair(seed, dataclasses.replace(base, misregistration_px=8.0))
        assert np.array_equal(high0, high8)  # misregistration moves only the low image
        aligned.append(np.corrcoef(_blur(low0).ravel(), _blur(high0).ravel())[0, 1])
        moved.append(np.corrcoef(_blur(low8).ravel(), _blur(high8).ravel())[0, 1])
        dx, dy = _shift(low0, high0)
        assert abs(dx) < 0.5 and abs(dy) < 0.5
    assert min(aligned) > max(moved)


def test_clip_frames_move_smoothly():
    cfg = dataclasses.replace(PhantomConfig(size=(96, 96), geometry="linear"),
                              motion=phantom.MotionModel(fps=10.0, probe_sweep_mm=3.0, probe_period_s=4.0))
    low, high = simulate_clip(4, cfg, frames=8)
    assert low.shape == high.shape == (8, 96, 96) and low.dtype == np.uint8
    def speckle_shift(a, b):  # speckle moves with the tissue, so raw frames track the motion
        (dx, _), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32))
        assert response > 0.5
        return dx

    pixel_mm = 40.0 / 96
    steps = [speckle_shift(high[i], high[i + 1]) for i in range(7)]
    expected = [3.0 / pixel_mm * (np.sin(2 * np.pi * (i + 1) / 10 / 4) - np.sin(2 * np.pi * i / 10 / 4)) for i in range(7)]
    assert all(abs(s) < 2.0 for s in steps), steps  # small steps between frames ...
    assert np.allclose(np.abs(steps), expected, atol=0.5), (steps, expected)  # ... following the sweep
    assert abs(speckle_shift(high[0], high[5])) == pytest.approx(3.0 / pixel_mm * np.sin(np.pi / 4), abs=1.0)
    # speckle moves with the tissue: consecutive raw frames stay correlated
    assert np.corrcoef(high[0].ravel(), high[1].ravel())[0, 1] > 0.5
    assert not np.array_equal(high[0], high[1])


def test_bad_config_is_refused():
    with pytest.raises(InputError, match="geometry"):
        simulate_pair(0, dataclasses.replace(SMALL, geometry="phased"))
    with pytest.raises(InputError, match="size"):
        simulate_pair(0, dataclasses.replace(SMALL, size=(8, 8)))
    with pytest.raises(InputError, match="misregistration"):
        simulate_pair(0, dataclasses.replace(SMALL, misregistration_px=-1))
    with pytest.raises(InputError, match="frame"):
        simulate_clip(0, SMALL, frames=0)


def test_region_detector_finds_the_phantom_sector():
    from sonoedge.runtime.region import detect_region

    low, high, info = simulate_pair(0, PhantomConfig(size=(128, 160), geometry="convex"))
    sector = info["regions"]["sector"]
    for image in (low, high):
        region = detect_region(image)
        assert region.kind == "sector"
        assert (region.mask & sector).sum() / (region.mask | sector).sum() > 0.85
