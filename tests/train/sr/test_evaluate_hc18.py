"""The hc18 evaluation module on a stand-in realus folder (two small frames, cheap methods)."""
import json

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.train.sr import evaluate_hc18


def test_bicubic_methods_and_report(tmp_path):
    folder = tmp_path / "realus" / "hc18"
    folder.mkdir(parents=True)
    y, x = np.mgrid[:66, :98]  # cropped to 64 x 96 (multiples of 4)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:03d}_HC.png"), (128 + 100 * np.sin(x / (4.0 + i)) * np.cos(y / 7.0)).astype(np.uint8))
    out = tmp_path / "out"
    table = evaluate_hc18.evaluate_hc18(tmp_path / "realus", out, methods=["bicubic", "bicubic-bp"])
    assert table == (out / "results.md").read_text()
    assert cv2.imread(str(out / "bicubic" / "000_HC.png"), cv2.IMREAD_GRAYSCALE).shape == (64, 96)
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"bicubic", "bicubic-bp"}
    for rows in results.values():
        assert all(r["psnr"] > 15 and 0 < r["ssim"] <= 1 and r["ifc"] > 0 for r in rows.values())
    table = (out / "results.md").read_text()
    assert "| bicubic-bp | 2/2 |" in table
    with pytest.raises(InputError, match="no PNG frames"):  # no hc18 there
        evaluate_hc18.evaluate_hc18(tmp_path, out)


def test_eval_config_budget_is_explicit():
    cfg = evaluate_hc18.make_config("zero-shot", None, [])
    assert cfg.mode == "zero-shot" and cfg.weights.perceptual == 0.0 and cfg.max_iters > 0
    assert evaluate_hc18.make_config("dataset", None, ["max_iters=7"]).max_iters == 7
