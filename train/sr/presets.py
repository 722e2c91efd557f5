"""The ``liu2021-sr`` preset: dataset-mode training of the self-supervised CycleGAN SR model.

    sonoedge train --preset liu2021-sr --data FOLDER --out runs/sr [--set max_iters=2000]

Writes ``OUT/last.pt`` (the checkpoint contract of train/checkpoint.py, ``deploy`` = "G_SR", task
"sr", scale 4: ``sonoedge export`` turns it into a bundle) and ``OUT/config.toml``. Every image of
the folder (recursively; stills, DICOM, NRRD: the first frame of each) is one source of HR fathers.
"""
from __future__ import annotations

from pathlib import Path

from sonoedge.train.presets import Preset
from sonoedge.train.registries import PRESETS
from sonoedge.train.sr.config import SRConfig

NAME = "liu2021-sr"


def dataset_images(root: str | Path) -> tuple[list, list[Path]]:
    """(uint8 (H, W) images, their files) of every image file under ``root``."""
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, NRRD_EXTENSIONS, read_image

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"SR training data {root} is not a folder; pass --data DIR with the device's images")
    suffixes = set(IMAGE_EXTENSIONS) | set(DICOM_EXTENSIONS) | set(NRRD_EXTENSIONS)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(f"{root} holds no images ({' '.join(sorted(suffixes))}); point --data at a folder of frames")
    return [read_image(f) for f in files], files


def run(cfg: SRConfig, out_dir: Path, resume: Path | None) -> Path:
    """Dataset-mode training (trainer.train_dataset) with a progress bar; returns ``out_dir``."""
    import hashlib

    from tqdm import tqdm

    from sonoedge.runtime.config import save_config
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr.trainer import train_dataset

    if resume is not None:
        raise InputError(f"{NAME} does not resume (its ZSSR schedule restarts cheaply); run it again without --resume")
    if cfg.mode != "dataset":
        raise InputError(f"{NAME} trains in dataset mode; zero-shot SR of one image is 'sonoedge sr INPUT --zero-shot'")
    images, files = dataset_images(cfg.data.root)
    out_dir = Path(out_dir)
    digest = hashlib.sha256("\n".join(str(f.relative_to(cfg.data.root)) for f in files).encode()).hexdigest()[:16]
    bar = tqdm(total=cfg.max_iters, desc=f"{NAME} ({len(images)} images)", unit="it")

    def progress(it: int, terms: dict) -> None:
        bar.update(1)
        if it % 10 == 0:
            bar.set_postfix(pixel=f"{terms['pixel']:.4f}", cycle=f"{terms['cycle']:.4f}", lr=f"{terms['lr']:.0e}")

    try:
        path, log = train_dataset(images, cfg, out_dir / "last.pt", progress=progress,
                                  data_info={"data_hash": f"files:{digest}", "images": len(images)})
    finally:
        bar.close()
    save_config(cfg, out_dir / "config.toml")
    print(f"{NAME}: {log.iterations} iterations in {log.seconds:.0f} s, stopped by {log.stop_reason}; "
          f"perceptual trunk: {log.perceptual_trunk}; checkpoint {path}")
    return out_dir


def preset_config() -> SRConfig:
    """Liu et al. defaults (config.py), dataset mode, blind: sons by every candidate degradation
    (degrade.py) and speckle-like noise up to 0.15 on half of them; back-projection at inference
    through the degradation estimated from each input."""
    cfg = SRConfig(mode="dataset")
    cfg.degradation.speckle = 0.15
    return cfg


PRESETS.register(NAME)(Preset(
    NAME, "self-supervised CycleGAN 4x super-resolution, multi-scale generator (Liu et al. 2021), dataset mode",
    config=preset_config(), run=run, data_key="data.root"))
