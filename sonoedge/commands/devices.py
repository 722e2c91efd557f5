"""``sonoedge devices``: list the device profiles and families, and say which one this machine is.

    sonoedge devices                                   # the profiles, and the detected one
    sonoedge devices --estimate BUNDLE [NAME] [--size 512x512] [--json]
        ESTIMATED time per frame per profile (or the profiles of NAME) and precision, from a per-layer
        roofline over the bundle's ONNX graph at each profile's opt size (devices/estimate.py); the
        assumptions are the [estimate] tables of the profile TOMLs. Not a measurement.
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one profile (or family) in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--root", default="/", help="filesystem root for detection (testing a fake device tree)")
    parser.add_argument("--estimate", metavar="BUNDLE", help="estimate time per frame of BUNDLE (or an .onnx) per profile and precision")
    parser.add_argument("--size", metavar="HxW", help="with --estimate: this input size instead of each profile's opt size")


def run(args: argparse.Namespace) -> int:
    from sonoedge.devices.detect import detect_device
    from sonoedge.devices.profiles import families, load_profiles, resolve_target

    if args.estimate:
        return _estimate(args)
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


def _estimate(args: argparse.Namespace) -> int:
    from sonoedge.devices.estimate import bundle_model, estimate_bundle, graph_layers
    from sonoedge.devices.profiles import load_profiles, resolve_target
    from sonoedge.runtime.errors import InputError

    size = None
    if args.size:
        try:
            size = tuple(int(v) for v in args.size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise InputError(f"--size '{args.size}' must be HxW, e.g. 512x512")
    profiles = list(resolve_target(args.name).profiles) if args.name else list(load_profiles().values())
    rows = estimate_bundle(args.estimate, profiles, size)
    macs_512 = sum(la.macs for la in graph_layers(bundle_model(args.estimate, "fp32"), (512, 512)))
    if args.json:
        print(json.dumps({"bundle": args.estimate, "gmacs_per_512x512_frame": macs_512 / 1e9, "rows": rows}, indent=2))
        return 0
    print(f"ESTIMATE (per-layer roofline; assumptions in each profile's [estimate] table; not measured): {args.estimate}")
    print(f"MACs per 512x512 frame: {macs_512 / 1e9:.3f} G")
    print(f"{'profile':22} {'HxW':9} {'prec':5} {'engine':6} {'ms':>7} {'fps':>7} {'GMAC':>7} {'layers':>6}  compute/memory/overhead ms")
    for r in rows:
        hw = "x".join(map(str, r["size"]))
        if r["ms"] is None:
            print(f"{r['profile']:22} {hw:9} {r['precision']:5} {r['engine']:6} {'-':>7} {'-':>7} {'-':>7} {'-':>6}  {r['note']}")
            continue
        print(f"{r['profile']:22} {hw:9} {r['precision']:5} {r['engine']:6} {r['ms']:7.3f} {r['fps']:7.0f} {r['gmacs']:7.3f} "
              f"{r['layers']:6d}  {r['compute_ms']:.3f}/{r['memory_ms']:.3f}/{r['overhead_ms']:.3f}")
    skipped = [p.name for p in profiles if p.estimate is None]
    if skipped:
        print(f"no [estimate] table (no estimate): {', '.join(skipped)}")
    return 0
