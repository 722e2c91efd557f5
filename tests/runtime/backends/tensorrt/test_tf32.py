"""Why fp32 TensorRT builds clear BuilderFlag.TF32, shown without TensorRT.

TensorRT (8.5-11) sets TF32 by default: on Ampere and newer, convolutions and matrix multiplies of
an "fp32" engine then round their inputs and weights to TF32 (8-bit exponent, 10-bit mantissa,
round to nearest) and accumulate in fp32. The emulation below rewrites the default bundle's
model.onnx so every Conv/ConvTranspose/MatMul/Gemm sees its inputs and weights rounded that way
(Veltkamp split: hi = c*x - (c*x - x) with c = 2^13 + 1 keeps the top 11 significant bits of an
fp32 value, i.e. TF32's 10 stored mantissa bits), runs it in ONNX Runtime and puts it through the
bundle's fp32 gate against the stored PyTorch outputs. With TF32 cleared the engine computes plain
fp32, which is what ONNX Runtime's CPU result is: it passes (the export proved it); with TF32 on it
fails. build_spec clears the flag for every fp32 build (runtime/backends/tensorrt/build.py).

``EMULATIONS`` is the hook for the other TensorRT numerics (fp16 layers, INT8 from Q/DQ): a
function ONNX model -> ONNX model per name, checked by the same gate code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sonoedge.runtime.backends import create_backend
from sonoedge.runtime.bundle import default_bundle_path
from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
from sonoedge.runtime.bundle.manifest import load_manifest
from sonoedge.runtime.bundle.verify import load_references, run_frame

TF32_SPLIT = float(2 ** (24 - 11) + 1)  # fp32 has 24 significant bits, TF32 11 (10 stored + the implicit one)
ROUNDED_OPS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "MatMul": (0, 1), "Gemm": (0, 1)}  # input slots TF32 reads


def emulate_tf32(model):
    """The ONNX model with TF32 rounding in front of every tensor-core input (activations and weights)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(TF32_SPLIT, np.float32), "tf32_split"))
    rounded: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        for slot in ROUNDED_OPS.get(node.op_type, ()):
            if slot >= len(node.input) or not node.input[slot]:
                continue
            name = node.input[slot]
            if name not in rounded:
                t, d, hi = (f"{name}/tf32_{s}" for s in ("t", "d", "hi"))
                nodes += [helper.make_node("Mul", [name, "tf32_split"], [t]), helper.make_node("Sub", [t, name], [d]),
                          helper.make_node("Sub", [t, d], [hi])]
                rounded[name] = hi
            node.input[slot] = rounded[name]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


EMULATIONS = {"fp32": lambda model: model, "tf32": emulate_tf32}  # fp16 / int8 emulation: the export engineer's hook


def _gate_result(emulation: str, tmp_path: Path):
    onnx = pytest.importorskip("onnx", reason="the emulation rewrites the ONNX graph with the onnx package ([export])")
    root, manifest = load_manifest(default_bundle_path())
    model = EMULATIONS[emulation](onnx.load(str(root / manifest.precisions["fp32"].file)))
    path = tmp_path / f"model.{emulation}.onnx"
    onnx.save(model, str(path))
    stride = manifest.model.stride
    outputs, expected = [], []
    # ORT_ENABLE_ALL could fold nothing here (t - (t - x) has no constant operand), but stay literal:
    with create_backend("onnxruntime", path, providers=["CPUExecutionProvider"], intra_op_threads=1) as backend:
        for image, reference in load_references(root, manifest):
            outputs.append(run_frame(backend.infer, image, stride))
            expected.append(reference)
    metrics = compare_outputs(outputs, expected)
    return check_gate("fp32", metrics), metrics


def test_tf32_rounding_is_what_it_claims():
    x = np.array([1.0, 1 + 2 ** -10, 1 + 2 ** -12, 1 + 3 * 2 ** -12, -3.14159265, 1e-20], np.float32)
    t = x * np.float32(TF32_SPLIT)
    hi = t - (t - x)
    mantissa = np.frexp(hi)[0] * 2 ** 11  # 11 significant bits: an integer
    assert np.all(mantissa == np.round(mantissa))
    assert hi[1] == x[1] and hi[2] == 1.0  # 2^-10 survives, 2^-12 is rounded away
    assert np.all(np.abs(hi - x) <= np.abs(x) * 2 ** -11)


def test_fp32_gate_passes_with_tf32_cleared_and_fails_with_it_on(tmp_path):
    plain, plain_metrics = _gate_result("fp32", tmp_path)
    tf32, tf32_metrics = _gate_result("tf32", tmp_path)
    print(f"fp32 gate, default bundle: TF32 off max_abs {plain_metrics['max_abs']:.2e}, "
          f"TF32 on max_abs {tf32_metrics['max_abs']:.2e}")
    assert plain.passed, plain.failures
    assert not tf32.passed and tf32_metrics["max_abs"] > 10 * plain_metrics["max_abs"]
