"""Fixtures for the export tests: tiny *trained* generators (random weights are not what users
export, and int8 of an untrained net measures nothing) and synthetic speckle frames (so the tests
that do not need real data run without ../shared)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

# tiny widths keep every export test fast; depth/n_down keep the stride small
TINY = {"resnet": dict(ngf=4, n_blocks=1, n_down=2), "unet": dict(ngf=4, depth=3, dropout=0.0)}


def train_tiny(name: str, path: Path, steps: int = 40) -> Path:
    """Fit a tiny generator to a 5x5 binomial smoothing of speckle (a stand-in for despeckling)."""
    import torch
    import torch.nn.functional as F

    import sonoedge.train.generators  # noqa: F401  (registers resnet/unet)
    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.registries import GENERATORS

    kwargs = TINY[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: threading overhead dominates on a shared 2-core machine
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g = GENERATORS.create(name, **kwargs)
        opt = torch.optim.Adam(g.parameters(), 3e-3)
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        k = (k[:, None] * k[None]) / 256.0
        for _ in range(steps):
            base = F.interpolate(torch.rand(4, 1, 4, 4), size=32, mode="bilinear", align_corners=False)
            x = (base * (0.5 + 0.5 * torch.randn(4, 1, 32, 32).abs())).clamp(0, 1) * 2 - 1
            y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k[None, None])
            loss = F.l1_loss(g(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    info = model_info(name, kwargs, stride=g.stride)
    return save_checkpoint(path, model_info=info, state_dicts={"G_H": g.eval().state_dict()}, config={}, meta={})


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {name: train_tiny(name, root / f"{name}.pt") for name in TINY}


def speckle_frame(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    """A B-mode-like uint8 frame: smooth anatomy x Rayleigh speckle inside a rectangle on black."""
    anatomy = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 8)
    anatomy = (anatomy - anatomy.min()) / (np.ptp(anatomy) + 1e-6)
    speckle = rng.rayleigh(0.5, (h, w)).astype(np.float32)
    image = np.zeros((h, w), np.float32)
    image[10:h - 10, 20:w - 20] = (40 + 160 * anatomy * speckle)[10:h - 10, 20:w - 20]
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def speckle_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speckle")
    rng = np.random.default_rng(0)
    for i in range(24):
        cv2.imwrite(str(root / f"frame_{i:02d}.png"), speckle_frame(rng))
    return root
