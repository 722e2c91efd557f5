"""Re-run a bundle's reference frames on this machine and check every precision against its gate.

The same :func:`run_frame` is used by export (with the PyTorch generator) and here (with any
backend), so the reference and the device see exactly the same pre- and post-processing:

    uint8 (H, W) -> normalise -> (1, 1, H, W) in [-1, 1] -> reflect-pad to the stride -> model
                 -> (1, C, sHp, sWp) -> crop to (1, C, sH, sW)

    results = verify_bundle("bundle/", backend="onnxruntime", precisions=["fp32", "int8"])
    all(r.passed for r in results)

Loading the bundle checks bundle.sha256 first (manifest.json and every file), so a tampered bundle
is refused with the file named before anything runs (runtime/bundle/manifest.py).

The fidelity gate (gates.py) is re-checked from the manifest, not re-run, by default. Fidelity is a
property of the model's weights, measured at export through each precision's own ONNX model on real
frames; the accuracy re-run above proves this machine reproduces that model's outputs, so the
recorded fidelity carries over. The real frames cannot travel in the bundle (their licences, their
size, and the default bundle lives in the repository, which never holds real recordings). So verify
re-applies today's thresholds to the recorded per-frame measures: a result recorded under looser
thresholds, or a manifest that says "pass" over failing numbers, fails here. With real frames at
hand, ``fidelity_frames`` re-runs the gate on this machine's backend too.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from sonoedge.runtime.bundle.gates import FidelityResult, GateResult, check_fidelity, check_gate, compare_outputs
from sonoedge.runtime.bundle.manifest import Manifest, bundle_file, load_manifest, model_file
from sonoedge.runtime.errors import BundleError, InputError
from sonoedge.runtime.frames import crop, normalise, pad_to_stride

Infer = Callable[[np.ndarray], np.ndarray]


def run_frame(infer: Infer, image: np.ndarray, stride: int, scale: int = 1) -> np.ndarray:
    """uint8 (H, W) -> float32 (1, C, scale*H, scale*W) in [-1, 1], through ``infer`` on the padded input."""
    x = normalise(image)
    padded, size = pad_to_stride(x, stride)
    y = np.asarray(infer(padded), dtype=np.float32)
    want = (padded.shape[-2] * scale, padded.shape[-1] * scale)
    if y.ndim != 4 or y.shape[0] != 1 or tuple(y.shape[-2:]) != want:
        raise InputError(f"model output shape {y.shape} does not match input {padded.shape} at scale {scale}")
    return np.ascontiguousarray(crop(y, size, scale))


def read_reference_frame(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.ndim != 2:
        raise BundleError(f"reference frame {path} is not an 8-bit grey PNG")
    return image


def load_references(root: Path, manifest: Manifest) -> list[tuple[np.ndarray, np.ndarray]]:
    """(uint8 input (H, W), PyTorch output (1, C, sH, sW) float32) for every reference frame."""
    ref = manifest.reference
    inputs, outputs = (ref.inputs, ref.torch_outputs) if ref is not None else ((), ())
    if not inputs or len(inputs) != len(outputs):
        raise BundleError(f"bundle {root}: manifest 'reference' needs as many inputs as torch_outputs (>= 1)")
    pairs = []
    for rel_in, rel_out in zip(inputs, outputs):
        try:
            expected = np.load(bundle_file(root, manifest, rel_out), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"bundle {root}: cannot read reference output {rel_out} ({exc})") from None
        pairs.append((read_reference_frame(bundle_file(root, manifest, rel_in)), expected.astype(np.float32)))
    return pairs


@dataclasses.dataclass
class FidelityCheck:
    """The fidelity gate of one precision as verify sees it."""

    status: str  # pass | fail | not checked
    failures: tuple[str, ...] = ()
    degraded: bool = False  # failed at export and kept by --allow-degraded
    reason: str = ""  # why not checked, or where the result comes from
    result: FidelityResult | None = None  # the re-applied (or re-run) gate

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "failures": list(self.failures), "degraded": self.degraded,
                               "reason": self.reason}
        if self.result is not None:
            out["worst"] = self.result.worst
        return out


@dataclasses.dataclass
class PrecisionCheck:
    """The outcome of one precision on this machine."""

    precision: str
    result: GateResult
    degraded: bool  # the bundle kept it although it failed at export (--allow-degraded)
    backend: str
    fidelity: FidelityCheck = dataclasses.field(default_factory=lambda: FidelityCheck("not checked"))

    @property
    def ok(self) -> bool:
        return self.result.passed


def recorded_fidelity(manifest: Manifest, precision: str) -> FidelityCheck:
    """The manifest's fidelity result of ``precision``, re-checked against today's thresholds."""
    entry = manifest.precisions[precision].fidelity
    if entry is None:
        return FidelityCheck("not checked", reason="the bundle predates the fidelity gate (no result in its manifest)")
    if entry.status == "not checked":
        return FidelityCheck("not checked", reason=entry.reason or "export had no real frames")
    result = check_fidelity(entry.per_frame)
    failures = list(result.failures)
    if entry.status == "pass" and failures:
        failures.insert(0, "the manifest records a pass, but its own measures fail today's thresholds")
    if entry.status == "fail" and not failures:
        failures = list(entry.failures) or ["the manifest records a failure"]
    status = "pass" if not failures else "fail"
    where = f"recorded at export on {len(entry.frames)} real frame(s) from {entry.source or 'unnamed frames'}"
    return FidelityCheck(status, tuple(failures), entry.degraded, where, result)


def rerun_fidelity(root: Path, manifest: Manifest, precision: str, frames: Sequence[Any], backend: str = "onnxruntime",
                   backend_options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> FidelityCheck:
    """Run the fidelity gate here on ``frames`` (fidelity_check.FidelityFrame) with this backend."""
    from sonoedge.runtime.backends import create_backend
    from sonoedge.runtime.bundle.fidelity_check import check_model

    options = dict(backend_options or {})
    if backend != "onnxruntime":
        options.setdefault("precision", precision)
        options.setdefault("bundle", root)
    size = manifest.model.size_range
    with create_backend(backend, model_file(root, manifest, precision), **options) as engine:
        result = check_model(engine.infer, frames, manifest.model.stride, manifest.preprocess.region,
                             size.min if size else (1, 1), size.max if size else None, progress=progress)
    entry = manifest.precisions[precision].fidelity
    degraded = bool(entry is not None and entry.degraded)
    return FidelityCheck("pass" if result.passed else "fail", result.failures, degraded,
                         f"re-run here on {len(result.frames)} real frame(s)", result)


def check_precision(root: Path, manifest: Manifest, precision: str, backend: str = "onnxruntime",
                    backend_options: dict[str, Any] | None = None) -> PrecisionCheck:
    from sonoedge.runtime.backends import create_backend

    stride, scale = manifest.model.stride, manifest.model.scale
    path = model_file(root, manifest, precision)
    pairs = load_references(root, manifest)
    options = dict(backend_options or {})
    if backend != "onnxruntime":
        options.setdefault("precision", precision)
        options.setdefault("bundle", root)
    with create_backend(backend, path, **options) as engine:
        outputs = [run_frame(engine.infer, image, stride, scale) for image, _ in pairs]
    metrics = compare_outputs(outputs, [expected for _, expected in pairs])
    degraded = manifest.precisions[precision].degraded
    return PrecisionCheck(precision, check_gate(precision, metrics), degraded, backend, recorded_fidelity(manifest, precision))


def verify_bundle(path: str | Path, backend: str = "onnxruntime", precisions: Sequence[str] | None = None,
                  backend_options: dict[str, Any] | None = None, fidelity_frames: Sequence[Any] | None = None,
                  progress: Callable[[str], None] | None = None) -> list[PrecisionCheck]:
    """Check the hashes, then run the references through each requested precision (default: all
    kept) and re-check its fidelity gate (from the manifest; re-run on ``fidelity_frames`` when given)."""
    root, manifest = load_manifest(path)
    have = list(manifest.precisions)
    wanted = list(precisions) if precisions else have
    missing = [p for p in wanted if p not in have]
    if missing:
        raise BundleError(f"bundle {root} has no {', '.join(missing)} model (it has: {', '.join(have) or 'none'})")
    checks = [check_precision(root, manifest, p, backend, backend_options) for p in wanted]
    if fidelity_frames:
        for check in checks:
            check.fidelity = rerun_fidelity(root, manifest, check.precision, fidelity_frames, backend, backend_options,
                                            progress)
    return checks
