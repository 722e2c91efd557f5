"""``sonoedge demo``: the main job on the embedded default bundle, in a base install.

    sonoedge demo                               # a generated phantom clip -> ./sonoedge-demo/
    sonoedge demo --input my_clip.mp4 --out results/

Enhances a generated phantom clip (or the user's file) through the real runtime and writes
``enhanced.mp4``, ``side_by_side.png`` and ``report.json`` into ``--out`` (what each holds:
:mod:`sonoedge.train.demo`), then prints a short summary.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sonoedge.commands._args import add_config_arguments
from sonoedge.runtime.precision import AUTO, PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="a clip, image, DICOM, .mha sequence or folder (default: a generated phantom clip)")
    parser.add_argument("--out", default="sonoedge-demo", help="output folder, new or empty (default ./sonoedge-demo)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo's files (enhanced.mp4, input.mp4, side_by_side.png, report.json) in a "
                             "folder that is not empty; nothing else in it is touched")
    parser.add_argument("--frames", type=int, default=24, help="phantom clip length (default 24)")
    from sonoedge.train.demo import DEMO_SEED

    parser.add_argument("--seed", type=int, default=DEMO_SEED,
                        help=f"phantom scene seed (default {DEMO_SEED}: a scene outside the default model's training data)")
    from sonoedge.runtime.stream.enhancer import EnhancerConfig

    add_config_arguments(parser, EnhancerConfig, {"bundle": "bundle to run ('' = the embedded default bundle)",
                                                  "precision": "model precision"}, choices={"precision": (AUTO, *PRECISIONS)})


def run(args: argparse.Namespace) -> int:
    import json

    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.service.logs import setup_logging
    from sonoedge.train.demo import run_demo, summary

    setup_logging("warning", json_lines=False)
    if args.frames < 1:
        raise InputError("--frames must be at least 1")
    report = run_demo(args.input, Path(args.out), frames=args.frames, seed=args.seed, bundle=args.bundle,
                      precision=args.precision, overwrite=args.overwrite)
    print(summary(report))
    print(f"wrote {Path(args.out) / 'enhanced.mp4'}, side_by_side.png and report.json in {args.out}")
    if report["frames"]["out"] != report["frames"]["in"]:
        print(json.dumps(report["frames"]))
        return 1
    return 0
