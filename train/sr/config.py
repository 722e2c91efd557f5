"""Typed configuration of the SR trainer, defaults from Liu et al. (seed 002) and ZSSR where the
paper defers to it. Load with ``sonoedge.runtime.config.load_config(SRConfig, toml, overrides)``."""
from __future__ import annotations

import dataclasses

from sonoedge.train.sr.losses import LossWeights
from sonoedge.train.sr.schedule import ZSSRPolicyConfig

MODES = ("zero-shot", "dataset")


@dataclasses.dataclass
class SRNetConfig:
    width: float = 1.0           # x Table I channel counts; 1.0 = the paper's (279k parameters, 1.1 MB as Table IV)
    degrade_channels: int = 64   # F (Fig. 2): the figure gives no widths; our choice
    degrade_blocks: int = 4      # F: 3x3 conv blocks after the two stride-2 convs; our choice
    noise_std: float = 1.0       # F's Gaussian noise input N(0, 1) (Sec. III-C, after Bulat et al. [30])
    disc_channels: int = 32      # D (Fig. 3): first block's width, doubled twice; the figure gives none, 32 keeps
                                 # an iteration at ~0.5 s on one CPU core (64: ~0.95 s); our choice


@dataclasses.dataclass
class SRDataConfig:
    root: str = ""               # dataset mode: folder of single-device images (searched recursively)
    crop: int = 64               # Sec. IV-B: "The cropped size is typically set to 64 x 64 pixels"
    batch: int = 4               # crops per iteration; the paper does not say (ZSSR uses 1); our choice
    lowest_scale: float = 0.5    # HR fathers from 1.0 down to this factor (Sec. III-A, ZSSR); our range
    scale_count: int = 6         # number of father scales in that range


@dataclasses.dataclass
class SRDegradationConfig:
    # how LR sons are made from HR fathers, and the down-scaling back-projection inverts (degrade.py):
    # "estimate" = estimated from the LR input (zero-shot: sons and back-projection; dataset mode:
    #   back-projection at inference, sons from every candidate in turn as "mix")
    # "mix" = each son by a random candidate operator (dataset mode: a blind generator)
    # or one named operator: "bicubic-aa" (the operator this code assumed before), "cubic", "area", "gauss<sigma>"
    operator: str = "estimate"
    speckle: float = 0.0         # max std of unit-mean gamma noise multiplied into half of the sons (0: none)
    discrepancy: float = 0.25    # stop back-projection once the residual RMS is below this x the input's
                                 # estimated noise (degrade.noise_level, which counts texture too: 0.25
                                 # chosen on realtrain/hc18 frames, never on realus); 0 = never stop early


@dataclasses.dataclass
class SRPerceptualConfig:
    trunk: str | None = None     # VGG16 weights file; None: $SONOEDGE_LPIPS_TRUNK or the torchvision cache;
                                 # "random": a seeded random trunk (named as such in every log)
    layer: str = "conv12"        # Sec. III-D: "the output ... of the 12th convolution layers from VGG"


@dataclasses.dataclass
class SREnsembleConfig:
    transforms: int = 8          # Sec. IV-B: self-ensemble over the 8 rotations/flips
    back_projection: int = 8     # back-projection iterations per output (ZSSR's default)


@dataclasses.dataclass
class SRConfig:
    mode: str = "zero-shot"      # "zero-shot" (train on the test image) or "dataset" (train once on a folder)
    net: SRNetConfig = dataclasses.field(default_factory=SRNetConfig)
    data: SRDataConfig = dataclasses.field(default_factory=SRDataConfig)
    weights: LossWeights = dataclasses.field(default_factory=LossWeights)
    perceptual: SRPerceptualConfig = dataclasses.field(default_factory=SRPerceptualConfig)
    policy: ZSSRPolicyConfig = dataclasses.field(default_factory=ZSSRPolicyConfig)
    ensemble: SREnsembleConfig = dataclasses.field(default_factory=SREnsembleConfig)
    degradation: SRDegradationConfig = dataclasses.field(default_factory=SRDegradationConfig)
    history: int = 50            # generated images kept for D (Shrivastava et al. [35]; 50 as CycleGAN)
    max_iters: int = 3000        # safety cap; the policy normally stops first (ZSSR's cap is 3000)
    time_budget_s: float = 0.0   # stop after this many seconds of training; 0 = no limit
    probe_every: int = 10        # iterations between reconstruction-error measurements for the policy
    seed: int = 0
    device: str = "auto"         # "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N" (as train.device)
    amp: bool = True             # mixed precision (bfloat16 autocast) on CUDA; ignored on the CPU

    def validate(self) -> "SRConfig":
        from sonoedge.runtime.errors import InputError

        if self.mode not in MODES:
            raise InputError(f"SR mode '{self.mode}' is unknown; choose one of {', '.join(MODES)}")
        if self.data.crop % 4 or self.data.crop < 16:
            raise InputError(f"data.crop={self.data.crop} must be a multiple of 4 and at least 16")
        op = self.degradation.operator
        if op not in ("estimate", "mix"):
            from sonoedge.train.sr.degrade import operator

            try:
                operator(op)
            except ValueError as exc:
                raise InputError(f"degradation.operator: {exc}") from None
        if self.degradation.discrepancy < 0:
            raise InputError(f"degradation.discrepancy={self.degradation.discrepancy} must be >= 0")
        if not 0 <= self.degradation.speckle < 1:
            raise InputError(f"degradation.speckle={self.degradation.speckle} must be in [0, 1)")
        if self.ensemble.transforms not in (1, 4, 8):
            raise InputError(f"ensemble.transforms={self.ensemble.transforms} must be 1, 4 or 8")
        return self
