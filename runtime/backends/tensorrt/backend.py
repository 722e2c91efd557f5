"""Native TensorRT backend (TensorRT 8.5-11 tensor-name API + cuda-python), for NVIDIA devices.

    backend = create_backend("tensorrt", bundle / "model.fp16.onnx", precision="fp16")
    y = backend.infer(x)      # (1, C, H, W) float32 in [-1, 1] -> (1, C, sH, sW) float32

The engine is never built here: ``load`` looks the plan up in the engine cache
(:func:`sonoedge.runtime.backends.tensorrt.cache.engine_key`: GPU, compute capability, SM count,
TensorRT version, precision, DLA core and the ONNX file's sha256) and, when there is none, fails
with the exact command that builds it (:func:`build_command`: ``sonoedge build-engine BUNDLE
--precision P``), which announces its progress. The model loader runs that same build first when
the config asks for it (daemon key ``enhancer.build_engine``;
:func:`sonoedge.runtime.bundle.engine.build_engine`), never on the first frame.

Per inference: the input is copied into a pinned (page-locked) host buffer, then host-to-device,
``execute_async_v3`` and device-to-host run asynchronously on ONE CUDA stream, and the stream is
synchronised once. Buffers are allocated per input shape and reused (a probe's geometry rarely
changes). With ``cuda_graph=True`` the enqueue of each shape is captured once into a CUDA graph
(after one ordinary run, as TensorRT requires for shape-dependent state) and replayed, which cuts
launch overhead for small models; it is off by default because capture is not allowed for every
engine (DLA, some plugins), and a failed capture falls back to plain enqueue with a warning.

CUDA goes through NVIDIA's cuda-python runtime API (:mod:`.cuda`; CUDA 11 and 12+), which is
imported inside ``load`` with tensorrt (extra ``sonoedge[tensorrt]``; on Jetson TensorRT comes with
JetPack). The runtime API keeps one primary context per device, so the pipeline's inference
thread only selects the device. Tested only where they import (tests marked ``tensorrt``).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.backends.base import BACKENDS, Backend
from sonoedge.runtime.errors import BundleError, SonoedgeError, require

log = logging.getLogger("sonoedge.runtime.backends.tensorrt.backend")


def build_command(bundle: str | Path, precision: str, dla_core: int | None = None) -> str:
    """The one command that builds the engine this backend looks for (same precision, same DLA core)."""
    dla = f" --dla-core {dla_core}" if dla_core is not None else ""
    return f"sonoedge build-engine {bundle} --precision {precision}{dla}"


@dataclasses.dataclass
class _Buffers:
    """Pinned host and device memory for one input shape."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    host_in: Any  # pinned numpy array, engine input dtype
    host_out: Any
    dev_in: int  # device pointer
    dev_out: int
    graph_exec: Any = None  # cudaGraphExec_t when captured


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
        from sonoedge.runtime.backends.tensorrt.cache import EngineCache, engine_key
        from sonoedge.runtime.backends.tensorrt.cuda import CudaRuntime

        if not self.model_path.is_file():
            raise BundleError(f"model file {self.model_path} does not exist")
        self.cuda = CudaRuntime()
        self.cuda.set_device(self.device)  # the runtime API's primary context of this device
        key = engine_key(self.model_path, self.precision, self.dla_core)
        plan = EngineCache(self.cache_root).lookup(key)
        if plan is None:
            raise BundleError(
                f"no engine cached for {key.digest()} ({key.gpu_name}, TensorRT {key.trt_version}, {self.precision}"
                f"{'' if self.dla_core is None else f', DLA {self.dla_core}'}); "
                f"build it with `{build_command(self.bundle, self.precision, self.dla_core)}`")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        if self.dla_core is not None:
            self.runtime.DLA_core = int(self.dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise BundleError(f"TensorRT {trt.__version__} cannot deserialize the cached engine {plan}; rebuild it with "
                              f"`{build_command(self.bundle, self.precision, self.dla_core)} --force`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BundleError(f"engine {plan} has inputs {inputs} and outputs {outputs}; expected one of each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.stream = self.cuda.stream_create()
        self.plan_path = plan
        log.info("tensorrt engine loaded", extra={"event": "engine_loaded", "plan": str(plan), "precision": self.precision,
                                                  "trt": trt.__version__})
        self.loaded = True

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(1, C, H, W) float32 -> (1, C, sH, sW) float32; H, W inside the engine's profile range."""
        cuda = self.cuda
        cuda.set_device(self.device)  # the current device is per thread: the pipeline infers on its own
        buf = self._buffers_for(tuple(x.shape))
        np.copyto(buf.host_in, x, casting="same_kind")
        cuda.memcpy_htod_async(buf.dev_in, buf.host_in, self.stream)
        if buf.graph_exec is not None:
            cuda.launch(buf.graph_exec, self.stream)
        else:
            self._enqueue(buf)
        cuda.memcpy_dtoh_async(buf.host_out, buf.dev_out, self.stream)
        cuda.synchronize(self.stream)
        return buf.host_out.astype(np.float32, copy=True)

    def close(self) -> None:
        cuda = getattr(self, "cuda", None)
        if cuda is not None:
            cuda.set_device(self.device)
            for buf in self.buffers.values():
                if buf.graph_exec is not None:
                    cuda.destroy_graph(buf.graph_exec)
                cuda.free(buf.dev_in)
                cuda.free(buf.dev_out)
                cuda.free_host(buf.host_in)
                cuda.free_host(buf.host_out)
            self.buffers.clear()
            self.context = None
            self.engine = None
            if getattr(self, "stream", None) is not None:
                cuda.stream_destroy(self.stream)
                self.stream = None
            self.cuda = None
        super().close()

    # -- internals -------------------------------------------------------------------------------
    def _enqueue(self, buf: _Buffers) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise SonoedgeError(f"TensorRT enqueue failed for input shape {buf.in_shape} (see the TensorRT log above)")

    def _buffers_for(self, shape: tuple[int, ...]) -> _Buffers:
        buf = self.buffers.get(shape)
        if buf is not None:
            self.context.set_input_shape(self.input_name, shape)
            self._bind(buf)
            return buf
        if not self.context.set_input_shape(self.input_name, shape):
            raise SonoedgeError(f"input shape {shape} is outside the engine's optimization profile; rebuild the engine "
                                f"for this size range ({build_command(self.bundle, self.precision, self.dla_core)} --force)")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        cuda = self.cuda
        host_in = cuda.host_array(shape, self.in_dtype)
        host_out = cuda.host_array(out_shape, self.out_dtype)
        buf = _Buffers(shape, out_shape, host_in, host_out, cuda.malloc(host_in.nbytes), cuda.malloc(host_out.nbytes))
        self._bind(buf)
        self.buffers[shape] = buf
        if self.cuda_graph:
            self._capture(buf)
        return buf

    def _bind(self, buf: _Buffers) -> None:
        self.context.set_tensor_address(self.input_name, buf.dev_in)
        self.context.set_tensor_address(self.output_name, buf.dev_out)

    def _capture(self, buf: _Buffers) -> None:
        """One ordinary enqueue (TensorRT updates shape-dependent state), then capture the next."""
        self._enqueue(buf)
        self.cuda.synchronize(self.stream)
        try:
            buf.graph_exec = self.cuda.capture(self.stream, lambda: self._enqueue(buf))
        except SonoedgeError as exc:
            buf.graph_exec = None
            log.warning("CUDA graph capture failed; this shape runs with plain enqueue",
                        extra={"event": "cuda_graph_failed", "shape": list(buf.in_shape), "error": str(exc)})
