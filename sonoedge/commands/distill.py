"""``sonoedge distill``: a teacher (checkpoint or bundle) in, an INT8-ready edge student checkpoint out.

    sonoedge distill --teacher runs/t/best.pt --student edge-small --data phantom/ -o runs/student
    sonoedge distill --teacher default --student edge-nano --data mix/low -o runs/nano   # the shipped model teaches
    sonoedge distill ... --set steps=4000 --set lambda_temporal=1 --set lpips_trunk='"random"'

The student learns the teacher's outputs and features on the TRAIN split of the teacher's data
config (the test split stays unseen), then fine-tunes with INT8 fake quantization (train/distill.py).
A bundle teacher (``default``, a bundle directory or .tar) runs its fp32 ONNX model in ONNX Runtime
and learns from every image under ``--data`` (a bundle records no split: give train material only).
OUT receives student.pt (a normal checkpoint: ``sonoedge export OUT/student.pt --calib-method minmax``,
the range rule the fake quantization trained with; docs/results/edge.md), log.jsonl and
distill.json; OUT must be new or empty, or ``--overwrite`` replaces those three files only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

OUT_FILES = ("student.pt", "log.jsonl", "distill.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, type=Path, help="teacher: a checkpoint (.pt from sonoedge train), a bundle directory or .tar, or 'default' (the embedded bundle)")
    parser.add_argument("--student", default="edge-small", help="student generator: edge-nano, edge-tiny, edge-small (default), edge-base")
    parser.add_argument("--data", required=True, type=Path, help="the teacher's dataset folder (a checkpoint's train split is used; for a bundle, every image)")
    parser.add_argument("-o", "--out", required=True, type=Path, help="output folder for student.pt, log.jsonl, distill.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DistillConfig value, e.g. --set steps=4000 (repeatable; TOML values)")
    parser.add_argument("--overwrite", action="store_true", help="replace this command's files in a folder that is not empty")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.config import load_config
    from sonoedge.runtime.outputs import check_fill_folder
    from sonoedge.train.distill import DistillConfig, distill

    cfg = load_config(DistillConfig, None, [f"student={_toml(args.student)}", *args.overrides])
    check_fill_folder(args.out, OUT_FILES, [args.teacher, args.data], args.overwrite)
    path = distill(args.teacher, args.data, args.out, cfg, progress=not args.quiet)
    print(f"student checkpoint: {path}")
    return 0


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
