"""Training of the self-supervised CycleGAN SR model (Liu et al. Fig. 4, Sec. III-C/D, IV-B).

Two modes over one loop:

    zero-shot  train on the fathers of the one test image, then super-resolve it (the paper's way):
               ``zero_shot(image, cfg) -> (sr_image, TrainLog)``
    dataset    train once on the fathers of a folder of single-device images and keep G as a
               checkpoint that export turns into a bundle: ``train_dataset(images, cfg, out)``

One iteration: a batch of (LR son x, HR father crop y); G and F are updated on Eq. 7, then D_hr and
D_lr on real vs history-buffer fakes. The ZSSR policy (schedule.py) watches the reconstruction error
of a fixed probe (zero-shot: the test image's own son -> the test image) and divides every learning
rate by 10 when it flattens; training stops at 1e-6, at ``max_iters`` or at ``time_budget_s``.

Degradation (degrade.py, ``cfg.degradation``): sons are made by the operator estimated from the LR
input (zero-shot), by a random candidate per son (dataset mode, a blind G) or by one named operator;
back-projection at inference uses the estimate of each input. Device, AMP and DDP follow the
CycleGAN trainer (train/trainer.py: ``device`` "auto" picks CUDA, bfloat16 autocast on CUDA, one
process per GPU under torchrun with gradients averaged across ranks and rank 0 writing).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sonoedge.train.sr.config import SRConfig


@dataclasses.dataclass
class TrainLog:
    iterations: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    lr_changes: list = dataclasses.field(default_factory=list)  # [(iteration, lr)]
    probe: list = dataclasses.field(default_factory=list)       # [(iteration, L1 reconstruction error)]
    last_terms: dict = dataclasses.field(default_factory=dict)
    perceptual_trunk: str = ""
    sons: str = ""             # how the sons were made (SonMaker.describe)
    device: str = ""


def to_tensor(image: np.ndarray):
    """uint8 (H, W) -> float32 tensor (1, 1, H, W) in [-1, 1] (the frame contract's normalise)."""
    import torch

    from sonoedge.runtime.frames import normalise

    return torch.from_numpy(normalise(image))


def to_image(tensor) -> np.ndarray:
    from sonoedge.runtime.frames import denormalise

    return denormalise(tensor.detach().cpu().numpy())


class SRTrainer:
    """Owns G, F, D_hr, D_lr, their optimisers, the history buffers and the policy."""

    def __init__(self, cfg: SRConfig, sources: list, probe: tuple | None = None, sons=None):
        import torch

        from sonoedge.train.sr.fathers import FatherSet, default_scales
        from sonoedge.train.sr.losses import HistoryBuffer
        from sonoedge.train.sr.networks import DegradationGenerator, LiuSRGenerator, PatchDiscriminator
        from sonoedge.train.sr.schedule import ZSSRPolicy
        from sonoedge.train.trainer import pick_device, setup_distributed

        self.cfg = cfg.validate()
        self.rank, self.world, local_rank = setup_distributed()
        self.device = pick_device(cfg.device, local_rank)
        self.amp = cfg.amp and self.device.type == "cuda"
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.rng = np.random.default_rng(cfg.seed + 1000 * self.rank)  # different crops per rank
        self.G = LiuSRGenerator(width=cfg.net.width).to(self.device)
        self.F = DegradationGenerator(cfg.net.degrade_channels, cfg.net.degrade_blocks, cfg.net.noise_std).to(self.device)
        self.D_hr = PatchDiscriminator(cfg.net.disc_channels).to(self.device)
        self.D_lr = PatchDiscriminator(cfg.net.disc_channels).to(self.device)
        scales = default_scales(cfg.data.lowest_scale, cfg.data.scale_count)
        self.sons = sons
        self.fathers = FatherSet([s.to(self.device) for s in sources], scales, cfg.data.crop, sons=sons)
        self.opt_g = torch.optim.Adam([*self.G.parameters(), *self.F.parameters()], lr=cfg.policy.lr)
        self.opt_d = torch.optim.Adam([*self.D_hr.parameters(), *self.D_lr.parameters()], lr=cfg.policy.lr)
        self.pool_hr, self.pool_lr = HistoryBuffer(cfg.history, cfg.seed), HistoryBuffer(cfg.history, cfg.seed + 1)
        self.policy = ZSSRPolicy(cfg.policy)
        self.phi, trunk = self._perceptual()
        self.log = TrainLog(perceptual_trunk=trunk, sons=sons.describe() if sons is not None else "bicubic-aa",
                            device=f"{self.device}" + (" (bfloat16 autocast)" if self.amp else "")
                            + (f", {self.world} ranks" if self.world > 1 else ""))
        if probe is None:  # a fixed batch of crops, drawn once (the same on every rank)
            son, father = self.fathers.sample(16, np.random.default_rng(cfg.seed + 7))
            probe = (son, father)
        self.probe = tuple(t.to(self.device) for t in probe)

    def autocast(self):
        import contextlib

        import torch

        return torch.autocast(device_type="cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def _average_gradients(self, params) -> None:
        """DDP's gradient averaging, done by hand: G, F and the discriminators are each called more than
        once per step (cycle terms, history buffer), which DistributedDataParallel's hooks do not allow."""
        import torch.distributed as dist

        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.world)

    def _agree(self, value: float, op: str = "mean") -> float:
        """The same number on every rank (the policy's probe error, the stop decision)."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return float(t) / (self.world if op == "mean" else 1)

    def _perceptual(self):
        if self.cfg.weights.perceptual == 0:
            return None, "off (weights.perceptual = 0)"
        from sonoedge.train.lpips_offline import vgg16_features

        phi = vgg16_features(self.cfg.perceptual.trunk, (self.cfg.perceptual.layer,), seed=self.cfg.seed)
        return phi, phi.trunk_description

    def step(self) -> dict[str, float]:
        """One iteration of Eq. 7 for G and F, then the discriminators; returns the loss terms."""
        from sonoedge.train.sr import losses as L
        from sonoedge.train.sr.resize import resize

        x, y = self.fathers.sample(self.cfg.data.batch, self.rng)  # (B,1,c/4,c/4), (B,1,c,c)
        w = self.cfg.weights
        for d in (self.D_hr, self.D_lr):
            d.requires_grad_(False)
        with self.autocast():
            sr, lr_fake = self.G(x), self.F(y)
            hr_size = tuple(y.shape[-2:])
            lr_fake_up, x_up = resize(lr_fake, size=hr_size), resize(x, size=hr_size)
            terms = {"pixel": L.pixel_loss(sr, y, lr_fake, x),
                     "cycle": L.cycle_loss(self.F(sr), x, self.G(lr_fake), y)}
            if w.adversarial:
                terms["adversarial"] = L.generator_adversarial(self.D_hr(sr), self.D_lr(lr_fake_up))
            if self.phi is not None:
                terms["perceptual"] = L.perceptual_loss(self.phi, sr, y, lr_fake_up, x_up)
            total = L.total_loss(terms, w)
        self.opt_g.zero_grad(set_to_none=True)
        total.float().backward()
        self._average_gradients([*self.G.parameters(), *self.F.parameters()])
        self.opt_g.step()
        if w.adversarial:
            for d in (self.D_hr, self.D_lr):
                d.requires_grad_(True)
            with self.autocast():
                d_loss = (L.discriminator_loss(self.D_hr(y), self.D_hr(self.pool_hr.query(sr)))
                          + L.discriminator_loss(self.D_lr(x_up), self.D_lr(self.pool_lr.query(lr_fake_up))))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.float().backward()
            self._average_gradients([*self.D_hr.parameters(), *self.D_lr.parameters()])
            self.opt_d.step()
            terms["discriminator"] = d_loss
        out = {k: float(v.detach()) for k, v in terms.items()}
        if not all(np.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"SR training diverged: loss terms {out}")
        return out

    def probe_error(self) -> float:
        """L1 of G(son) against its father on the fixed probe, in [-1, 1] units."""
        import torch

        son, father = self.probe
        self.G.eval()
        with torch.no_grad(), self.autocast():
            error = float((self.G(son).float() - father).abs().mean())
        self.G.train()
        return self._agree(error)

    def fit(self, progress: Callable[[int, dict], None] | None = None) -> TrainLog:
        """Train until the policy reaches its lowest rate, ``max_iters`` or ``time_budget_s``."""
        cfg, start = self.cfg, time.monotonic()
        self.G.train(), self.F.train(), self.D_hr.train(), self.D_lr.train()
        it = 0
        while True:
            if self.policy.done:
                reason = f"learning rate reached {cfg.policy.lr_min:g} (ZSSR policy)"
                break
            if it >= cfg.max_iters:
                reason = f"max_iters {cfg.max_iters}"
                break
            over = bool(cfg.time_budget_s and time.monotonic() - start >= cfg.time_budget_s)
            if self._agree(float(over), "max") > 0:  # every rank stops at the same iteration
                reason = f"time budget {cfg.time_budget_s:g} s"
                break
            lr = self.policy.update(it)
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            terms = self.step()
            if it % cfg.probe_every == 0:
                error = self.probe_error()
                self.policy.record(it, error)
                self.log.probe.append((it, error))
            it += 1
            if progress is not None:
                progress(it, {**terms, "lr": lr})
        self.G.eval(), self.F.eval()
        self.log.iterations, self.log.seconds = it, time.monotonic() - start
        self.log.stop_reason, self.log.lr_changes = reason, list(self.policy.changes)
        self.log.last_terms = terms if it else {}
        return self.log

    def state_dicts(self) -> dict[str, Any]:
        """On the CPU, keeping each state dict's metadata (the layer-layout version networks.py reads)."""
        out = {"G_SR": self.G.state_dict(), "F_HL": self.F.state_dict(),
               "D_HR": self.D_hr.state_dict(), "D_LR": self.D_lr.state_dict()}
        for sd in out.values():
            for key in sd:
                sd[key] = sd[key].detach().cpu()
        return out


def image_probe(image: np.ndarray, sons=None) -> tuple:
    """The zero-shot probe: (son of the image, the image), both cropped to multiples of 4; the son is
    made by ``sons`` (fathers.SonMaker, its first operator, no noise) or the bicubic make_son."""
    from sonoedge.train.sr.degrade import apply
    from sonoedge.train.sr.fathers import make_son

    h, w = (image.shape[0] // 4) * 4, (image.shape[1] // 4) * 4
    father = to_tensor(np.ascontiguousarray(image[:h, :w]))
    op = sons.ops[0] if sons is not None else None
    return (make_son(father) if op is None else apply(op, father).clamp(-1.0, 1.0)), father


def resolve_degradation(cfg: SRConfig, image: np.ndarray | None = None):
    """(SonMaker for training, Estimate of ``image`` or None, the back-projection operator or None for
    the anti-aliased bicubic) per ``cfg.degradation`` (config.py). ``image`` is the LR input (needed
    for "estimate" in zero-shot training and at inference)."""
    from sonoedge.train.sr import degrade
    from sonoedge.train.sr.fathers import SonMaker

    name, speckle = cfg.degradation.operator, cfg.degradation.speckle
    est = None
    if name in ("estimate", "mix") and image is not None:
        est = degrade.estimate(image)
    if name == "mix" or (name == "estimate" and (cfg.mode == "dataset" or image is None)):
        ops: list = [None if op.name == "bicubic-aa" else op for op in degrade.candidates()]
    elif name == "estimate":
        ops = [None if est.op.name == "bicubic-aa" else est.op]
    else:
        ops = [None if name == "bicubic-aa" else degrade.operator(name)]
    bp_op = None
    if est is not None:
        bp_op = None if est.op.name == "bicubic-aa" else est.op
    elif name not in ("estimate", "mix", "bicubic-aa"):
        bp_op = degrade.operator(name)
    return SonMaker(ops, speckle), est, bp_op


def super_resolve(G, image: np.ndarray, cfg: SRConfig, progress: Callable[[int], None] | None = None,
                  info: dict | None = None) -> np.ndarray:
    """uint8 (H, W) -> uint8 (4H, 4W) with the self-ensemble and back-projection of ``cfg.ensemble``,
    back-projecting through the degradation of ``cfg.degradation`` (estimated from ``image`` for
    "estimate"/"mix"); ``info`` (a dict) receives what was estimated."""
    from sonoedge.train.sr.ensemble import self_ensemble

    _, est, op = resolve_degradation(cfg, image)
    noise = cfg.degradation.discrepancy * est.noise / 127.5 if est is not None else 0.0
    if info is not None:
        info["back_projection_operator"] = "bicubic-aa" if op is None else op.name
        if est is not None:
            info["estimate"] = est.describe()
            info["noise_grey_levels"] = est.noise
    G.eval()
    device = next(G.parameters()).device
    out = self_ensemble(G, to_tensor(image).to(device), cfg.ensemble.transforms, cfg.ensemble.back_projection,
                        progress=progress, op=op, noise=noise)
    return to_image(out)


def zero_shot(image: np.ndarray, cfg: SRConfig, progress: Callable[[int, dict], None] | None = None,
              ensemble_progress: Callable[[int], None] | None = None,
              info: dict | None = None) -> tuple[np.ndarray, TrainLog]:
    """Train on ``image`` (uint8 (H, W)) itself, then super-resolve it: (uint8 (4H, 4W), log).
    Sons are made by the degradation estimated from ``image`` (cfg.degradation.operator = "estimate")."""
    sons, _, _ = resolve_degradation(cfg, image)
    trainer = SRTrainer(cfg, [to_tensor(image)], probe=image_probe(image, sons), sons=sons)
    log = trainer.fit(progress)
    return super_resolve(trainer.G, image, cfg, ensemble_progress, info), log


def train_dataset(images: list[np.ndarray], cfg: SRConfig, checkpoint: str | Path,
                  progress: Callable[[int, dict], None] | None = None, data_info: dict | None = None) -> tuple[Path, TrainLog]:
    """Train on the fathers of ``images`` (uint8 (H, W) each) and save the checkpoint (contract of
    train/checkpoint.py; ``deploy`` = "G_SR", the LR -> SR generator). Sons: every candidate
    operator in turn for "estimate"/"mix" (a blind G), else the named one. Under torchrun only rank 0
    writes."""
    from sonoedge.runtime.config import to_dict
    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.sr.networks import LiuSRGenerator

    if not images:
        raise ValueError("no images to train on")
    sons, _, _ = resolve_degradation(cfg, None)
    trainer = SRTrainer(cfg, [to_tensor(im) for im in images], sons=sons)
    log = trainer.fit(progress)
    info = model_info("liu_sr", {"width": cfg.net.width}, task="sr", scale=LiuSRGenerator.scale,
                      channels=1, stride=LiuSRGenerator.stride, deploy="G_SR")
    meta = {"step": log.iterations, "metrics": {"probe_l1": log.probe[-1][1] if log.probe else None},
            "train_log": {"seconds": log.seconds, "stop_reason": log.stop_reason,
                          "lr_changes": [list(c) for c in log.lr_changes],
                          "perceptual_trunk": log.perceptual_trunk, "sons": log.sons, "device": log.device},
            **(data_info or {})}
    path = Path(checkpoint)
    if trainer.rank == 0:
        path = save_checkpoint(checkpoint, model_info=info, state_dicts=trainer.state_dicts(), config=to_dict(cfg),
                               meta=meta)
    return path, log


def load_sr_generator(path: str | Path):
    """(G in eval mode, model_info) from a dataset-mode checkpoint; refuses a non-SR checkpoint."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.checkpoint import load_checkpoint
    from sonoedge.train.registries import GENERATORS
    from sonoedge.train.sr import networks  # noqa: F401  (registers liu_sr)

    data = load_checkpoint(path)
    info = data["model"]
    if info["task"] != "sr" or info["generator"] not in GENERATORS:
        raise InputError(f"checkpoint {path} holds a '{info['task']}' model ('{info['generator']}'), not an SR "
                         f"generator; train one with 'sonoedge train --preset liu2021-sr'")
    G = GENERATORS.create(info["generator"], **info["kwargs"])
    try:
        G.load_state_dict(data["state_dicts"][info["deploy"]])
    except (KeyError, RuntimeError) as exc:
        raise InputError(f"checkpoint {path}: the '{info['deploy']}' weights do not fit '{info['generator']}' "
                         f"({str(exc).splitlines()[0]})") from None
    return G.eval(), info
