"""Training speed of the CycleGAN presets: iterations/s and the share of time the LPIPS term costs.

    python -m sonoedge.train.bench_train --size 256 --batch 1 --steps 2 --threads 1 \
        --preset athreya2024-conference --preset athreya2024-journal

For each preset (its paper widths) the same in-memory random pairs train ``--steps`` timed
iterations (after one warm-up) twice in one process: with the perceptual term (LPIPS, random VGG
trunk: the cost is the same as with ImageNet weights) and without it; the LPIPS share is
1 - t(without) / t(with). On CUDA it also runs eager fp32 vs AMP + channels_last.
Speeds are machine-dependent; compare within one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time


def _pairs(n: int, size: int):
    import torch

    class Pairs(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(n, 2, 1, size, size, generator=g) * 2 - 1

        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"low": self.x[i, 0], "high": self.x[i, 1], "name": str(i), "organ": ""}

    return Pairs()


def time_steps(cfg, steps: int, size: int, warmup: int = 1) -> float:
    """Seconds per training iteration (median of ``steps`` after ``warmup`` untimed ones)."""
    import statistics

    import torch

    from .trainer import Trainer, split_batch

    data = _pairs(cfg.train.batch_size * (steps + warmup), size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, datasets={"train": data, "val": data})
        loader = iter(trainer.epoch_loader())
        times = []
        for i in range(steps + warmup):
            low, high, paired = split_batch(next(loader), trainer.device, trainer.channels_last)
            if trainer.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train_step(low, high, paired)
            if trainer.cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        trainer.writer.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    import torch

    from .registries import PRESETS, load_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", action="append", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    load_all()
    rows = []
    for name in args.preset:
        base = PRESETS.get(name).config
        variants = {"fp32": dict(amp=False, channels_last=False)}
        if torch.cuda.is_available() and args.device != "cpu":
            variants["amp+channels_last"] = dict(amp=True, channels_last=True)
        for label, loop in variants.items():
            per = {}
            for lpips_on in (True, False):
                cfg = dataclasses.replace(
                    base,
                    loss=dataclasses.replace(base.loss, lpips_trunk="random", perceptual="translated" if lpips_on else "none"),
                    train=dataclasses.replace(base.train, batch_size=args.batch, device=args.device, threads=args.threads, **loop))
                per[lpips_on] = time_steps(cfg, args.steps, args.size, args.warmup)
            row = {"preset": name, "mode": label, "size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
                   "s_per_iter": per[True], "iters_per_s": 1 / per[True], "s_per_iter_no_lpips": per[False],
                   "lpips_share": 1 - per[False] / per[True]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
