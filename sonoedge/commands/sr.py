"""``sonoedge sr``: 4x super-resolution of one image.

    sonoedge sr frame.png -o frame_x4.png --dataset                # the shipped blind generator (fast)
    sonoedge sr frame.png -o frame_x4.png --zero-shot              # ... adapted to the image itself first (15 s)
    sonoedge sr frame.png -o frame_x4.png --zero-shot --budget 120 # ... for up to 2 minutes
    sonoedge sr frame.png -o frame_x4.png --checkpoint runs/sr/last.pt   # a checkpoint of either generator
    sonoedge sr frame.png -o frame_x4.png --zero-shot --generator liu    # Liu et al.'s CycleGAN, zero-shot

The default generator is the blind one of train/sr/blind.py (convolutions at the LR size, a
residual on top of bicubic), trained on realtrain frames under random degradations and shipped as
train/sr/weights/blind-sr-realtrain.pt; ``--zero-shot`` adapts it to the input (anchored to its own
output, back-projection through the estimated degradation as a loss on clean inputs) for
``--budget`` seconds (default DEFAULT_BUDGET_S). ``--generator liu`` is the paper's self-supervised
CycleGAN (networks.LiuSRGenerator) with its 8-way self-ensemble, back-projection and median
(Sec. IV-B), back-projecting through the degradation estimated from the input (train/sr/degrade.py;
``--degradation NAME`` to assume one). The output is written atomically (a failure leaves no
partial file) as uint8 grey, 4x the input's size. It is checked before any training: never the
input, never an existing file unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

OUTPUT_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
# Zero-shot fine-tuning time by default (measured wall time on the shared 2-core development machine
# in docs/results/sr.md and docs/benchmarks/sr.md).
DEFAULT_BUDGET_S = 15.0
GENERATORS = ("blind", "liu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="image to super-resolve (still, DICOM, NRRD: first frame; grey)")
    parser.add_argument("-o", "--output", type=Path, required=True, help=f"output image ({', '.join(OUTPUT_SUFFIXES)})")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--zero-shot", action="store_true", help="adapt the generator to the input itself first (--budget seconds)")
    mode.add_argument("--dataset", action="store_true", help="the shipped blind dataset-mode generator (one pass)")
    mode.add_argument("--checkpoint", type=Path, help="dataset-mode checkpoint from 'sonoedge train --preset blind-sr' "
                                                      "or '--preset liu2021-sr'")
    parser.add_argument("--generator", choices=GENERATORS, default="blind",
                        help="with --zero-shot: 'blind' (default: the shipped generator adapted to the input) or "
                             "'liu' (Liu et al.'s CycleGAN trained on the input from scratch, minutes to hours)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"zero-shot training time limit (default {DEFAULT_BUDGET_S:g} s; with --generator liu "
                             "0 = until the ZSSR policy or max_iters stops it)")
    parser.add_argument("--degradation", default=None, metavar="NAME",
                        help="how the input was down-scaled: 'estimate' (default: from the input itself), "
                             "'bicubic-aa', 'cubic', 'area' or 'gauss<sigma>' (Liu generator: sets "
                             "degradation.operator; blind zero-shot: the consistency term's operator)")
    parser.add_argument("--config", type=Path, help="SRConfig TOML (zero-shot training, ensemble)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set max_iters=500 (repeatable)")
    parser.add_argument("--lpips-trunk", default=None, metavar="PATH|random",
                        help="VGG16 trunk weights for the perceptual loss (sets perceptual.trunk; default: "
                             "$SONOEDGE_LPIPS_TRUNK, then the torch hub cache); 'random' = seeded random trunk")
    parser.add_argument("--overwrite", action="store_true", help="replace the output image if it exists")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError, require
    from sonoedge.runtime.outputs import check_file

    torch = require("torch", "train")
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"output {args.output} must end in one of {', '.join(OUTPUT_SUFFIXES)}")
    check_file(args.output, [args.input, args.checkpoint, args.config], args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = _config(args)
    image = _read(args.input)
    blind = args.dataset or (args.zero_shot and args.generator == "blind")
    G = None
    if args.checkpoint is not None:  # read once: it says which generator it holds and gives it
        from sonoedge.train.sr.trainer import load_sr_generator

        G, info = load_sr_generator(args.checkpoint)
        blind = info["generator"] == "blind_sr"
    if args.zero_shot and not blind and min(image.shape[:2]) // 4 * 4 < cfg.data.crop:
        raise InputError(f"input {args.input} is {image.shape[1]}x{image.shape[0]} pixels but zero-shot SR trains on "
                         f"{cfg.data.crop}x{cfg.data.crop} crops of it, so it needs at least that size; use a larger "
                         f"image or a smaller crop (--set data.crop=N, a multiple of 4)")
    if blind:
        sr = _blind(image, args, cfg, G)
    else:
        sr = _zero_shot(image, cfg) if args.zero_shot else _with_checkpoint(image, cfg, G)
    _write(args.output, sr)
    print(f"wrote {args.output} ({sr.shape[1]}x{sr.shape[0]})")
    return 0


def _blind(image, args, cfg, G=None):
    """The blind generator (train/sr/blind.py; ``G`` when the caller loaded it from --checkpoint,
    else the shipped weights): one pass, or fine-tuned on the input first."""
    import time

    from tqdm import tqdm

    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr import blind

    zcfg = blind.ZeroShotConfig(budget_s=cfg.time_budget_s, seed=cfg.seed)
    if args.degradation not in (None, "estimate"):
        zcfg.sons = args.degradation
    need = 4 * (zcfg.son_crop + 2 * blind.CropSampler.MARGIN)
    if args.zero_shot and min(image.shape[:2]) < need:
        raise InputError(f"input {args.input} is {image.shape[1]}x{image.shape[0]} pixels but zero-shot fine-tuning "
                         f"needs at least {need}x{need} (its {4 * zcfg.son_crop}-pixel crops and their margins); "
                         f"use --dataset for a smaller image")
    if G is None:
        G, _ = blind.load()
    if not args.zero_shot:
        sr = blind.infer(G, image)
        print(f"blind generator ({blind.describe(G)}): one pass")
        return sr
    budget = zcfg.budget_s
    bar = tqdm(total=round(budget), desc=f"zero-shot fine-tuning (budget {budget:g} s)", unit="s",
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{remaining} left{postfix}]")
    start = time.monotonic()

    def progress(it: int, terms: dict) -> None:
        bar.update(min(budget, time.monotonic() - start) - bar.n)
        if it % 25 == 0:
            bar.set_postfix(it=it, anchor=f"{terms['anchor']:.4f}", consistency=f"{terms['consistency']:.4f}")

    try:
        sr, log = blind.zero_shot(G, image, zcfg, progress)
    finally:
        bar.close()
    print(f"zero-shot: {log.iterations} iterations in {log.seconds:.0f} s, stopped by {log.stop_reason}; "
          f"speckle level {log.speckle:.3f} -> cleanliness {log.cleanliness:.2f} (the weight of the consistency "
          f"term, through {log.operator}); output differs from the dataset generator's by {log.drift:.2f} grey "
          f"levels on average" + (f"; sons: {log.sons}" if zcfg.internal > 0 else "")
          + f"; estimated degradation: {log.estimate}")
    return sr


def _config(args):
    import json

    from sonoedge.runtime.config import load_config
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr.config import SRConfig

    mode = "zero-shot" if args.zero_shot else "dataset"
    overrides = [f"mode='{mode}'", f"time_budget_s={DEFAULT_BUDGET_S}"]
    if args.budget is not None:
        if args.budget < 0:
            raise InputError(f"--budget {args.budget:g}: give seconds >= 0 (0 = no time limit)")
        overrides.append(f"time_budget_s={float(args.budget)}")
    if args.degradation is not None:
        overrides.append("degradation.operator=" + json.dumps(args.degradation))
    overrides += args.overrides
    if args.lpips_trunk is not None:
        overrides.append("perceptual.trunk=" + json.dumps(str(args.lpips_trunk)))  # a TOML basic string
    return load_config(SRConfig, args.config, overrides).validate()


def _read(path: Path):
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import read_image

    if not path.exists():
        raise InputError(f"input {path} does not exist")
    image = read_image(path)
    if min(image.shape) < 4:
        raise InputError(f"input {path} is {image.shape[1]}x{image.shape[0]}; SR needs at least 4x4 pixels")
    return image


def _ensemble_bar(cfg):
    from tqdm import tqdm

    return tqdm(total=cfg.ensemble.transforms, desc="self-ensemble", unit="view")


def _zero_shot(image, cfg):
    import time

    from tqdm import tqdm

    from sonoedge.train.sr.trainer import zero_shot

    budget = cfg.time_budget_s
    if budget:  # the bar counts seconds of the budget, so its remaining time is the budget's
        bar = tqdm(total=round(budget), desc=f"zero-shot training (budget {budget:g} s)", unit="s",
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{remaining} left{postfix}]")
    else:
        bar = tqdm(total=cfg.max_iters, desc="zero-shot training", unit="it")
    start = time.monotonic()

    def progress(it: int, terms: dict) -> None:
        if budget:
            bar.update(min(budget, time.monotonic() - start) - bar.n)
        else:
            bar.update(1)
        if it % 10 == 0:
            bar.set_postfix(it=it, pixel=f"{terms['pixel']:.4f}", lr=f"{terms['lr']:.0e}")

    ens = None

    def ensemble_progress(k: int) -> None:
        nonlocal ens
        if ens is None:
            bar.close()
            ens = _ensemble_bar(cfg)
        ens.update(1)

    info: dict = {}
    try:
        sr, log = zero_shot(image, cfg, progress, ensemble_progress, info)
    finally:
        bar.close()
        if ens is not None:
            ens.close()
    reached = ""
    if log.probe:
        first, last = log.probe[0][1], log.probe[-1][1]
        reached = f"; reconstruction error (son -> input, L1) {first:.4f} -> {last:.4f}"
    print(f"zero-shot: {log.iterations} iterations in {log.seconds:.0f} s, stopped by {log.stop_reason}{reached}; "
          f"learning rate {log.lr_changes[-1][1] if log.lr_changes else cfg.policy.lr:g}; sons: {log.sons}; "
          f"perceptual trunk: {log.perceptual_trunk}; device: {log.device}")
    _print_degradation(info)
    return sr


def _print_degradation(info: dict) -> None:
    line = f"back-projection through {info.get('back_projection_operator', 'bicubic-aa')}"
    if "estimate" in info:
        line += f"; estimated degradation: {info['estimate']}"
    print(line)


def _with_checkpoint(image, cfg, G):
    """Liu et al.'s generator ``G`` (loaded from --checkpoint): the 8-view ensemble and back-projection."""
    from sonoedge.train.sr.trainer import super_resolve

    bar = _ensemble_bar(cfg)
    info: dict = {}
    try:
        sr = super_resolve(G, image, cfg, progress=lambda k: bar.update(1), info=info)
    finally:
        bar.close()
    _print_degradation(info)
    return sr


def _write(path: Path, image) -> None:
    import cv2

    from sonoedge.runtime.atomic import atomic_path
    from sonoedge.runtime.errors import InputError

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise InputError(f"could not write {path}; check the folder is writable and the extension")
