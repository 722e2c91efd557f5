"""train/phantom.py and `sonoedge data phantom`: determinism, layout, physics that can fail."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.runtime import metrics
from sonoedge.runtime.errors import InputError
from sonoedge.train import phantom
from sonoedge.train.phantom import PhantomConfig, TissueModel, simulate_clip, simulate_pair, write_clip, write_pairs

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


def test_write_pairs_layout_and_json(tmp_path):
    out = tmp_path / "ph"
    meta = write_pairs(out, 3, dataclasses.replace(SMALL, geometry="mixed"), seed=2)
    low = sorted(p.name for p in (out / "low").glob("*.png"))
    high = sorted(p.name for p in (out / "high").glob("*.png"))
    assert low == high and len(low) == 3
    assert all(name.split("_")[0] in phantom.ORGANS for name in low)
    data = json.loads((out / "phantom.json").read_text())
    assert data["count"] == 3 and data["config"]["size"] == [96, 96] and len(data["pairs"]) == 3
    assert meta["pairs"][0]["seed"] == 2 * 1_000_003
    image = cv2.imread(str(out / "low" / low[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (96, 96) and image.dtype == np.uint8
    # same seed -> same files, also from worker processes (rewriting an earlier phantom output is allowed)
    write_pairs(out, 3, dataclasses.replace(SMALL, geometry="mixed"), seed=2, workers=2)
    assert sorted(p.name for p in (out / "low").glob("*.png")) == low
    assert np.array_equal(cv2.imread(str(out / "low" / low[0]), cv2.IMREAD_UNCHANGED), image)


def test_write_pairs_is_atomic_and_refuses_foreign_folders(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a phantom output"):
        write_pairs(foreign, 1, SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"

    calls = {"n": 0}
    real = phantom.simulate_pair

    def failing(seed, cfg=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(seed, cfg)

    monkeypatch.setattr(phantom.writers, "simulate_pair", failing)  # write_pairs looks it up there
    with pytest.raises(RuntimeError):
        write_pairs(tmp_path / "half", 3, SMALL)
    assert not (tmp_path / "half").exists()
    assert not list(tmp_path.glob(".half*"))


def test_write_clip_videos(tmp_path):
    out = tmp_path / "clip"
    write_clip(out, frames=5, fps=12.0, cfg=dataclasses.replace(SMALL, geometry="convex"), png=True)
    for name in ("low", "high"):
        capture = cv2.VideoCapture(str(out / f"{name}.mp4"))
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            assert frame.shape[:2] == (96, 96)
        assert count == 5
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
        assert len(list((out / name).glob("frame_*.png"))) == 5
    assert json.loads((out / "phantom.json").read_text())["fps"] == 12.0


def test_bad_config_is_refused():
    with pytest.raises(InputError, match="geometry"):
        simulate_pair(0, dataclasses.replace(SMALL, geometry="phased"))
    with pytest.raises(InputError, match="size"):
        simulate_pair(0, dataclasses.replace(SMALL, size=(8, 8)))
    with pytest.raises(InputError, match="misregistration"):
        simulate_pair(0, dataclasses.replace(SMALL, misregistration_px=-1))
    with pytest.raises(InputError, match="frame"):
        simulate_clip(0, SMALL, frames=0)


def test_cli_pairs_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["data", "phantom", "--pairs", "2", "--size", "64x80", "--out", str(out), "--geometry", "convex",
                 "--misregistration", "0", "--seed", "3", "--workers", "1", "--quiet", "--set", "low.noise_db=-40"])
    assert code == 0
    assert len(list((out / "high").glob("*.png"))) == 2
    data = json.loads((out / "phantom.json").read_text())
    assert data["config"]["size"] == [64, 80] and data["config"]["misregistration_px"] == 0.0
    assert data["config"]["low"]["noise_db"] == -40
    assert "wrote 2 pairs" in capsys.readouterr().out
    assert main(["data", "phantom", "--size", "big", "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "phantom", "--out", str(tmp_path / "y"), "--set", "low.colour=1"]) == 2
    err = capsys.readouterr().err
    assert "--size 'big'" in err and "colour" in err and "Traceback" not in err


def test_phantom_does_not_import_torch():
    code = "import sys, sonoedge.train.phantom, sonoedge.train.phantom_cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_region_detector_finds_the_phantom_sector():
    from sonoedge.runtime.region import detect_region

    low, high, info = simulate_pair(0, PhantomConfig(size=(128, 160), geometry="convex"))
    sector = info["regions"]["sector"]
    for image in (low, high):
        region = detect_region(image)
        assert region.kind == "sector"
        assert (region.mask & sector).sum() / (region.mask | sector).sum() > 0.85
