"""ONNX Runtime's TensorRT EP gets explicit profile shapes (the device profile's range) and an engine
cache under the sonoedge cache root, so a new region size inside the range does not rebuild mid-stream."""
from __future__ import annotations

from sonoedge.runtime.backends.onnxruntime import OnnxRuntimeBackend, tensorrt_ep_options
from sonoedge.runtime.bundle import default_bundle_path
from sonoedge.runtime.bundle.manifest import load_manifest
from sonoedge.runtime.bundle.model import ModelConfig, _backend_options


def test_profile_shapes_and_cache_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("SONOEDGE_CACHE", str(tmp_path))
    shapes = {"min": (1, 1, 64, 64), "opt": (1, 1, 512, 512), "max": (1, 1, 1024, 1024)}
    opts = tensorrt_ep_options("fp16", None, "input", shapes)
    assert opts["trt_profile_min_shapes"] == "input:1x1x64x64"
    assert opts["trt_profile_opt_shapes"] == "input:1x1x512x512"
    assert opts["trt_profile_max_shapes"] == "input:1x1x1024x1024"
    assert opts["trt_engine_cache_enable"] and opts["trt_engine_cache_path"] == str(tmp_path / "ort-trt")
    assert opts["trt_fp16_enable"] and not opts["trt_int8_enable"]
    backend = OnnxRuntimeBackend("m.onnx", providers=["TensorrtExecutionProvider"], precision="int8",
                                 input_name="x", profile_shapes=shapes)
    name, provider = backend._provider("TensorrtExecutionProvider")
    assert name == "TensorrtExecutionProvider" and provider["trt_profile_max_shapes"] == "x:1x1x1024x1024"
    assert provider["trt_int8_enable"]


def test_the_model_loader_passes_the_device_profiles_range(monkeypatch):
    import sonoedge.devices.detect as detect
    from sonoedge.devices.detect import DetectedDevice
    from sonoedge.devices.profiles import load_profile

    monkeypatch.setattr(detect, "detect_device", lambda *a, **k: DetectedDevice(load_profile("jetson-orin-nano-8gb"), "t"))
    root, manifest = load_manifest(default_bundle_path())
    cfg = ModelConfig(providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    options = _backend_options("onnxruntime", cfg, root, manifest)
    stride = manifest.model.stride  # 64: the profile's 512 opt stays, 1024 max stays
    assert options["profile_shapes"] == {"min": (1, 1, 64, 64), "opt": (1, 1, 512, 512), "max": (1, 1, 1024, 1024)}
    assert stride == 64 and options["input_name"] == "input"
    assert "profile_shapes" not in _backend_options("onnxruntime", ModelConfig(), root, manifest)  # CPU: none needed
