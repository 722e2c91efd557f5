"""`sonoedge data degrade` and train/degrade.py: the handheld device model on real console frames."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.train import degrade
from sonoedge.train.datasets import DataConfig, scan


def console_frame(seed: int = 0) -> np.ndarray:
    """A console-like frame: speckled tissue at grey ~70 in a black-bordered rectangle, one bright
    boundary (grey 220) and an anechoic region (grey 0-5)."""
    rng = np.random.default_rng(seed)
    img = np.clip(70 * rng.rayleigh(1.0, (160, 200)) / 1.25, 0, 255)
    img[70:76, 20:180] = 220
    cv2.circle(img, (140, 120), 18, 2, -1)
    img[:, :10] = 0
    img[:, -10:] = 0
    return img.astype(np.uint8)


def mask_of(img):
    mask = np.zeros(img.shape, bool)
    mask[:, 10:-10] = True
    return mask


def test_degradation_blurs_compresses_and_keeps_structure():
    high = console_frame()
    mask = mask_of(high)
    low, params = degrade.degrade_frame(high, degrade.DegradeConfig(), np.random.default_rng(3), mask)
    assert low.shape == high.shape and low.dtype == np.uint8
    assert (low[~mask] == 0).all()  # black outside the imaging region
    # the bright boundary stays the brightest structure, the anechoic region stays dark
    tissue = np.median(low[100:150, 20:100])
    assert low[70:76, 30:170].mean() > tissue + 40
    assert low[112:128, 132:148].mean() < tissue - 30
    # the median tissue grey follows the console's times the drawn tissue_gain (within a few levels)
    assert abs(np.median(low[mask & (high > 0)]) - np.median(high[mask & (high > 0)]) * params["tissue_gain"]) < 8
    # new, coarser speckle: the low image is not the high image
    assert np.corrcoef(low[mask].astype(float), high[mask].astype(float))[0, 1] < 0.9
    for name in ("lateral_fwhm_px", "dynamic_range_db", "noise_db", "line_density"):
        lo, hi = getattr(degrade.DegradeConfig(), name)
        assert lo <= params[name] <= hi


def test_draws_depend_only_on_the_seed():
    high = console_frame()
    a, _ = degrade.degrade_frame(high, degrade.DegradeConfig(), np.random.default_rng([5, 0]), mask_of(high))
    b, _ = degrade.degrade_frame(high, degrade.DegradeConfig(), np.random.default_rng([5, 0]), mask_of(high))
    c, _ = degrade.degrade_frame(high, degrade.DegradeConfig(), np.random.default_rng([6, 0]), mask_of(high))
    assert (a == b).all() and not (a == c).all()


def test_bad_config_and_input_are_refused():
    with pytest.raises(InputError, match="line_density"):
        degrade.DegradeConfig(line_density=(0.5, 1.5)).validate()
    with pytest.raises(InputError, match="lo <= hi"):
        degrade.DegradeConfig(dynamic_range_db=(50.0, 40.0)).validate()
    with pytest.raises(InputError, match="uint8 grey"):
        degrade.degrade_frame(np.zeros((8, 8), np.float32), degrade.DegradeConfig(), np.random.default_rng(0))


def test_command_writes_the_paired_layout_and_refuses_foreign_folders(tmp_path):
    from sonoedge.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i:03d}_HC.png"), console_frame(i))
    out = tmp_path / "pairs"
    assert main(["data", "degrade", "--src", str(src), "--out", str(out), "--tile", "128", "--tiles", "2",
                 "--seed", "4", "--set", "gain_range=[0.6,1.4]", "--quiet"]) == 0
    items = scan(DataConfig(root=str(out), layout="paired"))["pairs"]
    assert len(items) == 6 and items[0] == "000_HC_t00.png"
    assert cv2.imread(str(out / "low" / items[0]), 0).shape == (128, 128)
    meta = json.loads((out / "degrade.json").read_text())
    assert meta["count"] == 6 and meta["seed"] == 4 and 0.6 <= meta["pairs"][0]["gain"] <= 1.4
    first = (out / "low" / items[0]).read_bytes()
    # the same seed gives the same data; --overwrite replaces only its own output
    assert main(["data", "degrade", "--src", str(src), "--out", str(out), "--tile", "128", "--tiles", "2",
                 "--seed", "4", "--set", "gain_range=[0.6,1.4]", "--quiet", "--overwrite"]) == 0
    assert (out / "low" / items[0]).read_bytes() == first
    (out / "notes.txt").write_text("mine")
    assert main(["data", "degrade", "--src", str(src), "--out", str(out), "--quiet", "--overwrite"]) != 0
    assert (out / "notes.txt").exists()
