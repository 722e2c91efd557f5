"""ONNX Runtime backend: CPU everywhere; CUDA and TensorRT execution providers when present.

    create_backend("onnxruntime", path)                                   # CUDA if present, else CPU
    create_backend("onnxruntime", path, providers=["CPUExecutionProvider"], intra_op_threads=2)
    create_backend("onnxruntime", path, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"],
                   precision="fp16", input_name="input",                  # ORT's own TensorRT EP
                   profile_shapes={"min": (1, 1, 64, 64), "opt": (1, 1, 512, 512), "max": (1, 1, 1024, 1024)})

Threading: ``intra_op_threads`` run each operator; 0 (auto) is one per physical core
(:func:`physical_cores`), ONNX Runtime's own default, stated explicitly so the benchmarks can print
it. Why every core, also for the stream pipeline whose capture and finish threads share those
cores: measured on a quiet 2-core CPU (load 0.5-0.8, the Butterfly clip, docs/benchmarks/runtime.md
section 0), the pipeline ran 52.2 fps with 2 intra-op threads against 41.4 fps with 1 (+26 %), for
+3.6 % CPU per frame; the pipeline's own threads are light (decode 1 ms, prepare 0.4 ms, finish
0.5-0.7 ms of thread CPU against 17-24 ms of inference), so taking a core from the model to keep it
free for them loses more than it saves. On a machine shared with other heavy jobs (load 20+ on 2
cores) one thread did better (the 2026-11-30 rows): set ``threads = 1`` there.
Inter-op parallelism is off (sequential execution: these generators are a chain). ``allow_spinning``
(default off) lets idle ORT workers spin: it wins a little when inference is alone on the machine
and loses when the pipeline's threads need the cores.

The TensorRT execution provider builds its engine at session creation (``load``, announced in the
log, never on the first frame) and caches it under ``cache_root`` (default: ``ort-trt`` beside the
engine cache). ``profile_shapes`` (min/opt/max NCHW, the device profile's input range; the model
loader passes them) become the EP's explicit optimization profile, so a region of a new size
inside the range runs on the cached engine instead of rebuilding it mid-stream.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.backends.base import BACKENDS, Backend
from sonoedge.runtime.errors import BundleError, SonoedgeError

log = logging.getLogger("sonoedge.runtime.backends.onnxruntime")


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: Sequence[str] | None = None,
                 intra_op_threads: int = 0, allow_spinning: bool = False, precision: str = "fp32",
                 cache_root: str | Path | None = None, input_name: str = "input",
                 profile_shapes: dict[str, Sequence[int]] | None = None, **options: Any):
        super().__init__(model_path, **options)
        self.providers = list(providers) if providers else None
        self.intra_op_threads = intra_op_threads
        self.allow_spinning = allow_spinning
        self.precision = precision
        self.cache_root = cache_root
        self.input_name = input_name
        self.profile_shapes = profile_shapes
        self.session = None

    def load(self) -> None:
        import onnxruntime as ort

        if not self.model_path.is_file():
            raise BundleError(f"model file {self.model_path} does not exist")
        available = ort.get_available_providers()
        providers = self.providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise SonoedgeError(f"ONNX Runtime here lacks provider(s) {', '.join(missing)}; available: {', '.join(available)}")
        opts = ort.SessionOptions()
        cpu_only = providers == ["CPUExecutionProvider"]
        opts.intra_op_num_threads = self.intra_op_threads or (physical_cores() if cpu_only else 0)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # fatal only: a failure reaches the caller as an exception (the daemon logs it as JSON);
        # ONNX Runtime's own coloured stderr lines would break the daemon's one-JSON-object-per-line log
        opts.log_severity_level = 4
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        if "TensorrtExecutionProvider" in providers:
            log.info("building or loading the ONNX Runtime TensorRT EP engine (can take minutes the first time)",
                     extra={"event": "trt_ep_build", "model": str(self.model_path)})
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts,
                                                providers=[self._provider(p) for p in providers])
        except Exception as exc:  # onnxruntime raises its own types for corrupt or unsupported files
            raise BundleError(f"ONNX Runtime cannot load {self.model_path}: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.active_providers = self.session.get_providers()
        self.loaded = True

    def _provider(self, name: str) -> Any:
        if name != "TensorrtExecutionProvider":
            return name
        return (name, tensorrt_ep_options(self.precision, self.cache_root, self.input_name, self.profile_shapes))

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def close(self) -> None:
        self.session = None
        super().close()


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once): what ONNX
    Runtime's default intra-op pool uses; the logical CPU count where the topology is not readable."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def tensorrt_ep_options(precision: str, cache_root: str | Path | None, input_name: str,
                        shapes: dict[str, Sequence[int]] | None) -> dict[str, Any]:
    """Provider options of ONNX Runtime's TensorRT EP: engine and timing caches, precision, profile shapes.

    ``shapes`` {min, opt, max} (NCHW) become ``trt_profile_{min,opt,max}_shapes`` ("input:1x1x64x64");
    without them the EP builds for the first shape it sees and rebuilds for every new one.
    """
    from sonoedge.runtime.backends.tensorrt.cache import default_cache_root

    cache = Path(cache_root) if cache_root else default_cache_root().parent / "ort-trt"
    options: dict[str, Any] = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                               "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
                               "trt_fp16_enable": precision == "fp16", "trt_int8_enable": precision == "int8"}
    if shapes:
        for bound in ("min", "opt", "max"):
            options[f"trt_profile_{bound}_shapes"] = f"{input_name}:" + "x".join(str(int(v)) for v in shapes[bound])
    return options
