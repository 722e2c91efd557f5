"""One TensorRT builder, two generations: the builder-flag path and the strongly typed path.

TensorRT is chosen by the version found on the device:

- below 10.1 (JetPack 5 / TensorRT 8.5-8.6, and 10.0): *builder flags*. The fp32 ONNX is parsed and
  precision is a flag: ``BuilderFlag.FP16``; INT8 = ``BuilderFlag.INT8`` (+ FP16 for the layers
  INT8 does not cover) with an ``IInt8EntropyCalibrator2`` fed by the bundle's calibration frames
  (:mod:`sonoedge.runtime.backends.tensorrt.calibrator`) at a calibration profile of their own
  shape, and a reusable calibration cache. ``legacy=True`` forces this path on any 10.x (it is the
  only one sonoedge places on DLA).
- 10.1 and newer, and 11: *strongly typed*. TensorRT 10.1 deprecated the calibrators and implicit
  quantization (it still builds with builder flags; nothing changed its default), so sonoedge
  switches there; TensorRT 11 removed BuilderFlag.FP16/INT8 and the calibrators (TensorRT 10.x-to-11.x
  migration guide, "Removed Python APIs": "BuilderFlag.FP16 -> Strong typing", "BuilderFlag.INT8 /
  IBuilderConfig.int8_calibrator -> Explicit quantization with Q/DQ nodes"). The precision is in the
  ONNX: model.onnx (fp32), model.fp16.onnx (fp16 casts by onnxconverter-common), model.int8.qdq.onnx
  (explicit Q/DQ); the network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``
  (10.x; 11 is strongly typed whatever the flag) and no precision flags.

On both paths an fp32 build clears ``BuilderFlag.TF32`` (set by default in 8.5-11.x): TF32 rounds
conv and matmul inputs to a 10-bit mantissa, which breaks the fp32 gate (max abs error 1e-4 against
PyTorch; tests/runtime/backends/tensorrt/test_tf32.py shows it on the default bundle).

DLA builds (builder-flag path, fp16/int8) use static shapes (MIN = OPT = MAX = the profile's OPT;
DLA has no dynamic shapes), ask TensorRT layer by layer whether DLA can run it
(``IBuilderConfig.can_run_on_DLA``) and fail, naming the layers, unless GPU fallback was asked for.

A :class:`BuildSpec` is plain data (what :func:`sonoedge.runtime.bundle.engine.build_spec` makes
from a bundle and a device profile); :func:`trtexec_command` prints the equivalent stock build;
:func:`build_serialized` runs it and needs ``tensorrt``, imported lazily. Everything but
``build_serialized`` runs and is tested on any machine; the TensorRT names it uses are checked
against the real bindings of each version by tests/runtime/backends/tensorrt/test_api_tier.py.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from sonoedge.runtime.errors import BundleError, InputError, SonoedgeError

STRONGLY_TYPED_FROM = (10, 1)  # TensorRT deprecated calibrators here; sonoedge builds strongly typed from here unless --legacy
TIMING_CACHE = "timing.cache"
# where `sonoedge build-engine` writes the INT8 calibration cache (the engine cache root), as a shell word
CALIB_CACHE_DIR = "${SONOEDGE_CACHE:-$HOME/.cache/sonoedge}/engines"

Progress = Callable[[str], None]


def parse_version(text: str) -> tuple[int, int, int]:
    """'10.3.0.30' -> (10, 3, 0); InputError for anything without a leading major.minor."""
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not match:
        raise InputError(f"cannot read a TensorRT version from '{text}' (expected e.g. 10.3.0)")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def build_mode(trt_version: str | tuple[int, ...], legacy: bool = False) -> str:
    """'builder_flags' or 'strongly_typed' for a TensorRT version (see module doc)."""
    version = parse_version(trt_version) if isinstance(trt_version, str) else tuple(trt_version)
    if version[0] >= 11:
        if legacy:
            raise InputError("TensorRT 11 removed the builder precision flags and calibrators; "
                             "drop --legacy (the strongly typed build from the fp16/Q-DQ ONNX is the only path)")
        return "strongly_typed"
    if version[0] < 8 or (version[0] == 8 and version[1] < 5):
        raise InputError(f"TensorRT {'.'.join(map(str, version))} is too old; sonoedge builds with 8.5 or newer")
    if legacy or tuple(version[:2]) < STRONGLY_TYPED_FROM:
        return "builder_flags"
    return "strongly_typed"


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    """Everything one engine build needs; ``to_dict`` goes into engine_plan.json and the sidecar."""

    precision: str  # fp32 | fp16 | int8
    mode: str  # builder_flags | strongly_typed
    onnx: str  # bundle-relative ONNX file parsed
    input_name: str
    shapes: dict[str, tuple[int, int, int, int]]  # min/opt/max NCHW
    workspace_mb: int
    flags: tuple[str, ...]  # BuilderFlag names set (builder_flags mode)
    calibrator: str | None  # "entropy2" for int8 builder flags
    dla_core: int | None
    profile: str
    clear_flags: tuple[str, ...] = ()  # BuilderFlag names cleared: TF32 for fp32 (both modes)
    allow_gpu_fallback: bool = False  # DLA: layers DLA cannot run go to the GPU (else the build fails)
    calibration_cache: str | None = None  # file name of the INT8 calibration cache build-engine writes

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        data["flags"] = list(self.flags)
        data["clear_flags"] = list(self.clear_flags)
        return data


def profile_shapes(size_range: dict[str, Sequence[int]], channels: int, stride: int,
                   batch: int = 1) -> dict[str, tuple[int, int, int, int]]:
    """min/opt/max (N, C, H, W) with H and W rounded up to the stride (what the padded input is)."""
    out = {}
    for name in ("min", "opt", "max"):
        if name not in size_range:
            raise InputError(f"size range lacks '{name}' (need min, opt and max as [H, W])")
        h, w = (int(v) for v in size_range[name])
        out[name] = (batch, channels, -(-h // stride) * stride, -(-w // stride) * stride)
    if not all(out["min"][i] <= out["opt"][i] <= out["max"][i] for i in (2, 3)):
        raise InputError(f"size range must satisfy min <= opt <= max, got {size_range}")
    return out


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


def trtexec_command(spec: BuildSpec, generation: int, engine_name: str | None = None) -> str:
    """The equivalent stock ``trtexec`` line (run in the bundle directory) for TensorRT 10 or 11."""
    name = spec.input_name
    parts = ["trtexec", f"--onnx={spec.onnx}",
             f"--minShapes={name}:{_dims(spec.shapes['min'])}",
             f"--optShapes={name}:{_dims(spec.shapes['opt'])}",
             f"--maxShapes={name}:{_dims(spec.shapes['max'])}",
             f"--memPoolSize=workspace:{spec.workspace_mb}",  # MiB when no suffix, in 8.6, 10 and 11
             f"--timingCacheFile={TIMING_CACHE}"]
    if spec.mode == "strongly_typed":
        if generation < 11:
            parts.append("--stronglyTyped")  # always on in TensorRT 11, a flag in 10.x
    else:
        if generation >= 11:
            raise InputError("TensorRT 11 has no builder precision flags; use the strongly typed spec")
        parts += [f"--{flag.lower()}" for flag in spec.flags if flag in ("FP16", "INT8")]
        if spec.calibrator:
            parts.append(f"--calib={CALIB_CACHE_DIR}/{spec.calibration_cache or 'calib.trt_int8.cache'}")
    if "TF32" in spec.clear_flags:
        parts.append("--noTF32")
    if spec.dla_core is not None:
        parts.append(f"--useDLACore={spec.dla_core}")
        if spec.allow_gpu_fallback:
            parts.append("--allowGPUFallback")
    parts.append(f"--saveEngine={engine_name or f'model.{spec.precision}.{spec.profile}.plan'}")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------
# the builder itself (needs tensorrt; never imported at module level)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """A serialized plan and what the build found out on the way."""

    plan: bytes
    dla: dict[str, Any] | None = None  # DLA builds: {"core", "on_dla": [...], "gpu_fallback": [...]} (layer names)


def build_serialized(spec: BuildSpec, bundle_dir: str | Path, calibrator: Any = None,
                     timing_cache: str | Path | None = None, progress: Progress = print, trt: Any = None) -> BuildResult:
    """Parse the ONNX, configure per ``spec`` and return the serialized plan.

    ``trt`` is the tensorrt module (imported here when None). ``calibrator`` is required for an
    int8 builder-flag build (runtime/backends/tensorrt/calibrator.py); its ``shape`` becomes the
    calibration profile. The timing cache file is read when present and rewritten after the build.
    """
    if trt is None:
        from sonoedge.runtime.errors import require

        trt = require("tensorrt", "tensorrt")
    version = parse_version(trt.__version__)
    if build_mode(version, legacy=spec.mode == "builder_flags" and version[0] < 11) != spec.mode:
        raise SonoedgeError(f"build spec is for the {spec.mode} path but TensorRT {trt.__version__} takes the other; "
                            "rebuild the spec with this TensorRT version")
    if spec.calibrator and calibrator is None:
        raise InputError("an int8 builder-flag build needs a calibrator (calibration frames); pass --calib or use a bundle with calibration tiles")
    onnx_path = Path(bundle_dir) / spec.onnx
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, version, spec))
    parser = trt.OnnxParser(network, logger)
    progress(f"build-engine: parsing {spec.onnx} ({spec.mode})")
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_name, spec.shapes["min"], spec.shapes["opt"], spec.shapes["max"])
    config.add_optimization_profile(profile)
    for flag in spec.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in spec.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    if spec.calibrator:
        _attach_calibrator(trt, builder, config, spec, calibrator)
    dla = _place_on_dla(trt, network, config, spec, progress) if spec.dla_core is not None else None
    cache = _attach_timing_cache(config, timing_cache)
    monitor = _progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    progress(f"build-engine: building {spec.precision} for {spec.profile} (this takes minutes on a Jetson)")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SonoedgeError(f"TensorRT failed to build {spec.onnx} ({spec.precision}, {spec.mode}); see the log above")
    if cache is not None and timing_cache is not None:
        Path(timing_cache).write_bytes(bytes(cache.serialize()))
    return BuildResult(bytes(plan), dla)


def calibration_profile_shape(spec: BuildSpec, calibrator: Any) -> tuple[int, int, int, int]:
    """The (B, C, H, W) TensorRT will calibrate at: the calibrator's batch shape, checked.

    TensorRT reads one batch of the calibration profile's OPT shape from the calibrator's buffer,
    so the two must be the same shape, byte for byte.
    """
    shape = tuple(int(v) for v in calibrator.shape)
    if len(shape) != 4 or shape[1] != spec.shapes["opt"][1]:
        raise InputError(f"calibration batches {shape} do not match the network input {spec.shapes['opt']} (N, C, H, W)")
    if int(calibrator.nbytes) != 4 * shape[0] * shape[1] * shape[2] * shape[3]:
        raise SonoedgeError(f"the calibrator's buffer ({calibrator.nbytes} bytes) does not hold one float32 batch of {shape}")
    return shape  # type: ignore[return-value]


def _attach_calibrator(trt: Any, builder: Any, config: Any, spec: BuildSpec, calibrator: Any) -> None:
    """INT8 calibrator + a calibration profile of its own: MIN = OPT = MAX = the calibration batch."""
    shape = calibration_profile_shape(spec, calibrator)
    calib_profile = builder.create_optimization_profile()
    calib_profile.set_shape(spec.input_name, shape, shape, shape)
    config.int8_calibrator = calibrator
    if not config.set_calibration_profile(calib_profile):
        raise SonoedgeError(f"TensorRT refused the calibration profile {shape} for input '{spec.input_name}'")


def _place_on_dla(trt: Any, network: Any, config: Any, spec: BuildSpec, progress: Progress) -> dict[str, Any]:
    """Put the network on DLA core ``spec.dla_core``; per layer, whether DLA runs it or the GPU would.

    Fails (naming the layers) when a layer cannot run on DLA and GPU fallback was not asked for.
    """
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(spec.dla_core)
    on_dla, fallback = [], []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        (on_dla if config.can_run_on_DLA(layer) else fallback).append(f"{layer.name} ({layer.type.name})")
    report = {"core": int(spec.dla_core), "on_dla": on_dla, "gpu_fallback": fallback}
    progress(f"build-engine: DLA {spec.dla_core}: {len(on_dla)} layer(s) on DLA, {len(fallback)} on the GPU"
             + (f": {', '.join(fallback)}" if fallback else ""))
    if fallback and not spec.allow_gpu_fallback:
        shown = ", ".join(fallback[:5]) + (f" and {len(fallback) - 5} more" if len(fallback) > 5 else "")
        raise SonoedgeError(f"DLA cannot run {len(fallback)} layer(s) of {spec.onnx} ({shown}); "
                            "add --allow-gpu-fallback to run them on the GPU, or build without --dla-core")
    return report


def _network_flags(trt: Any, version: tuple[int, int, int], spec: BuildSpec) -> int:
    flags = 0
    if version[0] < 10:  # explicit batch is the only mode from 10.0 on (flag deprecated there)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if spec.mode == "strongly_typed":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def _attach_timing_cache(config: Any, path: str | Path | None) -> Any:
    if path is None:
        return None
    path = Path(path)
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _progress_monitor(trt: Any, progress: Progress) -> Any:
    """A trt.IProgressMonitor (TensorRT >= 10) that reports phases; None on older versions."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress(f"build-engine:   {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # keep building

        def phase_finish(self, phase_name):
            pass

    return Monitor()
