"""``sonoedge devices``: list the device profiles and families, and say which one this machine is."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one profile (or family) in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--root", default="/", help="filesystem root for detection (testing a fake device tree)")


def run(args: argparse.Namespace) -> int:
    from sonoedge.devices.detect import detect_device
    from sonoedge.devices.profiles import families, load_profiles, resolve_target

    if args.name:
        target = resolve_target(args.name)
        print(json.dumps({"target": target.name, "profiles": [p.to_dict() for p in target.profiles]}, indent=2))
        return 0
    profiles = load_profiles()
    detected = detect_device(args.root)
    if args.json:
        print(json.dumps({"profiles": {n: p.to_dict() for n, p in profiles.items()}, "families": families(profiles),
                          "detected": {"name": detected.profile.name, "reason": detected.reason}}, indent=2))
        return 0
    header = f"{'name':22} {'family':7} {'gpu':10} {'cc':5} {'mem':>5} {'dla':>3} {'jetpack':7} {'trt':6} {'precisions':16} {'opt HxW':10} fps"
    print(header)
    for prof in profiles.values():
        mark = "*" if prof.name == detected.profile.name else " "
        opt = "x".join(map(str, prof.input.opt))
        print(f"{prof.name:22} {prof.family:7} {prof.gpu_arch or '-':10} {prof.compute_capability or '-':5} "
              f"{prof.memory_gb:>4}G {prof.dla_cores:>3} {prof.jetpack or '-':7} {prof.tensorrt or '-':6} "
              f"{','.join(prof.precisions):16} {opt:10} {prof.target_fps}{mark}")
    print("families: " + "; ".join(f"{f} = {', '.join(n)}" for f, n in families(profiles).items()))
    print(f"detected: {detected.profile.name} ({detected.reason})")
    return 0
