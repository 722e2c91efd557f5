"""``sonoedge bench-sr``: CPU timings of the SR model (Liu et al.), PyTorch or an exported ONNX file.

    sonoedge bench-sr [--threads 1] [--repeats 5] [--iters 10]
    sonoedge bench-sr --blind                      # the blind generator (train/sr/blind.py)
    sonoedge bench-sr --onnx BUNDLE/model.onnx     # the exported generator, ONNX Runtime

Prints wall and process CPU time (medians over ``--repeats``) as JSON.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--onnx", help="time this exported model.onnx with ONNX Runtime instead")
    parser.add_argument("--blind", action="store_true", help="time the blind generator (train/sr/blind.py) instead")


def run(args: argparse.Namespace) -> int:
    import json

    from sonoedge.train.sr.bench import bench_blind, bench_onnx, bench_pytorch

    if args.blind:
        result = bench_blind(args.threads, args.repeats, args.iters)
    elif args.onnx:
        result = bench_onnx(args.onnx, args.threads, args.repeats)
    else:
        result = bench_pytorch(args.threads, args.repeats, args.iters)
    print(json.dumps(result, indent=2))
    return 0
