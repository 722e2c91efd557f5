"""``sonoedge verify BUNDLE``: prove this machine reproduces the bundle's PyTorch reference.

Exit 0 when every checked precision passes its gate (a precision the bundle kept as degraded is
reported and, without ``--strict``, does not fail the command); exit 3 (GateError) otherwise;
exit 2 when the bundle is tampered with or malformed (the message names the file).
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


def run(args: argparse.Namespace) -> int:
    import json

    from sonoedge.runtime.bundle.verify import verify_bundle
    from sonoedge.runtime.errors import GateError

    wanted = None if args.precision == "all" else [p.strip() for p in args.precision.split(",") if p.strip()]
    checks = verify_bundle(args.bundle, backend=args.backend, precisions=wanted)
    if args.json:
        print(json.dumps({c.precision: {**c.result.to_dict(), "degraded": c.degraded, "backend": c.backend}
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
    failed = [c for c in checks if not c.ok and (args.strict or not c.degraded)]
    if failed:
        raise GateError(f"{len(failed)} precision(s) failed their accuracy gate here: "
                        f"{', '.join(c.precision for c in failed)}")
    return 0
