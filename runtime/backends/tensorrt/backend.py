"""Native TensorRT backend (TensorRT 10/11 tensor-name API + pycuda), for NVIDIA devices.

    backend = create_backend("tensorrt", bundle / "model.fp16.onnx", precision="fp16")
    y = backend.infer(x)      # (1, C, H, W) float32 in [-1, 1] -> (1, C, sH, sW) float32

The engine is never built here: ``load`` looks the plan up in the engine cache
(:func:`sonoedge.runtime.backends.tensorrt.cache.engine_key`: GPU, compute capability, SM count,
TensorRT version, precision, DLA core and the ONNX file's sha256) and, when there is none, fails
with the command that builds it (``sonoedge build-engine BUNDLE``), which announces its progress.
The model loader runs that same build first when the config asks for it (daemon key
``enhancer.build_engine``; :func:`sonoedge.runtime.bundle.engine.build_engine`), never on the
first frame.

Per inference: the input is copied into a pinned (page-locked) host buffer, then host-to-device,
``execute_async_v3`` and device-to-host run asynchronously on ONE CUDA stream, and the stream is
synchronised once. Buffers are allocated per input shape and reused (a probe's geometry rarely
changes). With ``cuda_graph=True`` the enqueue of each shape is captured once into a CUDA graph
(after one ordinary run, as TensorRT requires for shape-dependent state) and replayed, which cuts
launch overhead for small models; it is off by default because capture is not allowed for every
engine (DLA, some plugins), and a failed capture falls back to plain enqueue with a warning.

tensorrt and pycuda are imported inside ``load`` (extra ``sonoedge[tensorrt]``; on Jetson they come
with JetPack). Tested only where they import (tests marked ``tensorrt``).
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.backends.base import BACKENDS, Backend
from sonoedge.runtime.errors import BundleError, SonoedgeError, require

log = logging.getLogger("sonoedge.runtime.backends.tensorrt.backend")


@dataclasses.dataclass
class _Buffers:
    """Pinned host and device memory for one input shape."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    host_in: Any  # pagelocked numpy array, engine input dtype
    host_out: Any
    dev_in: Any  # pycuda DeviceAllocation
    dev_out: Any
    graph_exec: int = 0  # cudaGraphExec_t handle when captured


