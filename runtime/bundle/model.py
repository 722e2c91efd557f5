"""Loading a bundle's model (DESIGN.md, Contracts: Bundle): verified, loaded, warmed up, re-checked.

    model = load_model(ModelConfig(bundle="bundle/", precision="fp16"))
    y = model.backend.infer(x)       # (1, C, H, W) float32 in [-1, 1]

:func:`load_model` checks every hash of the bundle, picks the backend (``auto`` asks the device
profile), builds a missing TensorRT engine first when asked (:func:`.engine.build_engine`, with
its progress), warms the backend up and re-runs the bundle's reference frames against the stored
PyTorch outputs under the precision's gate. Nothing half-loaded is ever returned: whatever goes
wrong on the way (ONNX Runtime's own errors, a shape the model does not produce, memory) ends in a
BundleError naming the bundle, and a .tar bundle's unpacked copy is removed with the model.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.backends import BACKENDS, Backend
from sonoedge.runtime.bundle.manifest import Manifest, load_manifest, model_file
from sonoedge.runtime.digest import sha256_file
from sonoedge.runtime.errors import BundleError, InputError, SonoedgeError

log = logging.getLogger("sonoedge.runtime.bundle.model")

# Warm-up inputs are allocated before anything runs; a side above this is a typo or a hostile
# manifest, not a probe's frame (4096 x 4096 float32 is 64 MiB before the model's activations).
MAX_WARMUP_SIDE = 4096


@dataclasses.dataclass
class ModelConfig:
    """Which model to run, on which backend, and how it is checked at load."""

    bundle: str = ""  # bundle directory or .tar; "" = the embedded default bundle
    precision: str = "auto"  # auto (on the CPU provider alone: the fastest passing one measured at export when it applies here; else the device profile's first preferred precision the bundle kept) | fp32 | fp16 | int8
    backend: str = "auto"  # auto | onnxruntime | tensorrt
    providers: list[str] = dataclasses.field(default_factory=list)  # onnxruntime EPs; [] = by availability
    threads: int = 0  # onnxruntime intra-op threads; 0 = auto: one per physical core (backends/onnxruntime.py says why)
    spin: bool = False  # onnxruntime: idle intra-op workers spin (see docs/benchmarks/runtime.md)
    verify_reference: bool = True  # re-run the bundle's reference frames on load and check the gate
    warmup_size: tuple[int, int] = (0, 0)  # (H, W) of warm-up runs; (0, 0) = the manifest's opt size
    build_engine: bool = False  # tensorrt: build a missing engine at load (announced) instead of failing


@dataclasses.dataclass
class LoadedModel:
    """A verified bundle with its backend loaded and warmed up."""

    root: Path
    manifest: Manifest
    precision: str
    backend: Backend
    backend_name: str
    model_sha256: str
    workdir: Path | None = None  # where a .tar bundle was unpacked; removed by close()
    precision_reason: str = "requested"  # why this precision: requested, the CPU timing at export, or the device profile

    @property
    def stride(self) -> int:
        return self.manifest.model.stride

    @property
    def scale(self) -> int:
        return self.manifest.model.output_scale

    @property
    def name(self) -> str:
        return self.manifest.model.name or self.root.name

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(min, max) (H, W) the model takes; without a size_range in the manifest, (1, 1) to 65536."""
        rng = self.manifest.model.size_range
        return (rng.min, rng.max) if rng is not None else ((1, 1), (1 << 16, 1 << 16))

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)


def resolve_bundle(bundle: str) -> Path:
    """The bundle path, or the embedded default for ""."""
    if bundle:
        return Path(bundle)
    from sonoedge.runtime.bundle import default_bundle_path

    return default_bundle_path()


