"""``sonoedge build-engine BUNDLE``: build and cache the TensorRT engine of a bundle on this device.

The device profile is the detected one (``--profile`` overrides; the bundle's own copy of the
profile is preferred over the installed one), the precision the first of the profile's preferred
precisions the bundle holds (``--precision`` overrides; the same rule ``enhance`` and ``serve`` use
for ``auto``), the path chosen by the TensorRT version found (runtime/backends/tensorrt/build.py).
An engine already cached under the same key is reused. ``--dry-run`` prints the build (and the
equivalent trtexec line) for the profile's declared TensorRT version without TensorRT, on any machine.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory or .tar")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "int8"),
                        help="default auto: the profile's first preferred precision the bundle holds (as enhance/serve)")
    parser.add_argument("--profile", help="device profile name (default: detected)")
    parser.add_argument("--cache", help="engine cache directory (default: $SONOEDGE_CACHE/engines or ~/.cache/sonoedge/engines)")
    parser.add_argument("--calib", help="calibration frames for the legacy INT8 path (default: the bundle's tiles)")
    parser.add_argument("--legacy", action="store_true", help="TensorRT 10.x: builder flags + calibrator instead of strongly typed")
    parser.add_argument("--dla-core", type=int, help="place the network on this DLA core, static shapes (profiles with DLA; "
                        "fp16/int8 on the builder-flag path, so --legacy on TensorRT >= 10.1)")
    parser.add_argument("--allow-gpu-fallback", action="store_true",
                        help="with --dla-core: run the layers DLA cannot run on the GPU (default: fail, naming them)")
    parser.add_argument("--no-dla", action="store_true", help="GPU only (the default unless --dla-core is given)")
    parser.add_argument("--trt-version", help="with --dry-run: plan for this TensorRT version instead of the profile's")
    parser.add_argument("--dry-run", action="store_true", help="print the build spec and trtexec line; build nothing")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has the engine")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from sonoedge.runtime.bundle.engine import build_engine, dry_run

    dla_core = None if args.no_dla else args.dla_core
    if args.dry_run:
        plan = dry_run(args.bundle, args.precision, args.profile, args.trt_version, args.legacy, dla_core,
                       args.allow_gpu_fallback, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(plan, indent=2))  # stdout holds the JSON alone
        return 0
    build_engine(args.bundle, args.precision, args.profile, args.cache, args.calib, args.legacy, dla_core, args.force,
                 args.allow_gpu_fallback, progress=lambda line: print(line, flush=True))
    return 0