@BACKENDS.register("tensorrt")
class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model_path: str | Path, precision: str = "fp32", dla_core: int | None = None,
                 cache_root: str | Path | None = None, cuda_graph: bool = False, device: int = 0,
                 bundle: str | Path | None = None, **options: Any):
        super().__init__(model_path, **options)
        self.precision = precision
        self.dla_core = dla_core
        self.cache_root = cache_root
        self.cuda_graph = cuda_graph
        self.device = device
        self.bundle = Path(bundle) if bundle is not None else self.model_path.parent
        self.buffers: dict[tuple[int, ...], _Buffers] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        trt = require("tensorrt", "tensorrt")
        cuda = require("pycuda.driver", "tensorrt")
        from sonoedge.runtime.backends.tensorrt.cache import EngineCache, engine_key

        if not self.model_path.is_file():
            raise BundleError(f"model file {self.model_path} does not exist")
        cuda.init()
        self.cuda = cuda
        self.cuda_ctx = cuda.Device(self.device).retain_primary_context()
        self.cuda_ctx.push()
        try:
            key = engine_key(self.model_path, self.precision, self.dla_core)
            plan = EngineCache(self.cache_root).lookup(key)
            if plan is None:
                raise BundleError(
                    f"no engine cached for {key.digest()} ({key.gpu_name}, TensorRT {key.trt_version}, {self.precision}"
                    f"{'' if self.dla_core is None else f', DLA {self.dla_core}'}); run `sonoedge build-engine {self.bundle}`")
            self.trt = trt
            self.logger = trt.Logger(trt.Logger.WARNING)
            self.runtime = trt.Runtime(self.logger)
            if self.dla_core is not None:
                self.runtime.DLA_core = int(self.dla_core)
            self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
            if self.engine is None:
                raise BundleError(f"TensorRT {trt.__version__} cannot deserialize the cached engine {plan}; "
                                  f"rebuild it with `sonoedge build-engine {self.bundle}`")
            self.context = self.engine.create_execution_context()
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if len(inputs) != 1 or len(outputs) != 1:
                raise BundleError(f"engine {plan} has inputs {inputs} and outputs {outputs}; expected one of each")
            self.input_name, self.output_name = inputs[0], outputs[0]
            self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
            self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
            self.stream = cuda.Stream()
            self.plan_path = plan
        finally:
            self.cuda_ctx.pop()
        log.info("tensorrt engine loaded", extra={"event": "engine_loaded", "plan": str(plan), "precision": self.precision,
                                                  "trt": trt.__version__})
        self.loaded = True

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(1, C, H, W) float32 -> (1, C, sH, sW) float32; H, W inside the engine's profile range."""
        self.cuda_ctx.push()  # pycuda contexts are per thread: the pipeline infers on its own thread
        try:
            buf = self._buffers_for(tuple(x.shape))
            np.copyto(buf.host_in, x, casting="same_kind")
            self.cuda.memcpy_htod_async(buf.dev_in, buf.host_in, self.stream)
            if buf.graph_exec:
                _cudart().launch(buf.graph_exec, self.stream.handle)
            else:
                self._enqueue(buf)
            self.cuda.memcpy_dtoh_async(buf.host_out, buf.dev_out, self.stream)
            self.stream.synchronize()
            return buf.host_out.astype(np.float32, copy=True)
        finally:
            self.cuda_ctx.pop()

    def close(self) -> None:
        if getattr(self, "cuda_ctx", None) is not None:
            self.cuda_ctx.push()
            try:
                for buf in self.buffers.values():
                    if buf.graph_exec:
                        _cudart().destroy(buf.graph_exec)
                    buf.dev_in.free()
                    buf.dev_out.free()
                self.buffers.clear()
                self.context = None
                self.engine = None
            finally:
                self.cuda_ctx.pop()
                self.cuda_ctx.detach()
                self.cuda_ctx = None
        super().close()

    # -- internals -------------------------------------------------------------------------------
    def _enqueue(self, buf: _Buffers) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise SonoedgeError(f"TensorRT enqueue failed for input shape {buf.in_shape} (see the TensorRT log above)")

    def _buffers_for(self, shape: tuple[int, ...]) -> _Buffers:
        buf = self.buffers.get(shape)
        if buf is not None:
            self.context.set_input_shape(self.input_name, shape)
            self._bind(buf)
            return buf
        if not self.context.set_input_shape(self.input_name, shape):
            raise SonoedgeError(f"input shape {shape} is outside the engine's optimization profile; "
                                f"rebuild the engine for this size range (sonoedge build-engine {self.bundle})")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        cuda = self.cuda
        host_in = cuda.pagelocked_empty(shape, self.in_dtype)
        host_out = cuda.pagelocked_empty(out_shape, self.out_dtype)
        buf = _Buffers(shape, out_shape, host_in, host_out, cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes))
        self._bind(buf)
        self.buffers[shape] = buf
        if self.cuda_graph:
            self._capture(buf)
        return buf

    def _bind(self, buf: _Buffers) -> None:
        self.context.set_tensor_address(self.input_name, int(buf.dev_in))
        self.context.set_tensor_address(self.output_name, int(buf.dev_out))

    def _capture(self, buf: _Buffers) -> None:
        """One ordinary enqueue (TensorRT updates shape-dependent state), then capture the next."""
        self._enqueue(buf)
        self.stream.synchronize()
        try:
            buf.graph_exec = _cudart().capture(self.stream.handle, lambda: self._enqueue(buf))
        except (OSError, SonoedgeError) as exc:
            buf.graph_exec = 0
            log.warning("CUDA graph capture failed; this shape runs with plain enqueue",
                        extra={"event": "cuda_graph_failed", "shape": list(buf.in_shape), "error": str(exc)})


class _CudaRuntime:
    """The few CUDA runtime calls pycuda does not wrap (stream capture, graph launch), via ctypes."""

    CAPTURE_MODE_THREAD_LOCAL = 1  # cudaStreamCaptureModeThreadLocal

    def __init__(self) -> None:
        for name in ("libcudart.so", "libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0"):
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise OSError("libcudart.so was not found (needed only for cuda_graph=True)")

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise SonoedgeError(f"{what} failed with CUDA error {code}")

    def capture(self, stream: int, enqueue) -> int:
        lib = self.lib
        self._check(lib.cudaStreamBeginCapture(ctypes.c_void_p(stream), self.CAPTURE_MODE_THREAD_LOCAL), "cudaStreamBeginCapture")
        graph = ctypes.c_void_p()
        try:
            enqueue()
        finally:
            self._check(lib.cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(graph)), "cudaStreamEndCapture")
        exec_ = ctypes.c_void_p()
        self._check(lib.cudaGraphInstantiate(ctypes.byref(exec_), graph, ctypes.c_ulonglong(0)), "cudaGraphInstantiate")
        lib.cudaGraphDestroy(graph)
        return int(exec_.value)

    def launch(self, graph_exec: int, stream: int) -> None:
        self._check(self.lib.cudaGraphLaunch(ctypes.c_void_p(graph_exec), ctypes.c_void_p(stream)), "cudaGraphLaunch")

    def destroy(self, graph_exec: int) -> None:
        self.lib.cudaGraphExecDestroy(ctypes.c_void_p(graph_exec))


_RUNTIME: list[_CudaRuntime] = []


def _cudart() -> _CudaRuntime:
    if not _RUNTIME:
        _RUNTIME.append(_CudaRuntime())
    return _RUNTIME[0]
