"""Training speed of the CycleGAN presets: it/s, images/s, the share of each loss term, and on CUDA
what each GPU setting buys, in one run.

    sonoedge bench-train --size 256 --batch 1 --steps 2 --threads 1 \
        --preset athreya2024-conference --preset athreya2024-journal

For each preset (its paper widths) the same in-memory random pairs train ``--steps`` timed
iterations (after ``--warmup`` untimed ones) in one process:

- ``mode`` rows, one per setting: on CPU the config's defaults; on CUDA the defaults, then each
  switch of ``train`` flipped alone (``amp``, ``cudnn_benchmark``, ``channels_last``, ``compile``),
  so one GPU run says which of them pays there;
- loss shares (with the defaults): each term's weight set to 0 in turn (a zero-weight term is not
  computed), share = 1 - t(without the term) / t(all terms); ``perceptual`` is LPIPS (random VGG
  trunk: the same cost as ImageNet weights). What no term explains (the discriminator update,
  the optimisers) is ``other``.

Speeds are machine-dependent; compare within one run. On CUDA every timed step ends with
``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

TERMS = {"adv": "lambda_adv", "cycle": "lambda_cycle", "identity": "lambda_identity", "paired": "lambda_paired",
         "perceptual": "lambda_perceptual"}
CUDA_SWITCHES = ("amp", "cudnn_benchmark", "channels_last", "compile")  # flipped one at a time on CUDA


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
            record = trainer.train_step(low, high, paired)
            if trainer.cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        trainer.scalars(record)  # the losses were finite
        trainer.writer.close()
    return statistics.median(times)


def _variant(base, batch: int, device: str, threads: int, loss: dict[str, Any] | None = None,
             train: dict[str, Any] | None = None):
    return dataclasses.replace(
        base,
        loss=dataclasses.replace(base.loss, lpips_trunk="random", **(loss or {})),
        train=dataclasses.replace(base.train, batch_size=batch, device=device, threads=threads, **(train or {})))


def modes(base, cuda: bool) -> dict[str, dict[str, Any]]:
    """The ``train`` overrides of each mode row: the defaults, and on CUDA each switch flipped alone."""
    rows: dict[str, dict[str, Any]] = {"defaults": {}}
    if cuda:
        for switch in CUDA_SWITCHES:
            flipped = not getattr(base.train, switch)
            rows[f"{switch}={'on' if flipped else 'off'}"] = {switch: flipped}
    return rows


def active_terms(cfg) -> list[str]:
    """The loss terms the config computes (weight > 0; perceptual also needs a comparison)."""
    on = [t for t, w in TERMS.items() if getattr(cfg.loss, w) > 0]
    return [t for t in on if t != "perceptual" or cfg.loss.perceptual != "none"]


def bench_presets(presets: Sequence[str], size: int = 256, batch: int = 1, steps: int = 2, warmup: int = 1,
                  threads: int = 0, device: str = "auto", shares: bool = True) -> Iterator[dict]:
    """Rows yielded as each is timed: one per preset and mode (``kind`` "mode": s/iter, it/s, images/s,
    and the config's switches), then (``shares``) one per preset with each loss term's share."""
    import torch

    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    cuda = torch.cuda.is_available() and device != "cpu"
    for name in presets:
        base = PRESETS.get(name).config
        for label, train in modes(base, cuda).items():
            cfg = _variant(base, batch, device, threads, train=train)
            s = time_steps(cfg, steps, size, warmup)
            yield {"kind": "mode", "preset": name, "mode": label, "size": size, "batch": batch,
                   "threads": torch.get_num_threads(), "device": "cuda" if cuda else "cpu",
                   "s_per_iter": s, "iters_per_s": 1 / s, "images_per_s": batch / s,
                   "settings": {k: getattr(cfg.train, k) for k in ("amp", "amp_dtype", *CUDA_SWITCHES)}}
        if not shares:
            continue
        full_cfg = _variant(base, batch, device, threads)
        full = time_steps(full_cfg, steps, size, warmup)
        row: dict[str, Any] = {"kind": "loss_shares", "preset": name, "size": size, "batch": batch,
                               "s_per_iter": full, "shares": {}, "s_per_iter_without": {}}
        for term in active_terms(full_cfg):
            without = time_steps(_variant(base, batch, device, threads, loss={TERMS[term]: 0.0}), steps, size, warmup)
            row["s_per_iter_without"][term] = without
            row["shares"][term] = 1 - without / full
        row["shares"]["other"] = 1 - sum(row["shares"].values())
        yield row
