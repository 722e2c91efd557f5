"""``sonoedge bench-train``: training speed of the CycleGAN presets, the share of each loss term, and on
CUDA what each GPU setting buys.

    sonoedge bench-train --size 256 --batch 1 --steps 2 --threads 1 \\
        --preset athreya2024-conference --preset athreya2024-journal

Prints one JSON line per preset and mode as soon as it is timed.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", action="append", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-shares", dest="shares", action="store_false",
                        help="skip the loss-share runs (one more timing per loss term)")


def run(args: argparse.Namespace) -> int:
    import json

    from sonoedge.train.bench_train import bench_presets

    for row in bench_presets(args.preset, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup,
                             threads=args.threads, device=args.device, shares=args.shares):
        print(json.dumps(row), flush=True)
    return 0
