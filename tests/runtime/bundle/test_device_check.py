"""device-check: one sentence and a non-zero exit without TensorRT; the report it writes."""
from __future__ import annotations

import importlib.util
import json

import pytest

from sonoedge.cli import main
from sonoedge.runtime.bundle.device_check import markdown, write_report

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is importable here; the no-TensorRT sentence cannot be shown")
def test_without_tensorrt_it_ends_in_one_sentence(capsys, tmp_path):
    from sonoedge.runtime.bundle import default_bundle_path

    code = main(["device-check", str(default_bundle_path()), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no TensorRT on this machine" in err and "sonoedge verify" in err
    assert not (tmp_path / "out").exists()  # stopped before anything else


def test_report_json_and_markdown(tmp_path):
    report = {"bundle": "b", "model": "best", "profile": "jetson-orin-nx-16gb", "tensorrt": "10.3.0", "machine": "orin",
              "runs": 50, "precisions": {
                  "int8": {"build_s": 80.0, "plan": "p.plan", "shape": [1, 1, 512, 512], "p50_ms": 3.2, "p99_ms": 4.1,
                           "gate": {"passed": True, "failures": [], "gate": {}, "results": {"psnr": 41.0, "frames": 3}},
                           "dla": {"core": 0, "on_dla": ["a", "b"], "gpu_fallback": ["c"]}},
                  "fp32": {"build_s": 40.0, "plan": "q.plan", "shape": [1, 1, 512, 512], "p50_ms": 9.0, "p99_ms": 9.9,
                           "gate": {"passed": False, "failures": ["max_abs 1e-3 > 1e-4"], "gate": {},
                                    "results": {"max_abs": 1e-3}}, "dla": None}}}
    js, md = write_report(report, tmp_path / "r")
    assert json.loads(js.read_text()) == report
    text = md.read_text()
    assert text == markdown(report)
    assert "| int8 | PASS | psnr 41 | 3.20 | 4.10 | 80.0 | core 0: 2 on DLA, 1 on GPU |" in text
    assert "FAIL: max_abs 1e-3 > 1e-4" in text and "GPU only" in text
