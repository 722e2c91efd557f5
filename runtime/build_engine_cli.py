"""``sonoedge build-engine BUNDLE``: build and cache the TensorRT engine of a bundle on this device.

The device profile is the detected one (``--profile`` overrides; the bundle's own copy of the
profile is preferred over the installed one), the precision the first of the profile's preferred
precisions the bundle holds (``--precision`` overrides), the path chosen by the TensorRT version
found (runtime/trt_build.py). An engine already cached under the same key is reused. ``--dry-run``
prints the build (and the equivalent trtexec line) without TensorRT, on any machine.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory or .tar")
    parser.add_argument("--precision", help="fp32, fp16 or int8 (default: the profile's first preferred one in the bundle)")
    parser.add_argument("--profile", help="device profile name (default: detected)")
    parser.add_argument("--cache", help="engine cache directory (default: $SONOEDGE_CACHE/engines or ~/.cache/sonoedge/engines)")
    parser.add_argument("--calib", help="calibration frames for the legacy INT8 path (default: the bundle's tiles)")
    parser.add_argument("--legacy", action="store_true", help="TensorRT 10.x: builder flags + calibrator instead of strongly typed")
    parser.add_argument("--dla-core", type=int, help="place the network on this DLA core, GPU fallback (profiles with DLA; "
                        "fp16/int8 on the builder-flag path, so --legacy on TensorRT >= 10.1)")
    parser.add_argument("--no-dla", action="store_true", help="GPU only (the default unless --dla-core is given)")
    parser.add_argument("--trt-version", help="with --dry-run: plan for this TensorRT version instead of the installed one")
    parser.add_argument("--dry-run", action="store_true", help="print the build spec and trtexec line; build nothing")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has the engine")


def _profile(root, manifest, name):
    from pathlib import Path

    from sonoedge.devices.detect import detect_device
    from sonoedge.devices.profiles import load_profile, load_profile_file

    if name is None:
        detected = detect_device()
        print(f"build-engine: detected {detected.profile.name} ({detected.reason})", flush=True)
        name = detected.profile.name
    local = Path(root) / "devices" / f"{name}.toml"
    return load_profile_file(local) if local.is_file() else load_profile(name)


def _precision(args, manifest, profile) -> str:
    from .errors import BundleError

    kept = [p for p, e in manifest["precisions"].items() if e.get("passed") or e.get("degraded")]
    if args.precision:
        return args.precision
    for precision in profile.precisions:
        if precision in kept:
            return precision
    raise BundleError(f"the bundle holds none of {profile.name}'s precisions ({', '.join(profile.precisions)})")


def run(args: argparse.Namespace) -> int:
    import json

    from .engine_cache import EngineCache, describe_current_gpu
    from .errors import InputError, require
    from .manifest import load_manifest, sha256_file
    from .trt_build import build_serialized, build_spec, trtexec_command

    root, manifest = load_manifest(args.bundle)
    profile = _profile(root, manifest, args.profile)
    precision = _precision(args, manifest, profile)
    if not profile.has_tensorrt and not (args.dry_run and args.trt_version):
        raise InputError(f"device profile {profile.name} has no TensorRT; run the bundle with ONNX Runtime "
                         "(sonoedge verify/enhance --backend onnxruntime) or pass --profile NAME of a TensorRT device")
    if args.dry_run:
        version = args.trt_version or profile.tensorrt.replace(".x", ".0") or "10.3"
        spec = build_spec(manifest, profile, precision, version, args.legacy, None if args.no_dla else args.dla_core)
        generation = 11 if int(version.split(".")[0]) >= 11 else 10
        print(json.dumps({**spec.to_dict(), "tensorrt": version, "trtexec": trtexec_command(spec, generation)}, indent=2))
        return 0
    trt = require("tensorrt", "tensorrt")
    spec = build_spec(manifest, profile, precision, trt.__version__, args.legacy, None if args.no_dla else args.dla_core)
    # the key names the bundle's model of this precision (what the TensorRT backend hashes), whichever
    # ONNX the build path parses (the legacy path parses model.onnx for every precision)
    model_path = root / manifest["precisions"][precision]["file"]
    key = describe_current_gpu().key(precision, spec.dla_core, sha256_file(model_path))
    cache = EngineCache(args.cache)
    hit = cache.lookup(key)
    if hit is not None and not args.force:
        print(f"build-engine: cached engine {hit} (key {key.digest()}) is up to date", flush=True)
        return 0
    calibrator = None
    if spec.calibrator:
        calibrator = _calibrator(root, manifest, args.calib, spec, cache.root)
    progress = lambda line: print(line, flush=True)  # noqa: E731
    plan = build_serialized(spec, root, calibrator=calibrator, timing_cache=cache.root / "timing.cache",
                            progress=progress, trt=trt)
    if not plan:
        raise InputError("TensorRT returned an empty engine")
    path = cache.store(key, plan, {"spec": spec.to_dict(), "bundle_model": manifest["model"].get("name"),
                                   "source_checkpoint": manifest.get("source_checkpoint", {})})
    print(f"build-engine: engine cached at {path} ({len(plan) / 1e6:.1f} MB)", flush=True)
    return 0


def _calibrator(root, manifest, calib, spec, cache_root):
    from .trt_build import CALIBRATION_TILES
    from .trt_calibrator import CalibrationBatches, load_tiles, make_entropy_calibrator

    if calib:
        from .readers import iter_frames

        h, w = spec.shapes["opt"][2:]  # top-left crops at the profile's opt shape; smaller frames are skipped
        tiles = [f[:h, :w].copy() for f in iter_frames(calib) if f.shape[0] >= h and f.shape[1] >= w]
    else:
        tiles = load_tiles(root / CALIBRATION_TILES)
    batches = CalibrationBatches(tiles, batch_size=1)
    model_sha = manifest["files"][manifest["precisions"]["fp32"]["file"]][:16]
    cache_file = cache_root / f"calib-{model_sha}.trt_int8.cache"  # reused by later builds of this model
    print(f"build-engine: INT8 calibration cache {cache_file} ({len(tiles)} frames; reused when present; "
          "trtexec --calib=<this file> builds the same engine)", flush=True)
    return make_entropy_calibrator(batches, cache_file)
