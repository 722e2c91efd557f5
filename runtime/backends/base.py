"""The backend lifecycle shared by ONNX Runtime and TensorRT."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.registry import Registry

BACKENDS = Registry("backend")


class Backend(abc.ABC):
    """Runs one model file. ``infer`` takes and returns float32 NCHW arrays."""

    name = "base"

    def __init__(self, model_path: str | Path, **options: Any):
        self.model_path = Path(model_path)
        self.options = options
        self.loaded = False

    @abc.abstractmethod
    def load(self) -> None:
        """Create the session or engine; raise a SonoedgeError naming the file on failure."""

    def warmup(self, shape: tuple[int, int, int, int], runs: int = 2) -> None:
        """Run zeros of ``shape`` so the first real frame does not pay for lazy initialisation."""
        x = np.zeros(shape, dtype=np.float32)
        for _ in range(runs):
            self.infer(x)

    @abc.abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [-1, 1] -> (N, C, sH, sW) float32."""

    def close(self) -> None:
        self.loaded = False

    def __enter__(self) -> "Backend":
        if not self.loaded:
            self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_backend(name: str, model_path: str | Path, **options: Any) -> Backend:
    """Instantiate and load a registered backend; unknown names list the valid ones."""
    backend = BACKENDS.create(name, model_path, **options)
    backend.load()
    return backend
