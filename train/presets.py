"""Named training presets (``PRESETS``): a resolved config plus the function that trains it.

    sonoedge train --preset athreya2024-journal --data DIR --print-config

A :class:`Preset` is deliberately small so other trainers can register theirs (the SR trainer's
``liu2021-sr`` lives in ``train/sr/presets.py``):

    Preset(name, description, config, run)
      config: a dataclass instance (defaults of the paper), the base of ``load_config``
      run(config, out_dir: Path, resume: Path | None) -> Path   trains, returns the run directory
      data_key: the config key that ``--data DIR`` sets (default "data.root")
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from sonoedge.train.registries import PRESETS


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: Any  # a dataclass instance
    run: Callable[[Any, Path, Path | None], Path]
    data_key: str = "data.root"
    # "key = value: source" lines printed as comments above --print-config's TOML, for values a
    # reader should trace to the paper (and where a documented CPU run departs from them)
    sources: tuple[str, ...] = ()


def _run_cyclegan(cfg, out_dir: Path, resume: Path | None) -> Path:
    from sonoedge.train.trainer import train

    return train(cfg, out_dir, resume)


def conference() -> Any:
    """Athreya et al. 2024, conference version (seed 000), Sec. 2.2 and 2.5."""
    from sonoedge.train.config import LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from sonoedge.train.datasets import DataConfig

    return TrainConfig(
        preset="athreya2024-conference",
        data=_data(DataConfig, ratios=(0.9, 0.1, 0.0)),  # "90% for model training and 10% for validation"
        model=ModelConfig(generator="resnet", generator_kwargs={"ngf": 64, "n_blocks": 15, "n_down": 2}),  # 15 residual blocks
        loss=LossConfig(lambda_adv=1.0, lambda_cycle=12.0, lambda_identity=1.0, lambda_paired=0.0, lambda_perceptual=1.0),
        optim=OptimConfig(lr_g=3e-4, lr_d=3e-3, betas_g=(0.9, 0.9), betas_d=(0.9, 0.9)),  # Sec. 2.5: TTUR, betas 0.9
        train=LoopConfig(epochs=300, batch_size=24),  # Sec. 2.5
    )


def journal() -> Any:
    """Athreya et al. 2024, JMIR Biomed Eng (seed 001), "Generator" and "Implementation Details"."""
    from sonoedge.train.config import LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from sonoedge.train.datasets import DataConfig

    return TrainConfig(
        preset="athreya2024-journal",
        data=_data(DataConfig, ratios=(0.7, 0.1, 0.2)),  # "70% training, 10% validation, 20% hold-out test"
        model=ModelConfig(generator="unet", generator_kwargs={"ngf": 64, "depth": 8}),  # pix2pix-style U-Net
        loss=LossConfig(lambda_adv=1.0, lambda_cycle=10.0, lambda_identity=0.0, lambda_paired=2.0, lambda_perceptual=10.0),
        optim=OptimConfig(lr_g=3e-4, lr_d=3e-4, betas_g=(0.9, 0.999), betas_d=(0.9, 0.999)),
        train=LoopConfig(epochs=300, batch_size=4),
    )


def grimwood() -> Any:
    """Grimwood et al. 2022, EUS CycleGAN (seed 004), Sec. 2.2-2.3, as sim-to-real translation:
    domain A (the ``low`` slot, G_H's input) is the phantom, domain B (``high``) real recordings, so
    the deployed G_H translates simulation toward real. "Other hyperparameters were set to the
    defaults used in the original implementation [5]" (Zhu et al. 2017): those are stated below."""
    from sonoedge.train.config import LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from sonoedge.train.datasets import DataConfig

    return TrainConfig(
        preset="grimwood2022-sim2real",
        # "For each epoch, a 90/10 training/validation split" (Sec. 2.3); flips and 40 px crops are the
        # AugmentConfig defaults (Sec. 2.3); intensities in [-1, 1] as everywhere here
        data=_data(DataConfig, layout="unpaired", ratios=(0.9, 0.1, 0.0)),
        # CycleGAN defaults (Zhu et al. 2017, code): ResNet generator with 9 blocks for 256 px, ngf = ndf = 64
        model=ModelConfig(generator="resnet", generator_kwargs={"ngf": 64, "n_blocks": 9, "n_down": 2},
                          discriminator_kwargs={"ndf": 64},
                          discriminator_denoiser="gaussian", denoiser_sigma=1.0),  # Sec. 2.2 (Gaussian, see sim2real.py)
        # CycleGAN defaults: lambda_cycle = 10, identity 0.5 x 10 = 5; no perceptual or paired term, no label smoothing
        loss=LossConfig(lambda_adv=1.0, lambda_cycle=10.0, lambda_identity=5.0, lambda_paired=0.0, lambda_perceptual=0.0,
                        perceptual="none", label_smoothing=False),
        # "learning rate of 0.0002 that decayed linearly after 100 epochs" (Sec. 2.3); Adam beta1 = 0.5 (CycleGAN default)
        optim=OptimConfig(lr_g=2e-4, lr_d=2e-4, betas_g=(0.5, 0.999), betas_d=(0.5, 0.999), lr_step_epochs=100,
                          lr_policy="linear"),
        train=LoopConfig(epochs=200, batch_size=1, pool_size=50),  # "batch size of 1 ... 200 epochs"; 50-image pool (CycleGAN)
    )


def default_recipe() -> Any:
    """The embedded default's recipe (docs/results/training.md): the journal's U-Net at the
    deployed size (ngf 8, depth 6), G_H alone on paired data (journal L_L1 one way), the
    conference's identity term (Eq. 5, one way) and the low-pass consistency term; no GAN or
    perceptual terms, so it converges in about an hour on a 2-core CPU. Data: real console frames
    degraded by ``sonoedge data degrade`` plus phantom pairs with ``tissue.extras`` and
    ``display_variation``, 256 x 256 tiles."""
    from sonoedge.train.augment import AugmentConfig
    from sonoedge.train.config import LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from sonoedge.train.datasets import DataConfig

    return TrainConfig(
        preset="sonoedge-default",
        data=_data(DataConfig, ratios=(0.9, 0.1, 0.0), size=0, stride=64, augment=AugmentConfig(crop_margin=0)),
        model=ModelConfig(generator="unet", generator_kwargs={"ngf": 8, "depth": 6, "dropout": 0.0, "dropout_layers": 2},
                          discriminator_kwargs={"ndf": 16}),
        loss=LossConfig(lambda_adv=0.0, lambda_cycle=0.0, lambda_identity=0.5, lambda_paired=1.0, lambda_perceptual=0.0,
                        perceptual="none", lambda_lowpass=1.0, lowpass_px=8, reverse=False, label_smoothing=False),
        optim=OptimConfig(lr_g=1e-3, lr_d=1e-3, betas_g=(0.9, 0.999), betas_d=(0.9, 0.999), lr_step_epochs=4),
        train=LoopConfig(epochs=10, batch_size=8, threads=2, val_max_items=48, log_every=10),
    )


def _data(cls, **values):
    """A DataConfig with the paper's split, passing only the fields that DataConfig has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


PRESETS.register("athreya2024-conference")(Preset(
    "athreya2024-conference", "CycleGAN + LPIPS perceptual loss, ResNet-15 generator (Athreya et al. 2024, conference)",
    config=conference(), run=_run_cyclegan))
PRESETS.register("sonoedge-default")(Preset(
    "sonoedge-default", "the embedded default: U-Net ngf 8 on degraded real + phantom pairs, L1 + identity + low-pass, no GAN",
    config=default_recipe(), run=_run_cyclegan))
PRESETS.register("athreya2024-journal")(Preset(
    "athreya2024-journal", "CycleGAN + LPIPS perceptual loss + paired L1, U-Net generator (Athreya et al. 2024, JMIR Biomed Eng)",
    config=journal(), run=_run_cyclegan))
PRESETS.register("grimwood2022-sim2real")(Preset(
    "grimwood2022-sim2real", "sim-to-real CycleGAN with denoiser-guarded discriminators, A = phantom, B = real "
    "(Grimwood et al. 2022, EUS CycleGAN)", config=grimwood(), run=_run_cyclegan))
