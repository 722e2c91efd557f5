"""`sonoedge evaluate`: the journal paper's Table 2 for folders of outputs.

    sonoedge evaluate --reference HIGH_DIR --low LOW_DIR --method NAME=DIR [--method ...] --out OUT
                      [--lpips-trunk PATH|random] [--lpips-net vgg|alex] [--no-lpips]

Images are matched by file name without extension (``thyroid_0003.png`` in every folder); every
folder must hold the same names. Writes OUT/table.md (also printed), OUT/table.csv,
OUT/scores_per_image.csv and OUT/figure.png (low | methods | high, like the paper's Figure 3).

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
    parser.add_argument("--lpips-trunk", default=None, metavar="PATH|random",
                        help="torchvision trunk weights for LPIPS (default: $SONOEDGE_LPIPS_TRUNK, then the torch hub "
                             "cache); 'random' = seeded random trunk, not comparable to published LPIPS")
    parser.add_argument("--lpips-net", choices=("vgg", "alex"), default="vgg", help="LPIPS trunk network (paper: vgg)")
    parser.add_argument("--no-lpips", action="store_true", help="leave LPIPS out (no torch needed)")
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


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.evaluate import evaluate_methods

    if args.figure_rows < 1:
        raise InputError(f"--figure-rows must be at least 1, got {args.figure_rows}")
    if args.checkpoint:
        reference, low, methods = checkpoint_inputs(args)
        methods.update(collect_methods(args, reference, low))
    else:
        if not args.reference or not args.low:
            raise InputError("pass --reference HIGH_DIR and --low LOW_DIR (or --checkpoint CKPT DATA)")
        reference = load_folder(args.reference, "reference")
        low = load_folder(args.low, "low")
        methods = collect_methods(args, reference, low)
    lpips_metric = build_lpips_metric(args)  # before scoring: a missing trunk fails fast
    report = evaluate_methods(reference, low, methods, lpips_metric=lpips_metric, progress=not args.quiet,
                              lncc_window=args.lncc_window)
    written = report.write(args.out, figure_rows=args.figure_rows)
    print(report.markdown())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def checkpoint_inputs(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """(reference, low, {method: outputs}) for ``--checkpoint CKPT DATA``: the checkpoint's data
    config (root replaced by DATA, same split seed and ratios) gives the split; each low image is
    reflect-padded to the generator's stride, enhanced, cropped back, and kept as uint8."""
    import dataclasses

    from sonoedge.runtime.config import from_dict
    from sonoedge.runtime.errors import InputError, require

    require("torch", "train")
    import torch

    from sonoedge.runtime.frames import crop, denormalise, pad_to_stride
    from sonoedge.train.checkpoint import load_checkpoint, load_generator
    from sonoedge.train.datasets import DataConfig, build_datasets

    if not args.data:
        raise InputError("--checkpoint needs the dataset folder DATA: sonoedge evaluate --checkpoint CKPT DATA --out OUT")
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt["model"]["task"] != "enhance" or "data" not in ckpt.get("config", {}):
        raise InputError(f"checkpoint {args.checkpoint} is not an enhancement checkpoint with a data config")
    data_cfg = from_dict(DataConfig, ckpt["config"]["data"], where=f"{args.checkpoint} data config")
    data_cfg = dataclasses.replace(data_cfg, root=str(args.data))
    split = build_datasets(data_cfg)[args.split]
    if len(split) == 0 or data_cfg.layout != "paired":
        raise InputError(f"the {args.split} split of {args.data} has no paired images; choose --split or another folder")
    model, info = load_generator(args.checkpoint)
    method = f"{info['generator']} ({ckpt['config'].get('preset') or Path(args.checkpoint).name})"
    reference, low, outputs = {}, {}, {}
    with torch.no_grad():
        for i in range(len(split)):
            item = split[i]
            name = Path(item["name"]).stem
            x, size = pad_to_stride(item["low"][None].numpy(), info["stride"])
            y = crop(model(torch.from_numpy(x)).numpy(), size, info["scale"])
            low[name], reference[name], outputs[name] = (denormalise(item["low"].numpy()), denormalise(item["high"].numpy()),
                                                         denormalise(y))
    methods = {method: outputs}
    if args.as_deployed:
        methods[f"{method}, as deployed"] = {name: as_deployed(low[name], out) for name, out in outputs.items()}
    return reference, low, methods


def as_deployed(low: "np.ndarray", enhanced: "np.ndarray") -> "np.ndarray":
    """What the device shows (runtime/enhancer.py): the enhanced imaging region pasted into the
    untouched input frame; everything outside the region detected on ``low`` is ``low`` itself."""
    import numpy as np

    from sonoedge.runtime.region import detect_region

    mask = detect_region(low).mask  # (H, W) bool
    return np.where(mask, enhanced, low)
