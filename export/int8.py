"""fp32 ONNX -> calibrated INT8 explicit Q/DQ ONNX with a per-layer sensitivity search (DESIGN.md, Contracts: Bundle).

The Q/DQ model is the form TensorRT 11 requires (no BuilderFlag.INT8, no calibrators: "Explicit
quantization with Q/DQ nodes", TensorRT 10.x-to-11.x migration guide) and TensorRT >= 10.1 builds
strongly typed. Settings (ONNX Runtime ``quantize_static``, read from its qdq_quantizer.py):

- QDQ format, int8 activations and weights, both symmetric (zero point 0: TensorRT supports only
  symmetric int8), activations per tensor, weights per output channel (Conv axis 0, ConvTranspose
  axis 1, MatMul axis 1), no reduced range;
- no bias quantization (``QuantizeBias=False``): ONNX Runtime's default puts a DequantizeLinear on
  an INT32 bias, which TensorRT's dequantize layer refuses (its inputs are INT8/FP8/INT4 only,
  NvInfer.h, IDequantizeLayer); TensorRT fuses the float bias into the int8 convolution itself;
- Q/DQ on the inputs of the weighted ops only (Conv, ConvTranspose, MatMul), never on their outputs:
  TensorRT's placement recommendation ("quantize all inputs of weighted operations; by default do not
  quantize the outputs"), so InstanceNorm, Tanh, Resize, Pad stay in float and TensorRT chooses the
  fusions; one Q/DQ pair per consumer (``DedicatedQDQPair``, ONNX Runtime's TensorRT setting) and
  Relu/Clip kept in the graph (``QDQKeepRemovableActivations``);
- the float remainder in fp16 (``remainder``): a strongly typed network runs every tensor in the
  type the graph gives it, so an fp32 remainder would make the INT8 engine slower than the fp16 one.
  Opset 19 (fp16 Q/DQ scales), the same op block list as the fp16 model (normalisations and
  reductions stay fp32); layers whose fp16 costs the gate stay fp32 (below);
- calibration on ultrasound frames with entropy (KL), percentile (99.999) or min-max ranges, fed to
  ONNX Runtime ONE TILE PER CALL (:func:`calibrate_ranges`, memory bound there); the ranges are
  computed once and cached (``calibration/ort_ranges.json``) so the search below only re-places
  Q/DQ nodes.

Image-to-image GANs can collapse under INT8 (Ultralytics issue #22644, PR #10165: quantized
generator outputs degenerating to noise/flat images), and the damage concentrates in a few layers:
the first conv (sees raw pixel statistics), the last conv feeding tanh (output resolution is the
image itself) and layers around InstanceNorm. So:

1. quantize every weighted layer; if the int8 gate passes on the search frames, done;
2. else measure each layer's sensitivity: quantize that layer alone and take the PSNR of the
   output against fp32 (low PSNR = sensitive);
3. keep the most sensitive layers in float (``nodes_to_exclude``), one more at a time, until the
   gate passes or ``max_excluded_fraction`` of the layers are out (then the search fails);
4. cast the float remainder to fp16; if that misses the gate, keep the layers of step 3 in fp32,
   then the whole remainder (reported as ``remainder`` in the manifest).

The layers kept out are reported in the manifest and in docs/results/export.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
from sonoedge.runtime.errors import GateError, InputError, require
from sonoedge.runtime.frames import normalise

METHODS = ("entropy", "percentile", "minmax")
PERCENTILE = 99.999  # percentile calibration clips the top 0.001 % (ORT's and TensorRT's usual value)
# Histogram of 2048 bins folded into 128 quantized bins: TensorRT's entropy calibration (Migacz,
# "8-bit Inference with TensorRT", GTC 2017). ONNX Runtime's quantize_static builds its entropy
# calibrator with 128 bins AND 128 quantized bins, where the KL search has a single candidate and
# entropy silently equals min-max (measured: identical ranges and outputs); so sonoedge runs the
# calibrator itself with these values and hands the ranges to quantize_static through its cache.
HIST_BINS = 2048
QUANTIZED_BINS = 128

Progress = Callable[[str], None]


REMAINDERS = ("fp16", "fp32")
FP16_OPSET = 19  # QuantizeLinear/DequantizeLinear take fp16 scales from opset 19 (ONNX operator changelog)


@dataclasses.dataclass(frozen=True)
class Int8Config:
    method: str = "entropy"  # entropy | percentile | minmax
    percentile: float = PERCENTILE
    per_channel: bool = True
    op_types: tuple[str, ...] = ("Conv", "ConvTranspose", "MatMul")  # TensorRT: Q/DQ on weighted ops' inputs
    quantize_outputs: bool = False  # True also puts Q/DQ on their outputs (ORT CPU int8 kernels)
    max_excluded_fraction: float = 0.5  # give up when half the weighted layers had to stay in float
    hist_bins: int = HIST_BINS  # entropy/percentile histogram (ORT's entropy search is O(bins * 128) in Python)
    remainder: str = "fp16"  # the type of the float (non-quantized) part where the gate allows it
    min_psnr: float | None = None  # search target above the int8 gate (None: the gate's own thresholds)
    min_ssim: float | None = None

    def __post_init__(self) -> None:
        if self.hist_bins < 2 * QUANTIZED_BINS:
            raise InputError(f"calibration histogram needs at least {2 * QUANTIZED_BINS} bins, got {self.hist_bins}")
        if self.method not in METHODS:
            raise InputError(f"unknown calibration method '{self.method}'; choose one of {', '.join(METHODS)}")
        if self.remainder not in REMAINDERS:
            raise InputError(f"unknown int8 remainder type '{self.remainder}'; choose one of {', '.join(REMAINDERS)}")

    def passes(self, metrics: dict[str, float]) -> bool:
        """The int8 gate of runtime/bundle/gates.py, and the search target when one is set."""
        return (check_gate("int8", metrics).passed
                and (self.min_psnr is None or metrics["psnr"] >= self.min_psnr)
                and (self.min_ssim is None or metrics["ssim"] >= self.min_ssim))


@dataclasses.dataclass
class Int8Result:
    path: Path
    excluded: list[str]  # weighted nodes kept in float
    quantized: int  # weighted nodes in int8
    sensitivity: dict[str, float]  # node -> PSNR (dB) with only that node quantized (empty if not needed)
    trace: list[dict[str, Any]]  # one entry per evaluated candidate: excluded count, psnr, ssim, passed
    search_metrics: dict[str, float]
    passed_search: bool
    calibrator: dict[str, Any] = dataclasses.field(default_factory=dict)  # histogram settings used
    remainder: dict[str, Any] = dataclasses.field(default_factory=dict)  # {"dtype", "fp32_nodes", "opset"}


class TileReader:
    """ONNX Runtime CalibrationDataReader over uint8 tiles: one (1, 1, H, W) float32 batch per tile."""

    def __init__(self, tiles: Sequence[np.ndarray], input_name: str):
        self.tiles, self.input_name, self.index = list(tiles), input_name, 0
        self.start, self.end = 0, len(self.tiles)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start + self.index >= self.end:
            return None
        tile = self.tiles[self.start + self.index]
        self.index += 1
        return {self.input_name: normalise(tile)}

    def rewind(self) -> None:
        self.index = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.index = start_index, end_index, 0

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self):
        self.rewind()
        while (item := self.get_next()) is not None:
            yield item


def weighted_nodes(model_path: str | Path, op_types: Sequence[str]) -> list[str]:
    """Names of the nodes that would be quantized, in graph order (first conv first)."""
    onnx = require("onnx", "export")
    model = onnx.load(str(model_path))
    names = [n.name for n in model.graph.node if n.op_type in op_types]
    if len(set(names)) != len(names) or any(not n for n in names):
        raise InputError(f"{model_path}: weighted nodes need unique non-empty names for the sensitivity search")
    return names


def _method(cfg: Int8Config) -> Any:
    q = require("onnxruntime.quantization", "export")
    return {"entropy": q.CalibrationMethod.Entropy, "percentile": q.CalibrationMethod.Percentile,
            "minmax": q.CalibrationMethod.MinMax}[cfg.method]


def _quant_kwargs(cfg: Int8Config) -> dict[str, Any]:
    q = require("onnxruntime.quantization", "export")
    extra: dict[str, Any] = {
        "ActivationSymmetric": True, "WeightSymmetric": True,  # zero point 0 everywhere
        "QuantizeBias": False,  # ORT's default is an INT32 bias behind a DequantizeLinear; TensorRT refuses it
        "DedicatedQDQPair": True,  # one Q/DQ pair per consumer (ORT's TensorRT setting)
        "QDQKeepRemovableActivations": True,  # Relu/Clip stay explicit ops
    }
    if cfg.method == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    if not cfg.quantize_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(cfg.op_types)
    return dict(quant_format=q.QuantFormat.QDQ, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                per_channel=cfg.per_channel, reduce_range=False, calibrate_method=_method(cfg),
                op_types_to_quantize=list(cfg.op_types), extra_options=extra)


class _OneTile:
    """A CalibrationDataReader that yields a single input, so each collect_data call sees one tile."""

    def __init__(self, item: dict[str, np.ndarray]):
        self.item: dict[str, np.ndarray] | None = item

    def get_next(self) -> dict[str, np.ndarray] | None:
        item, self.item = self.item, None
        return item


def calibrate_ranges(fp32_path: Path, reader: "TileReader", cfg: Int8Config, cache_path: Path,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Run ONNX Runtime's calibrator with TensorRT-style histogram settings, one tile at a time; write ``cache_path``.

    Memory is bounded by ONE tile, not the calibration set: ONNX Runtime's calibrators keep every
    intermediate output of every input a ``collect_data`` call reads until the call ends (the
    histogram calibrators then fold them into their histograms, min-max into running ranges), so
    feeding the whole set at once holds every activation of every frame. Here each call reads one
    tile, and the histograms and ranges accumulate across calls. Peak: the augmented model's
    session + the calibrated tensors of one tile (the inputs of every weighted op, held together as
    graph outputs) + two transient copies of the largest one while it is binned. Returns the
    settings for the manifest. Needs ``calibration_cache_path`` support in quantize_static.
    """
    calibrate = require("onnxruntime.quantization.calibrate", "export")
    if not _has_cache_param() or not hasattr(calibrate, "save_tensors_data"):
        raise InputError("this onnxruntime's quantize_static takes no calibration_cache_path, which int8 export needs; "
                         "upgrade onnxruntime")
    options: dict[str, Any] = {"symmetric": True}
    if cfg.method in ("entropy", "percentile"):
        options["num_bins"] = cfg.hist_bins
    if cfg.method == "entropy":
        options["num_quantized_bins"] = QUANTIZED_BINS
    if cfg.method == "percentile":
        options["percentile"] = cfg.percentile
    import tempfile

    reader.rewind()
    with tempfile.TemporaryDirectory(prefix="sonoedge-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = calibrate.create_calibrator(Path(fp32_path), list(cfg.op_types),
                                                 augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                                 calibrate_method=_method(cfg), extra_options=options)
        count = 0
        while (item := reader.get_next()) is not None:
            calibrator.collect_data(_OneTile(item))  # histograms/ranges accumulate across calls
            count += 1
            if progress is not None and count % 50 == 0:
                progress(f"int8: calibrated {count}/{len(reader)} tiles")
        ranges = calibrator.compute_data()
        del calibrator
    calibrate.save_tensors_data(ranges, cache_path)
    reader.rewind()
    return {"calibrator": f"onnxruntime {cfg.method}, one tile per call", **{k: v for k, v in options.items()}}


