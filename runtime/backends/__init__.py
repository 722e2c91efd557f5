"""Inference backends behind one small lifecycle (STYLE.md rule 5): load, warm up, infer, close.

    with create_backend("onnxruntime", bundle_dir / "model.onnx") as backend:
        y = backend.infer(x)          # (N, C, H, W) float32 in [-1, 1] -> (N, C, sH, sW)

Backends register themselves in ``BACKENDS``; heavy engine imports happen inside ``load``.
"""
from sonoedge.runtime.backends import onnxruntime as _onnxruntime  # noqa: F401  (registers "onnxruntime")
from sonoedge.runtime.backends import tensorrt as _tensorrt  # noqa: F401  (registers "tensorrt"; imports tensorrt/cuda-python only in load)
from sonoedge.runtime.backends.base import BACKENDS, Backend, create_backend

__all__ = ["BACKENDS", "Backend", "create_backend"]
