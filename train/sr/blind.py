"""Blind 4x SR that adds something over bicubic on every degradation, within a CPU budget.

The Liu generator (networks.LiuSRGenerator) runs at the output size and learns from unpaired sons
through a CycleGAN; on this CPU it gets a few hundred iterations, which taught it nothing beyond
back-projection (docs/results/sr.md). This module is the "dataset" idea of Liu et al. (seed 002,
Sec. III-A: HR fathers, LR sons made from them) made blind and cheap:

- the generator is :class:`networks.BlindSRNet`: convolutions at the LR size, a sub-pixel output
  (ESPCN) predicting a residual on top of bicubic (VDSR's global residual), so the untrained net is
  exactly bicubic;
- it is trained supervised (L1, the pixel term of Liu et al. Eq. 2 alone) on HR crops of real
  training frames and LR sons made by a RANDOM operator of the degradation family (degrade.py:
  cubic, area, anti-aliased bicubic, Gaussians of random width), half of them with speckle-like
  unit-mean gamma noise, quantised to 8 bits as a real input is; the generator so learns to undo
  the family rather than one assumed operator (the blind-SR training of e.g. Real-ESRGAN/BSRGAN,
  Zhang et al. 2021, on this small family);
- a validation split of the training folder (every ``val_every``-th file) chooses the kept weights:
  the mean PSNR gain over bicubic on the evaluation degradations (degrade.EVAL_DEGRADATIONS) of the
  validation frames, never the realus evaluation frames;
- zero-shot (:func:`zero_shot`) starts from those weights and fine-tunes on the input's own sons,
  made by the degradation estimated from the input (ZSSR, Shocher et al. 2018, Sec. 4; Liu et al.
  Sec. III-A), for a time budget.

    sonoedge train --preset blind-sr --data ../shared/data/realtrain/hc18 --out runs/blind-sr
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sonoedge.train.sr import degrade
from sonoedge.train.sr.networks import BlindSRNet

NAME = "blind-sr"
GAUSS_SIGMAS = (0.5, 3.5)  # HR pixels: the range of the random Gaussian operators (candidates: 0.6-3.5)


@dataclasses.dataclass
class BlindNetConfig:
    channels: int = 32   # width of the LR-size convs (our choice: 0.3 s per training iteration on one core)
    layers: int = 10     # 3x3 convs + ReLU before the sub-pixel conv (our choice)


@dataclasses.dataclass
class BlindDataConfig:
    root: str = ""       # folder of HR training frames (searched recursively, presets.dataset_images)
    val_every: int = 10  # every val_every-th file (sorted) is validation, never trained on
    val_frames: int = 8  # validation frames scored at each check (the first of the split)
    lr_crop: int = 48    # LR side of a training crop (HR: 4x)
    batch: int = 16
    speckle: float = 0.15  # max std of the gamma noise multiplied into half of the sons


@dataclasses.dataclass
class BlindConfig:
    net: BlindNetConfig = dataclasses.field(default_factory=BlindNetConfig)
    data: BlindDataConfig = dataclasses.field(default_factory=BlindDataConfig)
    lr: float = 1e-3            # Adam; cosine decay to lr_min over max_iters (our choice)
    lr_min: float = 1e-5
    max_iters: int = 4000
    time_budget_s: float = 0.0  # stop after this many seconds of training (0: none)
    stop_iters: int = 0         # stop after this many iterations, the schedule still that of max_iters (0: none);
                                # repeats a run that the clock stopped, without the clock
    check_every: int = 250      # iterations between validation checks
    seed: int = 0
    threads: int = 1            # torch CPU threads (1 is fastest on a busy 2-core machine)

    def validate(self) -> "BlindConfig":
        from sonoedge.runtime.errors import InputError

        if self.data.lr_crop < 8:
            raise InputError(f"data.lr_crop={self.data.lr_crop} must be at least 8")
        if self.data.val_every < 2:
            raise InputError(f"data.val_every={self.data.val_every} must be at least 2 (some frames must train)")
        if not 0 <= self.data.speckle < 1:
            raise InputError(f"data.speckle={self.data.speckle} must be in [0, 1)")
        if self.max_iters < 1 or self.check_every < 1:
            raise InputError("max_iters and check_every must be at least 1")
        return self


# ------------------------------------------------------------------------------------- degradation

def random_operator(rng: np.random.Generator) -> degrade.Operator:
    """One operator of the family: cubic, area, bicubic-aa or a Gaussian of random width, equally likely."""
    kind = int(rng.integers(0, 4))
    if kind == 3:
        return degrade.operator(f"gauss{rng.uniform(*GAUSS_SIGMAS):.3f}")
    return degrade.operator(("cubic", "area", "bicubic-aa")[kind])


def quantise(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the nearest of the 256 grey levels (an LR input is uint8)."""
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def make_son(hr: torch.Tensor, op: degrade.Operator, noise_std: float, rng: np.random.Generator) -> torch.Tensor:
    """(1, 1, 4h, 4w) -> (1, 1, h, w): ``op``, then speckle of ``noise_std``, quantised to 8 bits."""
    lr = degrade.apply(op, hr)
    return quantise(degrade.speckle(lr, noise_std, rng))


