"""The TensorRT ONNX parser's rules for a Q/DQ graph, checked on a machine without TensorRT.

    problems = qdq_problems("model.int8.qdq.onnx", trt_versions=("10", "11"))   # [] when it parses
    check_qdq("model.int8.qdq.onnx")                                             # InputError naming the node

What is checked, and where each rule is written down:

- DequantizeLinear's input is INT8 (``IDequantizeLayer``: "The input type ... must be constrained to
  DataType::kINT8" in TensorRT 8.6, "kINT8, kFP8 or kINT4" in 10.3 and 11.1, NvInfer.h in
  ../shared/third_party/tensorrt/; onnx-tensorrt docs/operators.md, DequantizeLinear row: INT8 in
  8.x, INT8/FP8/INT4/FP4 in 10.x). An INT32 bias behind a DequantizeLinear (ONNX Runtime's
  QuantizeBias default) is the classic failure. sonoedge ships int8 only, so FP8/INT4 are refused too.
- zero points present, INT8 and all 0 ("Only symmetric quantization is supported", NvInfer.h, both
  layers; operators.md: "x_zero_point must be zero"); a QuantizeLinear without a zero point outputs
  UINT8 in ONNX, which is not INT8.
- scales and zero points are initializers or Constant outputs (operators.md 8.x: "x_scale and
  x_zero_point must be initializers"; NvInfer.h: "must be a build-time constant"), every scale
  positive and finite ("All scale coefficients must have positive values", NvInfer.h 8.6).
- per-channel only on weights ("Per-channel dequantization is supported only for input that is
  rooted at an IConstantLayer (i.e. weights). Activations cannot be quantized per-channel", NvInfer.h),
  on the output-channel axis of the consuming layer's weight (Conv KCRS: 0; ConvTranspose CKRS: 1, as
  pytorch-quantization's QuantConvTranspose descriptors; MatMul B (K, N): 1), one scale per channel.
- the opset and every operator are in the parser's table for each TensorRT version asked (``OPS``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.errors import InputError, require

# Opset ranges: onnx-tensorrt docs/operators.md, "TensorRT 8.5 supports operators up to Opset 17"
# (release 8.5/8.6 branches; JetPack 5 ships 8.5) and "TensorRT 10.0 supports operators in the
# inclusive range of opset 9 to opset 20" (release 10.0; later 10.x releases widen it, e.g. 10.15 to 24,
# so 20 is the range every 10.x device profile, JetPack 6's 10.3 included, parses). 11.x: no operators.md of 11 was
# at hand; the 10.x range and table are assumed (TensorRT 11 removed builder flags and calibrators,
# not ONNX operators: 10.x-to-11.x migration guide), so an 11.x verdict is only as good as that.
OPSETS = {"8.6": (7, 17), "10": (9, 20), "11": (9, 20)}
# The operators sonoedge's generators and its fp16/Q/DQ passes emit (and a few close relatives),
# each listed "Y" in onnx-tensorrt's docs/operators.md at release 8.5/8.6 and 10.x. An operator not
# listed here is refused with its node named: add it with its source after checking operators.md of
# every version. Restrictions of those rows that matter here: Resize without antialiasing,
# Reduce* with initializer axes, QuantizeLinear/DequantizeLinear with zero points of 0.
_COMMON = frozenset({
    "Conv", "ConvTranspose", "MatMul", "Gemm", "InstanceNormalization", "BatchNormalization", "Relu",
    "LeakyRelu", "PRelu", "Elu", "Sigmoid", "HardSigmoid", "Tanh", "Clip", "Add", "Sub", "Mul", "Div", "Pow",
    "Sqrt", "Exp", "Erf", "Neg", "Floor", "Max", "Min", "Equal", "ReduceMean", "ReduceSum", "Softmax",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Pad", "Resize", "Cast", "Constant",
    "ConstantOfShape", "Expand", "Range", "Identity", "Reshape", "Flatten", "Shape", "Gather", "Slice", "Split",
    "Squeeze", "Unsqueeze", "Transpose", "DepthToSpace", "QuantizeLinear", "DequantizeLinear",
})
OPS = {"8.6": _COMMON, "10": _COMMON, "11": _COMMON}
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1, "Gemm": 0}  # output-channel axis of the weight
INT8 = 3  # onnx.TensorProto.INT8
QDQ_VERSIONS = ("10", "11")  # TensorRT >= 10.1 builds the Q/DQ model strongly typed (runtime/bundle/engine.py)


def _constants(model: Any) -> dict[str, np.ndarray]:
    numpy_helper = require("onnx.numpy_helper", "export")
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _dtype(name: str, model: Any, producers: dict[str, Any]) -> int | None:
    """The element type of ``name``: initializer, value_info, or a QuantizeLinear's zero point."""
    for t in model.graph.initializer:
        if t.name == name:
            return t.data_type
    producer = producers.get(name)
    if producer is not None and producer.op_type == "QuantizeLinear":
        if len(producer.input) < 3 or not producer.input[2]:
            return 2  # UINT8: ONNX's QuantizeLinear output type without a zero point
        return _dtype(producer.input[2], model, producers)
    if producer is not None and producer.op_type == "Constant":
        return producer.attribute[0].t.data_type
    for vi in list(model.graph.value_info) + list(model.graph.input):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return None


