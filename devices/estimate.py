"""A per-layer roofline ESTIMATE of time per frame on a device profile, from an ONNX graph.

    layers = graph_layers("model.onnx", (512, 512))               # shapes, MACs, tensor sizes per node
    est = estimate(layers, profile.estimate, "int8")               # Estimate: ms, fps, MACs, bound shares
    rows = estimate_bundle("bundle/", profiles)                    # every profile with an [estimate] table x precision

Model (Williams et al., "Roofline", CACM 2009, applied per layer as TensorRT runs one kernel per
fused layer):

    t_layer = max(ops / (peak(precision) * compute_efficiency), bytes / (bandwidth * memory_efficiency))
              + layer_overhead
    t_frame = sum of t_layer over the layers TensorRT would launch

- ops = 2 x MACs of Conv / ConvTranspose / MatMul / Gemm, with the channel counts padded up to the
  tensor-core tile (``channel_align_int8`` / ``_fp16``: a 1-channel input costs as much as a 32-channel
  one in INT8), or on the CUDA cores (int8 dp4a at 4x, fp16 half2 at 2x the fp32 rate, channels
  padded to 4 / 2) when that is faster, as TensorRT's kernel choice would; fp32 runs on the CUDA
  cores (``fp32_tflops``);
- bytes = input + output activations + weights at the precision's element size (1, 2 or 4 bytes);
- fused, costing nothing of their own (TensorRT's pointwise and conv epilogue fusions): activations
  (Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, Mul-with-Sigmoid = SiLU), BatchNormalization,
  an Add whose input is a conv output (residual epilogue), Q/DQ pairs, Concat (written in place),
  Identity, Reshape/Flatten/Squeeze/Unsqueeze/Shape-only ops; everything else (Resize, Pad, MaxPool,
  InstanceNormalization, Add of two non-conv tensors, Split, Slice, Softmax, ...) is memory-bound with
  its own launch;
- DLA (profiles with ``dla_int8_tops`` > 0): the same sum with one DLA core's INT8 peak, for the
  INT8 and FP16 (half rate) engines; DLA runs only what it supports (no InstanceNorm; TensorRT falls
  back to the GPU), so a graph with an op DLA lacks is reported "GPU fallback" instead of a number.

Everything about the device is in its TOML's ``[estimate]`` table (peaks with their source, the
efficiency factors as assumptions). The result is an estimate, labelled so everywhere; how far to
trust it is measured against a published Jetson figure in docs/results/edge.md.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

from sonoedge.devices.profiles import DeviceProfile, Roofline
from sonoedge.runtime.errors import InputError, require

BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")
FUSED_ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "PRelu", "Elu")
FREE = ("QuantizeLinear", "DequantizeLinear", "Concat", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
        "Shape", "Constant", "Cast", "Gather", "ConstantOfShape", "Range", "Transpose")
DLA_UNSUPPORTED = ("InstanceNormalization", "LayerNormalization", "Softmax", "MatMul", "Gemm", "Gather", "Tanh")


@dataclasses.dataclass
class Layer:
    name: str
    op: str
    macs: float  # multiply-accumulates, channels as in the graph
    channels: tuple[int, int, int]  # (c_in per group, c_out, kernel area) for weighted ops, else (0, 0, 0)
    spatial: float  # output positions (N x H x W) for weighted ops
    act_elems: float  # input + output activation elements
    weight_elems: float
    fused: bool


@dataclasses.dataclass
class Estimate:
    precision: str
    engine: str  # "gpu" or "dla"
    ms: float | None  # None: not runnable there (e.g. DLA lacks an op)
    macs: float
    layers: int  # launched layers
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    note: str = ""

    @property
    def fps(self) -> float | None:
        return 1000.0 / self.ms if self.ms else None


def _shape(value_info: Any) -> tuple[int, ...] | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


def graph_layers(model: str | Path, size: tuple[int, int], batch: int = 1) -> list[Layer]:
    """The graph's nodes with shapes inferred for a (batch, C, H, W) input of ``size`` (H, W)."""
    onnx = require("onnx", "export")
    from onnx import numpy_helper, shape_inference

    proto = onnx.load(str(model))
    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise InputError(f"{model}: the estimate needs one (N, C, H, W) graph input")
    dims = inputs[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (batch, dims[1].dim_value or 1, size[0], size[1])):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    for out in graph.output:  # let inference fill the outputs in
        for d in out.type.tensor_type.shape.dim:
            d.ClearField("dim_value")
            d.ClearField("dim_param")
    proto = _fold_constants(proto)
    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inferred = shape_inference.infer_shapes(proto, data_prop=True).graph
    shapes = {v.name: _shape(v) for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    for name, arr in inits.items():
        shapes[name] = tuple(arr.shape)
    for node in inferred.node:  # Constant nodes (weights of the TorchScript exporter)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    producers = {o: n for n in inferred.node for o in n.output}
    weight_names = set(inits) | {n.output[0] for n in inferred.node if n.op_type == "Constant"}

    def source(name: str) -> Any:
        """The producer of ``name`` behind any DequantizeLinear/QuantizeLinear (the real layer)."""
        node = producers.get(name)
        while node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            node = producers.get(node.input[0])
        return node

    layers = []
    for node in inferred.node:
        outs = [shapes.get(o) for o in node.output]
        ins = [shapes.get(i) for i in node.input if i]
        act_ins = [s for i, s in zip(node.input, ins) if i and s and not _is_weight(i, weight_names, producers)]
        act = sum(math.prod(s) for s in act_ins) + sum(math.prod(s) for s in outs if s)
        if node.op_type in WEIGHTED:
            w = ins[1] if len(ins) > 1 else None
            out = outs[0]
            if w is None or out is None:
                raise InputError(f"{model}: cannot infer the shapes of {node.op_type} node '{node.name}' at {size}")
            macs, chans, spatial = _weighted_macs(node, w, out, ins[0])
            layers.append(Layer(node.name, node.op_type, macs, chans, spatial, act, math.prod(w), False))
            continue
        if node.op_type in FREE:
            fused = True
        elif node.op_type in FUSED_ACTIVATIONS or node.op_type == "BatchNormalization":
            fused = True
        elif node.op_type in ("Add", "Mul", "Sub"):
            srcs = [source(i) for i in node.input if i and not _is_weight(i, weight_names, producers)]
            # residual add / SiLU multiply / bias: fused into the producing conv's epilogue
            fused = any(s is not None and s.op_type in (*WEIGHTED, *FUSED_ACTIVATIONS) for s in srcs) or len(srcs) < 2
        else:
            fused = False
        layers.append(Layer(node.name, node.op_type, 0.0, (0, 0, 0), 0.0, act, 0.0, fused))
    return layers


def _fold_constants(proto: Any) -> Any:
    """The graph with its constant sub-graphs folded (ONNX Runtime's basic optimisations, which TensorRT
    also does when it parses: e.g. reflect-padding amounts computed by a chain of constant ops, whose
    shapes ONNX shape inference alone cannot see through)."""
    import tempfile

    onnx = require("onnx", "export")
    ort = require("onnxruntime", "runtime")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "folded.onnx"
        onnx.save(proto, str(src))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(dst)
        opts.log_severity_level = 3
        ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
        return onnx.load(str(dst))


def _is_weight(name: str, weights: set[str], producers: dict[str, Any]) -> bool:
    node = producers.get(name)
    while node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear", "Cast"):
        name = node.input[0]
        node = producers.get(name)
    return name in weights


def _weighted_macs(node: Any, w: tuple[int, ...], out: tuple[int, ...], x: tuple[int, ...] | None
                   ) -> tuple[float, tuple[int, int, int], float]:
    if node.op_type == "Conv":
        c_out, c_in_g, k = w[0], w[1], math.prod(w[2:])
        spatial = out[0] * math.prod(out[2:])
        return float(spatial * c_out * c_in_g * k), (c_in_g, c_out, k), float(spatial)
    if node.op_type == "ConvTranspose":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        c_in, c_out_g, k = w[0], w[1], math.prod(w[2:])
        spatial = x[0] * math.prod(x[2:]) if x else 0
        return float(spatial * c_in * c_out_g * k / 1), (c_in // group, c_out_g * group, k), float(spatial)
    k_dim, n_dim = w[-2], w[-1]  # MatMul / Gemm: (..., M, K) x (K, N)
    rows = math.prod(out[:-1])
    return float(rows * k_dim * n_dim), (k_dim, n_dim, 1), float(rows)


def _padded_macs(layer: Layer, align: int) -> float:
    c_in, c_out, k = layer.channels
    up = lambda c: -(-c // align) * align  # noqa: E731
    return layer.spatial * up(c_in) * up(c_out) * k


def estimate(layers: Sequence[Layer], roof: Roofline, precision: str, engine: str = "gpu") -> Estimate:
    """Time per frame of ``layers`` on ``roof`` at ``precision`` (module doc)."""
    if precision not in BYTES:
        raise InputError(f"precision '{precision}' has no estimate; choose one of {', '.join(BYTES)}")
    if engine == "dla":
        if roof.dla_int8_tops <= 0 or precision == "fp32":
            return Estimate(precision, engine, None, 0, 0, 0, 0, 0, "no DLA" if roof.dla_int8_tops <= 0 else "DLA runs int8/fp16 only")
        lacking = sorted({la.op for la in layers if la.op in DLA_UNSUPPORTED})
        if lacking:
            return Estimate(precision, engine, None, 0, 0, 0, 0, 0, f"GPU fallback: DLA lacks {', '.join(lacking)}")
        peak = roof.dla_int8_tops * (1.0 if precision == "int8" else 0.5) * 1e12
        align = 32 if precision == "int8" else 16
        cuda_core_rate, cuda_align = 0.0, 1
    else:
        peak = {"int8": roof.int8_tops, "fp16": roof.fp16_tflops, "fp32": roof.fp32_tflops}[precision] * 1e12
        align = {"int8": roof.channel_align_int8, "fp16": roof.channel_align_fp16, "fp32": 1}[precision]
        # CUDA-core fallback: int8 dp4a = 4 x the fp32 rate on 4-channel groups, fp16 half2 = 2 x (Ampere/Volta Jetson)
        cuda_core_rate, cuda_align = {"int8": (4.0 * roof.fp32_tflops * 1e12, 4), "fp16": (2.0 * roof.fp32_tflops * 1e12, 2),
                                      "fp32": (0.0, 1)}[precision]
    size = BYTES[precision]
    bandwidth = roof.memory_gbps * 1e9 * roof.memory_efficiency
    compute_s = memory_s = 0.0
    launched, total_s, macs = 0, 0.0, 0.0
    for la in layers:
        if la.fused:
            continue
        c = 0.0
        if la.op in WEIGHTED:
            c = 2.0 * _padded_macs(la, align) / (peak * roof.compute_efficiency)
            if cuda_core_rate:  # narrow layers: CUDA-core kernels (dp4a / half2) may beat padded tensor-core tiles
                c = min(c, 2.0 * _padded_macs(la, cuda_align) / (cuda_core_rate * roof.compute_efficiency))
        m = (la.act_elems + la.weight_elems) * size / bandwidth
        compute_s += c if c >= m else 0.0
        memory_s += m if m > c else 0.0
        total_s += max(c, m)
        launched += 1
        macs += la.macs
    overhead_s = launched * roof.layer_overhead_us * 1e-6
    return Estimate(precision, engine, (total_s + overhead_s) * 1e3, macs, launched, compute_s * 1e3, memory_s * 1e3,
                    overhead_s * 1e3)


def bundle_model(bundle: str | Path, precision: str) -> Path:
    """The fp32 ONNX graph of a bundle (every precision shares its layers; the precision sets the numbers)."""
    root = Path(bundle)
    path = root / "model.onnx" if root.is_dir() else root
    if not path.is_file():
        raise InputError(f"{bundle} holds no model.onnx; give a bundle directory or an .onnx file")
    return path


def estimate_bundle(bundle: str | Path, profiles: Sequence[DeviceProfile], size: tuple[int, int] | None = None
                    ) -> list[dict[str, Any]]:
    """One row per (profile with an [estimate] table, precision it prefers, engine): the estimate at
    the profile's opt size (or ``size``)."""
    rows = []
    cache: dict[tuple[int, int], list[Layer]] = {}
    for prof in profiles:
        if prof.estimate is None:
            continue
        hw = tuple(size or prof.input.opt)
        if hw not in cache:
            cache[hw] = graph_layers(bundle_model(bundle, "fp32"), hw)
        for precision in prof.precisions:
            engines = ("gpu", "dla") if prof.dla_cores and prof.estimate.dla_int8_tops > 0 and precision != "fp32" else ("gpu",)
            for engine in engines:
                est = estimate(cache[hw], prof.estimate, precision, engine)
                rows.append({"profile": prof.name, "size": list(hw), "precision": precision, "engine": engine,
                             "ms": est.ms, "fps": est.fps, "gmacs": est.macs / 1e9, "layers": est.layers,
                             "compute_ms": est.compute_ms, "memory_ms": est.memory_ms, "overhead_ms": est.overhead_ms,
                             "note": est.note, "label": "estimate (roofline, assumptions in the profile TOML)"})
    return rows