def _has_cache_param() -> bool:
    q = require("onnxruntime.quantization", "export")
    return "calibration_cache_path" in inspect.signature(q.quantize_static).parameters


def quantize(fp32_path: Path, out_path: Path, cfg: Int8Config, reader: TileReader, cache_path: Path | None,
             exclude: Sequence[str] = (), only: Sequence[str] = ()) -> Path:
    """One quantize_static call (float remainder fp32); calibration ranges come from ``cache_path``."""
    q = require("onnxruntime.quantization", "export")
    kwargs = _quant_kwargs(cfg)
    if cache_path is not None and _has_cache_param():
        kwargs["calibration_cache_path"] = str(cache_path)
    reader.rewind()
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # ORT logs a pre-processing suggestion on every call
    try:
        # ORT prints calibration chatter on stdout; the export reports its own progress instead
        with atomic_path(out_path) as tmp, contextlib.redirect_stdout(io.StringIO()):
            q.quantize_static(str(fp32_path), str(tmp), reader, nodes_to_exclude=list(exclude),
                              nodes_to_quantize=list(only), **kwargs)
    finally:
        quiet.setLevel(level)
    return out_path


def half_remainder(qdq_path: Path, out_path: Path, keep_fp32_nodes: Sequence[str] = ()) -> Path:
    """The Q/DQ model with its float remainder in fp16 (fp32 graph inputs and outputs kept).

    Opset 19, so Q/DQ scales can be fp16 and DequantizeLinear outputs fp16 (a strongly typed
    network takes a dequantize layer's output type from its scale). The fp16 model's op block list
    stays fp32 (export/fp16.py: normalisations and reductions), and so do ``keep_fp32_nodes``.
    """
    onnx = require("onnx", "export")
    float16 = require("onnxconverter_common.float16", "export")
    from onnx import version_converter

    from sonoedge.export.fp16 import FP32_OPS

    model = onnx.load(str(qdq_path))
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < FP16_OPSET:
        model = version_converter.convert_version(model, FP16_OPSET)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block,
                                            node_block_list=list(keep_fp32_nodes))
    with atomic_path(out_path) as tmp:
        onnx.save(half, str(tmp))
    return out_path


