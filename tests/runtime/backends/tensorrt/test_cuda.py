"""The cuda-python wrapper on any machine: result unpacking, error sentences, CUDA-11-safe calls.

A stand-in runtime module records the calls; the real cuda-python signatures of 11.8 and 12+ are
the ones named here (``cudaGraphInstantiateWithFlags``, not ``cudaGraphInstantiate``, whose
arguments changed in CUDA 12)."""
from __future__ import annotations

import enum
import types

import numpy as np
import pytest

from sonoedge.runtime.backends.tensorrt.cuda import CudaRuntime, import_cudart
from sonoedge.runtime.errors import MissingDependencyError, SonoedgeError


class Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInsufficientDriver = 35


def _fake_rt(fail: str = ""):
    calls = []

    def fn(name, *ret):
        def call(*args):
            calls.append((name, args))
            return (Err.cudaErrorInsufficientDriver,) if name == fail else (Err.cudaSuccess, *ret)
        return call

    rt = types.SimpleNamespace(
        cudaStreamBeginCapture=fn("cudaStreamBeginCapture"), cudaStreamEndCapture=fn("cudaStreamEndCapture", "GRAPH"),
        cudaGraphInstantiateWithFlags=fn("cudaGraphInstantiateWithFlags", 77), cudaGraphDestroy=fn("cudaGraphDestroy"),
        cudaGraphLaunch=fn("cudaGraphLaunch"), cudaGetDeviceCount=fn("cudaGetDeviceCount", 1),
        cudaGetDeviceProperties=fn("cudaGetDeviceProperties", types.SimpleNamespace(
            name=b"Orin\x00\x00", major=8, minor=7, multiProcessorCount=8)),
        cudaMemcpy=fn("cudaMemcpy"),
        cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2),
        cudaStreamCaptureMode=types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1))
    return rt, calls


def test_calls_unpack_and_fail_with_the_call_named():
    rt, calls = _fake_rt()
    cuda = CudaRuntime(rt)
    assert cuda.device_count() == 1 and cuda.describe(0) == ("Orin", "8.7", 8)
    assert cuda.capture(5, lambda: calls.append(("enqueue", ()))) == 77
    names = [c[0] for c in calls]
    assert names[-5:] == ["cudaStreamBeginCapture", "enqueue", "cudaStreamEndCapture", "cudaGraphInstantiateWithFlags",
                          "cudaGraphDestroy"]
    assert ("cudaGraphInstantiateWithFlags", ("GRAPH", 0)) in calls
    cuda.memcpy_htod(1234, np.zeros(4, np.float32))
    assert calls[-1] == ("cudaMemcpy", (1234, calls[-1][1][1], 16, 1))
    bad = CudaRuntime(_fake_rt(fail="cudaGetDeviceCount")[0])
    with pytest.raises(SonoedgeError, match=r"cudaGetDeviceCount failed with cudaErrorInsufficientDriver \(35\)"):
        bad.device_count()


def test_a_missing_driver_is_one_sentence():
    def raising(*a):
        raise RuntimeError("Failed to dlopen libcuda.so.1")  # cuda-python 11.8 without a driver

    with pytest.raises(SonoedgeError, match="libcuda.so.1.*driver"):
        CudaRuntime(types.SimpleNamespace(cudaSetDevice=raising)).set_device(0)


def test_import_names_the_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_cuda(name, *a, **k):
        if name.startswith("cuda"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_cuda)
    with pytest.raises(MissingDependencyError, match=r"cuda-python.*sonoedge\[tensorrt\].*11\.8"):
        import_cudart()


def test_no_ctypes_cuda_signatures_left():
    """CUDA is reached through cuda-python only: no libcudart loaded by hand, no pycuda required."""
    from pathlib import Path

    import sonoedge.runtime.backends.tensorrt as pkg

    for path in Path(pkg.__path__[0]).glob("*.py"):
        text = path.read_text()
        assert "libcudart" not in text and "ctypes.CDLL" not in text, path
        assert "import pycuda" not in text and 'require("pycuda' not in text, path
