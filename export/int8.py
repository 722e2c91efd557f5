"""fp32 ONNX -> calibrated INT8 explicit Q/DQ ONNX with a per-layer sensitivity search (DESIGN.md, Contracts: Bundle).

The Q/DQ model is the form TensorRT 11 requires (no BuilderFlag.INT8, no calibrators: "Explicit
quantization with Q/DQ nodes", TensorRT 10.x-to-11.x migration guide) and TensorRT 10 and ONNX
Runtime accept. Settings (ONNX Runtime ``quantize_static``):

- QDQ format, int8 activations and weights, both symmetric (zero point 0: TensorRT supports only
  symmetric int8), weights per output channel, no reduced range;
- Q/DQ placed on the inputs of the weighted ops only (Conv, ConvTranspose) and not on their
  outputs: TensorRT's Q/DQ placement recommendation ("quantize all inputs of weighted operations;
  by default do not quantize the outputs"), so InstanceNorm, Tanh, Resize, Pad stay in float and
  TensorRT chooses the fusions;
- calibration on ultrasound frames with entropy (KL), percentile (99.999) or min-max ranges; the
  ranges are computed once and cached (``calibration/ort_ranges.json``) so the search below only
  re-places Q/DQ nodes.

Image-to-image GANs can collapse under INT8 (Ultralytics issue #22644, PR #10165: quantized
generator outputs degenerating to noise/flat images), and the damage concentrates in a few layers:
the first conv (sees raw pixel statistics), the last conv feeding tanh (output resolution is the
image itself) and layers around InstanceNorm. So:

1. quantize every weighted layer; if the int8 gate passes on the search frames, done;
2. else measure each layer's sensitivity: quantize that layer alone and take the PSNR of the
   output against fp32 (low PSNR = sensitive);
3. keep the most sensitive layers in float (``nodes_to_exclude``), one more at a time, until the
   gate passes or ``max_excluded_fraction`` of the layers are out (then the search fails).

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


@dataclasses.dataclass(frozen=True)
class Int8Config:
    method: str = "entropy"  # entropy | percentile | minmax
    percentile: float = PERCENTILE
    per_channel: bool = True
    op_types: tuple[str, ...] = ("Conv", "ConvTranspose")  # TensorRT: Q/DQ on weighted ops' inputs
    quantize_outputs: bool = False  # True also puts Q/DQ on their outputs (ORT CPU int8 kernels)
    max_excluded_fraction: float = 0.5  # give up when half the weighted layers had to stay in float
    hist_bins: int = HIST_BINS  # entropy/percentile histogram (ORT's entropy search is O(bins * 128) in Python)

    def __post_init__(self) -> None:
        if self.hist_bins < 2 * QUANTIZED_BINS:
            raise InputError(f"calibration histogram needs at least {2 * QUANTIZED_BINS} bins, got {self.hist_bins}")
        if self.method not in METHODS:
            raise InputError(f"unknown calibration method '{self.method}'; choose one of {', '.join(METHODS)}")


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


def _quant_kwargs(cfg: Int8Config) -> dict[str, Any]:
    q = require("onnxruntime.quantization", "export")
    method = {"entropy": q.CalibrationMethod.Entropy, "percentile": q.CalibrationMethod.Percentile,
              "minmax": q.CalibrationMethod.MinMax}[cfg.method]
    extra: dict[str, Any] = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if cfg.method == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    if not cfg.quantize_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(cfg.op_types)
    return dict(quant_format=q.QuantFormat.QDQ, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                per_channel=cfg.per_channel, reduce_range=False, calibrate_method=method,
                op_types_to_quantize=list(cfg.op_types), extra_options=extra)


def calibrate_ranges(fp32_path: Path, reader: "TileReader", cfg: Int8Config, cache_path: Path) -> dict[str, Any]:
    """Run ONNX Runtime's calibrator with TensorRT-style histogram settings; write ``cache_path``.

    Returns the settings for the manifest. Needs ``calibration_cache_path`` support in
    quantize_static (else the ranges come from quantize_static's own calibrator, reported so).
    """
    q = require("onnxruntime.quantization", "export")
    calibrate = require("onnxruntime.quantization.calibrate", "export")
    if not _has_cache_param() or not hasattr(calibrate, "save_tensors_data"):
        return {"calibrator": "onnxruntime quantize_static defaults (no calibration cache in this onnxruntime)"}
    method = {"entropy": q.CalibrationMethod.Entropy, "percentile": q.CalibrationMethod.Percentile,
              "minmax": q.CalibrationMethod.MinMax}[cfg.method]
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
                                                 calibrate_method=method, extra_options=options)
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        del calibrator
    calibrate.save_tensors_data(ranges, cache_path)
    reader.rewind()
    return {"calibrator": f"onnxruntime {cfg.method}", **{k: v for k, v in options.items()}}


def _has_cache_param() -> bool:
    q = require("onnxruntime.quantization", "export")
    return "calibration_cache_path" in inspect.signature(q.quantize_static).parameters


def quantize(fp32_path: Path, out_path: Path, cfg: Int8Config, reader: TileReader, cache_path: Path | None,
             exclude: Sequence[str] = (), only: Sequence[str] = ()) -> Path:
    """One quantize_static call; calibration ranges come from ``cache_path`` once it exists."""
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


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the ONNX model for each (1, C, H, W) float32 input."""
    sess = _session(path)
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

    def evaluate(path: Path, excluded: list[str]) -> tuple[bool, dict[str, float]]:
        metrics = compare_outputs(run_onnx(path, search_inputs), fp32_out)
        passed = check_gate("int8", metrics).passed
        trace.append({"excluded": len(excluded), "psnr": metrics["psnr"], "ssim": metrics["ssim"], "passed": passed})
        return passed, metrics

    progress(f"int8: calibrating on {len(calib_tiles)} frames ({cfg.method}), {len(nodes)} weighted layers")
    settings = calibrate_ranges(fp32_path, reader, cfg, cache_path)
    quantize(fp32_path, out_path, cfg, reader, cache_path)
    passed, metrics = evaluate(out_path, [])
    progress(f"int8: all layers quantized: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
    if passed:
        return Int8Result(out_path, [], len(nodes), {}, trace, metrics, True, settings)

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
            return Int8Result(out_path, excluded, len(nodes) - k, sensitivity, trace, metrics, True, settings)
        if metrics["psnr"] > best[0]:
            best = (metrics["psnr"], excluded)
    quantize(fp32_path, out_path, cfg, reader, cache_path, exclude=best[1])
    _, metrics = evaluate(out_path, best[1])
    result = Int8Result(out_path, best[1], len(nodes) - len(best[1]), sensitivity, trace, metrics, False, settings)
    raise Int8SearchError(result, f"int8: no set of up to {budget} float layers passes the gate "
                                  f"(best PSNR {best[0]:.2f} dB with {len(best[1])} layers in float)")


class Int8SearchError(GateError):
    """The sensitivity search ran out of budget; ``result`` holds the best candidate."""

    def __init__(self, result: Int8Result, message: str):
        super().__init__(message)
        self.result = result
