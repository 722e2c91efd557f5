"""Run a trained translator checkpoint on images: the NST transform net or a CycleGAN's G_H.

    outputs, description = translate("runs/nst/last.pt", images)     # uint8 (H, W) in, uint8 (H, W) out

Each image is reflect-padded to the generator's stride, translated, and cropped back (DESIGN.md,
Contracts: Images). The noise layers of the transform net draw from a generator seeded per call, so
the same checkpoint on the same images gives the same outputs.
"""
from __future__ import annotations

import numpy as np


def translate(checkpoint: str, images: list[np.ndarray], seed: int = 0, progress: bool = False) -> tuple[list[np.ndarray], str]:
    import torch
    from tqdm import tqdm

    from sonoedge.runtime.frames import crop, denormalise, normalise, pad_to_stride
    from sonoedge.train.checkpoint import load_checkpoint, load_generator

    model, info = load_generator(checkpoint)
    meta = load_checkpoint(checkpoint)
    outputs = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for image in tqdm(images, desc="translate", unit="image", disable=not progress):
            x, size = pad_to_stride(normalise(image), info["stride"])
            y = crop(model(torch.from_numpy(x)).numpy(), size, info["scale"])
            outputs.append(denormalise(y))
    preset = meta["config"].get("preset") or info["generator"]
    return outputs, f"{preset} checkpoint {checkpoint} (step {meta['meta'].get('step')})"
