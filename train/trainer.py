"""The CycleGAN + perceptual loss trainer of Athreya et al. 2024 (seeds 000 and 001), in one file.

    run_dir = train(cfg, out_dir="runs/journal")             # returns the run directory
    train(cfg, out_dir="runs/journal", resume="runs/journal/last.pt")   # continues exactly

Two generators, G_H: L -> H (the one deployed) and G_L: H -> L, and two PatchGAN discriminators
D_H, D_L. Each step:

1. generators (Adam, lr_g): H' = G_H(L), L' = G_L(H), H-bar = G_H(L'), L-bar = G_L(H'),
   loss = l_adv * MSE(1, D_H(H'), D_L(L')) + l_cycle * |H - H-bar| + |L - L-bar|
        + l_id * (|H - G_H(H)| + |L - G_L(L)|)        (conference)
        + l_L1 * (|H - H'| + |L - L'|)                 (journal, paired)
        + l_per * (Phi(H, H') + Phi(L, L'))            (LPIPS; "cycled": Phi(H, H-bar) + ...)
2. discriminators (Adam, lr_d): MSE(t, D(real)) + MSE(0, D(fake)), t = 0.9 once the mean real
   scores reach 0.9, else 1 (label smoothing, conference Eq. 7); fakes optionally from a history pool.

Every epoch: StepLR, validation of G_H on the val split (SSIM, PSNR, LNCC of
``sonoedge.runtime.metrics`` on uint8 images, and LPIPS), ``last.pt`` and, when the chosen metric
improves, ``best.pt`` (checkpoint contract in ``checkpoint.py``). Records: ``config.toml`` (the
resolved config), ``log.jsonl`` (one JSON object per line: steps and epochs), TensorBoard scalars
and image grids under ``tb/``, tqdm progress bars.

Exact resume: a checkpoint holds the networks, optimisers, schedulers, grad scaler, history pools,
RNG states and the position in the epoch; the data order of an epoch depends only on (seed, epoch),
so a resumed run takes the same next step as an uninterrupted one.

Multi-GPU: launch with ``torchrun --nproc_per_node N -m sonoedge.cli train ...``; each process
wraps the networks in DistributedDataParallel (nccl on CUDA, gloo on CPU) and reads its share of
the data through DistributedSampler. Rank 0 validates, logs and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonoedge.runtime.config import save_config, to_dict
from sonoedge.runtime.errors import InputError
from sonoedge.train import losses
from sonoedge.train.checkpoint import load_checkpoint, model_info, rng_state, save_checkpoint, set_rng_state
from sonoedge.train.config import TrainConfig
from sonoedge.train.pool import ImagePool
from sonoedge.train.registries import DISCRIMINATORS, GENERATORS, load_all
from sonoedge.train.sim2real import guard_discriminator, make_scheduler

NETS = ("G_H", "G_L", "D_H", "D_L")
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "lncc": True, "lpips": False}


# ----------------------------------------------------------------------------- set-up helpers

def setup_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"train.device='{name}' but CUDA is not available here; use train.device='cpu' or 'auto'")
    return device


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_networks(cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
    """G_H, G_L, D_H, D_L from the registries, on ``device``."""
    load_all()
    c, m = cfg.model.channels, cfg.model

    def create(registry, name: str, key: str, **kwargs) -> nn.Module:
        try:
            return registry.create(name, **kwargs).to(device)
        except TypeError as exc:  # a keyword the constructor does not take
            raise InputError(f"model.{key} does not fit {registry.family} '{name}' ({exc}); "
                             f"check the keys of model.{key}") from None

    gen = lambda: create(GENERATORS, m.generator, "generator_kwargs", in_channels=c, out_channels=c, **m.generator_kwargs)  # noqa: E731
    dis = lambda: guard_discriminator(  # noqa: E731
        create(DISCRIMINATORS, m.discriminator, "discriminator_kwargs", in_channels=c, **m.discriminator_kwargs),
        m.discriminator_denoiser, m.denoiser_sigma)
    return {"G_H": gen(), "G_L": gen(), "D_H": dis(), "D_L": dis()}


def needs_lpips(cfg: TrainConfig) -> bool:
    return cfg.loss.perceptual != "none" and cfg.loss.lambda_perceptual > 0


def build_phi(cfg: TrainConfig, device: torch.device):
    """LPIPS (VGG trunk) for the loss and the validation metric; the trunk must exist or be named."""
    from sonoedge.train.lpips_offline import build_lpips

    return build_lpips(net=cfg.loss.lpips_net, trunk=cfg.loss.lpips_trunk, seed=cfg.train.seed).to(device)


def unwrap(module: nn.Module) -> nn.Module:
    """The network itself, out of torch.compile's and DistributedDataParallel's wrappers."""
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def loader_workers(workers: int, cuda: bool, cpu_count: int | None = None) -> int:
    """``train.workers``, with -1 (auto) resolved: min(8, cores - 1) on CUDA, 0 on CPU."""
    if workers >= 0:
        return workers
    if not cuda:
        return 0
    return max(0, min(8, (cpu_count if cpu_count is not None else os.cpu_count() or 1) - 1))


def apply_cuda_settings(loop: Any, cuda: bool) -> None:
    """The process-wide CUDA switches of ``train``: cuDNN autotuning (the training shapes are fixed)."""
    if cuda:
        torch.backends.cudnn.benchmark = bool(loop.cudnn_benchmark)


def split_batch(batch: dict[str, Any], device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(L, H, paired) from a dataset batch: paired {"low", "high"} or unpaired {"A": low, "B": high}."""
    if "low" in batch:
        low, high, paired = batch["low"], batch["high"], True
    elif "A" in batch:
        low, high, paired = batch["A"], batch["B"], False
    else:
        raise InputError(f"training items need 'low'/'high' (paired) or 'A'/'B' (unpaired) images, got keys {sorted(batch)}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return low.to(device, memory_format=fmt), high.to(device, memory_format=fmt), paired


# ----------------------------------------------------------------------------- the trainer

class Trainer:
    """Holds the networks, optimisers and state of one run; ``fit()`` trains to the end."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, resume: str | Path | None = None,
                 datasets: dict[str, Any] | None = None):
        """``datasets`` ({"train", "val", ...} torch Datasets) replaces ``build_datasets(cfg.data)``
        (benchmarks, tests); its data hash is then "in-memory"."""
        cfg.check()
        self.cfg, self.out = cfg, Path(out_dir)
        self.rank, self.world, local_rank = setup_distributed()
        self.device = pick_device(cfg.train.device, local_rank)
        self.cuda = self.device.type == "cuda"
        self.amp = cfg.train.amp and self.cuda
        self.amp_dtype = torch.float16 if cfg.train.amp_dtype == "float16" else torch.bfloat16
        self.channels_last = cfg.train.channels_last and self.cuda
        apply_cuda_settings(cfg.train, self.cuda)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)

        if datasets is None:
            from sonoedge.train.datasets import build_datasets, data_hash

            self.data, self.data_hash = build_datasets(cfg.data), data_hash(cfg.data)
        else:
            self.data, self.data_hash = datasets, "in-memory"
        if len(self.data["train"]) < cfg.train.batch_size * self.world:
            raise InputError(f"the train split has {len(self.data['train'])} items, fewer than one batch of "
                             f"{cfg.train.batch_size} per process; lower train.batch_size or add data")
        self.nets = build_networks(cfg, self.device)
        self._check_sizes()
        if self.channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
        self.phi = build_phi(cfg, self.device) if needs_lpips(cfg) or self._val_wants_lpips() else None
        o = cfg.optim
        self.opt = {
            "G": torch.optim.Adam([*self.nets["G_H"].parameters(), *self.nets["G_L"].parameters()], lr=o.lr_g, betas=tuple(o.betas_g)),
            "D": torch.optim.Adam([*self.nets["D_H"].parameters(), *self.nets["D_L"].parameters()], lr=o.lr_d, betas=tuple(o.betas_d)),
        }
        self.sched = {k: make_scheduler(v, o, cfg.train.epochs) for k, v in self.opt.items()}
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.pools = {"H": ImagePool(cfg.train.pool_size), "L": ImagePool(cfg.train.pool_size)}
        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self.load(resume)
        if self.world > 1:
            ids = [self.device.index] if self.cuda else None
            self.nets = {k: nn.parallel.DistributedDataParallel(v, device_ids=ids) for k, v in self.nets.items()}
        if cfg.train.compile:
            self.nets = {k: torch.compile(v) for k, v in self.nets.items()}
        self.finite = torch.ones((), dtype=torch.bool, device=self.device)  # every loss since the last record was finite
        self.writer = self._open_records() if self.rank == 0 else None

    def _check_sizes(self) -> None:
        """Training images must be multiples of the generator's stride (data.size or data.stride)."""
        stride, data = self.nets["G_H"].stride, self.cfg.data
        size, data_stride = getattr(data, "size", 0), getattr(data, "stride", 0)
        fits = (size % stride == 0) if size else (data_stride % stride == 0)
        if not fits:
            raise InputError(f"generator '{self.cfg.model.generator}' needs images whose sides are multiples of {stride}; "
                             f"set data.size to a multiple of {stride} (now {size}) or data.stride={stride}")

    def _val_wants_lpips(self) -> bool:
        return self.cfg.loss.lpips_trunk is not None or self.cfg.train.best_metric == "lpips"

    # ------------------------------------------------------------------ records
    def _open_records(self):
        from torch.utils.tensorboard import SummaryWriter

        self.out.mkdir(parents=True, exist_ok=True)
        save_config(to_dict(self.cfg), self.out / "config.toml")
        self.log_path = self.out / "log.jsonl"
        return SummaryWriter(str(self.out / "tb"))

    def log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        kind = record.get("kind", "step")
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                self.writer.add_scalar(f"{kind}/{key}", value, self.step)

    # ------------------------------------------------------------------ one optimisation step
    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def train_step(self, low: torch.Tensor, high: torch.Tensor, paired: bool) -> dict[str, torch.Tensor]:
        """One generator and one discriminator update on (N, C, H, W) batches in [-1, 1]; returns the
        losses and the real label as 0-dim tensors on the device (no GPU->CPU sync: :meth:`scalars`
        brings them over at logging steps)."""
        cfg, lw = self.cfg, self.cfg.loss
        G_H, G_L, D_H, D_L = (self.nets[k] for k in NETS)
        if not paired and (lw.lambda_paired > 0 or (lw.perceptual == "translated" and lw.lambda_perceptual > 0)):
            raise InputError("the paired L1 and Phi(H, G_H(L)) terms need paired data; set loss.lambda_paired=0 "
                             "and loss.perceptual='cycled' or 'none' for unpaired A/B folders")
        if not lw.reverse:
            return self._train_step_forward(low, high, paired)
        # --- generators; the discriminators are called unwrapped and frozen (no DDP bookkeeping)
        for d in (D_H, D_L):
            d.requires_grad_(False)
        with self.autocast():
            fake_h, fake_l = G_H(low), G_L(high)  # H' = G_H(L), L' = G_L(H)
            terms = {}  # a term with weight 0 is not computed (bench-train times each term this way)
            if lw.lambda_adv > 0:
                terms["adv"] = losses.adversarial_g(unwrap(D_H)(fake_h), unwrap(D_L)(fake_l))
            if lw.lambda_cycle > 0 or (needs_lpips(cfg) and lw.perceptual == "cycled"):
                cyc_h, cyc_l = G_H(fake_l), G_L(fake_h)  # H-bar, L-bar
            if lw.lambda_cycle > 0:
                terms["cycle"] = losses.cycle_l1(high, cyc_h, low, cyc_l)
            if lw.lambda_identity > 0:
                terms["identity"] = losses.identity_l1(high, G_H(high), low, G_L(low))
            if lw.lambda_paired > 0:
                terms["paired"] = losses.paired_l1(high, fake_h, low, fake_l)
            if lw.lambda_lowpass > 0:
                terms["lowpass"] = (losses.lowpass_l1(low, fake_h, lw.lowpass_px)
                                    + losses.lowpass_l1(high, fake_l, lw.lowpass_px))
            if lw.lambda_dark > 0:
                terms["dark"] = (losses.dark_hinge(low, fake_h, lw.dark_px, lw.dark_ratio)
                                 + losses.dark_hinge(high, fake_l, lw.dark_px, lw.dark_ratio))
            if needs_lpips(cfg):
                other_h, other_l = (fake_h, fake_l) if lw.perceptual == "translated" else (cyc_h, cyc_l)
                terms["perceptual"] = losses.perceptual(self.phi, high.float(), other_h.float(), low.float(), other_l.float())
            weights = self._weights()
            loss_g = sum(weights[k] * v for k, v in terms.items())
        self.opt["G"].zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt["G"])
        # --- discriminators: real and fake in one forward each, label smoothing from the real scores
        for d in (D_H, D_L):
            d.requires_grad_(True)
        fakes = {"H": self.pools["H"].query(fake_h), "L": self.pools["L"].query(fake_l)}
        with self.autocast():
            scores_h = D_H(torch.cat([high, fakes["H"]]))
            scores_l = D_L(torch.cat([low, fakes["L"]]))
            n = high.shape[0]
            target = losses.real_target_tensor(scores_h[:n].detach().float().mean(), scores_l[:n].detach().float().mean(),
                                               enabled=lw.label_smoothing)
            loss_d = (losses.discriminator_lsgan(scores_h[:n].float(), scores_h[n:].float(), target)
                      + losses.discriminator_lsgan(scores_l[:n].float(), scores_l[n:].float(), target))
        self.opt["D"].zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt["D"])
        self.scaler.update()
        out = {f"loss_{k}": v.detach() for k, v in terms.items()}
        out.update(loss_g=loss_g.detach(), loss_d=loss_d.detach(), real_target=target)
        self.finite &= torch.isfinite(out["loss_g"]) & torch.isfinite(out["loss_d"])
        return out

    def _weights(self) -> dict[str, float]:
        lw = self.cfg.loss
        return {"adv": lw.lambda_adv, "cycle": lw.lambda_cycle, "identity": lw.lambda_identity,
                "paired": lw.lambda_paired, "perceptual": lw.lambda_perceptual, "lowpass": lw.lambda_lowpass,
                "dark": lw.lambda_dark}

    def _train_step_forward(self, low: torch.Tensor, high: torch.Tensor, paired: bool) -> dict[str, torch.Tensor]:
        """``loss.reverse=false``: one update of G_H alone, |H - G_H(L)| (journal L_L1, one way),
        |H - G_H(H)| (conference Eq. 5, one way), the low-pass term and Phi(H, G_H(L)); G_L and the
        discriminators are not run (loss_d is reported as 0)."""
        lw, G_H = self.cfg.loss, self.nets["G_H"]
        with self.autocast():
            fake_h = G_H(low)
            terms = {}
            if lw.lambda_paired > 0:
                terms["paired"] = torch.nn.functional.l1_loss(fake_h, high)
            if lw.lambda_identity > 0:
                terms["identity"] = torch.nn.functional.l1_loss(G_H(high), high)
            if lw.lambda_lowpass > 0:
                terms["lowpass"] = losses.lowpass_l1(low, fake_h, lw.lowpass_px)
            if lw.lambda_dark > 0:
                terms["dark"] = losses.dark_hinge(low, fake_h, lw.dark_px, lw.dark_ratio)
            if needs_lpips(self.cfg):
                terms["perceptual"] = self.phi(high.float(), fake_h.float()).mean()
            if not terms:
                raise InputError("loss.reverse=false needs at least one of lambda_paired, lambda_identity, lambda_lowpass, "
                                 "lambda_dark, lambda_perceptual > 0")
            weights = self._weights()
            loss_g = sum(weights[k] * v for k, v in terms.items())
        self.opt["G"].zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt["G"])
        self.scaler.update()
        zero = torch.zeros((), device=loss_g.device)
        out = {f"loss_{k}": v.detach() for k, v in terms.items()}
        out.update(loss_g=loss_g.detach(), loss_d=zero, real_target=zero + 1.0)
        self.finite &= torch.isfinite(out["loss_g"])
        return out

    def scalars(self, record: dict[str, torch.Tensor]) -> dict[str, float]:
        """The step's losses as floats (one GPU->CPU transfer); raises if any loss since the last
        call was NaN or Inf (checked on the device every step, reported here)."""
        names = list(record)
        values = torch.stack([record[k].float() for k in names] + [self.finite.float()]).tolist()
        out = dict(zip(names, values[:-1]))
        if values[-1] != 1.0 or not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"non-finite loss at or before step {self.step}: {out}")
        return out

    # ------------------------------------------------------------------ data order
    def epoch_loader(self):
        """The train loader of ``self.epoch``: order fixed by (seed, epoch), minus batches already done."""
        from torch.utils.data import DataLoader, DistributedSampler

        bs = self.cfg.train.batch_size
        if hasattr(self.data["train"], "set_epoch"):
            self.data["train"].set_epoch(self.epoch)  # augmentation draws depend on (seed, epoch, index)
        sampler = DistributedSampler(self.data["train"], num_replicas=self.world, rank=self.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=True)
        sampler.set_epoch(self.epoch)
        indices = list(sampler)
        indices = indices[: len(indices) // bs * bs][self.batch_in_epoch * bs:]  # full batches only
        # its own generator: creating a loader must not draw from the global RNG (exact resume)
        generator = torch.Generator().manual_seed(self.cfg.train.seed * 100003 + self.epoch)
        workers = loader_workers(self.cfg.train.workers, self.cuda)
        return DataLoader(self.data["train"], batch_size=bs, sampler=indices, num_workers=workers,
                          prefetch_factor=self.cfg.train.prefetch_factor if workers > 0 else None,
                          drop_last=True, pin_memory=self.cuda, generator=generator)

    def batches_per_epoch(self) -> int:
        return len(self.data["train"]) // self.world // self.cfg.train.batch_size

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Path:
        from tqdm import tqdm

        cfg = self.cfg.train
        while self.epoch < cfg.epochs:
            bar = tqdm(self.epoch_loader(), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=self.rank != 0,
                       initial=self.batch_in_epoch, total=self.batches_per_epoch(), leave=False)
            t0, seen = time.perf_counter(), 0
            for batch in bar:
                for net in self.nets.values():
                    net.train()
                low, high, paired = split_batch(batch, self.device, self.channels_last)
                record = self.train_step(low, high, paired)
                self.step, self.batch_in_epoch, seen = self.step + 1, self.batch_in_epoch + 1, seen + 1
                if self.step % cfg.log_every == 0 or self.step == 1:  # the only GPU->CPU syncs of the loop
                    values = self.scalars(record)
                    bar.set_postfix(g=f"{values['loss_g']:.3f}", d=f"{values['loss_d']:.3f}")
                    self.log({"kind": "step", "epoch": self.epoch, "step": self.step, **values})
                if cfg.max_steps and self.step >= cfg.max_steps:
                    self.scalars(record)  # never save weights a NaN has reached
                    self.save("last.pt", {})
                    return self.out
            if seen:
                self.scalars(record)  # never save weights a NaN has reached
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            for s in self.sched.values():
                s.step()
            metrics = self.validate() if self.rank == 0 else {}
            if self.world > 1:
                torch.distributed.barrier()
            elapsed = time.perf_counter() - t0
            self.log({"kind": "epoch", "epoch": self.epoch, "step": self.step, "seconds": elapsed,
                      "iters_per_s": seen / elapsed if elapsed else 0.0, **{f"val_{k}": v for k, v in metrics.items()}})
            self.save("last.pt", metrics)
            if metrics and self._improved(metrics):
                self.best = metrics[cfg.best_metric]
                self.save("best.pt", metrics)
        return self.out

    def _improved(self, metrics: dict[str, float]) -> bool:
        value = metrics[self.cfg.train.best_metric]
        if self.best is None:
            return True
        return value > self.best if HIGHER_IS_BETTER[self.cfg.train.best_metric] else value < self.best

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean SSIM, PSNR, LNCC (uint8 images) and LPIPS of G_H(low) against high on the val split."""
        from sonoedge.runtime import metrics as M
        from sonoedge.runtime.frames import denormalise

        val = self.data.get("val")
        if val is None or len(val) == 0:
            return {}
        g = unwrap(self.nets["G_H"]).eval()
        count = len(val) if not self.cfg.train.val_max_items else min(len(val), self.cfg.train.val_max_items)
        scores: dict[str, list[float]] = {"ssim": [], "psnr": [], "lncc": [], "lpips": []}
        grid = []
        for i in range(count):
            item = val[i]
            if "low" not in item:
                return {}  # unpaired validation data: nothing to score against
            low, high = item["low"][None].to(self.device), item["high"][None].to(self.device)
            with self.autocast():
                fake = g(low).float()
            a, b = denormalise(fake.cpu().numpy()), denormalise(high.cpu().numpy())
            scores["ssim"].append(M.ssim(a, b))
            scores["psnr"].append(M.psnr(a, b))
            scores["lncc"].append(M.lncc(a, b))
            if self.phi is not None:
                scores["lpips"].append(float(self.phi(fake, high)[0]))
            if i < self.cfg.train.grid_images:
                grid.append(torch.cat([low, fake, high], dim=3)[0].cpu())
        g.train()
        if grid and self.writer is not None and all(t.shape == grid[0].shape for t in grid):
            self.writer.add_images("val/low_enhanced_high", (torch.stack(grid) + 1) / 2, self.step)
        return {k: float(np.mean(v)) for k, v in scores.items() if v}

    # ------------------------------------------------------------------ checkpoints
    def model_info(self) -> dict[str, Any]:
        g = unwrap(self.nets["G_H"])
        return model_info(self.cfg.model.generator, {"in_channels": self.cfg.model.channels, "out_channels": self.cfg.model.channels,
                                                     **self.cfg.model.generator_kwargs},
                          task="enhance", scale=g.scale, channels=self.cfg.model.channels, stride=g.stride)

    def save(self, name: str, metrics: dict[str, float]) -> Path | None:
        if self.rank != 0:
            return None
        return save_checkpoint(
            self.out / name, model_info=self.model_info(),
            state_dicts={k: unwrap(v).state_dict() for k, v in self.nets.items()},
            config=to_dict(self.cfg),
            optimizers={k: v.state_dict() for k, v in self.opt.items()},
            schedulers={k: v.state_dict() for k, v in self.sched.items()},
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            rng=rng_state(),
            meta={"epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch,
                  "best": self.best, "data_hash": self.data_hash, "metrics": metrics,
                  "pools": {k: p.state_dict() for k, p in self.pools.items()},
                  "lpips_trunk": self.phi.trunk_description if self.phi is not None else "not used"},
        )

    def load(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        for name in NETS:
            unwrap(self.nets[name]).load_state_dict(ckpt["state_dicts"][name])
        for key, opt in self.opt.items():
            opt.load_state_dict(ckpt["optimizers"][key])
        for key, sched in self.sched.items():
            sched.load_state_dict(ckpt["schedulers"][key])
        if ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        meta = ckpt["meta"]
        for key, pool in self.pools.items():
            pool.load_state_dict(meta["pools"][key])
        self.epoch, self.step, self.batch_in_epoch, self.best = meta["epoch"], meta["step"], meta["batch_in_epoch"], meta["best"]
        set_rng_state(ckpt["rng"])


def train(cfg: TrainConfig, out_dir: str | Path, resume: str | Path | None = None) -> Path:
    """Train ``cfg`` into ``out_dir`` (optionally continuing ``resume``); returns the run directory."""
    trainer = Trainer(cfg, out_dir, resume)
    try:
        return trainer.fit()
    finally:
        if trainer.writer is not None:
            trainer.writer.close()
        if trainer.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
