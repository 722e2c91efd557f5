"""Teacher (checkpoint or bundle) -> edge student checkpoint: distillation, then quantization-aware fine-tuning.

    cfg = DistillConfig(student="edge-small", steps=2000)
    path = distill("runs/teacher/best.pt", "data/phantom", "runs/student", cfg)   # runs/student/student.pt
    path = distill("default", "mix/low", "runs/nano", DistillConfig(student="edge-nano"))  # the shipped model teaches

A bundle teacher (``default``, a bundle directory or .tar; train/distill_teacher.py) runs its fp32
ONNX model in ONNX Runtime: no feature taps, a fresh discriminator, and its training inputs are
every image under ``data`` (a bundle records no data split: pass train material only).

Losses of the GAN-compression literature (Li et al., "GAN Compression", CVPR 2020, Sec. 3.1-3.2,
Eq. 2-4), on the teacher's training inputs x:

    L = l_rec  * |S(x) - T(x)|_1                           output reconstruction (Eq. 2, the teacher as target)
      + l_feat * sum_k MSE(A_k(S_k(x)), T_k(x))             intermediate features through 1x1 adapters A_k (Eq. 3)
      + l_adv  * MSE(1, D(S(x)))                            LSGAN, D = the teacher's D_H when the checkpoint has it
      + l_per  * LPIPS(S(x), T(x))                          only when an LPIPS trunk is available (trainer's rules)
      + l_temp * |S(I_t) - warp(S(I_{t-1}))|_1 (masked)     optional, phantom clips (runtime/temporal.py flow)

The teacher runs once per training image (``TeacherCache``: its outputs and tapped features are
cropped with the input at every step). The discriminator learns T(x) (real) against S(x) (fake)
with the trainer's LSGAN loss, every ``adv_every`` steps. Feature
taps: the student's bottleneck and last decoder feature (``EdgeStudent.features``), each matched to
the teacher module whose output has the same spatial size and the most channels (last such module
in execution order); a tap with no size match in the teacher is skipped and reported. So any
generator the trainer makes (U-Net, ResNet, SR) can teach; an SR teacher gets a student of its scale.

Quantization-aware fine-tuning (the last ``qat_steps``): BatchNorm is folded into its convolution
(as export's constant folding does) and frozen as an identity, then every conv's weights are
fake-quantized per output channel and its input per tensor, symmetric INT8 with zero point 0,
exactly the scheme export/int8.py writes for TensorRT (straight-through gradients,
``torch.fake_quantize_per_*``); the activation ranges follow a running max. The float weights
that come out are what export calibrates and quantizes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.runtime.config import to_dict
from sonoedge.runtime.errors import InputError
from sonoedge.train.checkpoint import model_info, save_checkpoint
from sonoedge.train.distill_teacher import load_teacher


@dataclasses.dataclass
class DistillConfig:
    """What to distill into, for how long, and the weight of each term (module doc)."""

    student: str = "edge-small"  # a GENERATORS name, normally edge-nano | edge-tiny | edge-small | edge-base
    student_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {widths = [4, 8, 16, 16], full_res = false}
    steps: int = 2000  # optimisation steps in total, the QAT steps included
    qat_steps: int = 300  # the last steps, with BatchNorm folded and INT8 fake-quantization on
    batch_size: int = 8
    crop: int = 128  # training crops (sides rounded to the student's and teacher's strides)
    lr: float = 2e-3  # Adam; cosine decay to 1 % over the run
    lr_d: float = 2e-4
    lambda_rec: float = 10.0  # GAN Compression Sec. 4.1: lambda_recon = 10
    lambda_feat: float = 1.0  # lambda_distill = 1
    lambda_adv: float = 0.1  # lambda_cGAN = 1 in GAN Compression; 0.1 here: the teacher target is already sharp and PSNR must hold
    adv_every: int = 1  # apply the adversarial term (and update D) every N steps: the paper-size D costs more than the rest
    lambda_perceptual: float = 1.0  # used only when an LPIPS trunk is found (or named)
    lpips_trunk: str | None = None  # a file, "random" (named), or None: $SONOEDGE_LPIPS_TRUNK / torch cache, else no term
    lambda_temporal: float = 0.0  # > 0: temporal consistency on phantom clips
    temporal_clips: int = 4  # phantom clips simulated for the temporal term
    max_seconds: float = 0.0  # > 0: a time budget; when spent, QAT starts at once and the run ends qat_steps later
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "auto"
    log_every: int = 25

    def check(self) -> None:
        if self.adv_every < 1:
            raise InputError("distill adv_every must be at least 1")
        if self.steps < 1 or not 0 <= self.qat_steps <= self.steps or self.batch_size < 1 or self.crop < 16:
            raise InputError("distill needs steps >= 1, 0 <= qat_steps <= steps, batch_size >= 1 and crop >= 16")
        if min(self.lambda_rec, self.lambda_feat, self.lambda_adv, self.lambda_perceptual, self.lambda_temporal) < 0:
            raise InputError("distill loss weights must be >= 0")


# ----------------------------------------------------------------------------- data

def _teacher_inputs(ckpt: dict[str, Any], data: Path, crop: int) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The low-quality training inputs (1, H, W) in [-1, 1]: the TRAIN split of the teacher's data
    config on ``data`` (so the test split stays unseen), else every image under ``data``."""
    from sonoedge.runtime.config import from_dict
    from sonoedge.train.datasets import DataConfig, build_datasets

    raw = ckpt.get("config", {}).get("data")
    try:
        cfg = from_dict(DataConfig, raw, where="teacher data config") if isinstance(raw, dict) else None
    except InputError:
        cfg = None
    if cfg is None:  # a bundle teacher (or a checkpoint without a data config): every image as it is;
        # the cache crops and flips at each step, so the dataset's own augmentation is off
        from sonoedge.train.augment import AugmentConfig

        cfg = DataConfig(layout="single", ratios=(1.0, 0.0, 0.0), size=0,
                         augment=AugmentConfig(enabled=False))
    cfg = dataclasses.replace(cfg, root=str(data))
    train = build_datasets(cfg)["train"]
    images = []
    for i in range(len(train)):
        item = train[i]
        x = item.get("low", item.get("A", item.get("image")))
        if x is None:
            raise InputError(f"training items of {data} have none of low/A/image; keys {sorted(item)}")
        images.append(x.float())
    if not images:
        raise InputError(f"the train split of {data} is empty; distill needs the teacher's training inputs")
    return images, dataclasses.asdict(cfg)


