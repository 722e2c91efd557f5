"""`sonoedge data inspect` and `sonoedge data split` end to end through the CLI entry point."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sonoedge.cli import main


def _sector_clip(path, frames=6):
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    fan = (np.hypot(xx - 160, yy + 40) < 270) & (np.abs(np.degrees(np.arctan2(xx - 160, yy + 40))) < 35) & (yy > 20)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (w, h))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        image = np.where(fan, rng.integers(30, 200, (h, w)), 0).astype(np.uint8)
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_inspect_prints_media_and_region_and_writes_overlay(tmp_path, capsys):
    clip = tmp_path / "clip.avi"
    _sector_clip(clip)
    overlay = tmp_path / "out" / "overlay.png"
    assert main(["data", "inspect", str(clip), "--overlay", str(overlay), "--frame", "2"]) == 0
    out = capsys.readouterr().out
    assert "kind:     video" in out and "frames:   6" in out and "fps:      15.00" in out
    assert "region:   sector" in out and "of frame 2" in out
    image = cv2.imread(str(overlay))
    assert image.shape == (240, 320, 3)
    red = (image[:, :, 2] > 200) & (image[:, :, 1] < 60)
    assert red.sum() > 200  # the region outline is drawn
    assert sorted(p.name for p in overlay.parent.iterdir()) == ["overlay.png"]  # no partial files left


def test_inspect_real_file(realus, capsys):
    path = realus / "itkpocus_handheld" / "sonoque_anechoic-3mm-3mm.dcm"
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kind:     dicom" in out and "2083 x 1455" in out and "mm/pixel" in out and "region:   rectangle" in out


@pytest.mark.parametrize(("args", "message"), [
    (["missing.png"], "missing.png does not exist"),
    (["bad.txt"], "unsupported file type"),
    (["tiny.png"], "is 1x1 pixels"),
    (["clip.avi", "--frame", "50"], "fewer than 51 frames"),
    (["clip.avi", "--overlay", "out.gif"], "must end in one of"),
])
def test_inspect_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.txt").write_text("x")
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((1, 1), np.uint8))
    _sector_clip(tmp_path / "clip.avi")
    code = main(["data", "inspect", *args])
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.gif").exists()


def test_split_writes_json(tmp_path, capsys):
    data = tmp_path / "data"
    for side in ("low", "high"):
        (data / side).mkdir(parents=True)
        for p in range(10):
            cv2.imwrite(str(data / side / f"P{p:03d}-scan.png"), np.full((20, 20), p, np.uint8))
    out = tmp_path / "split.json"
    assert main(["data", "split", str(data), "--out", str(out), "--ratios", "80,10,10", "--seed", "2"]) == 0
    assert "paired data" in capsys.readouterr().out
    document = json.loads(out.read_text())
    assert document["layout"] == "paired" and document["seed"] == 2 and document["patients"] == 10
    assert document["ratios"] == pytest.approx([0.8, 0.1, 0.1])
    assert sorted(sum(document["splits"].values(), [])) == sorted(f"P{p:03d}-scan.png" for p in range(10))
    assert main(["data", "split", str(data), "--out", str(tmp_path / "again.json"), "--ratios", "80,10,10", "--seed", "2"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["splits"] == document["splits"]


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere", "--out", "s.json"], "does not exist"),
    (["data", "--out", "s.json", "--ratios", "70,x,20"], "three comma-separated numbers"),
    (["data", "--out", "s.json", "--ratios", "70,30"], "ratios must be three"),
    (["empty", "--out", "s.json"], "contains no images"),
])
def test_split_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "a.png"), np.zeros((20, 20), np.uint8))
    (tmp_path / "empty").mkdir()
    code = main(["data", "split", *args])
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
