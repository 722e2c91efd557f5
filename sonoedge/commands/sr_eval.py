"""``sonoedge sr-eval``: SR on real high-end frames, scored against the originals.

The paper's evaluation (Liu et al. Tables II-III) on the realus/hc18 frames, LR made by the assumed
anti-aliased bicubic:

    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-hc18 \\
        --methods bicubic,bicubic-bp,zero-shot --threads 1
    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-hc18 --report

The evaluation over degradations the SR is not told about (train/sr/evaluate_degradations.py):

    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-deg --degradations all \\
        --methods bicubic,bicubic-bp,bp-est,dataset      # dataset: the shipped blind-sr weights
    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-deg --degradations all --methods zero-shot
    sonoedge sr-eval --realus ../shared/data/realus --out runs/sr-deg --degradations all --report \
        --handheld                                        # + handheld stills, fidelity measures

The blind generator's inference choices, measured on the validation split of its TRAINING folder
(train/sr/blind.py; never on the realus evaluation frames):

    sonoedge sr-eval --validation ../shared/data/realtrain/hc18 --validation-first 8 --validation-frames 2

Outputs that exist are not recomputed; prints the table (also OUT/results.md).
"""
from __future__ import annotations

import argparse

# sonoedge.train.sr.evaluate_hc18.METHODS and evaluate_degradations.METHODS / EVAL_DEGRADATIONS,
# repeated so that --help imports nothing heavy (tests/commands/test_tools.py checks they match)
METHODS = ("bicubic", "bicubic-bp", "zero-shot", "dataset")
DEGRADATION_METHODS = ("bicubic", "bicubic-bp", "bp-est", "dataset", "zero-shot", "liu-zero-shot")
# blind.VALIDATION_VARIANTS (the same test checks it)
VALIDATION_VARIANTS = ("dataset", "dataset-bp", "zero-shot", "zero-shot-internal", "zero-shot-internal-anchor",
                       "zero-shot-all", "zero-shot-family")
DEGRADATIONS = ("bicubic-aa", "bicubic-aa+speckle", "cubic", "cubic+speckle", "area", "area+speckle",
                "gauss1.5", "gauss1.5+speckle", "gauss2.5", "gauss2.5+speckle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--realus", help="the realus folder (holds hc18/ and clips/); required but with --validation")
    parser.add_argument("--out", help="output folder for SR images and results; required but with --validation")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated subset of {', '.join(METHODS)} (with --degradations: "
                             f"{', '.join(DEGRADATION_METHODS)}); default all")
    parser.add_argument("--degradations", default="", metavar="all|NAMES",
                        help=f"evaluate over these LR degradations ({', '.join(DEGRADATIONS)}; 'all')")
    parser.add_argument("--checkpoint", default=None, help="with --degradations: the dataset-mode checkpoint "
                                                           "(trained on realtrain, never on realus; default: the "
                                                           "shipped blind-sr weights)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="with --degradations: zero-shot training time per input (default: sonoedge sr's)")
    parser.add_argument("--zero-shot-frames", default="", help="with --degradations: frames for zero-shot "
                                                               "(default: one hc18 and one console frame)")
    parser.add_argument("--handheld", action="store_true",
                        help="with --degradations: also super-resolve crops of the realus handheld stills and "
                             "measure their fidelity (runtime/fidelity.py) to bicubic up-scaling (no ground truth)")
    parser.add_argument("--validation", default=None, metavar="TRAIN_FOLDER",
                        help="instead: the blind generator's inference choices (--methods: "
                             f"{', '.join(VALIDATION_VARIANTS)}) on the validation split of this training folder "
                             "(blind.py); --realus and --out are then not read")
    parser.add_argument("--validation-frames", type=int, default=2, help="with --validation: frames scored")
    parser.add_argument("--validation-first", type=int, default=0,
                        help="with --validation: index of the first validation frame scored (the checkpoint's "
                             "own choice used the first 8: start at 8 for frames it never saw)")
    parser.add_argument("--artifacts", default="runs/sr-artifacts", help="where dataset-mode checkpoints go")
    parser.add_argument("--config", help="SRConfig TOML applied before the evaluation overrides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="SRConfig override (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--report", action="store_true", help="only score the outputs that exist")
    parser.add_argument("--tag", default="", help="suffix of the output folders (a variant, e.g. '-8way')")
    parser.add_argument("--frames", default="", help="comma-separated frame names (default: all)")


def run(args: argparse.Namespace) -> int:
    if args.validation:
        return _validation(args)
    if not args.realus or not args.out:
        from sonoedge.runtime.errors import InputError

        raise InputError("sr-eval needs --realus (the realus folder) and --out (where the outputs go)")
    if args.degradations:
        return _degradations(args)
    from sonoedge.train.sr.evaluate_hc18 import evaluate_hc18

    methods = _names(args.methods) if args.methods else list(METHODS)
    table = evaluate_hc18(args.realus, args.out, methods=methods, artifacts=args.artifacts,
                          config=args.config, overrides=args.set, threads=args.threads, report_only=args.report,
                          tag=args.tag, frames=_names(args.frames))
    print(table)
    return 0


def _degradations(args: argparse.Namespace) -> int:
    from sonoedge.train.sr import evaluate_degradations as E

    degradations = list(DEGRADATIONS) if args.degradations == "all" else _names(args.degradations)
    methods = _names(args.methods) if args.methods else list(DEGRADATION_METHODS)
    kwargs = {}
    if args.budget is not None:
        kwargs["budget"] = args.budget
    if args.zero_shot_frames:
        kwargs["zero_shot_frames"] = _names(args.zero_shot_frames)

    def progress(method, degradation, name, info):
        print(f"{method} {degradation} {name}: {info['seconds']:.1f} s"
              + (f", {info['train_log']['iterations']} iterations" if "train_log" in info else ""), flush=True)

    table = E.evaluate(args.realus, args.out, methods, degradations, checkpoint=args.checkpoint,
                       threads=args.threads, report_only=args.report, progress=progress,
                       frames=_names(args.frames), **kwargs)
    print(table)
    if args.handheld:
        print(E.handheld_fidelity(args.realus, args.out, args.checkpoint))
    return 0


def _validation(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from sonoedge.train.sr import blind

    torch.set_num_threads(args.threads)
    variants = tuple(_names(args.methods)) if args.methods else ("dataset", "dataset-bp", "zero-shot")
    budget = args.budget if args.budget is not None else blind.ZeroShotConfig().budget_s
    only = () if args.degradations in ("", "all") else tuple(_names(args.degradations))
    result = blind.compare_on_validation(args.validation, args.checkpoint, args.validation_frames, budget,
                                         variants=variants, progress=lambda line: print(line, flush=True),
                                         first=args.validation_first, degradations=only)
    degradations = list(next(iter(result.values())))
    lines = ["PSNR gain over bicubic (dB), mean over the validation frames",
             "", "| variant | " + " | ".join(degradations) + " | mean | min |",
             "|---|" + "---|" * (len(degradations) + 2)]
    for variant, per in result.items():
        means = [float(np.mean(per[d])) for d in degradations]
        lines.append(f"| {variant} | " + " | ".join(f"{m:+.3f}" for m in means)
                     + f" | {np.mean(means):+.3f} | {min(means):+.3f} |")
    print("\n".join(lines))
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
