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

    def __init__(self, cfg: SRConfig, sources: list, probe: tuple | None = None):
        import torch

        from sonoedge.train.sr.fathers import FatherSet, default_scales
        from sonoedge.train.sr.losses import HistoryBuffer
        from sonoedge.train.sr.networks import DegradationGenerator, LiuSRGenerator, PatchDiscriminator
        from sonoedge.train.sr.schedule import ZSSRPolicy

        self.cfg = cfg.validate()
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.G = LiuSRGenerator(width=cfg.net.width)
        self.F = DegradationGenerator(cfg.net.degrade_channels, cfg.net.degrade_blocks, cfg.net.noise_std)
        self.D_hr = PatchDiscriminator(cfg.net.disc_channels)
        self.D_lr = PatchDiscriminator(cfg.net.disc_channels)
        scales = default_scales(cfg.data.lowest_scale, cfg.data.scale_count)
        self.fathers = FatherSet(sources, scales, cfg.data.crop)
        self.opt_g = torch.optim.Adam([*self.G.parameters(), *self.F.parameters()], lr=cfg.policy.lr)
        self.opt_d = torch.optim.Adam([*self.D_hr.parameters(), *self.D_lr.parameters()], lr=cfg.policy.lr)
        self.pool_hr, self.pool_lr = HistoryBuffer(cfg.history, cfg.seed), HistoryBuffer(cfg.history, cfg.seed + 1)
        self.policy = ZSSRPolicy(cfg.policy)
        self.phi, trunk = self._perceptual()
        self.log = TrainLog(perceptual_trunk=trunk)
        if probe is None:  # a fixed batch of crops, drawn once
            son, father = self.fathers.sample(16, np.random.default_rng(cfg.seed + 7))
            probe = (son, father)
        self.probe = probe

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
        total.backward()
        self.opt_g.step()
        if w.adversarial:
            for d in (self.D_hr, self.D_lr):
                d.requires_grad_(True)
            d_loss = (L.discriminator_loss(self.D_hr(y), self.D_hr(self.pool_hr.query(sr)))
                      + L.discriminator_loss(self.D_lr(x_up), self.D_lr(self.pool_lr.query(lr_fake_up))))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
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
        with torch.no_grad():
            error = float((self.G(son) - father).abs().mean())
        self.G.train()
        return error

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
            if cfg.time_budget_s and time.monotonic() - start >= cfg.time_budget_s:
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
        return {"G_SR": self.G.state_dict(), "F_HL": self.F.state_dict(),
                "D_HR": self.D_hr.state_dict(), "D_LR": self.D_lr.state_dict()}


def image_probe(image: np.ndarray) -> tuple:
    """The zero-shot probe: (son of the image, the image), both cropped to multiples of 4."""
    from sonoedge.train.sr.fathers import make_son

    h, w = (image.shape[0] // 4) * 4, (image.shape[1] // 4) * 4
    father = to_tensor(np.ascontiguousarray(image[:h, :w]))
    return make_son(father), father


def super_resolve(G, image: np.ndarray, cfg: SRConfig, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """uint8 (H, W) -> uint8 (4H, 4W) with the self-ensemble and back-projection of ``cfg.ensemble``."""
    from sonoedge.train.sr.ensemble import self_ensemble

    G.eval()
    out = self_ensemble(G, to_tensor(image), cfg.ensemble.transforms, cfg.ensemble.back_projection,
                        progress=progress)
    return to_image(out)


def zero_shot(image: np.ndarray, cfg: SRConfig, progress: Callable[[int, dict], None] | None = None,
              ensemble_progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, TrainLog]:
    """Train on ``image`` (uint8 (H, W)) itself, then super-resolve it: (uint8 (4H, 4W), log)."""
    trainer = SRTrainer(cfg, [to_tensor(image)], probe=image_probe(image))
    log = trainer.fit(progress)
    return super_resolve(trainer.G, image, cfg, ensemble_progress), log


def train_dataset(images: list[np.ndarray], cfg: SRConfig, checkpoint: str | Path,
                  progress: Callable[[int, dict], None] | None = None, data_info: dict | None = None) -> tuple[Path, TrainLog]:
    """Train on the fathers of ``images`` (uint8 (H, W) each) and save the checkpoint (contract of
    train/checkpoint.py; ``deploy`` = "G_SR", the LR -> SR generator)."""
    from sonoedge.runtime.config import to_dict
    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.sr.networks import LiuSRGenerator

    if not images:
        raise ValueError("no images to train on")
    trainer = SRTrainer(cfg, [to_tensor(im) for im in images])
    log = trainer.fit(progress)
    info = model_info("liu_sr", {"width": cfg.net.width}, task="sr", scale=LiuSRGenerator.scale,
                      channels=1, stride=LiuSRGenerator.stride, deploy="G_SR")
    meta = {"step": log.iterations, "metrics": {"probe_l1": log.probe[-1][1] if log.probe else None},
            "train_log": {"seconds": log.seconds, "stop_reason": log.stop_reason,
                          "lr_changes": [list(c) for c in log.lr_changes],
                          "perceptual_trunk": log.perceptual_trunk},
            **(data_info or {})}
    path = save_checkpoint(checkpoint, model_info=info, state_dicts=trainer.state_dicts(),
                           config=to_dict(cfg), meta=meta)
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
