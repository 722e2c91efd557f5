"""The training configuration of the CycleGAN + perceptual loss trainer (STYLE.md rule 1).

One dataclass per component; the defaults are the conference paper's (Athreya et al. 2024, seed
000, Sec. 2.5), the presets in ``presets.py`` set each paper's values. Loaded with
``sonoedge.runtime.config.load_config`` (TOML file, then ``--set a.b=value`` overrides) and saved
resolved beside every run and inside every checkpoint.

    cfg = load_config(TrainConfig, "run.toml", ["loss.lpips_trunk='random'", "train.epochs=20"])
"""
from __future__ import annotations

import dataclasses
from typing import Any

from sonoedge.train.datasets import DataConfig


@dataclasses.dataclass
class ModelConfig:
    """The two generators (G_H: L -> H, G_L: H -> L) and two discriminators, one architecture each."""

    generator: str = "resnet"  # a GENERATORS name: "resnet" (conference) or "unet" (journal)
    # conference Sec. 2.2: 7x7 conv with 64 channels, stride-2 down-sampling, 15 residual blocks
    generator_kwargs: dict[str, Any] = dataclasses.field(default_factory=lambda: {"ngf": 64, "n_blocks": 15, "n_down": 2})
    discriminator: str = "patchgan"  # 30x30 PatchGAN with spectral norm (both papers)
    discriminator_kwargs: dict[str, Any] = dataclasses.field(default_factory=lambda: {"ndf": 64})
    channels: int = 1  # grey B-mode
    # each discriminator scores the image after a denoiser, so a generator cannot hide the cycle in
    # high-frequency noise (Grimwood et al. 2022, Sec. 2.2): "none" or "gaussian" (train/sim2real.py)
    discriminator_denoiser: str = "none"
    denoiser_sigma: float = 1.0  # px, standard deviation of the "gaussian" denoiser


@dataclasses.dataclass
class LossConfig:
    """Weights of the generator loss (conference Eq. 6; journal "Generator Loss") and its switches."""

    lambda_adv: float = 1.0  # lambda_adv = 1, conference Sec. 2.5 (journal: 1)
    lambda_cycle: float = 12.0  # lambda_cycle = 12, conference Sec. 2.5 (journal: 10)
    lambda_identity: float = 1.0  # lambda_id = 1, conference Sec. 2.5 (journal: no identity term)
    lambda_paired: float = 0.0  # lambda_L1, journal "Implementation Details": 2 (conference: none)
    lambda_perceptual: float = 1.0  # lambda_per = 1, conference Sec. 2.5 (journal: 10)
    # which images the perceptual term compares (conference Table 2 ablations):
    # "translated" Phi(H, G_H(L)) + Phi(L, G_L(H)) (the papers' model, needs pairs),
    # "cycled" Phi(H, H-bar) + Phi(L, L-bar), "none" (CycleGAN without PL)
    perceptual: str = "translated"
    lpips_net: str = "vgg"  # LPIPS on a VGG trunk (both papers, "Perceptual loss")
    # trunk weights: a file path, "random" (uncalibrated; must be named), or unset to search
    # $SONOEDGE_LPIPS_TRUNK and the torchvision cache (sonoedge.train.lpips_offline)
    lpips_trunk: str | None = None
    label_smoothing: bool = True  # conference Eq. 7: real label 0.9 once mean real scores reach 0.9
    # low-pass consistency |lowpass(G(x)) - lowpass(x)|_1 (losses.lowpass_l1): keeps the input's
    # echogenicity map at a speckle-removed scale; not in the papers, 0 = off
    lambda_lowpass: float = 0.0
    lowpass_px: int = 8  # area down-sampling factor of that map (several speckle cells per block)
    # no-hole hinge (losses.dark_hinge): the output may not fall below half the input's local
    # echogenicity where the input is not itself dark (the fidelity gate's "invented" rule); 0 = off
    lambda_dark: float = 0.0
    dark_ratio: float = 0.5  # the fraction of the input's echogenicity the output may not fall below there
    dark_px: int = 25  # window of the input's echogenicity in that hinge (~ the gate's sigma 1.5 cells at 4-8 px cells)
    # False: train G_H alone (paired L1, identity, low-pass, perceptual on G_H; no G_L, no
    # discriminators), which needs lambda_adv = lambda_cycle = 0: the fast CPU recipe of the default
    reverse: bool = True


