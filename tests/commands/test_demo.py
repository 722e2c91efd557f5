"""``sonoedge demo`` and ``sonoedge enhance`` / ``bench`` end to end through the real runtime."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.runtime.readers import probe
from sonoedge.train.demo import run_demo


def test_demo_on_a_generated_phantom(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--bundle", str(tiny_bundle), "--out", str(out), "--frames", "4", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "4/4 frames" in printed and "vs high-end: PSNR" in printed and "cyst gCNR" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == {"in": 4, "out": 4, "dropped": 0, "enhanced": 4, "passthrough": 0}
    assert report["fps"] > 0 and report["latency_ms"]["infer"]["p50"] > 0
    q = report["quality"]
    assert set(q["psnr_db"]) == {"input", "enhanced"} and q["frames_scored"] == 4
    assert 0 <= q["contrast"]["enhanced"]["gcnr"] <= 1
    assert probe(out / "enhanced.mp4").frames == 4 and probe(out / "input.mp4").frames == 4
    sbs = cv2.imread(str(out / "side_by_side.png"), cv2.IMREAD_UNCHANGED)
    assert sbs.shape[1] == 3 * 256 + 2 * 4  # input | enhanced | high-end reference


@pytest.mark.realus
def test_demo_on_a_real_sequence(tiny_bundle, tmp_path, realus):
    clip = realus / "clips" / "plus_toolkit" / "UltrasonixCurvilinearScanConvertedData.igs.mha"
    report = run_demo(str(clip), tmp_path / "d", bundle=str(tiny_bundle))
    assert report["frames"]["out"] == 5 and report["quality"]["reference"] is None
    assert report["quality"]["speckle_snr"]["input"] > 0
    assert probe(tmp_path / "d" / "enhanced.mp4").frames == 5
    assert not (tmp_path / "d" / "input.mp4").exists()


def test_demo_with_a_missing_input_is_one_clear_error(tiny_bundle, tmp_path, capsys):
    assert main(["demo", "--bundle", str(tiny_bundle), "--input", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.mp4 does not exist" in err[0]


@pytest.mark.realus
def test_enhance_a_clip_side_by_side_and_a_dicom_still(tiny_bundle, tmp_path, realus, capsys):
    clip = realus / "clips" / "plus_toolkit" / "BoneUltrasound_L14.igs.mha"
    out = tmp_path / "sbs.avi"
    assert main(["enhance", str(clip), "-o", str(out), "--bundle", str(tiny_bundle), "--side-by-side"]) == 0
    info = probe(out)
    assert (info.frames, info.height, info.width) == (21, 616, 2 * 820)
    dcm = realus / "itkpocus_handheld" / "sonoque_anechoic-3mm-3mm.dcm"
    still = tmp_path / "still.png"
    assert main(["enhance", str(dcm), "-o", str(still), "--bundle", str(tiny_bundle)]) == 0
    info = probe(dcm)
    assert cv2.imread(str(still), cv2.IMREAD_UNCHANGED).shape == (info.height, info.width)
    capsys.readouterr()
    assert main(["enhance", str(clip), "-o", str(tmp_path / "x.png"), "--bundle", str(tiny_bundle)]) == 2
    assert "21 frames but" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_enhance_sr_bundle_writes_4x_frames(sr_bundle, tmp_path):
    src = tmp_path / "in.png"
    image = np.zeros((40, 48), np.uint8)
    image[5:35, 5:43] = np.random.default_rng(0).integers(30, 220, (30, 38))
    cv2.imwrite(str(src), image)
    assert main(["enhance", str(src), "-o", str(tmp_path / "out.png"), "--bundle", str(sr_bundle), "--region", "full"]) == 0
    assert cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).shape == (160, 192)


def test_bench_reports_pipeline_hand_loop_and_floor_side_by_side(tiny_bundle, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((64, 80), 30 * i, np.uint8))
    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_bundle), "--input", str(frames), "--frames", "6", "--repeats", "2",
                 "--region", "full", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["frames"] == 6 and r["frames_out"] == 6 and r["frames_dropped"] == 0
    parallel = {"bare_parallel"} if r["infer_workers"] > 1 else set()  # frame-parallel on a CPU of 2+ cores
    assert set(r["fps"]) == set(r["cpu_ms_per_frame"]) == {"bare", "hand", "pipeline"} | parallel
    assert all(len(v) == 2 for v in r["wall_s"].values()) and all(v > 0 for v in r["fps"].values())
    assert r["pipeline_vs_hand_fps"]["median"] > 0 and "median" in r["pipeline_vs_bare_cpu_pct"]
    assert set(r["steps"]) == {"capture", "prepare", "infer", "finish", "sink", "frame"}
    assert len(r["load_average"]["start"]) == 3
    assert r["fidelity"]["frame"] == "frames#1" and r["fidelity"]["verdict"] in ("pass", "fail")
    text = capsys.readouterr().out
    assert "careful hand loop" in text and "per-step budget" in text and "load average" in text
    assert "fidelity of the enhanced middle frame (frames#1)" in text


def test_enhance_missing_input_is_one_clear_error(tiny_bundle, tmp_path, capsys):
    assert main(["enhance", str(tmp_path / "absent.mp4"), "-o", str(tmp_path / "o.mp4"), "--bundle", str(tiny_bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.mp4 does not exist" in err[0] and not (tmp_path / "o.mp4").exists()


def test_bench_daemon_reports_cold_start_and_memory(tiny_bundle, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((64, 80), 30 * i, np.uint8))
    out = tmp_path / "mem.json"
    assert main(["bench", str(tiny_bundle), "--input", str(frames), "--daemon", "5,12", "--fps", "200",
                 "--region", "full", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["cold_start_to_first_frame_s"] > 0 and [m["frames_out"] >= n for m, n in zip(r["memory"], (5, 12))] == [True, True]
    assert all(m["rss_mib"] > 10 for m in r["memory"]) and r["exit_code"] == 0
