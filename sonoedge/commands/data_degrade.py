"""``sonoedge data degrade --src DIR --out DIR``: paired real-anatomy training data from high-end
frames: each frame imaged again through a randomised handheld device model (``train/degrade.py``).

    sonoedge data degrade --src ../shared/data/realtrain/hc18 --out hc18-pairs --seed 0
    sonoedge data degrade --src DIR --out DIR --scale 0.5 --tile 296 --tiles 2 --set gain_range=[0.6,1.6]

Writes DIR/low/<name>.png (handheld-like), DIR/high/<name>.png (the frame) and DIR/degrade.json
(the config, the seed and every frame's drawn parameters): the paired layout ``sonoedge train``
reads. The draws of frame i depend only on (seed, i). numpy/OpenCV only (no torch).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="folder of high-end (console) frames, any image kind the runtime reads")
    parser.add_argument("--out", required=True, help="output folder (created; must be new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out when it is an earlier degrade output (never a folder holding other files)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; the same seed gives the same data (default 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="resize frames by this factor first, (0, 1] (default 1)")
    parser.add_argument("--tile", type=int, default=0, help="write random TILE x TILE crops instead of whole frames (default 0: whole)")
    parser.add_argument("--tiles", type=int, default=1, help="crops per frame with --tile (default 1)")
    parser.add_argument("--config", default=None, help="TOML file with DegradeConfig keys (parameter ranges)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable, e.g. --set dynamic_range_db=[36,44]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from sonoedge.runtime.config import load_config
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.degrade import DegradeConfig, write_degraded

    if args.tile < 0 or args.tiles < 1:
        raise InputError("--tile must be >= 0 and --tiles >= 1")
    cfg = load_config(DegradeConfig, args.config, list(args.set)).validate()
    start = time.perf_counter()
    meta = write_degraded(args.src, args.out, cfg, seed=args.seed, tile=args.tile, tiles_per_frame=args.tiles,
                          scale=args.scale, progress=not args.quiet, overwrite=args.overwrite)
    print(f"wrote {meta['count']} pairs to {args.out}/low and {args.out}/high in {time.perf_counter() - start:.1f} s")
    return 0