@dataclasses.dataclass
class OptimConfig:
    """Adam for both generators together and both discriminators together; StepLR or linear decay per epoch."""

    lr_g: float = 3e-4  # conference Sec. 2.5 (two time-scale update rule); journal: 3e-4
    lr_d: float = 3e-3  # conference Sec. 2.5; journal: 3e-4
    betas_g: tuple[float, float] = (0.9, 0.9)  # "a beta value of 0.9 for the first and second moments"
    betas_d: tuple[float, float] = (0.9, 0.9)  # journal: (0.9, 0.999)
    lr_step_epochs: int = 100  # "reduced learning rates by half every 100 epochs" (both papers)
    lr_gamma: float = 0.5
    # "step": x lr_gamma every lr_step_epochs; "linear": constant for lr_step_epochs, then linearly
    # to 0 at train.epochs (Grimwood et al. 2022 Sec. 2.3; CycleGAN's policy)
    lr_policy: str = "step"


@dataclasses.dataclass
class LoopConfig:
    """How long, how big, where, and what to record."""

    epochs: int = 300  # both papers
    batch_size: int = 24  # conference Sec. 2.5 (journal: 4); per process under DDP
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    amp: bool = True  # mixed precision + gradient scaling on CUDA (both papers); ignored on CPU
    amp_dtype: str = "float16"  # "float16" (with GradScaler) or "bfloat16"
    # NHWC memory format on CUDA; ignored on CPU. Off: every conv of the resnet and unet generators
    # feeds an InstanceNorm, which returns the standard layout (torch 2.x), so NHWC would be
    # converted back and forth at every layer. Not measured on a GPU (docs/BENCHMARKS.md).
    channels_last: bool = False
    cudnn_benchmark: bool = True  # CUDA: cuDNN times its conv algorithms once for the fixed training shapes; ignored on CPU
    compile: bool = False  # torch.compile the four networks (the first steps are slower while it compiles)
    pool_size: int = 0  # discriminator history pool; 50 images in CycleGAN (Zhu et al. 2017)
    # DataLoader worker processes; -1 = auto: min(8, os.cpu_count() - 1) on CUDA (decoding and
    # augmentation overlap the GPU), 0 on CPU (the training step already uses every core)
    workers: int = -1
    prefetch_factor: int = 2  # batches each worker loads ahead (with workers > 0); DataLoader's default
    threads: int = 0  # torch intra-op CPU threads; 0 = torch's default. On a shared CPU, 1 avoids OpenMP spin contention
    max_steps: int = 0  # stop (and save last.pt) after this many optimisation steps; 0 = no limit
    val_max_items: int = 0  # validate on at most this many images; 0 = the whole split
    best_metric: str = "ssim"  # "ssim", "psnr", "lncc" (higher is better) or "lpips" (lower)
    log_every: int = 10  # steps between loss records; the losses reach the CPU (a GPU sync) only then
    grid_images: int = 4  # validation images in the TensorBoard grid (low | enhanced | high)


@dataclasses.dataclass
class TrainConfig:
    preset: str = ""  # the preset this config started from (informational)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=LoopConfig)

    def check(self) -> None:
        """Refuse contradictory settings with one sentence each (raises InputError)."""
        from sonoedge.runtime.errors import InputError

        if self.loss.perceptual not in ("translated", "cycled", "none"):
            raise InputError(f"loss.perceptual must be 'translated', 'cycled' or 'none', got '{self.loss.perceptual}'")
        if self.optim.lr_policy not in ("step", "linear"):
            raise InputError(f"optim.lr_policy must be 'step' or 'linear', got '{self.optim.lr_policy}'")
        if self.train.best_metric not in ("ssim", "psnr", "lncc", "lpips"):
            raise InputError(f"train.best_metric must be ssim, psnr, lncc or lpips, got '{self.train.best_metric}'")
        if self.train.amp_dtype not in ("float16", "bfloat16"):
            raise InputError(f"train.amp_dtype must be 'float16' or 'bfloat16', got '{self.train.amp_dtype}'")
        if not self.loss.reverse and (self.loss.lambda_adv > 0 or self.loss.lambda_cycle > 0):
            raise InputError("loss.reverse=false trains G_H alone; it needs loss.lambda_adv=0 and loss.lambda_cycle=0")
        if self.loss.lowpass_px < 1:
            raise InputError(f"loss.lowpass_px must be at least 1, got {self.loss.lowpass_px}")
        if self.train.batch_size < 1 or self.train.epochs < 1:
            raise InputError("train.batch_size and train.epochs must be at least 1")
        if self.train.workers < -1 or self.train.prefetch_factor < 1 or self.train.log_every < 1:
            raise InputError("train.workers must be -1 (auto) or more, train.prefetch_factor and train.log_every at least 1")