def choose_backend(requested: str, precision: str) -> str:
    """The backend to run: ``requested`` unless it is ``auto``.

    ``auto`` asks the device profile (:func:`sonoedge.devices.detect.detect_device`): a profile with
    TensorRT on a machine where tensorrt and cuda-python import gets the native TensorRT backend,
    everything else ONNX Runtime. The choice and its reason are logged, never silent.
    """
    if requested != "auto":
        BACKENDS.get(requested)  # unknown names fail with the valid ones
        return requested
    from sonoedge.devices.detect import detect_device
    from sonoedge.runtime.backends.tensorrt.cuda import cuda_importable

    detected = detect_device()
    importable = importlib.util.find_spec("tensorrt") is not None and cuda_importable()
    name = "tensorrt" if detected.profile.has_tensorrt and importable else "onnxruntime"
    reason = (f"device profile {detected.profile.name} ({detected.reason}); "
              f"tensorrt+cuda-python {'importable' if importable else 'not importable'}")
    log.info("backend chosen", extra={"event": "backend_chosen", "backend": name, "precision": precision, "reason": reason})
    return name


def auto_on_cpu(cfg: ModelConfig, backend: str | None = None) -> bool:
    """Whether ``cfg`` asks for ``auto`` precision on ONNX Runtime's CPU provider alone (``backend``:
    the chosen one; None = choose it as load_model does), where the CPU timing at export applies."""
    if cfg.precision != "auto":
        return False
    from sonoedge.runtime.bundle.cpu_choice import cpu_provider_only

    return cpu_provider_only(backend or choose_backend(cfg.backend, cfg.precision), cfg.providers)


def model_precision(root: Path, manifest: Manifest, requested: str, cpu: bool = False) -> str:
    """The precision :func:`precision_and_reason` picks."""
    return precision_and_reason(root, manifest, requested, cpu)[0]


def precision_and_reason(root: Path, manifest: Manifest, requested: str, cpu: bool = False) -> tuple[str, str]:
    """(precision, why): ``requested``, or for ``auto`` on the CPU provider alone (``cpu``) the
    precision export measured fastest among those that passed their gates when that measurement
    applies here (runtime/bundle/cpu_choice.py), else the detected device profile's default: the
    rule of build-engine. The choice and its reason are logged."""
    from sonoedge.runtime.bundle.engine import device_profile, resolve_precision
    from sonoedge.runtime.precision import AUTO

    if requested != AUTO:
        return resolve_precision(manifest, None, requested, root), "requested"
    unused = ""
    if cpu:
        from sonoedge.runtime.bundle.cpu_choice import choose

        precision, reason = choose(manifest, manifest.kept_precisions())
        if precision is not None:
            log.info("precision chosen", extra={"event": "precision_chosen", "precision": precision, "reason": reason})
            return precision, reason
        unused = f"; {reason}"
    profile = device_profile(root, manifest, None, progress=lambda line: log.info(line, extra={"event": "device_detected"}))
    precision = resolve_precision(manifest, profile, AUTO, root)
    reason = f"first of {profile.name}'s preferred precisions the bundle kept{unused}"
    log.info("precision chosen", extra={"event": "precision_chosen", "precision": precision, "reason": reason})
    return precision, reason


def trt_profile_shapes(root: Path, manifest: Manifest) -> dict[str, tuple[int, int, int, int]]:
    """min/opt/max input shapes for TensorRT (the ORT TensorRT EP): the detected device profile's range."""
    from sonoedge.runtime.backends.tensorrt.build import profile_shapes
    from sonoedge.runtime.bundle.engine import device_profile

    profile = device_profile(root, manifest, None, progress=lambda line: log.info(line, extra={"event": "device_detected"}))
    return profile_shapes(profile.input.to_dict(), manifest.model.channels, manifest.model.stride)


def _backend_options(name: str, cfg: ModelConfig, root: Path, manifest: Manifest) -> dict[str, Any]:
    if name == "onnxruntime":
        options = {"providers": cfg.providers or None, "intra_op_threads": cfg.threads, "allow_spinning": cfg.spin}
        if "TensorrtExecutionProvider" in (cfg.providers or []):
            options.update(input_name=manifest.model.input_name,
                           profile_shapes=trt_profile_shapes(root, manifest))
        return options
    return {}


