"""``sonoedge bench-export BUNDLE CKPT``: ONNX Runtime CPU latency of each precision beside PyTorch eager.

    sonoedge bench-export BUNDLE CKPT [--rounds 20] [--threads 2] [--size 256]
    sonoedge bench-export BUNDLE --no-torch

Prints a Markdown table (median and p90 wall ms per frame, median CPU ms per frame, speed against
PyTorch eager and against ONNX Runtime fp32) with the machine, load and INT8 layout lines.
For the CPU INT8 layout (integer kernels), export with ``--int8-quantize-outputs --int8-remainder fp32``.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle")
    parser.add_argument("checkpoint", nargs="?", help="the checkpoint the bundle was exported from (for PyTorch eager; "
                        "not needed with --no-torch)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, help="tile the reference frames up to SIZE x SIZE")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch eager (slow for full-width generators)")


def run(args: argparse.Namespace) -> int:
    from sonoedge.export.bench import bench_bundle
    from sonoedge.runtime.errors import InputError

    if args.checkpoint is None and not args.no_torch:
        raise InputError("bench-export needs the CHECKPOINT for the PyTorch eager row, or --no-torch")

    print(bench_bundle(args.bundle, args.checkpoint, args.rounds, args.threads, args.size, torch_eager=not args.no_torch))
    return 0
