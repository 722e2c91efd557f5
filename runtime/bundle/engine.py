"""A bundle's TensorRT engines: the build plan written at export and the build run on the device.

Engines are never shipped (DESIGN.md, Contracts: Bundle): export writes ``engine_plan.json``, the
exact TensorRT 10 and 11 builds for every device profile with their ``trtexec`` lines, so a device
builds with stock tools too; :func:`build_engine` is the one build that ``sonoedge build-engine``
and the model loader (``enhancer.build_engine = true``) both run: it reads the bundle, picks the
profile and precision, and caches the plan under the key of
:func:`sonoedge.runtime.backends.tensorrt.cache.engine_key` (the one place the key is composed).

    spec = build_spec(manifest, profile, precision="int8", trt_version="10.3.0")
    plan = build_engine(bundle_dir, precision="fp16", progress=print)   # cached plan file
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from sonoedge.runtime.backends.tensorrt.build import BuildSpec, build_mode, profile_shapes, trtexec_command
from sonoedge.runtime.bundle.manifest import PRECISION_FILES, Manifest, bundle_file, load_manifest
from sonoedge.runtime.errors import BundleError, InputError, require

PLAN_SCHEMA = 1
CALIBRATION_TILES = "calibration/tiles.npz"  # the bundle's INT8 calibration frames (legacy builder path)


def build_spec(manifest: Manifest, profile: Any, precision: str, trt_version: str,
               legacy: bool = False, dla_core: int | None = None) -> BuildSpec:
    """The build of ``precision`` for device ``profile`` (a DeviceProfile) with this TensorRT.

    ``dla_core``: None = GPU only (the default, so the engine cache key of build-engine and of the
    TensorRT backend agree); an index places the network on that DLA core with GPU fallback, which
    needs a profile with DLA and an fp16/int8 build on the builder-flag path.
    """
    if precision not in PRECISION_FILES:
        raise InputError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISION_FILES)}")
    if precision not in manifest.precisions:
        have = ", ".join(manifest.precisions) or "none"
        raise BundleError(f"the bundle has no {precision} model (it has: {have}); re-export with --precisions {precision}")
    mode = build_mode(trt_version, legacy)
    model = manifest.model
    shapes = profile_shapes(profile.input.to_dict(), model.channels, model.stride)
    if mode == "strongly_typed":
        onnx, flags, calibrator = manifest.precisions[precision].file, (), None
    else:
        onnx = manifest.precisions["fp32"].file if "fp32" in manifest.precisions else PRECISION_FILES["fp32"]
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        calibrator = "entropy2" if precision == "int8" else None
    core = _dla_core(profile, precision, mode, dla_core)
    if core is not None:
        flags = (*flags, "GPU_FALLBACK")
    return BuildSpec(precision, mode, onnx, model.input_name, shapes, int(profile.workspace_mb),
                     tuple(flags), calibrator, core, profile.name)


def _dla_core(profile: Any, precision: str, mode: str, requested: int | None) -> int | None:
    if requested is None:
        return None
    if profile.dla_cores == 0:
        raise InputError(f"device profile {profile.name} has no DLA core; drop --dla-core")
    if not 0 <= requested < profile.dla_cores:
        raise InputError(f"--dla-core {requested} is out of range: {profile.name} has {profile.dla_cores} DLA core(s)")
    # DLA runs fp16/int8 only, and sonoedge places it on the builder-flag path, where the layer
    # placement is TensorRT's (strongly typed networks pin precisions DLA may not support).
    if precision == "fp32" or mode != "builder_flags":
        raise InputError(f"DLA needs an fp16 or int8 build on the builder-flag path (--legacy); got {precision}, {mode}")
    return requested


def engine_plan(manifest: Manifest, profiles: Sequence[Any], precisions: Sequence[str]) -> dict[str, Any]:
    """engine_plan.json: per device profile and precision, the TensorRT 10 and 11 builds + trtexec lines."""
    plan: dict[str, Any] = {
        "schema": PLAN_SCHEMA,
        "note": ("Engines are built on the device (sonoedge build-engine BUNDLE), never shipped. "
                 "trt10_legacy: builder flags + IInt8EntropyCalibrator2 (TensorRT 8.5-10.0, or --legacy on 10.x; "
                 "trtexec --calib=trt_int8.cache needs the calibration cache that build-engine writes and prints, "
                 "since trtexec cannot read calibration frames itself); "
                 "trt10 / trt11: strongly typed from the fp16 or Q/DQ ONNX (TensorRT >= 10.1; always in 11)."),
        "calibration_tiles": CALIBRATION_TILES if "int8" in precisions else None,
        "profiles": {},
    }
    for profile in profiles:
        if not profile.tensorrt:
            continue  # ONNX Runtime only (the cpu profile): nothing to build
        entry: dict[str, Any] = {"tensorrt": profile.tensorrt, "dla_cores": profile.dla_cores, "builds": {}}
        for precision in precisions:
            legacy = build_spec(manifest, profile, precision, "10.0", legacy=True)
            typed10 = build_spec(manifest, profile, precision, "10.3")
            typed11 = build_spec(manifest, profile, precision, "11.0")
            builds = {
                "trt10_legacy": {**legacy.to_dict(), "trtexec": trtexec_command(legacy, 10)},
                "trt10": {**typed10.to_dict(), "trtexec": trtexec_command(typed10, 10)},
                "trt11": {**typed11.to_dict(), "trtexec": trtexec_command(typed11, 11)},
            }
            if profile.dla_cores and precision != "fp32":
                dla = build_spec(manifest, profile, precision, "10.0", legacy=True, dla_core=0)
                builds["trt10_legacy_dla"] = {**dla.to_dict(), "trtexec": trtexec_command(dla, 10)}
            entry["builds"][precision] = builds
        plan["profiles"][profile.name] = entry
    return plan


def device_profile(root: Path, manifest: Manifest, name: str | None = None,
                   progress: Callable[[str], None] = print) -> Any:
    """The device profile to build for: ``name``, else the detected device; the bundle's copy first
    (only when the manifest lists it, so its hash was checked)."""
    from sonoedge.devices.detect import detect_device
    from sonoedge.devices.profiles import load_profile, load_profile_file

    if name is None:
        detected = detect_device()
        progress(f"build-engine: detected {detected.profile.name} ({detected.reason})")
        name = detected.profile.name
    local = f"devices/{name}.toml"
    return load_profile_file(bundle_file(root, manifest, local)) if local in manifest.files else load_profile(name)


def choose_precision(manifest: Manifest, profile: Any, requested: str | None = None) -> str:
    """``requested``, else the first of the profile's preferred precisions that the bundle kept."""
    if requested:
        return requested
    kept = manifest.kept_precisions()
    for precision in profile.precisions:
        if precision in kept:
            return precision
    raise BundleError(f"the bundle holds none of {profile.name}'s precisions ({', '.join(profile.precisions)})")