def load_model(cfg: ModelConfig) -> LoadedModel:
    """Verify the bundle's hashes, load the backend, warm it up and re-check the reference frames.

    Raises BundleError (naming the bundle and the reason) for a bundle that fails any of it, also
    when the failure is not sonoedge's own (an ONNX Runtime error, a MemoryError); InputError for a
    config value that does not fit the bundle. Nothing half-loaded is returned, and a .tar bundle
    is unpacked into a temporary directory that :meth:`LoadedModel.close` removes.
    """
    source = resolve_bundle(cfg.bundle)
    workdir = Path(tempfile.mkdtemp(prefix="sonoedge-bundle-")) if source.is_file() else None
    backend = None
    try:
        root, manifest = load_manifest(source, into=workdir)
        shape = warmup_shape(manifest, cfg)  # checked before anything is allocated
        name = choose_backend(cfg.backend, cfg.precision)
        precision, why = precision_and_reason(root, manifest, cfg.precision, auto_on_cpu(cfg, name))
        path = model_file(root, manifest, precision)
        options = _backend_options(name, cfg, root, manifest)
        if name == "onnxruntime":
            options.update(precision=precision)
        if name == "tensorrt":
            options.update(precision=precision, bundle=root)
            if cfg.build_engine:  # announced with its progress, at load, never on the first frame
                from sonoedge.runtime.bundle.engine import build_engine

                log.warning("building the TensorRT engine if it is not cached (minutes; progress follows)",
                            extra={"event": "engine_build", "bundle": str(root), "precision": precision})
                build_engine(root, precision)
        backend = BACKENDS.create(name, path, **options)
        backend.load()
        model = LoadedModel(root, manifest, precision, backend, name, sha256_file(path), workdir, why)
        probe_shapes(model, shape)
        if cfg.verify_reference:
            check_reference(model)
    except BaseException as exc:
        if backend is not None:
            backend.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, SonoedgeError) or not isinstance(exc, Exception):
            raise
        raise BundleError(f"bundle {source} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return model


def warmup_size(manifest: Manifest, cfg: ModelConfig) -> tuple[int, int]:
    """(H, W) of the warm-up input: ``cfg.warmup_size``, or the manifest's opt size (256 x 256
    without a size range), checked against the manifest's size range and :data:`MAX_WARMUP_SIDE`."""
    h, w = cfg.warmup_size
    rng = manifest.model.size_range
    if (h, w) == (0, 0):
        h, w = rng.opt if rng is not None else (256, 256)
        if max(h, w) > MAX_WARMUP_SIDE:
            raise BundleError(f"manifest size_range.opt {h}x{w} is over the warm-up limit of {MAX_WARMUP_SIDE} a side; "
                              "re-export the bundle with a real frame size")
        return h, w
    if min(h, w) < 1 or max(h, w) > MAX_WARMUP_SIDE:
        raise InputError(f"enhancer.warmup_size [{h}, {w}] must be [0, 0] (the manifest's opt size) or "
                         f"1..{MAX_WARMUP_SIDE} a side")
    if rng is not None and not (rng.min[0] <= h <= rng.max[0] and rng.min[1] <= w <= rng.max[1]):
        raise InputError(f"enhancer.warmup_size [{h}, {w}] is outside the bundle's size range "
                         f"{rng.min[0]}x{rng.min[1]}..{rng.max[0]}x{rng.max[1]}")
    return h, w


def warmup_shape(manifest: Manifest, cfg: ModelConfig) -> tuple[int, int, int, int]:
    """(1, C, H, W) of the warm-up input, H and W rounded up to the stride; BundleError when the
    manifest's stride or channel count would make it larger than MAX_WARMUP_SIDE squared."""
    h, w = warmup_size(manifest, cfg)
    s = manifest.model.stride
    shape = (1, manifest.model.channels, -(-h // s) * s, -(-w // s) * s)
    _check_size(manifest, shape)
    return shape


def _check_size(manifest: Manifest, shape: tuple[int, int, int, int]) -> None:
    if max(shape[2:]) > MAX_WARMUP_SIDE or shape[1] * shape[2] * shape[3] > MAX_WARMUP_SIDE ** 2:
        info = manifest.model
        raise BundleError(f"manifest model.stride {info.stride} and model.channels {info.channels} make a warm-up "
                          f"input of shape {shape}, over the limit of {MAX_WARMUP_SIDE} a side; re-export the bundle")


def probe_shapes(model: LoadedModel, warmup: tuple[int, int, int, int]) -> None:
    """Warm up at ``warmup`` and check the model's contract on it and on an odd multiple of the
    stride (the smallest at or above the size range's minimum): the output is (1, C, sH, sW).

    A manifest whose stride or channel count is not the model's, or a model whose output has
    another shape, fails here at load instead of on every frame.
    """
    s = model.stride
    lo, hi = model.size_range()
    shapes = [warmup]
    odd = []
    for side, top in zip(lo, hi):
        k = -(-side // s)
        k += 1 - k % 2  # an odd multiple: a model needing a larger stride cannot take it
        odd.append(k * s)
    fits = all(o <= min(t, MAX_WARMUP_SIDE) for o, t in zip(odd, hi)) and odd[0] * odd[1] <= warmup[2] * warmup[3]
    if fits and tuple(odd) != warmup[2:]:  # (the warm-up's size bounds the probe's)
        shapes.append((1, warmup[1], *odd))
    for shape in shapes:
        try:
            y = model.backend.infer(np.zeros(shape, np.float32))
        except SonoedgeError:
            raise
        except Exception as exc:  # the engine's own error type, e.g. a shape the graph cannot take
            raise BundleError(f"bundle {model.root}: the model fails on an input of shape {shape} (a multiple of "
                              f"manifest model.stride {s} with model.channels {shape[1]}): "
                              f"{type(exc).__name__}: {str(exc).strip()}") from None
        want = (1, shape[1], shape[2] * model.scale, shape[3] * model.scale)
        if tuple(getattr(y, "shape", ())) != want:
            raise BundleError(f"bundle {model.root}: the model maps an input of shape {shape} to "
                              f"{tuple(getattr(y, 'shape', ()))}, not {want} (manifest channels, stride and scale)")


def check_reference(model: LoadedModel) -> dict[str, float]:
    """Run the bundle's reference inputs here and compare with the stored PyTorch outputs.

    Uses the gates written down once in :mod:`.gates` (fp32 max-abs, fp16 PSNR, int8 PSNR+SSIM) and
    the same pre/post-processing as ``sonoedge verify`` (:func:`.verify.run_frame`). Returns the
    metrics; raises BundleError when the gate fails, unless the bundle marks the precision
    ``degraded`` (kept on purpose at export), which is logged as a warning instead.
    """
    from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
    from sonoedge.runtime.bundle.verify import load_references, run_frame

    pairs = load_references(model.root, model.manifest)
    outputs = []
    for image, _ in pairs:
        try:
            outputs.append(run_frame(model.backend.infer, image, model.stride, model.scale))
        except SonoedgeError as exc:
            raise BundleError(f"bundle {model.root}: reference frame failed on {model.backend_name}: {exc}") from None
    try:
        metrics = compare_outputs(outputs, [expected for _, expected in pairs])
    except InputError as exc:  # NaN/Inf or a shape mismatch: the gate cannot pass
        raise BundleError(f"bundle {model.root}: {model.precision} reference outputs cannot be compared ({exc})") from None
    result = check_gate(model.precision, metrics)
    if not result.passed:
        if model.manifest.precisions[model.precision].degraded:
            log.warning("serving a degraded precision", extra={"event": "degraded_precision", "precision": model.precision,
                                                              "failures": list(result.failures)})
        else:
            raise BundleError(f"bundle {model.root}: on backend {model.backend_name} here, "
                              + "; ".join(result.failures) + " against the PyTorch reference")
    return metrics
