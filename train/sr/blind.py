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
- zero-shot (:func:`zero_shot`) starts from those weights and adapts them to the input for a time
  budget: anchored to the dataset net's own output, with back-projection through the degradation
  estimated from the input as a loss where the input is clean (ZSSR's fit of the input's own sons,
  Shocher et al. 2018 / Liu et al. Sec. III-A, is an option, off: it taught blur).

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
    # relative odds of the sons' operator kinds (cubic, area, bicubic-aa, Gaussian of random width);
    # equal in the first training run; the shipped weights were then fine-tuned with plain cubic
    # (aliased decimation, the degradation that stayed below bicubic) drawn more often
    operator_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


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
    init: str = ""              # start from this blind-sr checkpoint's weights (fine-tuning; "": bicubic init)
    select: str = "mean"        # which validation check's weights to keep: "mean" = the best mean gain over
                                # bicubic; "worst" = the best gain of the worst degradation (its mean over
                                # the validation frames), so no degradation is traded for the average

    def validate(self) -> "BlindConfig":
        from sonoedge.runtime.errors import InputError

        if self.select not in SELECT:
            raise InputError(f"select='{self.select}' is unknown; use one of {', '.join(SELECT)}")
        w = self.data.operator_weights
        if any(v < 0 for v in w) or sum(w) <= 0:
            raise InputError(f"data.operator_weights={list(w)} must be >= 0 with a positive sum "
                             "(odds of cubic, area, bicubic-aa, Gaussian)")
        if self.init and not Path(self.init).is_file():
            raise InputError(f"init={self.init}: no such checkpoint (a blind-sr last.pt, e.g. the shipped "
                             "train/sr/weights/blind-sr-realtrain.pt)")

        if self.data.lr_crop < 8:
            raise InputError(f"data.lr_crop={self.data.lr_crop} must be at least 8")
        if self.data.val_every < 2:
            raise InputError(f"data.val_every={self.data.val_every} must be at least 2 (some frames must train)")
        if not 0 <= self.data.speckle < 1:
            raise InputError(f"data.speckle={self.data.speckle} must be in [0, 1)")
        if self.max_iters < 1 or self.check_every < 1:
            raise InputError("max_iters and check_every must be at least 1")
        return self


SELECT = ("mean", "worst")

# ------------------------------------------------------------------------------------- degradation

def random_operator(rng: np.random.Generator) -> degrade.Operator:
    """One operator of the family: cubic, area, bicubic-aa or a Gaussian of random width, equally likely."""
    kind = int(rng.integers(0, 4))
    if kind == 3:
        return degrade.operator(f"gauss{rng.uniform(*GAUSS_SIGMAS):.3f}")
    return degrade.operator(("cubic", "area", "bicubic-aa")[kind])


def weighted_operators(weights: tuple[float, ...]) -> Callable[[np.random.Generator], degrade.Operator]:
    """Like :func:`random_operator`, the kinds (cubic, area, bicubic-aa, Gaussian) drawn with the odds
    ``weights``; equal weights draw exactly as random_operator does (the same random numbers)."""
    w = np.asarray(weights, dtype=np.float64)
    if np.allclose(w, w[0]):
        return random_operator
    cdf = np.cumsum(w / w.sum())

    def pick(rng: np.random.Generator) -> degrade.Operator:
        kind = min(int(np.searchsorted(cdf, rng.random(), side="right")), 3)
        if kind == 3:
            return degrade.operator(f"gauss{rng.uniform(*GAUSS_SIGMAS):.3f}")
        return degrade.operator(("cubic", "area", "bicubic-aa")[kind])

    return pick


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


def validation_gains(G, pairs) -> dict[str, float]:
    """PSNR of G minus bicubic (dB), mean over the frames, per evaluation degradation (``pairs`` as
    validation_inputs makes them: every frame in every degradation, in EVAL_DEGRADATIONS order)."""
    from sonoedge.runtime.metrics import psnr
    from sonoedge.train.sr.resize import resize_image

    G.eval()
    per: dict[str, list[float]] = {}
    for k, (hr, lr) in enumerate(pairs):
        name = degrade.EVAL_DEGRADATIONS[k % len(degrade.EVAL_DEGRADATIONS)]
        per.setdefault(name, []).append(psnr(super_resolve(G, lr), hr) - psnr(resize_image(lr, 4), hr))
    G.train()
    return {name: float(np.mean(v)) for name, v in per.items()}


def validation_gain(G, pairs) -> float:
    """Mean PSNR of G minus bicubic (dB) over ``pairs``."""
    gains = validation_gains(G, pairs)
    return float(np.mean(list(gains.values()))) if gains else float("nan")


