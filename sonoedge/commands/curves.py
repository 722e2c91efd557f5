"""``sonoedge curves RUN_DIR OUT``: validation curves of a training run (LNCC, SSIM, PSNR, LPIPS per epoch).

    sonoedge curves runs/journal docs/img/training_curves.png

Reads ``RUN_DIR/log.jsonl`` and writes the PNG atomically; prints its path.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--title", default="")


def run(args: argparse.Namespace) -> int:
    from sonoedge.train.curves import plot_curves

    print(plot_curves(args.run_dir, args.out, args.title))
    return 0