# --------------------------------------------------------------------------------------- sampling

class CropSampler:
    """Random (son, HR crop) pairs from HR frames (each (1, 1, H, W) in [-1, 1]).

    The HR crop is taken with a margin of ``MARGIN`` LR pixels on each side, degraded, then both are
    cut to the interior, so a son never sees the crop's replicated border. Crops of an almost flat
    region (the black outside an ultrasound sector) are drawn again, up to 10 times."""

    MARGIN = 4  # LR pixels; the widest kernel (Gaussian 3.5) reaches 9 HR pixels past the block

    def __init__(self, frames: list[torch.Tensor], lr_crop: int, speckle_max: float,
                 operators: Callable[[np.random.Generator], degrade.Operator] = random_operator):
        side = 4 * (lr_crop + 2 * self.MARGIN)
        self.frames = [f for f in frames if min(f.shape[-2:]) >= side]
        if not self.frames:
            raise ValueError(f"no training frame is at least {side} pixels on each side (lr_crop={lr_crop})")
        self.lr_crop, self.side, self.speckle, self.operators = lr_crop, side, speckle_max, operators

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        from sonoedge.train.sr.fathers import dihedral

        sons, hrs = [], []
        m, c = self.MARGIN, self.lr_crop
        for _ in range(batch):
            for _attempt in range(10):
                frame = self.frames[int(rng.integers(0, len(self.frames)))]
                h, w = frame.shape[-2:]
                top, left = int(rng.integers(0, h - self.side + 1)), int(rng.integers(0, w - self.side + 1))
                crop = frame[..., top:top + self.side, left:left + self.side]
                if float(crop.std()) > 0.03:
                    break
            crop = dihedral(crop, int(rng.integers(0, 8)))
            std = float(rng.uniform(0.0, self.speckle)) if self.speckle and rng.random() < 0.5 else 0.0
            son = make_son(crop, self.operators(rng), std, rng)
            sons.append(son[..., m:m + c, m:m + c])
            hrs.append(crop[..., 4 * m:4 * (m + c), 4 * m:4 * (m + c)])
        return torch.cat(sons), torch.cat(hrs)


# ------------------------------------------------------------------------------------- validation

def super_resolve(G, lr: np.ndarray) -> np.ndarray:
    """uint8 (h, w) -> uint8 (4h, 4w): one pass of the blind generator."""
    from sonoedge.train.sr.trainer import to_image, to_tensor

    with torch.no_grad():
        return to_image(G(to_tensor(lr)))


