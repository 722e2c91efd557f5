"""TensorRT's INT8 numerics emulated in ONNX Runtime, so the Q/DQ model is gated as a device would run it.

    emulated = emulate_tensorrt("model.int8.qdq.onnx", "emulated.onnx")
    metrics = emulated_metrics(emulated, inputs, fp32_outputs)      # gate with check_gate("int8", ...)

What TensorRT does with the Q/DQ graph (TensorRT developer guide, "Explicit Quantization"), and how
the copy reproduces it:

- each DequantizeLinear -> Conv/ConvTranspose/MatMul is fused into an int8 layer: int8 x int8
  products accumulated exactly, rescaled by input scale x weight scale. A float convolution of the
  dequantized values computes the same sums (every int8 x int8 product and their sum are exact in
  float32 for these layer sizes, up to accumulation order), so the copy keeps the Q/DQ pairs as placed
  and runs with ONNX Runtime's graph optimisations OFF: ONNX Runtime's own QDQ fusions (QLinearConv
  and friends requantize outputs, which TensorRT does not do here) never stand in for TensorRT's;
- everything outside the Q/DQ pairs runs in the type the graph gives it when the network is
  strongly typed, and in fp16 when it is built with the INT8 and FP16 flags. A model whose float
  remainder is already fp16 (export/int8.py) is copied as it is; one with an fp32 remainder gets it
  cast to fp16 with the fp16 model's op block list (normalisations stay fp32), i.e. the flag build.
  ONNX Runtime's CPU provider computes fp16 nodes in fp32 between casts, so the copy rounds every
  fp16 tensor as TensorRT stores it while accumulating in fp32, as TensorRT's fp16 kernels do.

The outputs are compared with the fp32 ONNX model's and gated with the int8 gate of
runtime/bundle/gates.py (no threshold of its own).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.bundle.gates import compare_outputs
from sonoedge.runtime.errors import require

FLOAT16 = 10  # onnx.TensorProto.FLOAT16


def has_fp16_remainder(path: str | Path) -> bool:
    """True when the graph already carries fp16 weights or casts to fp16 (the int8 export's fp16 remainder)."""
    onnx = require("onnx", "export")
    model = onnx.load(str(path))
    if any(t.data_type == FLOAT16 for t in model.graph.initializer):
        return True
    return any(n.op_type == "Cast" and any(a.name == "to" and a.i == FLOAT16 for a in n.attribute)
               for n in model.graph.node)


def emulate_tensorrt(qdq_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Write the copy of the module doc at ``out_path``; returns how the remainder was typed."""
    from sonoedge.export.int8 import half_remainder

    qdq_path, out_path = Path(qdq_path), Path(out_path)
    if has_fp16_remainder(qdq_path):
        shutil.copyfile(qdq_path, out_path)
        return {"remainder": "as typed in the model (fp16, strongly typed build)"}
    half_remainder(qdq_path, out_path)
    return {"remainder": "cast to fp16 (INT8 + FP16 flag build)"}


def run_emulated(path: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the emulation copy, ONNX Runtime graph optimisations off (module doc)."""
    from sonoedge.export.int8 import run_onnx

    return run_onnx(Path(path), inputs, optimize=False)


def emulated_metrics(path: str | Path, inputs: Sequence[np.ndarray], fp32_outputs: Sequence[np.ndarray]) -> dict[str, float]:
    """compare_outputs of the emulation copy against the fp32 ONNX outputs for the same inputs."""
    return compare_outputs(run_emulated(path, inputs), fp32_outputs)
