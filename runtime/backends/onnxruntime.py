"""ONNX Runtime backend: CPU everywhere; CUDA and TensorRT execution providers when present."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BundleError, SonoedgeError
from .base import BACKENDS, Backend


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: Sequence[str] | None = None,
                 intra_op_threads: int = 0, **options: Any):
        super().__init__(model_path, **options)
        self.providers = list(providers) if providers else None
        self.intra_op_threads = intra_op_threads
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
        opts.intra_op_num_threads = self.intra_op_threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for corrupt or unsupported files
            raise BundleError(f"ONNX Runtime cannot load {self.model_path}: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.loaded = True

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def close(self) -> None:
        self.session = None
        super().close()
