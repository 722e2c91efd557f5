"""Training the transform network with the perceptual loss (Menini 2020, Sec. 3.3 and 4.3, Table 4.6).

    cfg = load_config(NSTTrainConfig, None, ["loss.vgg_trunk='random'"], base=menini())
    run_dir = train_nst(cfg, "runs/nst")                      # resume=".../last.pt" continues exactly

Data (``sonoedge.train.datasets``): layout "paired" is the LQ-to-HQ task (content = low, style =
the high images of the train split); layout "unpaired" is HQ-to-clinical or sim-to-real (content = A,
style = B). The style target is the Gram matrices of the style images of the train split, averaged
in feature space (the thesis's choice for training, Sec. 3.3) or Gram space, or one image
(``loss.average = "none"`` uses the first). Each step: y = f_W(x), loss = content_weight * Lc(VGG(x),
VGG(y)) + style_weight * Ls(target, VGG(y)) (Eqs. 2.1-2.4), Adam lr 1e-5, batch 1 (Table 4.6).

Records and resume as the CycleGAN trainer: ``config.toml``, ``log.jsonl``, ``last.pt`` (and
``best.pt`` by validation SSIM on paired data), checkpoint contract of ``train/checkpoint.py`` with
the network under ``G_H`` (so export and ``evaluate --checkpoint`` take it). The data order of an
epoch depends only on (seed, epoch) and the noise layers draw from torch's RNG, which the checkpoint
holds: a resumed run takes the identical next step.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonoedge.runtime.config import save_config, to_dict
from sonoedge.runtime.errors import InputError
from sonoedge.train.checkpoint import load_checkpoint, model_info, rng_state, save_checkpoint, set_rng_state
from sonoedge.train.datasets import DataConfig
from sonoedge.train.nst import losses as L
from sonoedge.train.nst.vgg19 import CONTENT_LAYERS, STYLE_LAYERS


@dataclasses.dataclass
class NSTModelConfig:
    generator: str = "johnson"  # train/nst/transform_net.py
    # Johnson et al. 2016 widths; three noise layers in the decoder (Sec. 3.3; ablate with noise=false)
    generator_kwargs: dict[str, Any] = dataclasses.field(default_factory=lambda: {"ngf": 32, "n_blocks": 5, "noise": True})
    channels: int = 1


@dataclasses.dataclass
class NSTLossConfig:
    content_weight: float = 1e2  # Table 4.6 (all three tasks)
    style_weight: float = 5e6  # Table 4.6, LQ to HQ and HQ to clinical (Seg to HQ: 5e7)
    style_layers: tuple[str, ...] = STYLE_LAYERS  # Sec. 4.3
    content_layers: tuple[str, ...] = CONTENT_LAYERS  # Sec. 4.3
    average: str = "feature"  # average style target over the style images, Sec. 3.3: "feature", "gram", "none"
    style_images: int = 0  # how many style images of the train split make the average (0 = all)
    vgg_trunk: str = ""  # VGG19 weights file, "random" (labelled), or "" to search $SONOEDGE_VGG19_TRUNK and the cache


@dataclasses.dataclass
class NSTOptimConfig:
    lr: float = 1e-5  # Table 4.6
    betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults (not stated in the thesis)


@dataclasses.dataclass
class NSTLoopConfig:
    epochs: int = 5  # "the basic training requires roughly 8 hours to compute 5 epochs", Sec. 4.3
    batch_size: int = 1  # Table 4.6 ("limited by GPU memory")
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch intra-op CPU threads; 0 = torch's default
    max_steps: int = 0  # stop (and save last.pt) after this many steps; 0 = no limit
    log_every: int = 10
    val_max_items: int = 0  # 0 = the whole val split


@dataclasses.dataclass
class NSTTrainConfig:
    preset: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: NSTModelConfig = dataclasses.field(default_factory=NSTModelConfig)
    loss: NSTLossConfig = dataclasses.field(default_factory=NSTLossConfig)
    optim: NSTOptimConfig = dataclasses.field(default_factory=NSTOptimConfig)
    train: NSTLoopConfig = dataclasses.field(default_factory=NSTLoopConfig)

    def check(self) -> None:
        if self.data.layout not in ("paired", "unpaired"):
            raise InputError(f"NST training needs data.layout 'paired' (LQ to HQ) or 'unpaired' (content A, style B), "
                             f"got '{self.data.layout}'")
        if self.loss.average not in L.AVERAGES:
            raise InputError(f"loss.average must be one of {', '.join(L.AVERAGES)}, got '{self.loss.average}'")
        if self.train.batch_size < 1 or self.train.epochs < 1 or self.train.log_every < 1 or self.optim.lr <= 0:
            raise InputError("train.batch_size, train.epochs and train.log_every must be at least 1 and optim.lr positive")


def _style_images(split, data_cfg: DataConfig):
    """Each style image of a split once, (1, H, W) in [-1, 1], unaugmented: the high images of paired
    data, the B images of unpaired data (folder datasets), or the items' style side (in-memory sets)."""
    from sonoedge.train.augment import crop_to_stride, prepare_eval
    from sonoedge.train.datasets import _to_tensor

    if hasattr(split, "pairs") or hasattr(split, "b_names"):
        paths = [p[1] for p in split.pairs] if hasattr(split, "pairs") else [Path(data_cfg.root) / "B" / n for n in split.b_names]
        for path in paths:
            image = prepare_eval([split._load(path)], data_cfg.size)[0]
            yield _to_tensor(crop_to_stride(image, data_cfg.stride))
        return
    for i in range(len(split)):
        yield _content_and_style(split[i])[1]


