"""``sonoedge bench-export BUNDLE CKPT``: ONNX Runtime CPU latency of each precision beside PyTorch eager.

    sonoedge bench-export BUNDLE CKPT [--rounds 20] [--threads 2] [--size 256]

Prints a Markdown table (median and p90 ms per frame, speed against PyTorch eager) and the machine line.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle")
    parser.add_argument("checkpoint")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, help="tile the reference frames up to SIZE x SIZE")


def run(args: argparse.Namespace) -> int:
    from sonoedge.export.bench import bench_bundle

    print(bench_bundle(args.bundle, args.checkpoint, args.rounds, args.threads, args.size))
    return 0