def criterion(gains: dict[str, float], select: str) -> float:
    """The number the kept weights maximise (BlindConfig.select)."""
    values = list(gains.values())
    return float(min(values)) if select == "worst" else float(np.mean(values))


# --------------------------------------------------------------------------------------- training

@dataclasses.dataclass
class BlindLog:
    iterations: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    checks: list = dataclasses.field(default_factory=list)  # [(iteration, train L1, val gain dB, worst dB)]
    best: tuple = ()                                        # (iteration, val gain dB) of the kept weights
    start: dict = dataclasses.field(default_factory=dict)   # per-degradation val gains of the initial weights
    best_gains: dict = dataclasses.field(default_factory=dict)  # ... and of the kept ones


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
    if cfg.init:
        G = _init_from(cfg.init, cfg)
    sampler = CropSampler([to_tensor(im) for im in images], cfg.data.lr_crop, cfg.data.speckle,
                          weighted_operators(cfg.data.operator_weights))
    pairs = validation_inputs(val_images[:cfg.data.val_frames])
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr)
    log = BlindLog()
    # the initial weights are a candidate too: the untrained net is bicubic (every gain 0); an init
    # checkpoint is measured, so fine-tuning that does not improve the criterion keeps it
    start_gains = validation_gains(G, pairs) if (pairs and cfg.init) else {d: 0.0 for d in degrade.EVAL_DEGRADATIONS}
    log.start = log.best_gains = start_gains
    best_state, best_gain = copy.deepcopy(G.state_dict()), criterion(start_gains, cfg.select)
    log.best = (0, float(np.mean(list(start_gains.values()))))
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
            gains = validation_gains(G, pairs) if pairs else {}
            gain = float(np.mean(list(gains.values()))) if gains else float("nan")
            worst = min(gains.values()) if gains else float("nan")
            log.checks.append((it, float(np.mean(losses[-cfg.check_every:])), gain, worst))
            terms["val_gain_db"], terms["val_worst_db"] = gain, worst
            if pairs and criterion(gains, cfg.select) > best_gain:
                best_state, best_gain = copy.deepcopy(G.state_dict()), criterion(gains, cfg.select)
                log.best, log.best_gains = (it, gain), gains
        if progress is not None:
            progress(it, terms)
    if not pairs:  # nothing to choose by: keep the last weights
        best_state, log.best = G.state_dict(), (it, float("nan"))
    G.load_state_dict(best_state)
    log.iterations, log.seconds = it, time.monotonic() - start
    return G.eval(), log


