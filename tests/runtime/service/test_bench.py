"""The runtime benchmark's alternatives: the hand loop gives the pipeline's frames, the pipeline times every step."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.service.bench import _LoopedFile, bench, format_result, hand_loop, opencv_frames, step_budget
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.pipeline import STAGES, Pipeline, PipelineConfig
from sonoedge.runtime.stream.sinks import NullSink


def _colour_clip(path, n=5):
    """A colour FFV1 clip: a bright sector-like box with text-like overlays outside it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25, (120, 96))
    rng = np.random.default_rng(0)
    for i in range(n):
        bgr = np.zeros((96, 120, 3), np.uint8)
        bgr[10:86, 20:100] = rng.integers(40, 220, (76, 80, 1), dtype=np.uint8)
        bgr[2:8, 2:40] = (0, 200, 255)  # a coloured overlay outside the region
        writer.write(bgr)
    writer.release()
    return path


@pytest.fixture(scope="module")
def model(tiny_bundle):
    m = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    yield m
    m.close()


@pytest.mark.parametrize("region,grey", [("full", "fast"), ("auto", "fast"), ("auto", "exact")])
def test_hand_loop_gives_the_pipelines_frames(model, tmp_path, region, grey):
    clip = _colour_clip(tmp_path / "c.avi")
    cfg = EnhancerConfig(region=region, grey=grey)
    enhancer = Enhancer(model, cfg)
    job = enhancer.prepare(Frame(next(opencv_frames(clip, 1, grey)), 0))
    hand: list[np.ndarray] = []
    hand_loop(clip, 7, grey, model.backend, job.bbox, job.mask, model.stride, on_frame=hand.append)
    piped: list[np.ndarray] = []
    stats = Pipeline(lambda: _LoopedFile(clip, 7, grey), enhancer, NullSink(), PipelineConfig(mode="blocking"),
                     on_frame=lambda f: piped.append(f.image)).run()
    assert stats["frames_out"] == len(piped) == len(hand) == 7  # the 5-frame clip looped
    for a, b in zip(hand, piped):
        assert np.array_equal(a, b)


def test_pipeline_times_capture_and_every_step(model, tmp_path):
    clip = _colour_clip(tmp_path / "c.avi")
    stats = Pipeline(lambda: _LoopedFile(clip, 6, "fast"), Enhancer(model, EnhancerConfig(region="full")), NullSink(),
                     PipelineConfig(mode="blocking")).run()
    assert stats["latency_ms"]["capture"]["count"] == 6 and stats["latency_ms"]["capture"]["p50"] > 0
    assert set(stats["cpu_ms_per_frame"]) == set(STAGES)
    budget = step_budget(stats, 6)
    assert set(budget) == {*STAGES, "frame"} and budget["frame"]["pct_of_frame"] == 100.0
    assert all(budget[s]["ms"] >= 0 and budget[s]["cpu_ms"] >= 0 for s in STAGES)
    threads = stats["thread_cpu_ms_per_frame"]  # each of the 3 threads' whole CPU, at least its steps'
    assert set(threads) == {"capture", "infer", "sink"}
    steps = stats["cpu_ms_per_frame"]
    assert threads["capture"] >= steps["capture"] + steps["prepare"] and threads["infer"] >= steps["infer"]
    assert threads["sink"] >= steps["finish"] + steps["sink"]


@pytest.mark.realus
def test_guard_cost_times_guard_and_inference_interleaved_at_512(realus, tiny_bundle, tmp_path, capsys):
    """``sonoedge bench --guard-cost`` on a real clip: both timed on every frame, the ratio per repeat."""
    import json

    from sonoedge.cli import main

    out = tmp_path / "guard.json"
    clip = realus / "clips" / "plus_toolkit" / "UltrasonixCurvilinearScanConvertedData.igs.mha"
    assert main(["bench", str(tiny_bundle), "--input", str(clip), "--guard-cost", "--frames", "6", "--repeats", "2",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["size"] == [512, 512] and r["frames"] == 6 and r["repeats"] == 2 and r["cells"] > 1000
    assert r["infer_ms"]["median"] > 0 and r["guard_ms"]["median"] > 0
    assert r["guard_pct_of_infer"]["quartiles"][0] <= r["guard_pct_of_infer"]["median"] <= r["guard_pct_of_infer"]["quartiles"][1]
    assert "guard / inference" in capsys.readouterr().out


@pytest.mark.parametrize("threads", [1, 2])
def test_every_alternative_runs_the_pipelines_session_and_threads(tiny_bundle, tmp_path, threads):
    """A fair comparison: the floor, the hand loop and the pipeline use one session, so the same
    intra-op threads (``--threads``), and the result says which and whether the guard ran."""
    clip = _colour_clip(tmp_path / "c.avi")
    cfg = EnhancerConfig(bundle=str(tiny_bundle), region="full", threads=threads)
    r = bench(cfg, clip, frames=3, repeats=1)
    assert r["intra_op_threads"] == {"bare": threads, "hand": threads, "pipeline": threads}
    assert r["guard"] is True and r["frames_out"] == 3 and set(r["fps"]) == {"bare", "hand", "pipeline"}
    for key in ("python_threads_cpu_ms_per_frame", "other_threads_cpu_ms_per_frame"):
        assert set(r[key]) == {"bare", "hand", "pipeline"} and all(v == v for v in r[key].values())
    assert r["pipeline_machinery_cpu_ms_per_frame"] >= 0 and "in the Python threads" in format_result(r)


def test_frame_parallel_pipeline_is_measured_against_the_floor_run_as_it_calls_the_model(tiny_bundle, tmp_path, monkeypatch):
    """With intra-op threads on auto on a CPU of 2+ cores the pipeline runs 2 model calls at once
    on a session of half the cores; the floor and the hand loop keep the one-call session, and a
    fourth alternative (2 floor loops at once on the pipeline's session) is measured beside them."""
    from sonoedge.runtime.backends import onnxruntime as ortb

    monkeypatch.setattr(ortb, "physical_cores", lambda: 2)
    clip = _colour_clip(tmp_path / "c.avi", n=7)
    r = bench(EnhancerConfig(bundle=str(tiny_bundle), region="full", threads=0), clip, frames=7, repeats=1)
    assert r["infer_workers"] == 2
    assert r["intra_op_threads"] == {"bare": 2, "hand": 2, "pipeline": 1, "bare_parallel": 1}
    assert set(r["fps"]) == {"bare", "bare_parallel", "hand", "pipeline"} and r["frames_out"] == 7
    assert r["python_threads_cpu_ms_per_frame"]["bare_parallel"] > 0  # its loops' threads, not the waiting caller
    assert r["pipeline_vs_bare_parallel_cpu_pct"] is not None
    text = format_result(r)
    assert "2 at once as the pipeline calls the model" in text and "pipeline infer workers 2" in text
    # asked for explicitly: 1 worker, one session for all three, as before
    one = bench(EnhancerConfig(bundle=str(tiny_bundle), region="full", threads=0), clip, frames=3, repeats=1, infer_workers=1)
    assert one["infer_workers"] == 1 and "bare_parallel" not in one["fps"] and one["pipeline_vs_bare_parallel_cpu_pct"] is None
