"""Training speed of the CycleGAN presets: iterations/s and the share of time the LPIPS term costs.

    sonoedge bench-train --size 256 --batch 1 --steps 2 --threads 1 \
        --preset athreya2024-conference --preset athreya2024-journal

For each preset (its paper widths) the same in-memory random pairs train ``--steps`` timed
iterations (after one warm-up) twice in one process: with the perceptual term (LPIPS, random VGG
trunk: the cost is the same as with ImageNet weights) and without it; the LPIPS share is
1 - t(without) / t(with). On CUDA it also runs eager fp32 vs AMP + channels_last.
Speeds are machine-dependent; compare within one run.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator, Sequence


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

    from sonoedge.train.trainer import Trainer, split_batch

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


def bench_presets(presets: Sequence[str], size: int = 256, batch: int = 1, steps: int = 2, warmup: int = 1,
                  threads: int = 0, device: str = "auto") -> Iterator[dict]:
    """One row per preset and training mode (fp32; on CUDA also AMP + channels_last), yielded as each is timed.

    ``threads`` 0 keeps torch's default; ``warmup`` iterations run untimed first.
    """
    import torch

    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    for name in presets:
        base = PRESETS.get(name).config
        variants = {"fp32": dict(amp=False, channels_last=False)}
        if torch.cuda.is_available() and device != "cpu":
            variants["amp+channels_last"] = dict(amp=True, channels_last=True)
        for label, loop in variants.items():
            per = {}
            for lpips_on in (True, False):
                cfg = dataclasses.replace(
                    base,
                    loss=dataclasses.replace(base.loss, lpips_trunk="random", perceptual="translated" if lpips_on else "none"),
                    train=dataclasses.replace(base.train, batch_size=batch, device=device, threads=threads, **loop))
                per[lpips_on] = time_steps(cfg, steps, size, warmup)
            yield {"preset": name, "mode": label, "size": size, "batch": batch, "threads": torch.get_num_threads(),
                   "s_per_iter": per[True], "iters_per_s": 1 / per[True], "s_per_iter_no_lpips": per[False],
                   "lpips_share": 1 - per[False] / per[True]}
