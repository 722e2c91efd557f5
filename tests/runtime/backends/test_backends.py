"""Backends behind one lifecycle: every registered backend against the numpy reference.

TensorRT needs tensorrt + cuda-python + an NVIDIA GPU and a cached engine: its parity test is marked
``tensorrt`` and skipped with the reason elsewhere; what can run here (the missing-dependency error,
the auto choice) runs everywhere.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sonoedge.runtime.backends import BACKENDS, create_backend
from sonoedge.runtime.backends.tensorrt.cuda import cuda_importable
from sonoedge.runtime.bundle.model import choose_backend
from sonoedge.runtime.errors import BundleError, MissingDependencyError, SonoedgeError, UnknownNameError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and cuda_importable()
NO_TRT = ("needs tensorrt (libnvinfer) + cuda-python + an NVIDIA GPU: pip install 'sonoedge[tensorrt]' or JetPack; "
          "the bindings alone are checked by tests/runtime/backends/tensorrt/test_api_tier.py")


def _x(h=64, w=96, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (1, 1, h, w)).astype(np.float32)


def test_registry_holds_both_backends():
    assert {"onnxruntime", "tensorrt"} <= set(BACKENDS.names())
    with pytest.raises(UnknownNameError, match="valid names: onnxruntime, tensorrt"):
        create_backend("openvino", "x.onnx")


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_matches_the_numpy_reference(name, tiny_bundle, tiny_weights, numpy_reference):
    if name == "tensorrt" and not HAS_TRT:
        pytest.skip(NO_TRT)
    with create_backend(name, tiny_bundle / "model.onnx") as backend:
        for h, w in ((64, 96), (128, 64)):
            x = _x(h, w)
            y = backend.infer(x)
            assert y.shape == (1, 1, h, w) and y.dtype == np.float32
            assert np.abs(y - numpy_reference(x, tiny_weights)).max() < 1e-4  # the fp32 gate of runtime.gates


def test_onnxruntime_options_and_lifecycle(tiny_bundle):
    backend = BACKENDS.create("onnxruntime", tiny_bundle / "model.onnx", providers=["CPUExecutionProvider"],
                              intra_op_threads=1, allow_spinning=True)
    assert not backend.loaded
    with backend:
        assert backend.loaded and backend.active_providers == ["CPUExecutionProvider"]
        backend.warmup((1, 1, 32, 32))
    assert not backend.loaded and backend.session is None


def test_onnxruntime_refuses_missing_providers_and_corrupt_files(tiny_bundle, tmp_path):
    with pytest.raises(SonoedgeError, match="lacks provider"):
        create_backend("onnxruntime", tiny_bundle / "model.onnx", providers=["NoSuchExecutionProvider"])
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(BundleError, match="cannot load"):
        create_backend("onnxruntime", bad)
    with pytest.raises(BundleError, match="does not exist"):
        create_backend("onnxruntime", tmp_path / "absent.onnx")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is importable here; the missing-dependency path cannot be shown")
def test_tensorrt_without_the_extra_names_it(tiny_bundle):
    with pytest.raises(MissingDependencyError, match=r"sonoedge\[tensorrt\]"):
        create_backend("tensorrt", tiny_bundle / "model.onnx", precision="fp32")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt importable: the auto choice depends on this device's profile")
def test_auto_choice_is_onnxruntime_without_tensorrt(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="sonoedge")
    assert choose_backend("auto", "fp32") == "onnxruntime"
    record = next(r for r in caplog.records if getattr(r, "event", "") == "backend_chosen")
    assert "not importable" in record.reason and "device profile" in record.reason
    assert choose_backend("onnxruntime", "fp16") == "onnxruntime"
    with pytest.raises(UnknownNameError):
        choose_backend("tflite", "fp32")


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason=NO_TRT)
def test_tensorrt_engine_parity(tiny_bundle, tmp_path, tiny_weights, numpy_reference):
    """Build the tiny engine into a temporary cache, then load it through the backend and compare."""
    import tensorrt as trt

    from sonoedge.runtime.backends.tensorrt.cache import EngineCache, describe_current_gpu
    from sonoedge.runtime.digest import sha256_file

    onnx_path = tiny_bundle / "model.onnx"
    with pytest.raises(BundleError, match="run `sonoedge build-engine"):
        create_backend("tensorrt", onnx_path, cache_root=tmp_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 1, 32, 32), (1, 1, 64, 96), (1, 1, 256, 256))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    key = describe_current_gpu().key("fp32", None, sha256_file(onnx_path))
    EngineCache(tmp_path).store(key, bytes(plan))
    for graph in (False, True):
        with create_backend("tensorrt", onnx_path, cache_root=tmp_path, cuda_graph=graph) as backend:
            for _ in range(2):
                x = _x()
                assert np.abs(backend.infer(x) - numpy_reference(x, tiny_weights)).max() < 1e-3


def test_cpu_sessions_use_one_thread_per_physical_core_by_default(tiny_bundle):
    """intra_op_threads=0 on the CPU provider: one per physical core (set explicitly); an explicit count stays."""
    from sonoedge.runtime.backends.onnxruntime import physical_cores

    path = next(tiny_bundle.glob("model*.onnx"))
    with create_backend("onnxruntime", path, providers=["CPUExecutionProvider"]) as auto, \
            create_backend("onnxruntime", path, providers=["CPUExecutionProvider"], intra_op_threads=3) as three:
        assert auto.session.get_session_options().intra_op_num_threads == physical_cores()
        assert three.session.get_session_options().intra_op_num_threads == 3
    assert 1 <= physical_cores() <= (__import__("os").cpu_count() or 1)
