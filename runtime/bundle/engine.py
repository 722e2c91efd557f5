"""A bundle's TensorRT engines: the build plan written at export and the build run on the device.

Engines are never shipped (DESIGN.md, Contracts: Bundle): export writes ``engine_plan.json``, the
exact TensorRT 10 and 11 builds for every device profile with their ``trtexec`` lines, so a device
builds with stock tools too; :func:`build_engine` is the one build that ``sonoedge build-engine``
and the model loader (``enhancer.build_engine = true``) both run: it reads the bundle, picks the
profile and precision, and caches the plan under the key of
:func:`sonoedge.runtime.backends.tensorrt.cache.engine_key` (the one place the key is composed).

    spec = build_spec(manifest, profile, precision="int8", trt_version="10.3.0")
    plan = build_engine(bundle_dir, precision="fp16", progress=print)   # cached plan file
    precision = resolve_precision(manifest, profile, "auto")             # the rule enhance/serve use too
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from sonoedge.runtime.backends.tensorrt.build import (
    TIMING_CACHE,
    BuildSpec,
    build_mode,
    parse_version,
    profile_shapes,
    trtexec_command,
)
from sonoedge.runtime.bundle.manifest import PRECISION_FILES, Manifest, bundle_file, load_manifest
from sonoedge.runtime.errors import BundleError, InputError, require
from sonoedge.runtime.precision import AUTO, check_precision

PLAN_SCHEMA = 1
CALIBRATION_TILES = "calibration/tiles.npz"  # the bundle's INT8 calibration frames (legacy builder path)


def calibration_cache_name(manifest: Manifest) -> str:
    """The file build-engine writes the legacy INT8 calibration cache to (in the engine cache root)."""
    fp32 = "fp32" if "fp32" in manifest.precisions else next(iter(manifest.precisions))
    return f"calib-{manifest.files[manifest.precisions[fp32].file][:16]}.trt_int8.cache"


# -- one precision rule for build-engine, enhance and serve ---------------------------------------
def resolve_precision(manifest: Manifest, profile: Any, requested: str | None = None, bundle: Any = "BUNDLE") -> str:
    """``requested``, else (None or ``auto``) the first of the profile's preferred precisions the bundle kept.

    The one rule behind ``build-engine``, ``enhance`` and ``serve``, so a TensorRT engine built
    with the default precision is the one the stream then looks for.
    """
    if requested and requested != AUTO:
        check_precision(requested)
        if requested not in manifest.precisions:
            have = ", ".join(manifest.precisions) or "none"
            raise BundleError(f"bundle {bundle} has no {requested} model (it has: {have}); pass --precision with one it "
                              f"has, or re-export with `sonoedge export CHECKPOINT --precisions {requested}`")
        return requested
    kept = manifest.kept_precisions()
    for precision in profile.precisions:
        if precision in kept:
            return precision
    raise BundleError(f"the bundle {bundle} holds none of {profile.name}'s precisions ({', '.join(profile.precisions)}); "
                      f"re-export it with `sonoedge export ... --target {profile.name}`"
                      + (f" or pass --precision {kept[0]}" if kept else ""))


def build_spec(manifest: Manifest, profile: Any, precision: str, trt_version: str,
               legacy: bool = False, dla_core: int | None = None, allow_gpu_fallback: bool = False) -> BuildSpec:
    """The build of ``precision`` for device ``profile`` (a DeviceProfile) with this TensorRT.

    ``dla_core``: None = GPU only (the default, so the engine cache key of build-engine and of the
    TensorRT backend agree); an index places the network on that DLA core, which needs a profile
    with DLA and an fp16/int8 build on the builder-flag path. DLA runs static shapes only, so a DLA
    build has MIN = OPT = MAX = the profile's OPT; layers DLA cannot run fail the build unless
    ``allow_gpu_fallback``.
    """
    if precision not in PRECISION_FILES:
        raise InputError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISION_FILES)}")
    precisions = manifest.precisions
    if precision not in precisions:
        have = ", ".join(precisions) or "none"
        raise BundleError(f"the bundle has no {precision} model (it has: {have}); re-export with --precisions {precision}")
    mode = build_mode(trt_version, legacy)
    model = manifest.model
    shapes = profile_shapes(profile.input.to_dict(), model.channels, model.stride)
    calibration_cache = None
    if mode == "strongly_typed":
        onnx, flags, calibrator = precisions[precision].file, (), None
    else:
        onnx = precisions["fp32"].file if "fp32" in precisions else PRECISION_FILES["fp32"]
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        calibrator = "entropy2" if precision == "int8" else None
        calibration_cache = calibration_cache_name(manifest) if calibrator and manifest.files else None
    core = _dla_core(profile, precision, mode, dla_core)
    if core is not None:
        shapes = {name: shapes["opt"] for name in ("min", "opt", "max")}  # DLA: static shapes only
        if allow_gpu_fallback:
            flags = (*flags, "GPU_FALLBACK")
    clear = ("TF32",) if precision == "fp32" else ()  # fp32 means fp32: TF32 would fail the fp32 gate
    return BuildSpec(precision, mode, onnx, model.input_name, shapes, int(profile.workspace_mb),
                     tuple(flags), calibrator, core, profile.name, clear, bool(allow_gpu_fallback and core is not None),
                     calibration_cache)


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
                 "trt10_legacy: builder flags + IInt8EntropyCalibrator2 (TensorRT 8.5-10.0, or --legacy on 10.x); "
                 "its trtexec --calib names the calibration cache that `sonoedge build-engine --legacy --precision int8` "
                 "writes into the engine cache, since trtexec cannot read calibration frames itself; "
                 "trt10 / trt11: strongly typed from the fp16 or Q/DQ ONNX (TensorRT >= 10.1; always in 11). "
                 "fp32 builds clear TF32 (--noTF32). DLA builds use static shapes (the profile's opt) and fail on "
                 "layers DLA cannot run unless --allowGPUFallback (build-engine --allow-gpu-fallback)."),
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
        progress(f"detected device {detected.profile.name} ({detected.reason})")
        name = detected.profile.name
    local = f"devices/{name}.toml"
    return load_profile_file(bundle_file(root, manifest, local)) if local in manifest.files else load_profile(name)


# A profile that says "N.x" runs whichever TensorRT N is installed; its plan is made for this version
# of N (10.3: JetPack 6's, the 10.x the API tier checks; from 10.1 on the strongly typed path).
UNPINNED_TRT = {8: "8.6", 10: "10.3", 11: "11.0"}


def declared_trt_version(profile: Any) -> str:
    """The TensorRT version a profile declares, as a version a build can be planned for."""
    text = str(profile.tensorrt).strip()
    if not text:
        raise InputError(f"device profile {profile.name} has no TensorRT; run the bundle with ONNX Runtime "
                         "(sonoedge verify/enhance --backend onnxruntime) or pass --profile NAME of a TensorRT device")
    head, _, minor = text.partition(".")
    if minor in ("x", "") and head.isdigit() and int(head) in UNPINNED_TRT:
        return UNPINNED_TRT[int(head)]
    parse_version(text)  # InputError for anything unreadable
    return text


def dry_run(bundle: str | Path, precision: str | None = None, profile: str | None = None,
            trt_version: str | None = None, legacy: bool = False, dla_core: int | None = None,
            allow_gpu_fallback: bool = False, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The build :func:`build_engine` would run on the profile's TensorRT, with its trtexec line; needs no TensorRT.

    ``progress`` gets the detected-device line, so a caller printing the plan as JSON can keep it apart.
    """
    root, manifest = load_manifest(bundle)
    prof = device_profile(root, manifest, profile, progress)
    precision = resolve_precision(manifest, prof, precision, root)
    version = trt_version or declared_trt_version(prof)
    spec = build_spec(manifest, prof, precision, version, legacy, dla_core, allow_gpu_fallback)
    generation = 11 if parse_version(version)[0] >= 11 else 10
    return {**spec.to_dict(), "tensorrt": version, "trtexec": trtexec_command(spec, generation)}


