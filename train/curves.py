"""Validation curves of a training run, like Figure 3 of Athreya et al. 2024 (conference, seed 000).

    sonoedge curves runs/journal docs/img/training_curves.png

Reads ``RUN_DIR/log.jsonl`` (the trainer's epoch records) and draws val LNCC, SSIM and PSNR per
epoch (and LPIPS when recorded) side by side; the PNG is written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.errors import InputError

METRICS = (("val_lncc", "LNCC"), ("val_ssim", "SSIM"), ("val_psnr", "PSNR (dB)"), ("val_lpips", "LPIPS"))


def epoch_records(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass the --out folder of 'sonoedge train'")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    epochs = [r for r in records if r.get("kind") == "epoch" and "val_ssim" in r]
    if not epochs:
        raise InputError(f"{path} holds no validated epoch yet")
    return epochs


def plot_curves(run_dir: str | Path, out: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = epoch_records(run_dir)
    shown = [(k, label) for k, label in METRICS if all(k in r for r in epochs)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.0), squeeze=False)
    for ax, (key, label) in zip(axes[0], shown):
        ax.plot([r["epoch"] for r in epochs], [r[key] for r in epochs], marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(out)
