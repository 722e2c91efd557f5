"""``sonoedge curves RUN_DIR OUT``: validation curves of a training run (LNCC, SSIM, PSNR, LPIPS per epoch).

    sonoedge curves runs/journal docs/img/training_curves.png

Reads ``RUN_DIR/log.jsonl`` and writes the PNG atomically; prints its path. An existing OUT is
refused unless ``--overwrite``; OUT is never the log itself.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--title", default="")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sonoedge.runtime.outputs import check_file
    from sonoedge.train.curves import plot_curves

    check_file(args.out, [Path(args.run_dir) / "log.jsonl"], args.overwrite)

    print(plot_curves(args.run_dir, args.out, args.title))
    return 0
