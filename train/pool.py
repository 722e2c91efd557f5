"""The discriminator history pool (Shrivastava et al. 2017; CycleGAN's ImagePool, 50 images).

The discriminator sees, for each generated image, with probability 1/2 the new image and otherwise
one drawn from the last ``size`` generated images (which the new image then replaces). This damps
oscillation between G and D. Randomness comes from the torch RNG, and ``state_dict`` holds the
stored images, so a resumed run continues exactly.
"""
from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):  # 50 images: Zhu et al. 2017 (CycleGAN), Sec. 4
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) fresh fakes -> (N, C, H, W) fakes for D (detached); identity when size == 0."""
        batch = batch.detach()
        if self.size <= 0:
            return batch
        out = []
        for image in batch:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                index = int(torch.randint(0, self.size, ()))
                out.append(self.images[index].to(batch.device))
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = [t.clone() for t in state["images"]]
