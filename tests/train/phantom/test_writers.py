"""train/phantom write_pairs and write_clip: folder layout, phantom.json, atomic writes, videos."""
from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.train import phantom
from sonoedge.train.phantom import PhantomConfig, write_clip, write_pairs

SMALL = PhantomConfig(size=(96, 96))


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
    # same seed -> same files, also from worker processes; an earlier phantom output is replaced only when asked
    with pytest.raises(InputError, match="--overwrite"):
        write_pairs(out, 3, dataclasses.replace(SMALL, geometry="mixed"), seed=2)
    write_pairs(out, 3, dataclasses.replace(SMALL, geometry="mixed"), seed=2, workers=2, overwrite=True)
    assert sorted(p.name for p in (out / "low").glob("*.png")) == low
    assert np.array_equal(cv2.imread(str(out / "low" / low[0]), cv2.IMREAD_UNCHANGED), image)


def test_write_pairs_is_atomic_and_refuses_foreign_folders(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        write_pairs(foreign, 1, SMALL)
    with pytest.raises(InputError, match="did not write"):
        write_pairs(foreign, 1, SMALL, overwrite=True)
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
