"""`sonoedge style`: neural style transfer of one image or a folder (Menini 2020), by optimisation or
with a trained network.

    sonoedge style CONTENT --style S [S ...] -o OUT [--average feature|gram|none] [--iterations 3000]
                   [--content-labels L] [--style-labels L ...] [--local] [--vgg-trunk PATH|random]
    sonoedge style CONTENT --checkpoint CKPT -o OUT [--size N] [--outside keep|translate]
                   # a trained translator: the NST transform net (menini2021-nst) or a CycleGAN's G_H
                   # (grimwood2022-sim2real)

CONTENT is an image file (OUT is then the output file) or a folder (OUT a folder; outputs keep the
input names as PNG). Each --style is an image or a folder of images; several style images make an
average style (feature space by default, Sec. 3.2). A trained translator changes only the imaging
region (--outside keep, the default): every pixel outside it stays exactly as it was in the input.
The region is the phantom's own sector when CONTENT is (in) a folder from `sonoedge data phantom`,
else the region detected on each image (runtime/region.py). Labels are integer label maps (PNG) of the
content (augmented style loss, Eq. 3.1; with --local, local NST) and optionally of each style
image (Eq. 2.5). OUT must be new or empty unless --overwrite, which replaces only the files this
command writes. The VGG19 trunk follows the LPIPS rules: a file, $SONOEDGE_VGG19_TRUNK, the torch
cache, or 'random' by name (labelled in the output's log line).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sonoedge.commands._args import add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sonoedge.train.nst.config import NSTConfig

    parser.add_argument("content", help="content image or folder of images")
    parser.add_argument("-o", "--out", required=True, help="output image (for one content image) or folder")
    parser.add_argument("--style", nargs="+", default=[], help="style image(s) or folder(s)")
    parser.add_argument("--checkpoint", help="a trained translator checkpoint instead of optimisation")
    parser.add_argument("--size", type=int, default=0, help="resize content to SIZE x SIZE first (0: keep; a checkpoint's "
                                                            "inputs are reflect-padded to its stride)")
    parser.add_argument("--outside", choices=("keep", "translate"), default="keep",
                        help="with --checkpoint: keep every pixel outside the imaging region (the phantom's sector, "
                             "else the detected region) exactly as in the input (default), or translate it too")
    parser.add_argument("--content-labels", help="label map image (or folder, names as CONTENT) of the content")
    parser.add_argument("--style-labels", nargs="+", default=None, help="label map of each style image (Eq. 2.5)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs this command wrote before")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser, NSTConfig, {
        "content_weight": "content loss weight (Table 4.1)", "style_weight": "style loss weight (Table 4.1)",
        "lr": "Adam learning rate (Sec. 4.2)", "iterations": "optimisation steps (Sec. 4.2)",
        "average": "average style of several style images: feature, gram or none", "init": "start from the content or noise",
        "local": "local NST: one optimisation per label region (needs --content-labels)",
        "vgg_trunk": "VGG19 weights file, 'random', or '' to search $SONOEDGE_VGG19_TRUNK and the torch cache",
        "seed": "random seed",
    }, choices={"average": ("none", "feature", "gram"), "init": ("content", "noise")})


def _images(paths: list[str], label: str) -> list[tuple[str, "object"]]:
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import folder_files, read_image

    out = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            out += [(f.stem, read_image(f)) for f in folder_files(path)]
        elif path.is_file():
            out.append((path.stem, read_image(path)))
        else:
            raise InputError(f"{label} {path} does not exist")
    if not out:
        raise InputError(f"no {label} images found in {', '.join(paths)}")
    return out


def run(args: argparse.Namespace) -> int:
    import cv2

    from sonoedge.commands._args import config_from_args
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.outputs import check_file, check_fill_folder
    from sonoedge.train.nst.optimize import NSTConfig

    single = Path(args.content).is_file()
    contents = _images([args.content], "content")
    if args.size:
        contents = [(n, cv2.resize(im, (args.size, args.size), interpolation=cv2.INTER_AREA)) for n, im in contents]
    names = [f"{n}.png" for n, _ in contents]
    inputs = [args.content, *args.style, args.checkpoint, args.content_labels]
    if single:
        check_file(args.out, inputs, args.overwrite)
    else:
        check_fill_folder(args.out, names, inputs, args.overwrite)
    if args.checkpoint:
        if args.style:
            raise InputError("--checkpoint translates with a trained network; --style is for optimisation, give one or the other")
        from sonoedge.train.nst.apply import translate

        outputs, description = translate(args.checkpoint, [im for _, im in contents], progress=not args.quiet)
        if args.outside == "keep":
            from sonoedge.train.realism import keep_outside, sector_masks

            masks, source = sector_masks(args.content, contents)
            outputs = keep_outside([im for _, im in contents], outputs, masks)
            description += f"; outside the {source} kept as in the input"
    else:
        if not args.style:
            raise InputError("give --style IMAGE|FOLDER (or --checkpoint CKPT for a trained network)")
        from sonoedge.train.nst.optimize import stylize
        from sonoedge.train.nst.vgg19 import vgg19_features

        cfg = config_from_args(NSTConfig, args)
        cfg.check()
        styles = [im for _, im in _images(args.style, "style")]
        style_labels = [im for _, im in _images(args.style_labels, "style label")] if args.style_labels else None
        labels = dict(_images([args.content_labels], "content label")) if args.content_labels else {}
        net = vgg19_features(cfg.vgg_trunk or None, (*cfg.style_layers, *cfg.content_layers), seed=cfg.seed)
        description = f"NST by optimisation, VGG19 trunk {net.trunk_description}"
        outputs = []
        for name, image in contents:
            if args.content_labels and name not in labels and not single:
                raise InputError(f"no label map named '{name}' in {args.content_labels}")
            lab = (next(iter(labels.values())) if single else labels[name]) if labels else None
            out, history = stylize(image, styles, cfg, net, content_labels=lab, style_labels=style_labels,
                                   progress=not args.quiet)
            outputs.append(out)
            print(f"{name}: loss {history[0]['loss']:.4g} -> {history[-1]['loss']:.4g} "
                  f"(style {history[0]['style']:.4g} -> {history[-1]['style']:.4g})")
    _write(args.out, single, names, outputs)
    print(f"wrote {len(outputs)} image(s) to {args.out} ({description})")
    return 0


def _write(out: str, single: bool, names: list[str], images: list) -> None:
    import cv2

    from sonoedge.runtime.atomic import atomic_path
    from sonoedge.runtime.errors import InputError

    targets = [Path(out)] if single else [Path(out) / n for n in names]
    if not single:
        Path(out).mkdir(parents=True, exist_ok=True)
    for path, image in zip(targets, images):
        ok, data = cv2.imencode(path.suffix or ".png", image)
        if not ok:
            raise InputError(f"cannot encode {path} (give a .png or .jpg name)")
        with atomic_path(path) as tmp:
            tmp.write_bytes(data.tobytes())