def _session(path: Path, optimize: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, inputs: Sequence[np.ndarray], optimize: bool = True) -> list[np.ndarray]:
    """Outputs of the ONNX model for each (1, C, H, W) float32 input, one session.run per input."""
    sess = _session(path, optimize)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x})[0].astype(np.float32) for x in inputs]


def search_int8(fp32_path: Path, out_path: Path, calib_tiles: Sequence[np.ndarray],
                search_inputs: Sequence[np.ndarray], cfg: Int8Config, cache_path: Path,
                progress: Progress = print) -> Int8Result:
    """Calibrate, quantize, and keep sensitive layers in float until the int8 gate passes (module doc).

    ``search_inputs``: (1, C, H, W) float32 padded inputs, never calibration frames (export passes
    held-out frames plus the reference frames the final gate is measured on). Raises GateError when no exclusion set within the budget passes;
    the best candidate is left at ``out_path`` (for --allow-degraded).
    """
    if not calib_tiles:
        raise InputError("INT8 calibration needs at least one frame")
    nodes = weighted_nodes(fp32_path, cfg.op_types)
    if not nodes:
        raise InputError(f"{fp32_path} has no {', '.join(cfg.op_types)} node to quantize")
    reader = TileReader(calib_tiles, "input")
    fp32_out = run_onnx(fp32_path, search_inputs)
    trace: list[dict[str, Any]] = []

    def evaluate(path: Path, excluded: list[str], remainder: str = "fp32") -> tuple[bool, dict[str, float]]:
        metrics = compare_outputs(run_onnx(path, search_inputs), fp32_out)
        passed = cfg.passes(metrics)
        trace.append({"excluded": len(excluded), "remainder": remainder, "psnr": metrics["psnr"],
                      "ssim": metrics["ssim"], "passed": passed})
        return passed, metrics

    progress(f"int8: calibrating on {len(calib_tiles)} frames ({cfg.method}, one tile per call), "
             f"{len(nodes)} weighted layers")
    settings = calibrate_ranges(fp32_path, reader, cfg, cache_path, progress)
    quantize(fp32_path, out_path, cfg, reader, cache_path)
    passed, metrics = evaluate(out_path, [])
    progress(f"int8: all layers quantized: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
    if passed:
        return _with_remainder(Int8Result(out_path, [], len(nodes), {}, trace, metrics, True, settings),
                               cfg, evaluate, progress)

    progress(f"int8: below the gate; measuring the sensitivity of {len(nodes)} layers")
    probe = out_path.with_name(".sensitivity.onnx")
    sensitivity = {}
    try:
        for node in nodes:
            quantize(fp32_path, probe, cfg, reader, cache_path, only=[node])
            sensitivity[node] = compare_outputs(run_onnx(probe, search_inputs), fp32_out)["psnr"]
    finally:
        probe.unlink(missing_ok=True)
    order = sorted(nodes, key=lambda n: sensitivity[n])
    budget = max(1, int(cfg.max_excluded_fraction * len(nodes)))
    best = (metrics["psnr"], [])
    for k in range(1, budget + 1):
        excluded = order[:k]
        quantize(fp32_path, out_path, cfg, reader, cache_path, exclude=excluded)
        passed, metrics = evaluate(out_path, excluded)
        progress(f"int8: {k} layer(s) in float: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
        if passed:
            result = Int8Result(out_path, excluded, len(nodes) - k, sensitivity, trace, metrics, True, settings)
            return _with_remainder(result, cfg, evaluate, progress)
        if metrics["psnr"] > best[0]:
            best = (metrics["psnr"], excluded)
    quantize(fp32_path, out_path, cfg, reader, cache_path, exclude=best[1])
    _, metrics = evaluate(out_path, best[1])
    result = Int8Result(out_path, best[1], len(nodes) - len(best[1]), sensitivity, trace, metrics, False, settings,
                        {"dtype": "fp32", "fp32_nodes": [], "reason": "the search failed"})
    raise Int8SearchError(result, f"int8: no set of up to {budget} float layers passes the gate "
                                  f"(best PSNR {best[0]:.2f} dB with {len(best[1])} layers in float)")


def _with_remainder(result: Int8Result, cfg: Int8Config, evaluate: Callable, progress: Progress) -> Int8Result:
    """Step 4 of the module doc: the float remainder in fp16, keeping fp32 only where the gate needs it."""
    if cfg.remainder == "fp32":
        result.remainder = {"dtype": "fp32", "fp32_nodes": [], "reason": "asked (--int8-remainder fp32)"}
        return result
    fp32_model = result.path.with_name(".fp32-remainder.onnx")
    result.path.replace(fp32_model)
    try:
        for keep in ([], list(result.excluded)) if result.excluded else ([],):
            half_remainder(fp32_model, result.path, keep)
            passed, metrics = evaluate(result.path, result.excluded, "fp16" if not keep else f"fp16, {len(keep)} fp32")
            progress(f"int8: float remainder in fp16 ({len(keep)} layer(s) kept fp32): "
                     f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
            if passed:
                result.search_metrics = metrics
                result.remainder = {"dtype": "fp16", "fp32_nodes": keep, "opset": FP16_OPSET}
                return result
        fp32_model.replace(result.path)
        result.remainder = {"dtype": "fp32", "fp32_nodes": [], "reason": "fp16 remainder missed the gate"}
        progress("int8: the fp16 remainder misses the gate; the float remainder stays fp32")
        return result
    finally:
        fp32_model.unlink(missing_ok=True)


class Int8SearchError(GateError):
    """The sensitivity search ran out of budget; ``result`` holds the best candidate."""

    def __init__(self, result: Int8Result, message: str):
        super().__init__(message)
        self.result = result
