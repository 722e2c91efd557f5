"""The accuracy gates, per precision, written down ONCE (STYLE.md rule 7).

Every exported precision is compared with the PyTorch fp32 reference on real ultrasound frames
(model units: float32 in [-1, 1], so the data range for PSNR and SSIM is 2.0):

    fp32   max |error| <= 1e-4                      (ONNX graph must reproduce PyTorch)
    fp16   PSNR >= 45 dB                            (half precision rounding only)
    int8   PSNR >= 35 dB and SSIM >= 0.97           (calibrated quantisation, vs the fp32 output)

Every precision also reports max, p99 and mean absolute error, PSNR and SSIM (and, on the export
side, LPIPS: ``sonoedge.export.lpips_metric``), so a result is never a bare pass/fail. The metrics
are the worst over the reference frames (largest error, lowest PSNR/SSIM): a gate passes only if
every frame passes. A metric that is required and missing, NaN or not computable fails the gate.

The export also gates the INT8 model *as TensorRT computes it* (export/trt_emulate.py: Q/DQ as
placed, the float remainder in fp16) against the fp32 ONNX model on real held-out frames, with the
int8 thresholds below and no threshold of its own: TensorRT's int8 arithmetic is the Q/DQ graph's up
to float rounding, so the same 35 dB / 0.97 applies; a tighter emulation gate would fail exports on
rounding noise that the device gate (``sonoedge verify --backend tensorrt``) does not see.

    metrics = compare_outputs(outputs, references)   # lists of (1, C, H, W) float32 arrays
    result = check_gate("int8", metrics)             # GateResult(passed, failures, thresholds)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.metrics import abs_error_stats, psnr, ssim

DATA_RANGE = 2.0  # model tensors live in [-1, 1]
PSNR_CAP_DB = 300.0  # identical outputs have infinite PSNR; JSON has no inf, so cap (reported as such)


@dataclasses.dataclass(frozen=True)
class Gate:
    """Thresholds of one precision; None = not required (reported only)."""

    max_abs: float | None = None  # largest |output - reference| allowed, [-1, 1] units
    psnr_min: float | None = None  # dB, data range 2.0
    ssim_min: float | None = None

    def required(self) -> dict[str, float]:
        out = {}
        if self.max_abs is not None:
            out["max_abs"] = self.max_abs
        if self.psnr_min is not None:
            out["psnr"] = self.psnr_min
        if self.ssim_min is not None:
            out["ssim"] = self.ssim_min
        return out


# The thresholds. fp32: a faithful ONNX graph differs from PyTorch only by
# float reassociation, far below 1e-4. fp16: 11-bit mantissa rounding of activations gives
# ~50-60 dB on tanh outputs; 45 dB leaves margin while catching overflow (Inf/NaN) or a bad cast.
# int8: 35 dB / SSIM 0.97 is where calibrated int8 image-to-image output stays visually identical;
# a collapsed GAN (Ultralytics issue #22644, PR #10165) falls far below it.
GATES: dict[str, Gate] = {
    "fp32": Gate(max_abs=1e-4),
    "fp16": Gate(psnr_min=45.0),
    "int8": Gate(psnr_min=35.0, ssim_min=0.97),
}


@dataclasses.dataclass(frozen=True)
class GateResult:
    precision: str
    passed: bool
    failures: tuple[str, ...]  # one sentence per failed or missing metric
    thresholds: dict[str, float]
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": list(self.failures), "gate": self.thresholds,
                "results": self.metrics}


def gate_for(precision: str) -> Gate:
    if precision not in GATES:
        raise InputError(f"no accuracy gate for precision '{precision}'; known: {', '.join(GATES)}")
    return GATES[precision]


def _plane(x: np.ndarray) -> list[np.ndarray]:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 2:
        return [array]
    if array.ndim != 4:
        raise InputError(f"expected a (N, C, H, W) or (H, W) output, got shape {array.shape}")
    return [array[n, c] for n in range(array.shape[0]) for c in range(array.shape[1])]


def compare_outputs(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> dict[str, float]:
    """Worst-frame metrics of ``outputs`` against ``references`` (same shapes, [-1, 1] units).

    Returns {"max_abs", "p99_abs", "mean_abs", "psnr", "ssim", "frames"}. psnr is capped at
    PSNR_CAP_DB for identical outputs. Raises InputError when shapes differ or values are not finite.
    """
    if len(outputs) != len(references) or not outputs:
        raise InputError(f"need the same non-zero number of outputs and references, got {len(outputs)} and {len(references)}")
    errors, psnrs, ssims = [], [], []
    for out, ref in zip(outputs, references):
        stats = abs_error_stats(out, ref)  # checks shapes and finiteness
        errors.append((stats, np.asarray(out).size))
        for a, b in zip(_plane(out), _plane(ref)):
            psnrs.append(min(psnr(a, b, data_range=DATA_RANGE), PSNR_CAP_DB))
            ssims.append(ssim(a, b, data_range=DATA_RANGE))
    total = sum(n for _, n in errors)
    return {
        "max_abs": max(s["max"] for s, _ in errors),
        "p99_abs": max(s["p99"] for s, _ in errors),
        "mean_abs": sum(s["mean"] * n for s, n in errors) / total,
        "psnr": min(psnrs),
        "ssim": min(ssims),
        "frames": float(len(outputs)),
    }


def check_gate(precision: str, metrics: dict[str, Any]) -> GateResult:
    """Apply the precision's thresholds; a required metric that is absent or not finite fails."""
    gate = gate_for(precision)
    failures = []
    for name, threshold in gate.required().items():
        value = metrics.get(name)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            failures.append(f"{precision}: metric '{name}' could not be computed, so the gate fails")
            continue
        if name == "max_abs" and not value <= threshold:
            failures.append(f"{precision}: max abs error {value:.3g} exceeds {threshold:g}")
        elif name in ("psnr", "ssim") and not value >= threshold:
            unit = " dB" if name == "psnr" else ""
            failures.append(f"{precision}: {name.upper()} {value:.4g}{unit} is below {threshold:g}{unit}")
    clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    return GateResult(precision, not failures, tuple(failures), gate.required(), clean)