def dry_run(bundle: str | Path, precision: str | None = None, profile: str | None = None,
            trt_version: str | None = None, legacy: bool = False, dla_core: int | None = None) -> dict[str, Any]:
    """The build :func:`build_engine` would run, with its trtexec line; needs no TensorRT."""
    root, manifest = load_manifest(bundle)
    prof = device_profile(root, manifest, profile)
    precision = choose_precision(manifest, prof, precision)
    if not prof.has_tensorrt and not trt_version:
        raise InputError(f"device profile {prof.name} has no TensorRT; run the bundle with ONNX Runtime "
                         "(sonoedge verify/enhance --backend onnxruntime) or pass --profile NAME of a TensorRT device")
    version = trt_version or prof.tensorrt.replace(".x", ".0") or "10.3"
    spec = build_spec(manifest, prof, precision, version, legacy, dla_core)
    generation = 11 if int(version.split(".")[0]) >= 11 else 10
    return {**spec.to_dict(), "tensorrt": version, "trtexec": trtexec_command(spec, generation)}


def build_engine(bundle: str | Path, precision: str | None = None, profile: str | None = None,
                 cache: str | Path | None = None, calib: str | None = None, legacy: bool = False,
                 dla_core: int | None = None, force: bool = False,
                 progress: Callable[[str], None] = print) -> Path:
    """Build the bundle's TensorRT engine for this device and cache it; returns the plan file.

    An engine already cached under the same key is reused unless ``force``. The cache folder is
    made before anything is written into it. Needs ``tensorrt`` (extra ``sonoedge[tensorrt]``).
    """
    from sonoedge.runtime.backends.tensorrt.build import build_serialized
    from sonoedge.runtime.backends.tensorrt.cache import EngineCache, engine_key

    root, manifest = load_manifest(bundle)
    prof = device_profile(root, manifest, profile, progress)
    precision = choose_precision(manifest, prof, precision)
    if not prof.has_tensorrt:
        raise InputError(f"device profile {prof.name} has no TensorRT; run the bundle with ONNX Runtime "
                         "(sonoedge verify/enhance --backend onnxruntime) or pass --profile NAME of a TensorRT device")
    trt = require("tensorrt", "tensorrt")
    spec = build_spec(manifest, prof, precision, trt.__version__, legacy, dla_core)
    key = engine_key(bundle_file(root, manifest, manifest.precisions[precision].file), precision, spec.dla_core)
    store = EngineCache(cache)
    hit = store.lookup(key)
    if hit is not None and not force:
        progress(f"build-engine: cached engine {hit} (key {key.digest()}) is up to date")
        return hit
    store.root.mkdir(parents=True, exist_ok=True)
    calibrator = _calibrator(root, manifest, calib, spec, store.root, progress) if spec.calibrator else None
    plan = build_serialized(spec, root, calibrator=calibrator, timing_cache=store.root / "timing.cache",
                            progress=progress, trt=trt)
    if not plan:
        raise InputError("TensorRT returned an empty engine")
    checkpoint = manifest.source_checkpoint
    path = store.store(key, plan, {"spec": spec.to_dict(), "bundle_model": manifest.model.name,
                                   "source_checkpoint": dataclasses.asdict(checkpoint) if checkpoint else {}})
    progress(f"build-engine: engine cached at {path} ({len(plan) / 1e6:.1f} MB)")
    return path