def validation_inputs(frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(HR, LR) for every validation frame (cropped to multiples of 4) and evaluation degradation."""
    pairs = []
    for i, hr in enumerate(frames):
        h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
        hr = np.ascontiguousarray(hr[:h, :w])
        for j, name in enumerate(degrade.EVAL_DEGRADATIONS):
            pairs.append((hr, degrade.degrade_for_eval(hr, name, seed=10_000 + 100 * i + j)))
    return pairs


def validation_gain(G, pairs) -> float:
    """Mean PSNR of G minus bicubic (dB) over ``pairs``."""
    from sonoedge.runtime.metrics import psnr
    from sonoedge.train.sr.resize import resize_image

    G.eval()
    gains = [psnr(super_resolve(G, lr), hr) - psnr(resize_image(lr, 4), hr) for hr, lr in pairs]
    G.train()
    return float(np.mean(gains))


# --------------------------------------------------------------------------------------- training

@dataclasses.dataclass
class BlindLog:
    iterations: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    checks: list = dataclasses.field(default_factory=list)  # [(iteration, train L1, val gain dB)]
    best: tuple = ()                                        # (iteration, val gain dB) of the kept weights


def split(files: list, val_every: int) -> tuple[list[int], list[int]]:
    """(training indices, validation indices): every ``val_every``-th file (from the 5th) is validation."""
    val = [i for i in range(len(files)) if i % val_every == val_every // 2]
    return [i for i in range(len(files)) if i not in set(val)], val


def train(images: list[np.ndarray], val_images: list[np.ndarray], cfg: BlindConfig,
          progress: Callable[[int, dict], None] | None = None):
    """Supervised training of BlindSRNet (module docstring); returns (G with the best validation
    weights, BlindLog)."""
    import copy

    from sonoedge.train.sr.trainer import to_tensor

    cfg.validate()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    G = BlindSRNet(cfg.net.channels, cfg.net.layers)
    sampler = CropSampler([to_tensor(im) for im in images], cfg.data.lr_crop, cfg.data.speckle)
    pairs = validation_inputs(val_images[:cfg.data.val_frames])
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr)
    log = BlindLog()
    best_state, best_gain = copy.deepcopy(G.state_dict()), 0.0  # the untrained net is bicubic: gain 0
    log.best = (0, 0.0)
    start, losses, it = time.monotonic(), [], 0
    while True:
        if it >= cfg.max_iters:
            log.stop_reason = f"max_iters {cfg.max_iters}"
            break
        if cfg.stop_iters and it >= cfg.stop_iters:
            log.stop_reason = f"stop_iters {cfg.stop_iters}"
            break
        if cfg.time_budget_s and time.monotonic() - start >= cfg.time_budget_s:
            log.stop_reason = f"time budget {cfg.time_budget_s:g} s"
            break
        rate = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * it / cfg.max_iters))
        for group in opt.param_groups:
            group["lr"] = rate
        son, hr = sampler.sample(cfg.data.batch, rng)
        loss = (G(son) - hr).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        it += 1
        terms = {"l1": losses[-1], "lr": rate}
        if it % cfg.check_every == 0 or it == cfg.max_iters:
            gain = validation_gain(G, pairs) if pairs else float("nan")
            log.checks.append((it, float(np.mean(losses[-cfg.check_every:])), gain))
            terms["val_gain_db"] = gain
            if pairs and gain > best_gain:
                best_state, best_gain = copy.deepcopy(G.state_dict()), gain
                log.best = (it, gain)
        if progress is not None:
            progress(it, terms)
    if not pairs:  # nothing to choose by: keep the last weights
        best_state, log.best = G.state_dict(), (it, float("nan"))
    G.load_state_dict(best_state)
    log.iterations, log.seconds = it, time.monotonic() - start
    return G.eval(), log


def save(G, log: BlindLog, cfg: BlindConfig, path: str | Path, data_info: dict | None = None) -> Path:
    """The checkpoint contract of train/checkpoint.py (``deploy`` = "G_SR", task "sr", scale 4)."""
    from sonoedge.runtime.config import to_dict
    from sonoedge.train.checkpoint import model_info, save_checkpoint

    info = model_info("blind_sr", {"channels": G.channels, "layers": G.layers}, task="sr", scale=G.scale,
                      channels=1, stride=G.stride, deploy="G_SR")
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    meta = {"step": log.best[0], "metrics": {"val_gain_db": log.best[1]},
            "train_log": {"iterations": log.iterations, "seconds": log.seconds, "stop_reason": log.stop_reason,
                          "checks": [list(c) for c in log.checks], "best": list(log.best)},
            **(data_info or {})}
    return save_checkpoint(path, model_info=info, state_dicts={"G_SR": state}, config=to_dict(cfg), meta=meta)


def run(cfg: BlindConfig, out_dir: Path, resume: Path | None) -> Path:
    """The ``blind-sr`` preset: train on cfg.data.root, write OUT/last.pt (the best validation
    weights) and OUT/config.toml."""
    import hashlib

    from tqdm import tqdm

    from sonoedge.runtime.config import save_config
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr.presets import dataset_images

    if resume is not None:
        raise InputError(f"{NAME} does not resume (it trains in minutes); run it again without --resume")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    images, files = dataset_images(cfg.data.root)
    train_idx, val_idx = split(files, cfg.data.val_every)
    out_dir = Path(out_dir)
    names = "\n".join(str(f.relative_to(cfg.data.root)) for f in files)
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    bar = tqdm(total=cfg.max_iters, desc=f"{NAME} ({len(train_idx)} training, {len(val_idx)} validation images)",
               unit="it")

    def progress(it: int, terms: dict) -> None:
        bar.update(1)
        if it % 10 == 0 or "val_gain_db" in terms:
            post = {"l1": f"{terms['l1']:.4f}", "lr": f"{terms['lr']:.1e}"}
            if "val_gain_db" in terms:
                bar.write(f"iteration {it}: validation gain over bicubic {terms['val_gain_db']:+.3f} dB")
            bar.set_postfix(post)

    try:
        G, log = train([images[i] for i in train_idx], [images[i] for i in val_idx], cfg, progress)
    finally:
        bar.close()
    data_info = {"data_hash": f"files:{digest}", "images": len(train_idx),
                 "validation": [str(files[i].relative_to(cfg.data.root)) for i in val_idx[:cfg.data.val_frames]]}
    path = save(G, log, cfg, out_dir / "last.pt", data_info)
    save_config(cfg, out_dir / "config.toml")
    print(f"{NAME}: {log.iterations} iterations in {log.seconds:.0f} s, stopped by {log.stop_reason}; kept "
          f"iteration {log.best[0]} (validation gain over bicubic {log.best[1]:+.3f} dB); checkpoint {path}")
    return out_dir


# ------------------------------------------------------------------------------------ inference

WEIGHTS = Path(__file__).resolve().parent / "weights" / "blind-sr-realtrain.pt"  # the shipped dataset-mode G


def load(checkpoint: str | Path | None = None):
    """(BlindSRNet or any SR generator in eval mode, model_info) from ``checkpoint`` (default: the
    shipped WEIGHTS, trained on realtrain/hc18; docs/results/sr.md says how to reproduce it)."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr.trainer import load_sr_generator

    path = Path(checkpoint) if checkpoint else WEIGHTS
    if not path.is_file():
        raise InputError(f"SR checkpoint {path} does not exist; train one with 'sonoedge train --preset {NAME} "
                         f"--data FOLDER' or pass --checkpoint")
    return load_sr_generator(path)


# Inference is one pass of G. Back-projection through the estimated operator after it (noise-aware, as
# the Liu inference) is an option, off by default: on the first realtrain validation frame (its 10
# evaluation degradations, docs/results/sr.md) it gained 0.03-1.06 dB on the clean inputs and lost
# 0.95-1.19 dB on the speckled ones (it puts back the speckle G removed): mean +0.47 dB over bicubic
# against +0.84 dB without it.
BACK_PROJECTION = False


def infer(G, lr: np.ndarray, back_projection: bool | None = None) -> np.ndarray:
    """uint8 (h, w) -> uint8 (4h, 4w): one pass of ``G``, then (``back_projection``, default
    BACK_PROJECTION) back-projection through the operator estimated from ``lr``, stopped at its noise
    level (trainer.super_resolve with one view)."""
    if back_projection is None:
        back_projection = BACK_PROJECTION
    if not back_projection:
        return super_resolve(G, lr)
    from sonoedge.runtime.config import load_config
    from sonoedge.train.sr import trainer as T
    from sonoedge.train.sr.config import SRConfig

    cfg = load_config(SRConfig, None, ["mode='dataset'", "ensemble.transforms=1"]).validate()
    return T.super_resolve(G, lr, cfg)


def describe(G) -> str:
    if getattr(G, "layers", None) is None:
        return type(G).__name__
    return f"BlindSRNet {G.layers} x {G.channels} channels, {sum(p.numel() for p in G.parameters()):,} parameters"


@dataclasses.dataclass
class ZeroShotConfig:
    """Fine-tuning of the dataset-mode G on the input's own sons (:func:`zero_shot`)."""

    budget_s: float = 30.0   # seconds of fine-tuning (sonoedge sr --budget)
    lr: float = 1e-4         # Adam. On a realtrain validation frame (docs/results/sr.md) fine-tuning hurt at
                             # 1e-4 and at 1e-5 alike (mean +0.37 and +0.28 dB over bicubic on 6 inputs,
                             # the dataset weights +0.70): the input's own fathers are already blurred and
                             # ultrasound is not self-similar across scales; 1e-4 hurt less
    batch: int = 8
    son_crop: int = 16       # LR side of a son crop (its father: 64, Liu et al. Sec. IV-B's crop size)
    check_every: int = 25    # iterations between measurements of the probe error
    max_iters: int = 100_000
    sons: str = "estimate"   # "estimate": every son by the operator estimated from the input;
                             # "family": by a random operator of the family, as the dataset training;
                             # or one operator's name (degrade.operator), e.g. "cubic"
    speckle: float = 0.15    # max std of the gamma noise on half of the sons (as the dataset training)
    seed: int = 0

    def validate(self) -> "ZeroShotConfig":
        from sonoedge.runtime.errors import InputError

        if self.sons not in ("estimate", "family"):
            try:
                degrade.operator(self.sons)
            except ValueError as exc:
                raise InputError(f"zero-shot sons: {exc}") from None
        if self.budget_s < 0:
            raise InputError(f"zero-shot budget {self.budget_s:g} s must be >= 0")
        return self


PROBE_OPERATORS = ("cubic", "area", "bicubic-aa", "gauss1.5", "gauss2.5")  # the "family" probe's sons


@dataclasses.dataclass
class ZeroShotLog:
    iterations: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    probe: list = dataclasses.field(default_factory=list)  # [(iteration, L1 son -> input)]
    kept: int = 0                                          # iteration of the kept weights (0: the dataset G)
    sons: str = ""
    estimate: str = ""


def zero_shot(G, lr: np.ndarray, cfg: ZeroShotConfig | None = None,
              progress: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, ZeroShotLog]:
    """Fine-tune a copy of ``G`` on the LR input ``lr`` (uint8 (h, w)) itself, then super-resolve it.

    HR fathers are crops of ``lr`` with the 8 rotations/flips; their sons are made by the degradation
    estimated from ``lr`` (``sons`` = "estimate": ZSSR Sec. 4 with the estimated kernel, Liu et al.
    Sec. III-A) or by random operators of the family (``sons`` = "family"), speckle on half of them.
    The probe (the whole input's son(s) -> the input, L1) is measured every ``check_every``
    iterations and the weights with the lowest probe error are kept, the dataset G's own included:
    ZSSR's criterion, so fine-tuning that does not fit the input better is undone. Returns (uint8 (4h, 4w), log)."""
    import copy

    from sonoedge.train.sr.trainer import to_tensor

    cfg = (cfg or ZeroShotConfig()).validate()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    est = degrade.estimate(lr)
    if cfg.sons == "family":
        ops, pick, text = [degrade.operator(n) for n in PROBE_OPERATORS], random_operator, "random family operators"
    else:
        op = est.op if cfg.sons == "estimate" else degrade.operator(cfg.sons)
        ops, pick = [op], (lambda _rng: op)
        text = f"{op.name} ({'estimated' if cfg.sons == 'estimate' else 'given'})"
    sampler = CropSampler([to_tensor(lr)], cfg.son_crop, cfg.speckle, pick)
    log = ZeroShotLog(sons=text + (f", speckle up to {cfg.speckle:g} on half" if cfg.speckle else ""),
                      estimate=est.describe())
    father = to_tensor(np.ascontiguousarray(lr[:lr.shape[0] // 4 * 4, :lr.shape[1] // 4 * 4]))
    probe_sons = [quantise(degrade.apply(op, father)) for op in ops]
    G = copy.deepcopy(G).train()
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr)

    def probe() -> float:
        G.eval()
        with torch.no_grad():
            error = float(np.mean([float((G(son) - father).abs().mean()) for son in probe_sons]))
        G.train()
        return error

    best_error, best_state = probe(), copy.deepcopy(G.state_dict())
    log.probe.append((0, best_error))
    start, it = time.monotonic(), 0
    while True:
        if it >= cfg.max_iters:
            log.stop_reason = f"max_iters {cfg.max_iters}"
            break
        if time.monotonic() - start >= cfg.budget_s:
            log.stop_reason = f"time budget {cfg.budget_s:g} s"
            break
        son, hr = sampler.sample(cfg.batch, rng)
        loss = (G(son) - hr).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        terms = {"l1": float(loss.detach())}
        if it % cfg.check_every == 0:
            error = probe()
            log.probe.append((it, error))
            terms["probe"] = error
            if error < best_error:
                best_error, best_state, log.kept = error, copy.deepcopy(G.state_dict()), it
        if progress is not None:
            progress(it, terms)
    G.load_state_dict(best_state)
    log.iterations, log.seconds = it, time.monotonic() - start
    return infer(G.eval(), lr), log


# ------------------------------------------------------------------- choices, on validation frames

def compare_on_validation(root: str | Path, checkpoint: str | Path | None = None, frames: int = 2,
                          budget_s: float = 30.0, val_every: int = 10, variants: tuple = ("dataset", "dataset-bp",
                          "zero-shot", "zero-shot-family"), progress: Callable[[str], None] | None = None) -> dict:
    """The inference choices of this module, measured on the validation split of the training folder
    ``root`` (the frames train() never trains on; never the realus evaluation frames): PSNR gain over
    bicubic (dB) per variant and evaluation degradation, over the first ``frames`` validation frames.

        dataset           one pass of G
        dataset-bp        + back-projection through the estimated operator, stopped at the noise level
        zero-shot         zero_shot with sons by the estimated operator, ``budget_s`` seconds
        zero-shot-family  zero_shot with sons by random family operators

    Returns {variant: {degradation: [gain per frame]}}."""
    from sonoedge.runtime.metrics import psnr
    from sonoedge.train.sr.presets import dataset_images
    from sonoedge.train.sr.resize import resize_image

    G, _ = load(checkpoint)
    images, files = dataset_images(root)
    _, val = split(files, val_every)
    pairs = validation_inputs([images[i] for i in val[:frames]])
    out: dict = {v: {} for v in variants}
    for k, (hr, lr) in enumerate(pairs):
        degradation = degrade.EVAL_DEGRADATIONS[k % len(degrade.EVAL_DEGRADATIONS)]
        base = psnr(resize_image(lr, 4), hr)
        for v in variants:
            if v == "dataset":
                sr = infer(G, lr, back_projection=False)
            elif v == "dataset-bp":
                sr = infer(G, lr, back_projection=True)
            else:
                sons = "family" if v == "zero-shot-family" else "estimate"
                sr, _log = zero_shot(G, lr, ZeroShotConfig(budget_s=budget_s, sons=sons))
            out[v].setdefault(degradation, []).append(psnr(sr, hr) - base)
            if progress is not None:
                progress(f"{v} {degradation} frame {k // len(degrade.EVAL_DEGRADATIONS)}: "
                         f"{out[v][degradation][-1]:+.3f} dB")
    return out


def _register() -> None:
    from sonoedge.train.presets import Preset
    from sonoedge.train.registries import PRESETS

    PRESETS.register(NAME)(Preset(
        NAME, "fast blind 4x super-resolution (LR-size residual net, supervised on random degradations)",
        config=BlindConfig(), run=run, data_key="data.root"))


_register()
