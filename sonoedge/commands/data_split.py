"""``sonoedge data split DIR --out split.json``: write the deterministic train/val/test split of a
dataset folder (paired low/ + high/, unpaired A/ + B/, or a single folder), keeping each patient's
images in one split.

    sonoedge data split data/usenhance --out split.json --ratios 70,10,20 --seed 0

Training reads the file back through ``data.split_file``. numpy only (no torch).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sonoedge.train.datasets import PATIENT_REGEX

    parser.add_argument("dir", type=Path, help="the dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="the split JSON to write")
    parser.add_argument("--ratios", default="70,10,20",
                        help="train,val,test shares, percentages or fractions (default 70,10,20, the journal paper; "
                             "90,10,0 for the conference paper)")
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    parser.add_argument("--layout", choices=("auto", "paired", "unpaired", "single"), default="auto",
                        help="auto: paired with low/ and high/, unpaired with A/ and B/, else single")
    parser.add_argument("--patient-regex", default=PATIENT_REGEX,
                        help="regular expression whose group 1 is the patient id in a file's relative path")


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.datasets import DataConfig, compute_split, detect_layout, write_split

    if not args.dir.is_dir():
        raise InputError(f"the data folder {args.dir} does not exist or is not a folder.")
    try:
        ratios = tuple(float(v) for v in args.ratios.split(","))
    except ValueError:
        raise InputError(f"--ratios '{args.ratios}' must be three comma-separated numbers, e.g. 70,10,20.") from None
    layout = detect_layout(args.dir) if args.layout == "auto" else args.layout
    cfg = DataConfig(root=str(args.dir), layout=layout, ratios=ratios, seed=args.seed, patient_regex=args.patient_regex)
    document = compute_split(cfg)
    document["root"] = str(args.dir)
    write_split(document, args.out)
    counts = document["counts"]
    print(f"{layout} data in {args.dir}: train {counts['train']}, val {counts['val']}, test {counts['test']} "
          f"({document['patients']} patient id(s) found); wrote {args.out}")
    return 0
