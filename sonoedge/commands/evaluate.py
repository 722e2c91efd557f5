"""`sonoedge evaluate`: the journal paper's Table 2 for folders of outputs.

    sonoedge evaluate --reference HIGH_DIR --low LOW_DIR --method NAME=DIR [--method ...] --out OUT
                      [--lpips-trunk PATH|random] [--lpips-net vgg|alex] [--no-lpips]

Images are matched by file name without extension (``thyroid_0003.png`` in every folder); every
folder must hold the same names. Writes OUT/table.md (also printed), OUT/table.csv,
OUT/scores_per_image.csv and OUT/figure.png (low | methods | high, like the paper's Figure 3).
table.md also holds the fidelity table (each output against its low input, no reference needed:
structures erased and invented, low-pass echogenicity correlation, the fidelity gate's verdict; and
the low-pass correlation with the high image); scores_per_image.csv its per-image columns.
OUT must be new or empty; ``--overwrite`` replaces these four files and touches nothing else. OUT
is never one of the input folders nor inside one.

Extension point (the training engineer adds ``--checkpoint``): :func:`collect_methods` returns the
method outputs; a branch there may add a method computed in memory from a checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", metavar="HIGH_DIR", help="folder of high-quality reference images")
    parser.add_argument("--low", metavar="LOW_DIR", help="folder of the low-quality inputs ('reference low')")
    # --checkpoint branch (training engineer): score a trained generator on the test split of DATA
    parser.add_argument("--checkpoint", metavar="CKPT", help="a sonoedge checkpoint: run its generator on the test split of DATA")
    parser.add_argument("data", nargs="?", metavar="DATA", help="with --checkpoint: the dataset folder (split as in training)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="with --checkpoint: which split (default test)")
    parser.add_argument("--as-deployed", action="store_true",
                        help="with --checkpoint: add a row scored as the runtime shows it, the model output inside the "
                             "imaging region detected on the low image and the low image unchanged outside it")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=DIR",
                        help="a method's outputs, repeatable: --method cyclegan=out/cyclegan")
    parser.add_argument("--out", required=True, help="folder for table.md, table.csv, scores_per_image.csv, figure.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace those four files in a folder that is not empty (nothing else is touched)")
    parser.add_argument("--lpips-trunk", default=None, metavar="PATH|random",
                        help="torchvision trunk weights for LPIPS (default: $SONOEDGE_LPIPS_TRUNK, then the torch hub "
                             "cache); 'random' = seeded random trunk, not comparable to published LPIPS")
    parser.add_argument("--lpips-net", choices=("vgg", "alex"), default="vgg", help="LPIPS trunk network (paper: vgg)")
    parser.add_argument("--no-lpips", action="store_true", help="leave LPIPS out (no torch needed)")
    parser.add_argument("--no-fidelity", action="store_true",
                        help="leave out the fidelity measures (each output against its low input: structures erased "
                             "and invented, low-pass echogenicity correlation; runtime/fidelity.py)")
    parser.add_argument("--lncc-window", type=int, default=9,
                        help="LNCC window side in pixels (default 9, see sonoedge.runtime.metrics.LNCC_WINDOW)")
    parser.add_argument("--figure-rows", type=int, default=4, help="image rows in figure.png (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_folder(path: str | Path, label: str) -> dict:
    """name (file stem) -> uint8 (H, W) image of every image file in ``path``."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import folder_files, read_image

    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{label} folder {folder} does not exist or is not a folder")
    images = {}
    for file in folder_files(folder):
        if file.stem in images:
            raise InputError(f"{label} folder {folder} holds two images named '{file.stem}' (different extensions)")
        images[file.stem] = read_image(file)
    return images


def parse_method(text: str) -> tuple[str, str]:
    from sonoedge.runtime.errors import InputError

    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise InputError(f"--method '{text}' must look like NAME=DIR (e.g. cyclegan=outputs/cyclegan)")
    return name.strip(), folder.strip()


def collect_methods(args: argparse.Namespace, reference: dict, low: dict) -> dict[str, dict]:
    """Method name -> name -> output image, from the --method folders."""
    from sonoedge.runtime.errors import InputError

    methods: dict[str, dict] = {}
    for text in args.method:
        name, folder = parse_method(text)
        if name in methods:
            raise InputError(f"method '{name}' is given twice; use distinct names")
        methods[name] = load_folder(folder, f"method '{name}'")
    return methods


def build_lpips_metric(args: argparse.Namespace):
    if args.no_lpips:
        return None
    from sonoedge.runtime.errors import require

    require("torch", "train")
    require("lpips", "train")
    from sonoedge.train.lpips_offline import build_lpips

    return build_lpips(args.lpips_net, trunk=args.lpips_trunk)


OUTPUTS = ("table.md", "table.csv", "scores_per_image.csv", "figure.png")  # what evaluate writes in --out


def check_out(args: argparse.Namespace) -> None:
    """Refuse, before any scoring, an --out that is or lies in an input, or is not empty without --overwrite."""
    from sonoedge.runtime.outputs import check_fill_folder

    inputs = [args.reference, args.low, args.checkpoint, args.data, args.lpips_trunk if args.lpips_trunk != "random" else None]
    inputs += [text.partition("=")[2].strip() or None for text in args.method]
    check_fill_folder(args.out, OUTPUTS, inputs, args.overwrite)


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.evaluate import checkpoint_inputs, evaluate_methods

    if args.figure_rows < 1:
        raise InputError(f"--figure-rows must be at least 1, got {args.figure_rows}")
    check_out(args)
    if args.checkpoint:
        if not args.data:
            raise InputError("--checkpoint needs the dataset folder DATA: sonoedge evaluate --checkpoint CKPT DATA --out OUT")
        reference, low, methods = checkpoint_inputs(args.checkpoint, args.data, args.split, args.as_deployed)
        methods.update(collect_methods(args, reference, low))
    else:
        if not args.reference or not args.low:
            raise InputError("pass --reference HIGH_DIR and --low LOW_DIR (or --checkpoint CKPT DATA)")
        reference = load_folder(args.reference, "reference")
        low = load_folder(args.low, "low")
        methods = collect_methods(args, reference, low)
    lpips_metric = build_lpips_metric(args)  # before scoring: a missing trunk fails fast
    report = evaluate_methods(reference, low, methods, lpips_metric=lpips_metric, progress=not args.quiet,
                              lncc_window=args.lncc_window, fidelity=not args.no_fidelity)
    written = report.write(args.out, figure_rows=args.figure_rows)
    print(report.markdown())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
