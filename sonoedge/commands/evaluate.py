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

Realism of image sets (no pairs): FID, KID with its standard error, histogram distance and speckle
statistics of each set against real frames, and, with ``--phantom``, the structure check of
translated phantom images (``sonoedge.train.realism``):

    sonoedge evaluate --real REAL_DIR --images phantom=PH/high --images cyclegan=OUT/cg --size 96
                      --inception-trunk PATH|random [--phantom PH] --out OUT

writes OUT/realism.md (also printed), OUT/realism.csv and, with --phantom, OUT/structure.json.

Clips (temporal stability, runtime/temporal.py):

    sonoedge evaluate --clip LOW_CLIP --method NAME=CLIP [--method ...] [--reference HIGH_CLIP] --out OUT

scores each method's output clip (any clip the readers read; a folder of PNG frames keeps it
lossless) for flicker against the input clip's optical flow: warping error, short-term std, and
with a reference clip the mean PSNR/SSIM per frame. Writes OUT/temporal.md and OUT/temporal.json.

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
    parser.add_argument("--clip", metavar="LOW_CLIP", help="temporal mode: the input clip; methods and --reference are clips too")
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
    realism = parser.add_argument_group("realism of image sets (FID/KID, histogram, speckle; no pairs)")
    realism.add_argument("--real", metavar="REAL_DIR", help="folder of real frames: score each --images set against it")
    realism.add_argument("--images", action="append", default=[], metavar="NAME=DIR", help="a set of images, repeatable")
    realism.add_argument("--inception-trunk", default=None, metavar="PATH|random",
                         help="torchvision Inception-v3 weights (default: $SONOEDGE_INCEPTION_TRUNK, then the torch hub "
                              "cache); 'random' = seeded random trunk, labelled, not comparable to published FID")
    realism.add_argument("--size", type=int, default=0, help="resize every image to SIZE x SIZE first (0: keep)")
    realism.add_argument("--phantom", metavar="PH_DIR", help="phantom folder (phantom.json) the sets translate: structure check")


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
CLIP_OUTPUTS = ("temporal.md", "temporal.json")  # what evaluate --clip writes in --out


def check_out(args: argparse.Namespace) -> None:
    """Refuse, before any scoring, an --out that is or lies in an input, or is not empty without --overwrite."""
    from sonoedge.runtime.outputs import check_fill_folder

    inputs = [args.reference, args.low, args.checkpoint, args.data, args.lpips_trunk if args.lpips_trunk != "random" else None]
    inputs += [text.partition("=")[2].strip() or None for text in args.method]
    check_fill_folder(args.out, CLIP_OUTPUTS if args.clip else OUTPUTS, inputs + [args.clip], args.overwrite)


REALISM_OUTPUTS = ("realism.md", "realism.csv", "structure.json")


