"""`sonoedge fidelity`: pairs files, prints and writes the measures, exits 3 on an unfaithful frame."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sonoedge.cli import main


def _tissue(seed: int = 0) -> np.ndarray:
    """Log-compressed speckle with a bright line: (200, 240) uint8."""
    rng = np.random.default_rng(seed)
    re, im = (cv2.GaussianBlur(rng.normal(size=(200, 240)), (0, 0), 2.0) for _ in range(2))
    envelope = np.hypot(re, im)
    image = 70 + 20 * np.log10(envelope / envelope.mean() + 1e-3) * 255 / 50
    image[90:96, 30:210] += 90
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    src, same, holed = tmp_path / "in", tmp_path / "same", tmp_path / "holed"
    for folder in (src, same, holed):
        folder.mkdir()
    for i in range(2):
        image = _tissue(i)
        cv2.imwrite(str(src / f"f{i}.png"), image)
        cv2.imwrite(str(same / f"f{i}.png"), cv2.GaussianBlur(image, (3, 3), 0))
        hole = image.copy()
        cv2.circle(hole, (60, 150), 12, 0, -1)
        cv2.imwrite(str(holed / f"f{i}.png"), hole if i == 1 else image)
    return src, same, holed


def test_a_faithful_enhancement_passes_and_writes_its_report(folders, tmp_path, capsys):
    src, same, _ = folders
    out = tmp_path / "report"
    assert main(["fidelity", str(src), str(same), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| f0.png#0 | pass |" in printed and "| f1.png#0 | pass |" in printed
    data = json.loads((out / "fidelity.json").read_text())
    assert [r["frame"] for r in data["frames"]] == ["f0.png#0", "f1.png#0"] and data["summary"][0]["failing"] == 0
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["f0.png_0.png", "f1.png_0.png"]
    # the folder is this command's: refused without --overwrite, replaced with it
    assert main(["fidelity", str(src), str(same), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["fidelity", str(src), str(same), "--out", str(out), "--overwrite"]) == 0


def test_an_invented_hole_fails_naming_the_frame(folders, capsys):
    src, _, holed = folders
    assert main(["fidelity", str(src), str(holed), "--json"]) == 3
    captured = capsys.readouterr()
    rows = {r["frame"]: r for r in json.loads(captured.out)["frames"]}
    assert rows["f0.png#0"]["verdict"] == "pass" and rows["f1.png#0"]["verdict"] == "fail"
    assert rows["f1.png#0"]["invented"] == 1 and "f1.png#0" in captured.err and "invented" in captured.err


def test_against_a_reference_both_sides_are_measured(folders, capsys):
    src, same, _ = folders
    assert main(["fidelity", str(src / "f0.png"), str(same / "f0.png"), "--reference", str(src / "f0.png"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["frames"][0]
    assert row["vs_reference_input"]["lowpass_corr"] == 1.0 and row["vs_reference_enhanced"]["lowpass_corr"] > 0.99


def test_bad_pairs_are_one_clear_error(folders, tmp_path, capsys):
    src, same, _ = folders
    (same / "f1.png").unlink()
    assert main(["fidelity", str(src), str(same)]) == 2
    assert "no file named like 'f1'" in capsys.readouterr().err
    assert main(["fidelity", str(src)]) == 2
    assert "--run" in capsys.readouterr().err
    assert main(["fidelity", str(src), str(same / "f0.png")]) == 2
    assert "both be files or both be folders" in capsys.readouterr().err
    assert main(["fidelity", str(src), str(src), "--out", str(src / "x")]) == 2  # never inside an input
    assert "inside the input folder" in capsys.readouterr().err


def test_the_default_bundle_keeps_a_real_fetal_head(realus, capsys):
    """The embedded default (trained on real anatomy) passes on a held-out console frame whose bright
    skull and dark fluid the previous, phantom-only default erased (exit 3, 55 % of bright pixels black)."""
    assert main(["fidelity", "--run", str(realus / "hc18" / "050_HC.png"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["frames"][0]
    assert row["erased"] == 0 and row["invented"] == 0 and row["bright_to_black"] < 0.01
    if (realus.parent / "annotations" / "hc18").is_dir():
        assert row["skull_kept"] >= 0.8 and row["hc_diff_mm"] is not None and abs(row["hc_diff_mm"]) < 2.0


def test_controls_harmless_pass_and_inversion_fails(folders, capsys):
    src, _, _ = folders
    for control in ("identity", "gauss3", "median3", "gain0.85", "gain1.3", "offset+10", "offset-10"):
        assert main(["fidelity", "--control", control, str(src)]) == 0, control
    capsys.readouterr()
    assert main(["fidelity", "--control", "invert", str(src), "--json"]) == 3
    rows = json.loads(capsys.readouterr().out)["frames"]
    assert all(r["verdict"] == "fail" and r["lowpass_corr"] < -0.9 for r in rows)
    assert main(["fidelity", "--control", "sharpen", str(src)]) == 2
    assert "not one of identity" in capsys.readouterr().err


def test_naming_a_bundle_runs_it(tiny_bundle, folders, capsys):
    src, _, _ = folders
    code = main(["fidelity", "--bundle", str(tiny_bundle), str(src / "f0.png"), "--json"])
    assert code in (0, 3)  # the random-weight test bundle may or may not keep the line; it ran
    rows = json.loads(capsys.readouterr().out)["frames"]
    assert [r["frame"] for r in rows] == ["f0.png#0"]