class TeacherCache:
    """The teacher run ONCE on every whole training image (reflect-padded to ``stride``): its output
    and its tapped features, so each step crops the same window out of input, target and features
    (offsets on the stride grid, so every feature map crops exactly) instead of running the teacher
    again. The teacher then sees each image's full context; a random horizontal flip is applied to
    all of them alike (the generators are convolutional, a flip commutes up to padding)."""

    def __init__(self, teacher: nn.Module, images: list[torch.Tensor], tap_names: list[str],
                 feats: dict[str, torch.Tensor], stride: int, scale: int):
        from tqdm import tqdm

        self.items, self.stride, self.scale = [], stride, scale
        with torch.no_grad():
            for x in tqdm(images, desc="teacher outputs", leave=False):
                h, w = x.shape[-2:]
                x = F.pad(x[None], (0, (-w) % stride, 0, (-h) % stride), mode="reflect")[0] if (h % stride or w % stride) else x
                y = teacher(x[None])[0]
                self.items.append((x, y, [feats[n][0].clone() for n in tap_names]))

    def batch(self, n: int, side: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        xs, ys, fs = [], [], []
        for _ in range(n):
            x, y, feats = self.items[int(rng.integers(len(self.items)))]
            h, w = x.shape[-2:]
            if h < side or w < side:
                raise InputError(f"training image {h}x{w} is smaller than the distillation crop {side}; lower crop")
            y0 = int(rng.integers((h - side) // self.stride + 1)) * self.stride
            x0 = int(rng.integers((w - side) // self.stride + 1)) * self.stride
            flip = rng.random() < 0.5
            crops = [x[:, y0:y0 + side, x0:x0 + side],
                     y[:, y0 * self.scale:(y0 + side) * self.scale, x0 * self.scale:(x0 + side) * self.scale]]
            for f in feats:
                r = h // f.shape[-2]  # the feature's down-sampling
                crops.append(f[:, y0 // r:(y0 + side) // r, x0 // r:(x0 + side) // r])
            if flip:
                crops = [c.flip(-1) for c in crops]
            xs.append(crops[0])
            ys.append(crops[1])
            fs.append(crops[2:])
        return torch.stack(xs), torch.stack(ys), [torch.stack([f[k] for f in fs]) for k in range(len(fs[0]))]


# ----------------------------------------------------------------------------- feature taps

def _teacher_taps(teacher: nn.Module, student: nn.Module, side: int, channels: int) -> list[tuple[int, str, int]]:
    """[(student tap index, teacher module name, teacher channels)] matched by spatial size (module doc)."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    hooks = []
    for name, module in teacher.named_modules():
        if name:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: seen.append((name, tuple(o.shape))) if torch.is_tensor(o) and o.dim() == 4 else None))
    x = torch.zeros(1, channels, side, side)
    student.eval()  # no BatchNorm statistics from the probe
    try:
        with torch.no_grad():
            teacher(x)
            student(x)
    finally:
        for h in hooks:
            h.remove()
        student.train()
    taps = []
    for k, feat in enumerate(student.features):
        size = tuple(feat.shape[-2:])
        cands = [(shape[1], order, name) for order, (name, shape) in enumerate(seen) if shape[-2:] == size and shape[1] > channels]
        if cands:
            c, _, name = max(cands)
            taps.append((k, name, c))
    return taps


# ----------------------------------------------------------------------------- QAT

def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that follows a Conv2d (inside one nn.Sequential) into the conv's
    weight, and turn the BatchNorm into a frozen identity that keeps the folded shift as its bias
    (state dict keys unchanged, so the checkpoint loads into a fresh student). Returns the count."""
    folded = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for conv, bn in zip(layers, layers[1:]):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            with torch.no_grad():
                std = torch.sqrt(bn.running_var + bn.eps)
                gain = bn.weight / std
                conv.weight.mul_(gain.reshape(-1, 1, 1, 1))
                shift = bn.bias - bn.running_mean * gain
                if conv.bias is not None:
                    shift = shift + conv.bias * gain
                    conv.bias.zero_()
                bn.weight.fill_(1.0)
                bn.bias.copy_(shift)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)  # sqrt(var + eps) = 1: the identity
            bn.eval()
            bn.weight.requires_grad_(False)  # the scale stays 1; the shift (bias) keeps learning
            bn.momentum = 0.0
            folded += 1
    return folded


class _FakeQuantWeight(nn.Module):
    """Per-output-channel symmetric INT8 fake quantization of a conv weight (export: axis 0)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax(dim=(1, 2, 3)) / 127.0).clamp_min(1e-8)
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -128, 127)


class _FakeQuantInput:
    """Forward pre-hook: per-tensor symmetric INT8 fake quantization of a conv's input, range = running max |x|."""

    def __init__(self, momentum: float = 0.9):
        self.momentum, self.amax = momentum, None

    def __call__(self, module: nn.Module, inputs: tuple) -> tuple:
        x = inputs[0]
        amax = x.detach().abs().max()
        self.amax = amax if self.amax is None else self.momentum * self.amax + (1 - self.momentum) * amax
        scale = float((self.amax / 127.0).clamp_min(1e-8))
        return (torch.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127),)


def enable_qat(model: nn.Module) -> list[Any]:
    """Fold BatchNorm, then fake-quantize every conv's weight and input; returns the handles to undo."""
    from torch.nn.utils import parametrize

    fold_batchnorm(model)
    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            parametrize.register_parametrization(module, "weight", _FakeQuantWeight())
            handles.append((module, module.register_forward_pre_hook(_FakeQuantInput())))
    return handles


def disable_qat(handles: list[Any]) -> None:
    """Remove the fake quantization, keeping the float weights it trained."""
    from torch.nn.utils import parametrize

    for module, hook in handles:
        hook.remove()
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


# ----------------------------------------------------------------------------- temporal term

def _clip_pairs(n_clips: int, side: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(prev, cur, grid, mask) for consecutive phantom clip frames: the flow cur -> prev from the input
    (runtime/temporal.py) as a grid_sample grid, and its reliability mask."""
    from sonoedge.runtime import temporal
    from sonoedge.runtime.frames import normalise
    from sonoedge.train.phantom import PhantomConfig, simulate_clip

    pairs = []
    for c in range(n_clips):
        low, _ = simulate_clip(seed + 7919 * (c + 1), dataclasses.replace(PhantomConfig(), size=(side, side)), frames=12)
        for t, (w, mask) in enumerate(temporal.input_flows(low), start=1):
            gx, gy = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
            grid = np.stack([(gx + w[..., 0]) / (side - 1) * 2 - 1, (gy + w[..., 1]) / (side - 1) * 2 - 1], axis=-1)
            pairs.append((torch.from_numpy(normalise(low[t - 1])[0]), torch.from_numpy(normalise(low[t])[0]),
                          torch.from_numpy(grid), torch.from_numpy(mask[None].astype(np.float32))))
    return pairs


def temporal_loss(student: nn.Module, pairs: list, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Masked L1 between S(I_t) and S(I_{t-1}) warped by the input's flow (Lai et al. 2018, short-term loss)."""
    picks = [pairs[int(rng.integers(len(pairs)))] for _ in range(n)]
    prev, cur, grid, mask = (torch.stack([p[i] for p in picks]) for i in range(4))
    out = student(torch.cat([prev, cur]))
    warped = F.grid_sample(out[:n], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (mask * (out[n:] - warped).abs()).sum() / mask.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- the loop

def _discriminator(ckpt: dict[str, Any], channels: int) -> tuple[nn.Module, str]:
    from sonoedge.train.registries import DISCRIMINATORS, load_all

    load_all()
    model_cfg = ckpt.get("config", {}).get("model", {})
    name, kwargs = model_cfg.get("discriminator", "patchgan"), dict(model_cfg.get("discriminator_kwargs", {"ndf": 64}))
    if "D_H" in ckpt.get("state_dicts", {}):
        try:
            d = DISCRIMINATORS.create(name, in_channels=channels, **kwargs)
            d.load_state_dict(ckpt["state_dicts"]["D_H"])
            return d, f"the teacher's D_H ({name})"
        except (TypeError, RuntimeError, InputError):
            pass
    return DISCRIMINATORS.create("patchgan", in_channels=channels, ndf=32), "a fresh patchgan (ndf 32)"


def _lpips(cfg: DistillConfig):
    """LPIPS when a trunk is available (named, or found as the trainer finds it), else None."""
    from sonoedge.train.lpips_offline import build_lpips

    if cfg.lambda_perceptual <= 0:
        return None, "off (weight 0)"
    try:
        phi = build_lpips(trunk=cfg.lpips_trunk, seed=cfg.seed)
    except InputError as exc:
        if cfg.lpips_trunk is not None:
            raise
        return None, f"off (no LPIPS trunk: {str(exc).splitlines()[0]})"
    return phi, phi.trunk_description


def distill(teacher_path: str | Path, data: str | Path, out_dir: str | Path, cfg: DistillConfig,
            progress: bool = True) -> Path:
    """Distill the teacher's deployed generator into ``cfg.student``; writes OUT/student.pt, OUT/log.jsonl,
    OUT/distill.json and returns the checkpoint path."""
    from tqdm import tqdm

    from sonoedge.train.registries import GENERATORS, load_all

    cfg.check()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    out = Path(out_dir)
    tch = load_teacher(teacher_path, threads=cfg.threads)
    teacher, tinfo, ckpt = tch.module, tch.info, tch.checkpoint
    channels, scale = int(tinfo["channels"]), int(tinfo["scale"])
    load_all()
    kwargs = {"in_channels": channels, "out_channels": channels, **({"scale": scale} if scale != 1 else {}),
              **cfg.student_kwargs}
    try:
        student = GENERATORS.create(cfg.student, **kwargs)
    except TypeError as exc:
        raise InputError(f"student '{cfg.student}' cannot be built for a {scale}x teacher ({exc}); use an edge-* student") from None
    if not hasattr(student, "features"):
        raise InputError(f"student '{cfg.student}' exposes no feature taps; use edge-nano, edge-tiny, edge-small or edge-base")
    stride = math.lcm(int(student.stride), int(tinfo["stride"]))
    side = max(stride, cfg.crop // stride * stride)
    images, data_cfg = _teacher_inputs(ckpt, Path(data), side)
    taps = _teacher_taps(teacher, student, side, channels) if tch.kind == "checkpoint" else []
    adapters = nn.ModuleList(nn.Conv2d(student.features[k].shape[1], c, 1) for k, _, c in taps)
    t_feats: dict[str, torch.Tensor] = {}
    named = dict(teacher.named_modules())
    for _, name, _ in taps:
        named[name].register_forward_hook(lambda m, i, o, name=name: t_feats.__setitem__(name, o))
    disc, disc_src = _discriminator(ckpt, channels)
    phi, phi_src = _lpips(cfg)
    pairs = _clip_pairs(cfg.temporal_clips, side, cfg.seed) if cfg.lambda_temporal > 0 else []
    for m in (teacher, student, adapters, disc):
        m.to(device)
    cache = TeacherCache(teacher, [x.to(device) for x in images], [n for _, n, _ in taps], t_feats, stride, scale)
    if phi is not None:
        phi.to(device)
    opt = torch.optim.Adam([*student.parameters(), *adapters.parameters()], lr=cfg.lr, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps - cfg.qat_steps), eta_min=cfg.lr * 0.01)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "w")
    setup = {"teacher": str(teacher_path), "teacher_kind": tch.description, "teacher_generator": tinfo["generator"],
             "student": cfg.student, "student_kwargs": cfg.student_kwargs,
             "taps": [{"student": k, "teacher": n, "channels": c} for k, n, c in taps],
             "discriminator": disc_src, "lpips": phi_src, "crop": side, "train_images": len(images),
             "temporal_pairs": len(pairs)}
    log.write(json.dumps({"kind": "setup", **setup}) + "\n")
    qat_handles, t0 = None, time.perf_counter()
    bar = tqdm(total=cfg.steps, desc=f"distill {cfg.student}", disable=not progress)
    last_step, step = cfg.steps - 1, -1
    while step < last_step:
        step += 1
        bar.update(1)
        if (cfg.max_seconds > 0 and qat_handles is None and time.perf_counter() - t0 > cfg.max_seconds
                and step < last_step - cfg.qat_steps + 1):
            last_step = step + cfg.qat_steps - 1 if cfg.qat_steps else step  # the budget is spent: QAT now
            bar.total = last_step + 1
        if step == last_step - cfg.qat_steps + 1 and cfg.qat_steps > 0:
            qat_handles = enable_qat(student)
            opt = torch.optim.Adam([p for p in [*student.parameters(), *adapters.parameters()] if p.requires_grad],
                                   lr=sched.get_last_lr()[0] * 0.5)
        student.train()
        if qat_handles is not None:
            for m in student.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        x, target, cached = cache.batch(cfg.batch_size, side, rng)
        x, target = x.to(device), target.to(device)
        for (_, name, _), f in zip(taps, cached):
            t_feats[name] = f.to(device)
        y = student(x)
        terms = {"rec": F.l1_loss(y, target)}
        if taps and cfg.lambda_feat > 0:
            terms["feat"] = sum(F.mse_loss(a(student.features[k]), t_feats[n]) for a, (k, n, _) in zip(adapters, taps))
        adv_now = cfg.lambda_adv > 0 and step % cfg.adv_every == 0
        if adv_now:
            disc.requires_grad_(False)
            s = disc(y)
            terms["adv"] = F.mse_loss(s, torch.ones_like(s))
        if phi is not None:
            terms["perceptual"] = phi(y, target).mean()
        if pairs:
            terms["temporal"] = temporal_loss(student, pairs, max(1, cfg.batch_size // 2), rng)
        weights = {"rec": cfg.lambda_rec, "feat": cfg.lambda_feat, "adv": cfg.lambda_adv,
                   "perceptual": cfg.lambda_perceptual, "temporal": cfg.lambda_temporal}
        loss = sum(weights[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if qat_handles is None:
            sched.step()
        if adv_now:
            disc.requires_grad_(True)
            real, fake = disc(target), disc(y.detach())
            loss_d = F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            terms["d"] = loss_d
        if step % cfg.log_every == 0 or step == last_step:
            values = {k: float(v.detach()) for k, v in terms.items()}
            if not all(math.isfinite(v) for v in values.values()):
                raise FloatingPointError(f"non-finite distillation loss at step {step}: {values}")
            bar.set_postfix(rec=f"{values['rec']:.4f}")
            log.write(json.dumps({"kind": "step", "step": step, "qat": qat_handles is not None, **values}) + "\n")
            log.flush()
    bar.close()
    if qat_handles is not None:
        disable_qat(qat_handles)
    student.eval()
    seconds = time.perf_counter() - t0
    meta = {"step": last_step + 1, "teacher": str(teacher_path), "teacher_sha256": tch.sha256,
            "distill": setup, "seconds": seconds, "data_hash": "", "metrics": {}}
    info = model_info(cfg.student, kwargs, task=tinfo["task"], scale=scale, channels=channels, stride=int(student.stride))
    config = {"preset": f"distill:{cfg.student}", "data": data_cfg, "distill": to_dict(cfg),
              "model": {"generator": cfg.student,
                        "generator_kwargs": {k: v for k, v in kwargs.items() if k not in ("in_channels", "out_channels")},
                        "discriminator": "patchgan", "channels": channels}}
    path = save_checkpoint(out / "student.pt", model_info=info,
                           state_dicts={"G_H": student.cpu().state_dict(), "D_H": disc.cpu().state_dict()},
                           config=config, meta=meta)
    (out / "distill.json").write_text(json.dumps({**setup, "seconds": seconds, "config": to_dict(cfg)}, indent=2) + "\n")
    log.close()
    return path