def _init_from(path: str, cfg: BlindConfig) -> BlindSRNet:
    """A BlindSRNet with the weights of the blind-sr checkpoint ``path`` (its size must be cfg.net's)."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr.trainer import load_sr_generator

    G, info = load_sr_generator(path)
    if not isinstance(G, BlindSRNet) or (G.channels, G.layers) != (cfg.net.channels, cfg.net.layers):
        raise InputError(f"init={path} holds {describe(G)}, not a BlindSRNet of {cfg.net.layers} x "
                         f"{cfg.net.channels} channels (net.layers, net.channels)")
    return G.train()


def save(G, log: BlindLog, cfg: BlindConfig, path: str | Path, data_info: dict | None = None) -> Path:
    """The checkpoint contract of train/checkpoint.py (``deploy`` = "G_SR", task "sr", scale 4)."""
    from sonoedge.runtime.config import to_dict
    from sonoedge.train.checkpoint import model_info, save_checkpoint

    info = model_info("blind_sr", {"channels": G.channels, "layers": G.layers}, task="sr", scale=G.scale,
                      channels=1, stride=G.stride, deploy="G_SR")
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    meta = {"step": log.best[0], "metrics": {"val_gain_db": log.best[1]},
            "train_log": {"iterations": log.iterations, "seconds": log.seconds, "stop_reason": log.stop_reason,
                          "checks": [list(c) for c in log.checks], "best": list(log.best),
                          "start_gains": log.start, "best_gains": log.best_gains},
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
        raise InputError(f"{NAME} does not resume (it trains in minutes); run it again without --resume, or "
                         f"start from a checkpoint's weights with --set init=\"{resume}\"")
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
                bar.write(f"iteration {it}: validation gain over bicubic {terms['val_gain_db']:+.3f} dB "
                          f"(worst degradation {terms['val_worst_db']:+.3f} dB)")
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
    if log.best_gains:
        print("validation gain over bicubic per degradation, initial -> kept (dB): " + ", ".join(
            f"{d} {log.start.get(d, 0.0):+.3f} -> {g:+.3f}" for d, g in log.best_gains.items()))
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
    """Fine-tuning of the dataset-mode G on the input itself (:func:`zero_shot`)."""

    budget_s: float = 15.0   # seconds of fine-tuning (sonoedge sr --budget): 400-500 iterations on one busy
                             # core; on realtrain validation frames the consistency term's gains were there
    lr: float = 1e-4         # Adam
    batch: int = 8           # internal (son -> father) pairs per iteration
    son_crop: int = 16       # LR side of a son crop (its father: 64, Liu et al. Sec. IV-B's crop size)
    crop: int = 48           # LR side of the input crops of the anchor and consistency terms (one per iteration)
    # The weights, chosen on realtrain validation frames 8-10 (docs/results/sr.md): the internal term
    # (ZSSR's fit, the previous default) cost 0.1-0.2 dB on the sharp inputs even with the anchor, so
    # it is off; consistency 3 gained +0.5 to +0.8 dB where the estimate was right and blurred and
    # lost at most 0.05 dB where it was wrong (10: up to 0.10, 30: up to 0.38)
    internal: float = 0.0    # weight of the internal term, L1(G(son), father) (ZSSR; Liu et al. Eq. 2)
    anchor: float = 1.0      # weight of L1(G(input), G0(input)), G0 the frozen dataset G
    consistency: float = 3.0  # weight of L1(D_est(G(input)), input), times the input's cleanliness
    clean_speckle: tuple[float, float] = (0.04, 0.08)  # degrade.speckle_level at which the cleanliness
                             # is 1 and 0 (linear between): on 34 realtrain validation frames x 10
                             # degradations the clean inputs read 0.006-0.075, the speckled 0.082-0.121
    check_every: int = 25    # iterations between progress reports of the loss terms
    max_iters: int = 100_000
    sons: str = "estimate"   # the operator of the sons and of the consistency term: "estimate" (from the
                             # input); one operator's name (degrade.operator), e.g. "cubic" (sonoedge sr
                             # --degradation); "family": sons by random operators of the family, as the
                             # dataset training (the consistency term then uses the estimate)
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
        if min(self.internal, self.anchor, self.consistency) < 0:
            raise InputError("zero-shot weights internal, anchor and consistency must be >= 0")
        lo, hi = self.clean_speckle
        if not 0 <= lo < hi:
            raise InputError(f"zero-shot clean_speckle={list(self.clean_speckle)} must be two levels 0 <= lo < hi")
        if self.crop < 8:
            raise InputError(f"zero-shot crop={self.crop} must be at least 8 LR pixels")
        return self


PROBE_OPERATORS = ("cubic", "area", "bicubic-aa", "gauss1.5", "gauss2.5")  # the "family" probe's sons


@dataclasses.dataclass
class ZeroShotLog:
    iterations: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    probe: list = dataclasses.field(default_factory=list)  # [(iteration, L1 son -> input)]: first and last
    terms: list = dataclasses.field(default_factory=list)  # [(iteration, internal, anchor, consistency)]
    cleanliness: float = 0.0   # the consistency term's weight factor (0: speckled input, 1: clean)
    speckle: float = 0.0       # degrade.speckle_level of the input
    drift: float = 0.0         # mean |G(input) - G0(input)| of the output, grey levels
    sons: str = ""
    operator: str = ""         # the consistency term's operator
    estimate: str = ""


def cleanliness(lr: np.ndarray, levels: tuple[float, float]) -> tuple[float, float]:
    """(cleanliness in [0, 1], speckle level): 1 at or below levels[0], 0 at or above levels[1]."""
    level = degrade.speckle_level(lr)
    lo, hi = levels
    return float(np.clip((hi - level) / (hi - lo), 0.0, 1.0)), level


def zero_shot(G, lr: np.ndarray, cfg: ZeroShotConfig | None = None,
              progress: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, ZeroShotLog]:
    """Fine-tune a copy of the dataset-mode ``G`` (frozen copy: G0) on the LR input ``lr`` (uint8
    (h, w)) itself for the budget, then super-resolve it with one pass. Each iteration minimises

        internal * L1(G(son), father)                      ZSSR (Shocher et al. 2018, Sec. 4), Liu et
                                                           al. Sec. III-A / Eq. 2: fathers = crops of the
                                                           input with the 8 flips/rotations, sons by the
                                                           operator estimated from it, speckle on half
      + anchor * L1(G(x), G0(x))                           x = a random crop of the input at its own scale:
                                                           the dataset net's output anchors the HR
                                                           statistics the internal pairs lack (L2-SP, Li
                                                           et al. 2018, in function space; the
                                                           meta-learned start of MZSR, Soh et al. 2020)
      + consistency * c * L1(D_est(G(x)), x)               back-projection as a loss (Irani & Peleg 1991)
                                                           through the estimated operator, weighted by the
                                                           input's cleanliness c (:func:`cleanliness`):
                                                           on a speckled input it would copy the speckle
                                                           back in, so c = 0 there

    The internal term alone taught the net to blur (the input's own fathers are already degraded and
    ultrasound is not self-similar across scales; docs/results/sr.md); the anchor holds the output
    near G0's unless the other terms pay for the change, so with c = 0 and internal = 0 the output
    is G0's exactly, and it is returned at once, without spending the budget. No keep-best by the
    son -> input probe: it improved while the output got worse. Returns (uint8 (4h, 4w), log)."""
    import copy

    from sonoedge.train.sr.trainer import to_tensor

    cfg = (cfg or ZeroShotConfig()).validate()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    est = degrade.estimate(lr)
    op = est.op if cfg.sons in ("estimate", "family") else degrade.operator(cfg.sons)
    text = f"{op.name} ({'given' if op is not est.op else 'estimated'})"
    if cfg.sons == "family":
        ops, pick, text = [degrade.operator(n) for n in PROBE_OPERATORS], random_operator, "random family operators"
    else:
        ops, pick = [op], (lambda _rng: op)
    clean, level = cleanliness(lr, cfg.clean_speckle)
    log = ZeroShotLog(sons=text + (f", speckle up to {cfg.speckle:g} on half" if cfg.speckle else ""),
                      estimate=est.describe(), cleanliness=clean, speckle=level, operator=op.name)
    x_full = to_tensor(np.ascontiguousarray(lr[:lr.shape[0] // 4 * 4, :lr.shape[1] // 4 * 4]))
    probe_sons = [quantise(degrade.apply(op, x_full)) for op in ops]
    G0 = copy.deepcopy(G).eval()
    for p in G0.parameters():
        p.requires_grad_(False)
    G = copy.deepcopy(G).train()
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr)
    internal = cfg.internal > 0
    if internal:
        sampler = CropSampler([to_tensor(lr)], cfg.son_crop, cfg.speckle, pick)
    w_cons = cfg.consistency * clean
    x_lr = to_tensor(lr)
    m = CropSampler.MARGIN
    side_h, side_w = min(cfg.crop + 2 * m, x_lr.shape[-2]), min(cfg.crop + 2 * m, x_lr.shape[-1])

    def probe() -> float:
        G.eval()
        with torch.no_grad():
            error = float(np.mean([float((G(son) - x_full).abs().mean()) for son in probe_sons]))
        G.train()
        return error

    log.probe.append((0, probe()))
    start, it = time.monotonic(), 0
    if not internal and w_cons == 0:
        # at most the anchor is left, whose gradient at G = G0 is zero (L1 at 0): G would not move in
        # the whole budget, so none is spent
        why = (f"the input reads speckled (level {level:.3f}, cleanliness 0)" if cfg.consistency > 0
               else "the consistency weight is 0")
        log.stop_reason = f"nothing to fit: {why} and the internal term is off, so at most the anchor is left and G stays G0"
    while not log.stop_reason:
        if it >= cfg.max_iters:
            log.stop_reason = f"max_iters {cfg.max_iters}"
            break
        if time.monotonic() - start >= cfg.budget_s:
            log.stop_reason = f"time budget {cfg.budget_s:g} s"
            break
        loss = torch.zeros(())
        t_int = t_anc = t_con = 0.0
        if internal:
            son, hr = sampler.sample(cfg.batch, rng)
            term = (G(son) - hr).abs().mean()
            loss = loss + cfg.internal * term
            t_int = float(term.detach())
        if cfg.anchor > 0 or w_cons > 0:
            top = int(rng.integers(0, x_lr.shape[-2] - side_h + 1))
            left = int(rng.integers(0, x_lr.shape[-1] - side_w + 1))
            x = x_lr[..., top:top + side_h, left:left + side_w]
            y = G(x)
            # the margin is left out of every term: G and D_est see the crop's replicated border there
            if cfg.anchor > 0:
                with torch.no_grad():
                    y0 = G0(x)
                term = (y - y0)[..., 4 * m:-4 * m, 4 * m:-4 * m].abs().mean()
                loss = loss + cfg.anchor * term
                t_anc = float(term.detach())
            if w_cons > 0:
                down = degrade.apply(op, y)
                term = (down - x[..., :down.shape[-2], :down.shape[-1]])[..., m:-m, m:-m].abs().mean()
                loss = loss + w_cons * term
                t_con = float(term.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        terms = {"internal": t_int, "anchor": t_anc, "consistency": t_con}
        if it % cfg.check_every == 0:
            log.terms.append((it, t_int, t_anc, t_con))
        if progress is not None:
            progress(it, terms)
    log.iterations, log.seconds = it, time.monotonic() - start
    G.eval()
    sr = infer(G, lr)
    if it == 0:  # G is still G0: its probe and output are G0's, already known
        log.probe.append((0, log.probe[0][1]))
        return sr, log
    log.probe.append((it, probe()))
    base = infer(G0, lr)
    log.drift = float(np.abs(sr.astype(np.float64) - base).mean())
    return sr, log


# ------------------------------------------------------------------- choices, on validation frames

# the zero-shot variants compared on validation: the default ZeroShotConfig and each term left out
ZERO_SHOT_VARIANTS = {
    "zero-shot": {},                                                          # anchor + gated consistency
    "zero-shot-internal": {"internal": 1.0, "anchor": 0.0, "consistency": 0.0},  # ZSSR's fit alone (before)
    "zero-shot-internal-anchor": {"internal": 1.0, "consistency": 0.0},
    "zero-shot-all": {"internal": 1.0, "consistency": 1.0},                   # every term
    "zero-shot-family": {"sons": "family", "internal": 1.0, "anchor": 0.0, "consistency": 0.0},
}
VALIDATION_VARIANTS = ("dataset", "dataset-bp", *ZERO_SHOT_VARIANTS)


def compare_on_validation(root: str | Path, checkpoint: str | Path | None = None, frames: int = 2,
                          budget_s: float = 15.0, val_every: int = 10,
                          variants: tuple = ("dataset", "dataset-bp", "zero-shot"),
                          progress: Callable[[str], None] | None = None, first: int = 0,
                          degradations: tuple = ()) -> dict:
    """The inference choices of this module, measured on the validation split of the training folder
    ``root`` (the frames train() never trains on; never the realus evaluation frames): PSNR gain over
    bicubic (dB) per variant and evaluation degradation, over ``frames`` validation frames from the
    ``first``-th (the checkpoint's own choice used the first BlindDataConfig.val_frames).

        dataset           one pass of G
        dataset-bp        + back-projection through the estimated operator, stopped at the noise level
        zero-shot*        zero_shot for ``budget_s`` seconds with ZERO_SHOT_VARIANTS[variant]

    Returns {variant: {degradation: [gain per frame]}}."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.metrics import psnr
    from sonoedge.train.sr.presets import dataset_images
    from sonoedge.train.sr.resize import resize_image

    unknown = [v for v in variants if v not in VALIDATION_VARIANTS]
    if unknown:
        raise InputError(f"unknown validation variant(s) {', '.join(unknown)}; valid: {', '.join(VALIDATION_VARIANTS)}")
    G, _ = load(checkpoint)
    images, files = dataset_images(root)
    _, val = split(files, val_every)
    pairs = validation_inputs([images[i] for i in val[first:first + frames]])
    out: dict = {v: {} for v in variants}
    for k, (hr, lr) in enumerate(pairs):
        degradation = degrade.EVAL_DEGRADATIONS[k % len(degrade.EVAL_DEGRADATIONS)]
        if degradations and degradation not in degradations:
            continue
        base = psnr(resize_image(lr, 4), hr)
        for v in variants:
            if v == "dataset":
                sr = infer(G, lr, back_projection=False)
            elif v == "dataset-bp":
                sr = infer(G, lr, back_projection=True)
            else:
                sr, _log = zero_shot(G, lr, ZeroShotConfig(budget_s=budget_s, **ZERO_SHOT_VARIANTS[v]))
            out[v].setdefault(degradation, []).append(psnr(sr, hr) - base)
            if progress is not None:
                progress(f"{v} {degradation} frame {first + k // len(degrade.EVAL_DEGRADATIONS)}: "
                         f"{out[v][degradation][-1]:+.3f} dB")
    return out


def _register() -> None:
    from sonoedge.train.presets import Preset
    from sonoedge.train.registries import PRESETS

    PRESETS.register(NAME)(Preset(
        NAME, "fast blind 4x super-resolution (LR-size residual net, supervised on random degradations)",
        config=BlindConfig(), run=run, data_key="data.root"))


_register()