def build_engine(bundle: str | Path, precision: str | None = None, profile: str | None = None,
                 cache: str | Path | None = None, calib: str | None = None, legacy: bool = False,
                 dla_core: int | None = None, force: bool = False, allow_gpu_fallback: bool = False,
                 progress: Callable[[str], None] = print) -> Path:
    """Build the bundle's TensorRT engine for this device and cache it; returns the plan file.

    The precision is :func:`resolve_precision`'s (the rule enhance and serve use too). An engine
    already cached under the same key is reused unless ``force``. The cache folder is made before
    anything is written into it. Needs ``tensorrt`` (extra ``sonoedge[tensorrt]``).
    """
    from sonoedge.runtime.backends.tensorrt.build import build_serialized
    from sonoedge.runtime.backends.tensorrt.cache import EngineCache, engine_key

    root, manifest = load_manifest(bundle)
    prof = device_profile(root, manifest, profile, progress)
    precision = resolve_precision(manifest, prof, precision, root)
    declared_trt_version(prof)  # a profile without TensorRT stops here, naming ONNX Runtime
    trt = require("tensorrt", "tensorrt")
    spec = build_spec(manifest, prof, precision, trt.__version__, legacy, dla_core, allow_gpu_fallback)
    key = engine_key(bundle_file(root, manifest, manifest.precisions[precision].file), precision, spec.dla_core)
    store = EngineCache(cache)
    hit = store.lookup(key)
    if hit is not None and not force:
        progress(f"build-engine: cached engine {hit} (key {key.digest()}) is up to date")
        return hit
    store.root.mkdir(parents=True, exist_ok=True)
    calibrator = _calibrator(root, manifest, calib, spec, store.root, progress) if spec.calibrator else None
    result = build_serialized(spec, root, calibrator=calibrator, timing_cache=store.root / TIMING_CACHE,
                              progress=progress, trt=trt)
    if not result.plan:
        raise InputError("TensorRT returned an empty engine")
    checkpoint = manifest.source_checkpoint
    extra = {"spec": spec.to_dict(), "bundle_model": manifest.model.name,
             "source_checkpoint": dataclasses.asdict(checkpoint) if checkpoint else {}, "dla": result.dla}
    path = store.store(key, result.plan, extra)
    progress(f"build-engine: engine cached at {path} ({len(result.plan) / 1e6:.1f} MB)")
    return path


def _calibrator(root: Path, manifest: Manifest, calib: str | None, spec: BuildSpec, cache_root: Path,
                progress: Callable[[str], None]) -> Any:
    """The legacy INT8 entropy calibrator over ``calib`` frames (their imaging regions), or the bundle's tiles."""
    from sonoedge.runtime.backends.tensorrt.calibrator import (
        CalibrationBatches,
        load_tiles,
        make_entropy_calibrator,
        region_tiles,
    )

    if calib:
        from sonoedge.runtime.readers import iter_frames

        tiles = region_tiles(list(iter_frames(calib)), spec.shapes["opt"][2:], spec.shapes["min"][2:],
                             manifest.model.stride)
    else:
        tiles = load_tiles(bundle_file(root, manifest, CALIBRATION_TILES))
    batches = CalibrationBatches(tiles, batch_size=1)
    cache_file = cache_root / (spec.calibration_cache or calibration_cache_name(manifest))  # reused by later builds
    progress(f"build-engine: INT8 calibration at {batches.shape[2]}x{batches.shape[3]} from {len(tiles)} frames; cache "
             f"{cache_file} (reused when present; trtexec --calib=<this file> builds the same engine)")
    return make_entropy_calibrator(batches, cache_file)
