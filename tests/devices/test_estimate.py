"""The roofline latency estimate (devices/estimate.py) and `sonoedge devices --estimate`."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from sonoedge.cli import main
from sonoedge.devices.estimate import estimate, graph_layers
from sonoedge.devices.profiles import load_profile, load_profiles

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    import torch

    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.train.registries import GENERATORS, load_all

    load_all()
    torch.manual_seed(0)
    g = GENERATORS.create("edge-small").eval()
    return export_onnx(g, tmp_path_factory.mktemp("est") / "model.onnx", channels=1, stride=g.stride), g


def test_graph_macs_equal_the_torch_count(student_onnx):
    from sonoedge.train.students import macs_per_pixel

    path, g = student_onnx
    layers = graph_layers(path, (512, 512))
    assert sum(la.macs for la in layers) == pytest.approx(macs_per_pixel(g, 256) * 512 * 512, rel=1e-6)
    assert not any(la.op == "BatchNormalization" for la in layers)


def test_every_jetson_profile_has_stated_assumptions_and_the_estimate_scales():
    profiles = load_profiles()
    for name, prof in profiles.items():
        if prof.family == "jetson" and name != "jetson-agx-thor":
            assert prof.estimate is not None and prof.estimate.clock_note, name
    assert profiles["jetson-agx-thor"].estimate is None  # no public dense INT8 figure used: no estimate


def test_estimate_grows_with_size_and_bandwidth_matters(student_onnx):
    path, _ = student_onnx
    roof = load_profile("jetson-orin-nano-8gb").estimate
    small = estimate(graph_layers(path, (256, 256)), roof, "int8")
    big = estimate(graph_layers(path, (512, 512)), roof, "int8")
    assert 2.5 < big.ms / small.ms < 4.5 and big.fps < small.fps
    slow_memory = estimate(graph_layers(path, (512, 512)), dataclasses.replace(roof, memory_gbps=6.8), "fp16")
    assert slow_memory.ms > 2 * estimate(graph_layers(path, (512, 512)), roof, "fp16").ms


def test_dla_rows_and_gpu_fallback(student_onnx):
    path, _ = student_onnx
    roof = load_profile("jetson-orin-nx-16gb").estimate
    assert estimate(graph_layers(path, (512, 512)), roof, "int8", "dla").ms > 0
    assert estimate(graph_layers(path, (512, 512)), roof, "fp32", "dla").ms is None


def test_command_prints_a_labelled_estimate(student_onnx, capsys):
    path, _ = student_onnx
    assert main(["devices", "--estimate", str(path), "jetson-orin-nano-8gb"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ESTIMATE") and "MACs per 512x512 frame" in out and "jetson-orin-nano-8gb" in out
    assert main(["devices", "--estimate", str(path), "--json", "--size", "256x256"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows and all(r["size"] == [256, 256] and r["label"].startswith("estimate") for r in rows)
    assert main(["devices", "--estimate", str(path), "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err


def test_yolov8n_graph_matches_the_published_flops():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import latency_check
    finally:
        sys.path.pop(0)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = latency_check.export(Path(tmp) / "y.onnx", side=320)
        macs = sum(la.macs for la in graph_layers(path, (320, 320)))
    # Ultralytics: 8.7 GFLOPs (2 x MACs) at 640; all convs, so a quarter at 320
    assert 2 * macs / 1e9 == pytest.approx(8.7 / 4, rel=0.02)