def _content_and_style(item: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return (item["low"], item["high"]) if "low" in item else (item["A"], item["B"])


class NSTTrainer:
    """One run: the transform net, Adam, the style target; ``fit()`` trains to the end."""

    def __init__(self, cfg: NSTTrainConfig, out_dir: str | Path, resume: str | Path | None = None,
                 datasets: dict[str, Any] | None = None):
        from sonoedge.train.checkpoint import build_generator
        from sonoedge.train.nst.vgg19 import vgg19_features
        from sonoedge.train.trainer import pick_device, seed_everything

        cfg.check()
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = pick_device(cfg.train.device, 0)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        if datasets is None:
            from sonoedge.train.datasets import build_datasets, data_hash

            self.data, self.data_hash = build_datasets(cfg.data), data_hash(cfg.data)
        else:
            self.data, self.data_hash = datasets, "in-memory"
        if len(self.data["train"]) < cfg.train.batch_size:
            raise InputError(f"the train split has {len(self.data['train'])} items, fewer than one batch of {cfg.train.batch_size}")
        m = cfg.model
        self.info = model_info(m.generator, {"in_channels": m.channels, "out_channels": m.channels, **m.generator_kwargs},
                               task="enhance", channels=m.channels, stride=4)
        try:
            self.net = build_generator(self.info).to(self.device)
        except TypeError as exc:
            raise InputError(f"model.generator_kwargs do not fit '{m.generator}' ({exc})") from None
        self.info["stride"] = self.net.stride
        self.vgg = vgg19_features(cfg.loss.vgg_trunk or None, (*cfg.loss.style_layers, *cfg.loss.content_layers),
                                  seed=cfg.train.seed).to(self.device)
        self.target = self._style_target()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.epoch, self.step, self.batch_in_epoch, self.best = 0, 0, 0, None
        if resume is not None:
            self.load(resume)
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(to_dict(cfg), self.out / "config.toml")

    def _style_target(self) -> dict[str, torch.Tensor]:
        """Gram targets from the style images of the train split (unaugmented, at data.size),
        accumulated as running sums so a few hundred style images fit in memory."""
        lw = self.cfg.loss
        sums: dict[str, torch.Tensor] = {}
        count = 0
        with torch.no_grad():
            for style in _style_images(self.data["train"], self.cfg.data):
                feats = self.vgg(style[None].to(self.device))
                for k in lw.style_layers:
                    value = feats[k] if lw.average == "feature" else L.gram(feats[k])
                    if k in sums and value.shape != sums[k].shape:
                        raise InputError("averaging style in feature space needs style images of one size; set data.size")
                    sums[k] = sums[k] + value if k in sums else value.clone()
                count += 1
                if lw.average == "none" or count == lw.style_images:
                    break
        if count == 0:
            raise InputError("the train split has no style images")
        if lw.average == "feature":  # Gram of the mean feature map (Sec. 3.2, "average over the feature space")
            return {k: L.gram(v / count)[0] for k, v in sums.items()}
        return {k: (v / count)[0] for k, v in sums.items()}  # mean of the Grams ("Gram space"), or the one image

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        lw = self.cfg.loss
        y = self.net(x)
        fx = self.vgg(x)
        fy = self.vgg(y)
        lc = sum(L.content_loss(fx[k].detach(), fy[k]) for k in lw.content_layers)
        ls = sum(L.style_loss(self.target[k], fy[k]) for k in lw.style_layers)
        return {"content": lc, "style": ls, "loss": lw.content_weight * lc + lw.style_weight * ls}

    def fit(self) -> Path:
        from tqdm import tqdm

        cfg = self.cfg.train
        train = self.data["train"]
        while self.epoch < cfg.epochs:
            if hasattr(train, "set_epoch"):
                train.set_epoch(self.epoch)
            order = np.random.default_rng([cfg.seed, self.epoch]).permutation(len(train))
            batches = [order[i:i + cfg.batch_size] for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)]
            bar = tqdm(batches[self.batch_in_epoch:], desc=f"nst epoch {self.epoch + 1}/{cfg.epochs}", unit="it", leave=False)
            for idx in bar:
                x = torch.stack([_content_and_style(train[int(i)])[0] for i in idx]).to(self.device)
                terms = self.losses(x)
                self.opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                self.opt.step()
                self.step, self.batch_in_epoch = self.step + 1, self.batch_in_epoch + 1
                if not torch.isfinite(terms["loss"]):
                    raise InputError(f"the NST loss became {float(terms['loss'])} at step {self.step}; lower optim.lr")
                if self.step % cfg.log_every == 0 or self.step == 1:
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    bar.set_postfix(loss=f"{values['loss']:.4g}")
                    self.log({"kind": "step", "epoch": self.epoch, "step": self.step, **values})
                if cfg.max_steps and self.step >= cfg.max_steps:
                    self.save("last.pt", {})
                    return self.out
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            metrics = self.validate()
            self.log({"kind": "epoch", "epoch": self.epoch, "step": self.step, **{f"val_{k}": v for k, v in metrics.items()}})
            self.save("last.pt", metrics)
            if "ssim" in metrics and (self.best is None or metrics["ssim"] > self.best):
                self.best = metrics["ssim"]
                self.save("best.pt", metrics)
        return self.out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean SSIM and PSNR of f_W(low) against high on the val split (paired data only)."""
        from sonoedge.runtime import metrics as M
        from sonoedge.runtime.frames import denormalise

        val = self.data.get("val")
        if val is None or len(val) == 0 or "low" not in val[0]:
            return {}
        count = len(val) if not self.cfg.train.val_max_items else min(len(val), self.cfg.train.val_max_items)
        state = torch.get_rng_state()  # validation noise must not shift the training stream
        self.net.eval()
        ssim, psnr = [], []
        for i in range(count):
            item = val[i]
            y = denormalise(self.net(item["low"][None].to(self.device)).cpu().numpy())
            h = denormalise(item["high"].numpy())
            ssim.append(M.ssim(y, h))
            psnr.append(M.psnr(y, h))
        self.net.train()
        torch.set_rng_state(state)
        return {"ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr))}

    def log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def save(self, name: str, metrics: dict[str, float]) -> Path:
        return save_checkpoint(
            self.out / name, model_info=self.info, state_dicts={"G_H": self.net.state_dict()}, config=to_dict(self.cfg),
            optimizers={"G": self.opt.state_dict()}, rng=rng_state(),
            meta={"epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch, "best": self.best,
                  "data_hash": self.data_hash, "metrics": metrics, "vgg19_trunk": self.vgg.trunk_description,
                  "time": time.time()})

    def load(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        self.net.load_state_dict(ckpt["state_dicts"]["G_H"])
        self.opt.load_state_dict(ckpt["optimizers"]["G"])
        meta = ckpt["meta"]
        self.epoch, self.step, self.batch_in_epoch, self.best = meta["epoch"], meta["step"], meta["batch_in_epoch"], meta["best"]
        set_rng_state(ckpt["rng"])


def train_nst(cfg: NSTTrainConfig, out_dir: str | Path, resume: str | Path | None = None) -> Path:
    return NSTTrainer(cfg, out_dir, resume).fit()
