"""``sonoedge sr-eval``: the SR paper's evaluation (Liu et al. Tables II-III) on the realus/hc18 frames.

    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-hc18 \\
        --methods bicubic,bicubic-bp,zero-shot --threads 1
    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-hc18 --report

Outputs that exist are not recomputed; prints the PSNR / SSIM / IFC table (also OUT/results.md).
"""
from __future__ import annotations

import argparse

# sonoedge.train.sr.evaluate_hc18.METHODS, repeated so that --help imports nothing heavy
# (tests/commands/test_tools.py checks the two match)
METHODS = ("bicubic", "bicubic-bp", "zero-shot", "dataset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--realus", required=True, help="the realus folder (holds hc18/)")
    parser.add_argument("--out", required=True, help="output folder for SR images and results")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--artifacts", default="runs/sr-artifacts", help="where dataset-mode checkpoints go")
    parser.add_argument("--config", help="SRConfig TOML applied before the evaluation overrides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="SRConfig override (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--report", action="store_true", help="only score the outputs that exist")
    parser.add_argument("--tag", default="", help="suffix of the output folders (a variant, e.g. '-8way')")
    parser.add_argument("--frames", default="", help="comma-separated frame names (default: all)")


def run(args: argparse.Namespace) -> int:
    from sonoedge.train.sr.evaluate_hc18 import evaluate_hc18

    table = evaluate_hc18(args.realus, args.out, methods=_names(args.methods), artifacts=args.artifacts,
                          config=args.config, overrides=args.set, threads=args.threads, report_only=args.report,
                          tag=args.tag, frames=_names(args.frames))
    print(table)
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