def _attr(node: Any, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _check_qdq_node(node: Any, model: Any, producers: dict[str, Any], consumers: dict[str, list[Any]],
                    constants: dict[str, np.ndarray]) -> list[str]:
    where = f"{node.op_type} node '{node.name}'"
    out = []
    if node.op_type == "DequantizeLinear":
        dtype = _dtype(node.input[0], model, producers)
        if dtype != INT8:
            onnx = require("onnx", "export")
            name = onnx.TensorProto.DataType.Name(dtype) if dtype is not None else "unknown"
            out.append(f"{where} dequantizes a {name} tensor ({node.input[0]}); TensorRT's dequantize layer takes INT8 only")
    scale_name = node.input[1]
    zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if scale_name not in constants or (zp_name is not None and zp_name not in constants):
        out.append(f"{where}: scale and zero point must be initializers or constants")
        return out
    scale = np.asarray(constants[scale_name], dtype=np.float64)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        out.append(f"{where}: scale {scale_name} has a zero, negative or non-finite value")
    if zp_name is None:
        if node.op_type == "QuantizeLinear":
            out.append(f"{where} has no zero point, so it outputs UINT8; TensorRT needs an INT8 zero point of 0")
    elif constants[zp_name].dtype != np.int8 or np.any(constants[zp_name] != 0):
        out.append(f"{where}: zero point {zp_name} must be INT8 and 0 (TensorRT quantizes symmetrically)")
    if scale.size > 1:
        out.extend(_check_axis(node, where, scale.size, consumers, constants))
    return out


def _check_axis(node: Any, where: str, channels: int, consumers: dict[str, list[Any]],
                constants: dict[str, np.ndarray]) -> list[str]:
    if node.op_type != "DequantizeLinear" or node.input[0] not in constants:
        return [f"{where} is per-channel on an activation; TensorRT quantizes activations per tensor only"]
    weight = constants[node.input[0]]
    axis = _attr(node, "axis", 1) % weight.ndim
    out = []
    for consumer in consumers.get(node.output[0], []):
        want = WEIGHT_AXIS.get(consumer.op_type)
        if consumer.op_type in WEIGHT_AXIS and list(consumer.input).index(node.output[0]) == 1 and axis != want:
            out.append(f"{where} quantizes {consumer.op_type} '{consumer.name}' weights per channel on axis {axis}; "
                       f"TensorRT needs the output-channel axis {want}")
    if weight.shape[axis] != channels:
        out.append(f"{where} has {channels} scales for {weight.shape[axis]} channels on axis {axis}")
    return out


def qdq_problems(path: str | Path, trt_versions: Sequence[str] = QDQ_VERSIONS) -> list[str]:
    """Every rule of the module doc the model at ``path`` breaks, one sentence each naming the node."""
    onnx = require("onnx", "export")
    unknown = [v for v in trt_versions if v not in OPS]
    if unknown:
        raise InputError(f"no TensorRT parser table for version(s) {', '.join(unknown)}; known: {', '.join(OPS)}")
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    constants = _constants(model)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    problems = []
    for version in trt_versions:
        low, high = OPSETS[version]
        if not low <= opset <= high:
            problems.append(f"{Path(path).name}: opset {opset} is outside TensorRT {version}'s parser range {low}-{high}")
        for node in model.graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in OPS[version]:
                problems.append(f"{node.op_type} node '{node.name}' is not in sonoedge's TensorRT {version} parser table")
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.extend(_check_qdq_node(node, model, producers, consumers, constants))
    return list(dict.fromkeys(problems))


def check_qdq(path: str | Path, trt_versions: Sequence[str] = QDQ_VERSIONS) -> dict[str, Any]:
    """Raise InputError with the first broken rule (node named); else the summary for the manifest."""
    problems = qdq_problems(path, trt_versions)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{Path(path).name} would not parse in TensorRT: {problems[0]}{more}")
    return {"passed": True, "tensorrt": list(trt_versions), "rules": "export/qdq_rules.py"}


def summary(path: str | Path) -> dict[str, Any]:
    """Counts for the manifest: Q/DQ nodes, per-channel DQs, and the model's opset."""
    onnx = require("onnx", "export")
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    return {"quantize": ops.count("QuantizeLinear"), "dequantize": ops.count("DequantizeLinear"),
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))}
