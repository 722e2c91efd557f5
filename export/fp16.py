"""fp32 ONNX -> portable fp16 ONNX with fp32 inputs and outputs (DESIGN.md, Contracts: Bundle).

onnxconverter-common's ``convert_float_to_float16`` (keep_io_types=True) casts weights and
activations to half and inserts Cast nodes at the graph boundary, so callers keep feeding float32
in [-1, 1]. Overflow-prone nodes stay fp32 (``op_block_list``): InstanceNormalization computes a
mean of squares over H x W (a 1024 x 1024 frame sums a million squared activations, far past
fp16's 65504), and the reductions/power/exp family does the same. The converter's default list
(non-numeric and ML ops, Resize, Range, ...) is kept too.

The same file is what TensorRT 11 builds strongly typed (no BuilderFlag.FP16 there; TensorRT
10.x-to-11.x migration guide, "Migrating from Weak Typing to Strong Typing").
"""
from __future__ import annotations

from pathlib import Path

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.errors import require

# ops whose fp16 evaluation can overflow or lose the statistic they compute
FP32_OPS = ("InstanceNormalization", "LayerNormalization", "BatchNormalization", "GroupNormalization",
            "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "Pow", "Sqrt", "Exp", "Softmax")


def convert_fp16(src: str | Path, dst: str | Path, keep_fp32_ops: tuple[str, ...] = FP32_OPS,
                 keep_fp32_nodes: tuple[str, ...] = ()) -> dict[str, object]:
    """Write the fp16 model; returns {"fp32_ops", "fp32_nodes", "casts"} for the manifest."""
    onnx = require("onnx", "export")
    float16 = require("onnxconverter_common.float16", "export")
    model = onnx.load(str(src))
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block,
                                            node_block_list=list(keep_fp32_nodes))
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
    present = sorted({n.op_type for n in model.graph.node} & set(keep_fp32_ops))
    casts = sum(1 for n in half.graph.node if n.op_type == "Cast")
    return {"fp32_ops": present, "fp32_nodes": list(keep_fp32_nodes), "casts": casts}
