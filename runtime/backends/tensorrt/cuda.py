"""The few CUDA runtime calls TensorRT needs, through NVIDIA's ``cuda-python`` (no pycuda, no ctypes
signatures of our own).

    rt = CudaRuntime()                      # imports cuda-python here, not at module import
    stream = rt.stream_create()
    host = rt.host_array((1, 1, 512, 512), np.float32)   # pinned numpy array
    dev = rt.malloc(host.nbytes)
    rt.memcpy_htod_async(dev, host, stream); rt.synchronize(stream)

One wrapper for every cuda-python generation a device has: ``cuda.bindings.runtime`` (cuda-bindings
11.8.7+, 12.x, 13.x) or the older ``cuda.cudart`` (cuda-python 11.8.0-11.8.5, 12.0-12.5). Only calls
whose signature is the same in CUDA 11 and 12+ are used: graphs are instantiated with
``cudaGraphInstantiateWithFlags`` (CUDA >= 11.4, JetPack 5), never ``cudaGraphInstantiate``, whose
arguments changed in CUDA 12. Every call returns ``(cudaError_t, *values)``; :meth:`CudaRuntime.call`
turns a non-zero error into a SonoedgeError naming the call.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from sonoedge.runtime.errors import MissingDependencyError, SonoedgeError

# cuda-python's module paths, newest first (what each provides is in the module doc)
MODULES = ("cuda.bindings.runtime", "cuda.cudart")


def import_cudart() -> Any:
    """cuda-python's runtime module, or MissingDependencyError naming the extra."""
    import importlib

    for name in MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError("this needs NVIDIA's 'cuda-python' package (cuda.bindings.runtime or cuda.cudart); "
                                 "install it with: pip install 'sonoedge[tensorrt]' (on JetPack 5: cuda-python~=11.8.7)")


def cuda_importable() -> bool:
    """True when cuda-python's runtime module can be found (without importing it)."""
    import importlib.util

    try:
        return any(importlib.util.find_spec(name) is not None for name in MODULES)
    except ModuleNotFoundError:  # no top-level 'cuda' package
        return False


class CudaRuntime:
    """Thin, checked calls on cuda-python's runtime module (``rt``; injectable for tests)."""

    def __init__(self, rt: Any = None):
        self.rt = rt if rt is not None else import_cudart()

    def call(self, name: str, *args: Any) -> Any:
        """``rt.name(*args)``; the value(s) after the error code, or SonoedgeError naming the call."""
        try:
            result = getattr(self.rt, name)(*args)
        except RuntimeError as exc:  # cuda-python 11.8 raises when libcuda.so.1 cannot be loaded
            raise SonoedgeError(f"{name} failed: {exc} (is the NVIDIA driver installed?)") from None
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise SonoedgeError(f"{name} failed with {getattr(err, 'name', err)} ({int(err)})")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    # -- device ----------------------------------------------------------------------------------
    def set_device(self, device: int) -> None:
        self.call("cudaSetDevice", int(device))

    def device_count(self) -> int:
        return int(self.call("cudaGetDeviceCount"))

    def describe(self, device: int = 0) -> tuple[str, str, int]:
        """(name, "major.minor", SM count) of ``device``."""
        prop = self.call("cudaGetDeviceProperties", int(device))
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        return name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", int(prop.multiProcessorCount)

    # -- memory ----------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", int(nbytes)))

    def free(self, ptr: int) -> None:
        self.call("cudaFree", int(ptr))

    def host_array(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A pinned (page-locked) host buffer as a numpy array; free it with :meth:`free_host`."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self.call("cudaMallocHost", nbytes))
        raw = (ctypes.c_char * nbytes).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def free_host(self, array: np.ndarray) -> None:
        self.call("cudaFreeHost", int(array.ctypes.data))

    def memcpy_htod(self, dst: int, src: np.ndarray) -> None:
        self.call("cudaMemcpy", int(dst), int(src.ctypes.data), src.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice)

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.call("cudaMemcpyAsync", int(dst), int(src.ctypes.data), src.nbytes,
                  self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.call("cudaMemcpyAsync", int(dst.ctypes.data), int(src), dst.nbytes,
                  self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    # -- streams and graphs ----------------------------------------------------------------------
    def stream_create(self) -> int:
        return int(self.call("cudaStreamCreate"))

    def stream_destroy(self, stream: int) -> None:
        self.call("cudaStreamDestroy", stream)

    def synchronize(self, stream: int) -> None:
        self.call("cudaStreamSynchronize", stream)

    def capture(self, stream: int, enqueue: Any) -> int:
        """Capture what ``enqueue()`` puts on ``stream`` into an instantiated graph; its handle."""
        self.call("cudaStreamBeginCapture", stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
        try:
            enqueue()
        finally:
            graph = self.call("cudaStreamEndCapture", stream)
        try:
            return int(self.call("cudaGraphInstantiateWithFlags", graph, 0))
        finally:
            self.call("cudaGraphDestroy", graph)

    def launch(self, graph_exec: int, stream: int) -> None:
        self.call("cudaGraphLaunch", graph_exec, stream)

    def destroy_graph(self, graph_exec: int) -> None:
        self.call("cudaGraphExecDestroy", graph_exec)
