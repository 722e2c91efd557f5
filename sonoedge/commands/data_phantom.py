"""`sonoedge data phantom`: write simulated handheld/high-end pairs (or a clip) to a folder.

    sonoedge data phantom --pairs 16 --size 256 --out DIR [--geometry linear|convex|mixed]
                          [--misregistration PX] [--seed S] [--workers N]
    sonoedge data phantom --clip --frames 60 --fps 20 --out DIR [--png]

Pairs land in DIR/low/*.png and DIR/high/*.png with matching names (the paired-dataset layout),
plus DIR/phantom.json. Device and tissue parameters come from a TOML file (``--config``, keys of
``PhantomConfig``) and ``--set key.sub=value`` overrides, e.g. ``--set low.noise_db=-40``.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created; must be new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out when it is an earlier phantom output (never a folder holding other files)")
    parser.add_argument("--pairs", type=int, default=16, help="number of image pairs (default 16)")
    parser.add_argument("--size", default=None, help="image size: S (square) or HxW (default 256)")
    parser.add_argument("--geometry", choices=("linear", "convex", "mixed"), default=None,
                        help="probe geometry: linear, convex (sector on black) or mixed per pair (default mixed)")
    parser.add_argument("--misregistration", type=float, default=None, metavar="PX",
                        help="RMS non-rigid misregistration of low vs high in pixels; 0 = aligned (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; the same seed gives the same data")
    parser.add_argument("--clip", action="store_true", help="write one clip (low.mp4, high.mp4) instead of pairs")
    parser.add_argument("--frames", type=int, default=40, help="clip length in frames (default 40)")
    parser.add_argument("--fps", type=float, default=None, help="clip frame rate (default 20)")
    parser.add_argument("--png", action="store_true", help="with --clip: also write every frame as PNG")
    parser.add_argument("--workers", type=int, default=None, help="processes for pairs (default: all CPUs)")
    parser.add_argument("--config", default=None, help="TOML file with PhantomConfig keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_size(text: str) -> tuple[int, int]:
    from sonoedge.runtime.errors import InputError

    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--size '{text}' must be a number (256) or HxW (256x320)") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise InputError(f"--size '{text}' must be a number (256) or HxW (256x320)")


def build_config(args: argparse.Namespace):
    from sonoedge.runtime.config import load_config
    from sonoedge.train.phantom import PhantomConfig

    overrides = list(args.set)
    if args.size is not None:
        h, w = parse_size(args.size)
        overrides.append(f"size=[{h}, {w}]")
    if args.geometry is not None:
        overrides.append(f"geometry='{args.geometry}'")
    if args.misregistration is not None:
        overrides.append(f"misregistration_px={float(args.misregistration)}")
    return load_config(PhantomConfig, args.config, overrides).validate()


def run(args: argparse.Namespace) -> int:
    import time

    from sonoedge.train import phantom

    cfg = build_config(args)
    start = time.perf_counter()
    if args.clip:
        meta = phantom.write_clip(args.out, frames=args.frames, fps=args.fps, cfg=cfg, seed=args.seed, png=args.png,
                                  progress=not args.quiet, overwrite=args.overwrite)
        print(f"wrote a {meta['frames']}-frame clip at {meta['fps']:g} fps to {args.out} "
              f"(low.mp4, high.mp4) in {time.perf_counter() - start:.1f} s")
        return 0
    workers = args.workers if args.workers is not None else phantom.default_workers()
    meta = phantom.write_pairs(args.out, args.pairs, cfg, seed=args.seed, workers=workers, progress=not args.quiet,
                                overwrite=args.overwrite)
    organs = sorted({p["organ"] for p in meta["pairs"]})
    print(f"wrote {meta['count']} pairs of {cfg.size[0]}x{cfg.size[1]} ({', '.join(organs)}) to {args.out}/low and "
          f"{args.out}/high in {time.perf_counter() - start:.1f} s")
    return 0
