"""Self-supervision from the image(s) themselves (Liu et al. Sec. III-A and IV-B, after ZSSR [14]).

"HR fathers" are the source image(s) down-scaled by several factors; each father is augmented by one
of the 8 rotations/flips (the dihedral group D4); its "LR son" is the father down-scaled 4x. Training
uses random fixed-size crops of a father (64 x 64, Sec. IV-B) and the son of that crop, so a pair is

    son (N, 1, c/4, c/4) in [-1, 1]  ->  father crop (N, 1, c, c) in [-1, 1],   c = crop size

Fathers are drawn with probability proportional to their area, so the larger (closer to the test
scale) fathers are seen most, as ZSSR does.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from sonoedge.train.sr.resize import resize

SCALE = 4


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 rotations/flips (k in 0..7) of the last two axes: k % 4 quarter turns, then a
    left-right flip when k >= 4."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def dihedral_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo :func:`dihedral` (k): dihedral_inverse(dihedral(x, k), k) == x."""
    y = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


@dataclasses.dataclass
class FatherSet:
    """HR fathers of one or more source images (each (1, 1, H, W) in [-1, 1]) at ``scales``.

    A father smaller than the crop on either side is skipped; a source with no usable father raises.
    """

    sources: list[torch.Tensor]
    scales: tuple[float, ...]
    crop: int = 64
    sons: "SonMaker | None" = None  # how a son is made from a father crop (None: make_son, bicubic)

    def __post_init__(self):
        if self.crop % SCALE:
            raise ValueError(f"crop size {self.crop} must be a multiple of {SCALE}")
        self.fathers: list[torch.Tensor] = []
        for src in self.sources:
            for s in self.scales:
                father = src if s == 1.0 else torch.clamp(resize(src, scale=s), -1.0, 1.0)
                if min(father.shape[-2:]) >= self.crop:
                    self.fathers.append(father)
        if not self.fathers:
            sizes = ", ".join(f"{tuple(s.shape[-2:])}" for s in self.sources)
            raise ValueError(f"no father of the image(s) of size {sizes} is at least {self.crop} pixels on each "
                             f"side; use a smaller crop (multiple of {SCALE}) or larger images")
        areas = np.array([f.shape[-2] * f.shape[-1] for f in self.fathers], dtype=np.float64)
        self.probabilities = areas / areas.sum()

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of (sons (B, 1, c/4, c/4), father crops (B, 1, c, c)), both in [-1, 1]."""
        crops = []
        for _ in range(batch):
            father = self.fathers[rng.choice(len(self.fathers), p=self.probabilities)]
            h, w = father.shape[-2:]
            top = int(rng.integers(0, h - self.crop + 1))
            left = int(rng.integers(0, w - self.crop + 1))
            patch = father[..., top:top + self.crop, left:left + self.crop]
            crops.append(dihedral(patch, int(rng.integers(0, 8))))
        hr = torch.cat(crops, dim=0)
        return (make_son(hr) if self.sons is None else self.sons(hr, rng)), hr


def make_son(father: torch.Tensor) -> torch.Tensor:
    """LR son of a father: (N, 1, H, W) -> (N, 1, H/4, W/4), bicubic, clamped to [-1, 1]."""
    return torch.clamp(resize(father, scale=1.0 / SCALE), -1.0, 1.0)


class SonMaker:
    """LR sons by the degradation of the input rather than an assumed one (Liu et al. Sec. III-C: the
    degradation of real ultrasound is unknown; ZSSR/KernelGAN: sons by the estimated kernel).

    ``ops``: the operators (degrade.Operator; None = make_son's anti-aliased bicubic), one drawn at
    random per son; ``speckle``: half of the sons are multiplied, in intensity [0, 1], by unit-mean
    gamma noise whose standard deviation is drawn uniformly in [0, speckle] (the LR input's speckle
    the generator then learns to look through; 0 turns it off).
    """

    def __init__(self, ops: list, speckle: float = 0.0):
        if not ops:
            raise ValueError("SonMaker needs at least one operator")
        self.ops, self.speckle = list(ops), float(speckle)

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        from sonoedge.train.sr.degrade import apply, speckle

        sons = []
        for crop in hr.split(1, dim=0):
            op = self.ops[int(rng.integers(0, len(self.ops)))]
            son = make_son(crop) if op is None else torch.clamp(apply(op, crop), -1.0, 1.0)
            if self.speckle and rng.random() < 0.5:
                std = float(rng.uniform(0.0, self.speckle))
                if std > 0:
                    son = torch.clamp(speckle(son, std, rng), -1.0, 1.0)
            sons.append(son)
        return torch.cat(sons, dim=0)

    def describe(self) -> str:
        names = ["bicubic-aa" if op is None else op.name for op in self.ops]
        text = names[0] if len(names) == 1 else f"mix of {len(names)}: {', '.join(names)}"
        return text + (f", speckle up to {self.speckle:g} on half" if self.speckle else "")


def default_scales(lowest: float = 0.5, count: int = 6) -> tuple[float, ...]:
    """``count`` father scales evenly from 1.0 down to ``lowest`` (e.g. 1.0, 0.9, ..., 0.5)."""
    return tuple(float(s) for s in np.round(np.linspace(1.0, lowest, count), 4))
