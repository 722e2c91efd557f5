"""``sonoedge device-check BUNDLE``: on an NVIDIA device, build every precision the device profile
lists, check each against the bundle's reference frames under its gate, time p50/p99 and report
the DLA placement, into one JSON and one Markdown report (runtime/bundle/device_check.py).

Without TensorRT it stops at once with one sentence saying so (exit 2).
"""
from __future__ import annotations

import argparse

from sonoedge.commands._args import add_config_arguments, config_from_args, csv_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sonoedge.runtime.bundle.device_check import DeviceCheckConfig

    parser.add_argument("bundle", help="bundle directory or .tar")
    add_config_arguments(parser, DeviceCheckConfig, {
        "profile": "device profile name ('' = detected)",
        "precisions": "comma-separated precisions ('' = every one of the profile the bundle holds)",
        "out": "folder for device_check.json and device_check.md",
        "cache": "engine cache folder ('' = $SONOEDGE_CACHE/engines or ~/.cache/sonoedge/engines)",
        "runs": "timed inferences per precision",
        "warmup": "untimed inferences first",
        "legacy": "TensorRT 10.x: builder flags + calibrator instead of strongly typed",
        "dla_core": "place the engines on this DLA core (-1 = GPU only)",
        "allow_gpu_fallback": "with --dla-core: run layers DLA cannot run on the GPU (default: fail)",
    }, types={"precisions": csv_list})


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.bundle.device_check import DeviceCheckConfig, device_check

    report = device_check(config_from_args(DeviceCheckConfig, args, bundle=args.bundle),
                          progress=lambda line: print(line, flush=True))
    failed = [p for p, r in report["precisions"].items() if not r["gate"]["passed"]]
    print(f"wrote {args.out}/device_check.json and device_check.md; "
          + (f"gate failed for {', '.join(failed)}" if failed else "every precision passed its gate"))
    return 3 if failed else 0
