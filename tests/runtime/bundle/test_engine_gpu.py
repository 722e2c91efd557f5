"""Real TensorRT builds of the default bundle, on a machine with TensorRT and an NVIDIA GPU.

Marked ``tensorrt`` and skipped elsewhere with the reason: fp16, int8 by both routes (strongly
typed from the Q/DQ ONNX, and the legacy calibrator at its own calibration profile), and
``build-engine`` into a cache folder that does not exist yet. Everything these builds decide is
also tested without TensorRT (test_engine.py, test_engine_build.py, the API tier).
"""
from __future__ import annotations

import json

import pytest

from sonoedge.runtime.bundle import default_bundle_path


def _trt():
    try:
        import tensorrt
    except (ImportError, OSError) as exc:
        pytest.skip(f"tensorrt does not import here ({exc}): these builds need libnvinfer and an NVIDIA GPU")
    from sonoedge.runtime.backends.tensorrt.cuda import CudaRuntime
    from sonoedge.runtime.errors import SonoedgeError

    try:
        if CudaRuntime().device_count() < 1:
            pytest.skip("no CUDA device visible")
    except SonoedgeError as exc:
        pytest.skip(f"no usable CUDA device: {exc}")
    return tensorrt


pytestmark = pytest.mark.tensorrt


@pytest.mark.parametrize("precision, legacy", [("fp16", False), ("int8", False), ("int8", True), ("fp32", False)])
def test_build_engine_into_a_missing_cache_folder(tmp_path, precision, legacy):
    trt = _trt()
    from sonoedge.runtime.backends.tensorrt.build import parse_version
    from sonoedge.runtime.bundle.engine import build_engine

    if legacy and parse_version(trt.__version__)[0] >= 11:
        pytest.skip(f"TensorRT {trt.__version__} has no calibrators (removed in 11): the legacy route is 8.5-10.x only")
    cache = tmp_path / "fresh" / "engines"  # does not exist
    lines = []
    plan = build_engine(default_bundle_path(), precision, "x86-cuda", cache, legacy=legacy, progress=lines.append)
    assert plan.is_file() and plan.parent == cache and (cache / "timing.cache").is_file()
    spec = json.loads(plan.with_suffix(".json").read_text())["spec"]
    assert spec["precision"] == precision and spec["mode"] == ("builder_flags" if legacy else spec["mode"])
    if legacy:
        assert (cache / spec["calibration_cache"]).is_file()  # what the trtexec line's --calib names
        assert any("INT8 calibration at 256x256" in line for line in lines)


def test_engine_parity_through_the_backend(tmp_path, monkeypatch):
    """The fp32 engine (TF32 cleared) passes the fp32 gate when the model loader re-checks the references."""
    _trt()
    from sonoedge.runtime.bundle.engine import build_engine
    from sonoedge.runtime.bundle.model import ModelConfig, load_model

    monkeypatch.setenv("SONOEDGE_CACHE", str(tmp_path))  # the backend looks in the default cache root
    build_engine(default_bundle_path(), "fp32", "x86-cuda", progress=lambda s: None)
    model = load_model(ModelConfig(precision="fp32", backend="tensorrt"))
    model.close()