def _calibrator(root: Path, manifest: Manifest, calib: str | None, spec: BuildSpec, cache_root: Path,
                progress: Callable[[str], None]) -> Any:
    """The legacy INT8 entropy calibrator over ``calib`` frames, or the bundle's calibration tiles."""
    from sonoedge.runtime.backends.tensorrt.calibrator import CalibrationBatches, load_tiles, make_entropy_calibrator

    if calib:
        from sonoedge.runtime.readers import iter_frames

        h, w = spec.shapes["opt"][2:]  # top-left crops at the profile's opt shape; smaller frames are skipped
        tiles = [f[:h, :w].copy() for f in iter_frames(calib) if f.shape[0] >= h and f.shape[1] >= w]
    else:
        tiles = load_tiles(bundle_file(root, manifest, CALIBRATION_TILES))
    batches = CalibrationBatches(tiles, batch_size=1)
    model_sha = manifest.files[manifest.precisions["fp32"].file][:16]
    cache_file = cache_root / f"calib-{model_sha}.trt_int8.cache"  # reused by later builds of this model
    progress(f"build-engine: INT8 calibration cache {cache_file} ({len(tiles)} frames; reused when present; "
             "trtexec --calib=<this file> builds the same engine)")
    return make_entropy_calibrator(batches, cache_file)
