"""``sonoedge verify BUNDLE``: prove this machine reproduces the bundle's PyTorch reference.

Exit 0 when every checked precision passes its gate (a precision the bundle kept as degraded is
reported and, without ``--strict``, does not fail the command); exit 3 (GateError) otherwise;
exit 2 when the bundle is tampered with or malformed (the message names the file).

Each precision's fidelity gate (runtime/bundle/gates.py) is re-checked from the manifest's recorded
measures against today's thresholds (runtime/bundle/verify.py says why it is not re-run by default),
or re-run here on real frames with ``--fidelity-frames DIR``. A fidelity failure fails the command
like an accuracy failure (kept degraded: only with ``--strict``); "not checked" (a bundle made
before the gate, or exported without real frames) is printed as a warning and does not fail it.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory or .tar")
    parser.add_argument("--backend", default="onnxruntime", help="inference backend (default: onnxruntime)")
    parser.add_argument("--precision", default="all",
                        help="comma-separated precisions to check, or 'all' (default) for every one the bundle holds")
    parser.add_argument("--strict", action="store_true", help="fail on precisions kept as degraded too")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--fidelity-frames", metavar="DIR",
                        help="re-run the fidelity gate here on these real frames (a folder or file; HC18 frames get the "
                             "skull measures when annotations/hc18 lies beside it) instead of re-reading the manifest")
    parser.add_argument("--fidelity-per-group", type=int, default=3, metavar="N",
                        help="with --fidelity-frames: files per sub-folder (default 3)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from sonoedge.runtime.bundle.verify import verify_bundle
    from sonoedge.runtime.errors import GateError

    wanted = None if args.precision == "all" else [p.strip() for p in args.precision.split(",") if p.strip()]
    frames = None
    if args.fidelity_frames:
        from sonoedge.runtime.bundle.fidelity_check import Hc18Annotations, load_frames

        frames = load_frames(args.fidelity_frames, args.fidelity_per_group, Hc18Annotations.beside(args.fidelity_frames))
    checks = verify_bundle(args.bundle, backend=args.backend, precisions=wanted, fidelity_frames=frames,
                           progress=None if args.json else print)
    if args.json:
        print(json.dumps({c.precision: {**c.result.to_dict(), "degraded": c.degraded, "backend": c.backend,
                                        "fidelity": c.fidelity.to_dict()}
                          for c in checks}, indent=2))
    else:
        for c in checks:
            m = c.result.metrics
            status = "PASS" if c.ok else ("DEGRADED" if c.degraded else "FAIL")
            print(f"{c.precision:5} {status:8} backend={c.backend} max_abs={m.get('max_abs', float('nan')):.3g} "
                  f"p99={m.get('p99_abs', float('nan')):.3g} psnr={m.get('psnr', float('nan')):.2f} dB "
                  f"ssim={m.get('ssim', float('nan')):.4f} frames={int(m.get('frames', 0))}")
            for failure in c.result.failures:
                print(f"      {failure}")
            f = c.fidelity
            shown = {"pass": "PASS", "fail": "DEGRADED" if f.degraded else "FAIL", "not checked": "NOT CHECKED"}[f.status]
            print(f"      fidelity {shown}: {f.reason}")
            for failure in f.failures[:12]:
                print(f"        {failure}")
            if len(f.failures) > 12:
                print(f"        ... and {len(f.failures) - 12} more (--json lists them all)")
    failed = [c for c in checks if not c.ok and (args.strict or not c.degraded)]
    unfaithful = [c for c in checks if c.fidelity.status == "fail" and (args.strict or not c.fidelity.degraded)]
    if failed or unfaithful:
        parts = []
        if failed:
            parts.append(f"{len(failed)} precision(s) failed their accuracy gate here: {', '.join(c.precision for c in failed)}")
        if unfaithful:
            parts.append(f"{len(unfaithful)} precision(s) failed the fidelity gate: "
                         f"{', '.join(c.precision for c in unfaithful)}")
        raise GateError("; ".join(parts))
    if any(c.fidelity.status == "not checked" for c in checks):
        print("warning: fidelity not checked for this bundle (no result on real frames); "
              "re-run it with --fidelity-frames DIR", file=sys.stderr)
    return 0
