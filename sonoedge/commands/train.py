"""``sonoedge train``: train a generator from a named preset (CycleGAN + PL, SR).

    sonoedge train --preset athreya2024-journal --data phantom/ --out runs/j --set loss.lpips_trunk=random
    sonoedge train --preset athreya2024-conference --print-config          # the resolved config as TOML
    sonoedge train --preset athreya2024-journal --data phantom/ --out runs/j --resume runs/j/last.pt
    torchrun --nproc_per_node 2 -m sonoedge.cli train --preset ... --data ... --out ...   # DDP

Order of configuration: the preset's defaults, then ``--config run.toml``, then ``--data``, then
every ``--set key.sub=value`` (values parsed as TOML; bare words are strings).

The run directory must be new or empty, or the folder of the ``--resume`` checkpoint (a run
continues where it was). ``--overwrite`` starts a new run in an earlier run's folder: the run's own
files (config.toml, log.jsonl, last.pt, best.pt, tb/) are replaced, the old log is started afresh,
and nothing else there is touched. It is never the data folder nor inside it.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="preset name, e.g. athreya2024-conference, athreya2024-journal, liu2021-sr")
    parser.add_argument("--data", type=Path, help="dataset folder (sets the preset's data root)")
    parser.add_argument("--config", type=Path, help="TOML file overriding the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=50 (repeatable)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<preset>)")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from exactly (last.pt of a run)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in a folder that is not empty, replacing only the run's own files")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")


def resolve(args: argparse.Namespace):
    """(preset, resolved config) from the arguments."""
    from sonoedge.runtime.config import load_config
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    preset = PRESETS.get(args.preset)
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.insert(0, f"{preset.data_key}={_toml_string(str(args.data))}")
    cfg = load_config(type(preset.config), args.config, overrides, base=preset.config)
    return preset, cfg


RUN_FILES = ("config.toml", "log.jsonl", "last.pt", "best.pt", "tb")  # what a training run writes in --out


def check_run_dir(out: Path, args: argparse.Namespace, cfg) -> None:
    """Refuse a run directory that is, or lies in, the data, or is not empty (unless it is the
    folder being resumed, or --overwrite); a new run over an old one starts its log afresh."""
    from sonoedge.runtime.outputs import check_fill_folder, resolved

    data = getattr(getattr(cfg, "data", None), "root", None) or args.data
    resuming = args.resume is not None and resolved(args.resume).parent == resolved(out)
    check_fill_folder(out, RUN_FILES, [data, args.config], args.overwrite or resuming)
    if args.overwrite and not resuming:
        (out / "log.jsonl").unlink(missing_ok=True)  # appended to by the trainer: one run per log


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.config import dumps_toml, to_dict
    from sonoedge.runtime.errors import InputError

    preset, cfg = resolve(args)
    if args.print_config:
        print(f"# preset {preset.name}: {preset.description}")
        for line in preset.sources:
            print(f"#   {line}")
        print(dumps_toml(to_dict(cfg)), end="")
        return 0
    if args.data is None and args.resume is None and args.config is None and not any(
            o.startswith(preset.data_key + "=") for o in args.overrides):
        raise InputError("no training data: pass --data DIR (for example a folder from 'sonoedge data phantom')")
    if args.resume is not None and not args.resume.is_file():
        raise InputError(f"--resume {args.resume} does not exist; pass the last.pt of an earlier run")
    out = args.out or Path("runs") / preset.name
    check_run_dir(out, args, cfg)
    run_dir = preset.run(cfg, out, args.resume)
    print(f"run written to {run_dir}")
    return 0