def run_realism(args: argparse.Namespace) -> int:
    """FID/KID, histogram and speckle statistics of the --images sets against --real (sets, no pairs)."""
    import json

    import cv2

    from sonoedge.runtime.atomic import atomic_path
    from sonoedge.runtime.errors import InputError, require
    from sonoedge.runtime.outputs import check_fill_folder

    if not args.images:
        raise InputError("--real needs at least one --images NAME=DIR set to compare with it")
    sets = dict(parse_method(text) for text in args.images)
    inputs = [args.real, args.phantom, *sets.values(), args.inception_trunk if args.inception_trunk != "random" else None]
    check_fill_folder(args.out, REALISM_OUTPUTS, inputs, args.overwrite)
    require("torch", "train")
    from sonoedge.train.fid import build_inception
    from sonoedge.train.realism import realism_report, structure_check

    def load(folder: str, label: str) -> dict:
        images = load_folder(folder, label)
        if args.size:
            images = {k: cv2.resize(v, (args.size, args.size), interpolation=cv2.INTER_AREA) for k, v in images.items()}
        return images

    extractor = build_inception(args.inception_trunk)  # before scoring: a missing trunk fails fast
    real = load(args.real, "real")
    loaded = {name: load(folder, f"set '{name}'") for name, folder in sets.items()}
    report = realism_report(real, loaded, extractor, real_name=f"real ({Path(args.real).name})", progress=not args.quiet)
    files = {"realism.md": report.markdown(), "realism.csv": report.csv_text()}
    if args.phantom:
        checks = {name: structure_check(args.phantom, images) for name, images in loaded.items()}
        files["structure.json"] = json.dumps(checks, indent=1)
        lines = ["", "Structure check against the phantom's ground truth (train/realism.py):", "",
                 "| Set | images | shift px median (max) | structure corr | cysts visible before | lost | "
                 "cyst dB before | after | painted outside max |", "|---|---|---|---|---|---|---|---|---|"]
        for name, check in checks.items():
            c = check["summary"]
            lines.append(f"| {name} | {c['images']} | {c['shift_px_median']:.2f} ({c['shift_px_max']:.2f}) | "
                         f"{c['structure_corr_median']:.3f} | {c['cysts_visible_before']} | {c['cysts_lost']} | "
                         f"{c['cyst_db_before_median']:.1f} | {c['cyst_db_after_median']:.1f} | {c['painted_outside_max']:.3f} |")
        files["realism.md"] += "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        with atomic_path(Path(args.out) / name) as tmp:
            tmp.write_text(text)
    print(files["realism.md"])
    print("wrote " + ", ".join(str(Path(args.out) / n) for n in files))
    return 0


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.evaluate import checkpoint_inputs, evaluate_methods

    if args.real:
        return run_realism(args)
    if args.figure_rows < 1:
        raise InputError(f"--figure-rows must be at least 1, got {args.figure_rows}")
    check_out(args)
    if args.clip:
        return run_clip(args)
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


def read_clip(path: str, label: str):
    """uint8 (T, H, W) grey frames of any clip the readers read."""
    import numpy as np

    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import iter_frames

    frames = list(iter_frames(path))
    if len(frames) < 2 or any(f.shape != frames[0].shape for f in frames):
        raise InputError(f"{label} clip {path} needs at least 2 frames of one size, got {len(frames)}")
    return np.stack(frames)


def run_clip(args: argparse.Namespace) -> int:
    """Temporal stability of each method's output clip against the input clip (module doc)."""
    import json

    import numpy as np

    from sonoedge.runtime import metrics as M
    from sonoedge.runtime.atomic import atomic_path
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.temporal import temporal_report

    low = read_clip(args.clip, "input")
    methods = {}
    for text in args.method:
        name, path = parse_method(text)
        if name in methods or name == "input":
            raise InputError(f"method '{name}' is given twice or named 'input'; use distinct names")
        methods[name] = read_clip(path, f"method '{name}'")
        if methods[name].shape != low.shape:
            raise InputError(f"method '{name}' clip {path} is {methods[name].shape}, the input clip {low.shape} (frames, H, W)")
    high = read_clip(args.reference, "reference") if args.reference else None
    if high is not None and high.shape != low.shape:
        raise InputError(f"reference clip {args.reference} is {high.shape}, the input clip {low.shape}")
    report = temporal_report(low, methods)
    for name, row in report.items():
        clip = low if name == "input" else methods[name]
        if high is not None:
            row["psnr"] = float(np.mean([M.psnr(a, b) for a, b in zip(clip, high)]))
            row["ssim"] = float(np.mean([M.ssim(a, b) for a, b in zip(clip, high)]))
    if high is not None:
        report["reference"] = temporal_report(low, {"reference": high})["reference"]
    keys = ["warping_error", "short_term_std", "coverage"] + (["psnr", "ssim"] if high is not None else [])
    lines = [f"Temporal stability of {args.clip} ({len(low)} frames; flow on the input, runtime/temporal.py)", "",
             "| clip | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{row[k]:.4f}" if k in row else "" for k in keys) + " |" for name, row in report.items()]
    text = "\n".join(lines) + "\n"
    from pathlib import Path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (("temporal.md", text), ("temporal.json", json.dumps(report, indent=2) + "\n")):
        with atomic_path(out / name) as tmp:
            tmp.write_text(content)
    print(text)
    return 0
