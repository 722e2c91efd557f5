"""The three networks of Liu et al. (seed 002), Sec. III-B and III-C.

    LiuSRGenerator        G: LR (N, 1, H, W) in [-1, 1] -> SR (N, 1, 4H, 4W) in [-1, 1]   (Fig. 1, Table I)
    DegradationGenerator  F: HR (N, 1, H, W) in [-1, 1] -> LR (N, 1, H/4, W/4) in [-1, 1] (Fig. 2)
    PatchDiscriminator    D: (N, 1, 64, 64) -> patch logits (N, 1, 8, 8)                   (Fig. 3)

Reading of the paper where it leaves a choice (its figures give no channel counts beyond Table I):
- G sees the LR image bicubic-up-sampled to the output size: "the input LR image is considered to be
  the low frequency component" (Sec. III-B, Eq. 1), each branch adds its detail image F_j(y) to it,
  and a final conv fuses the concatenated reconstructions. Table I lists the hidden layers only; each
  branch ends in one 3x3 conv to a 1-channel detail image. Encoder groups after the first halve the
  resolution with their first conv (stride 2); decoder groups mirror them with a stride-2
  transposed conv, so scale 2 works at 1/2 and scale 3 down to 1/4 of the output size.
- The detail convs and the fusion start as "no detail, mean of the branches" (zero last layer,
  fusion = 1/3 each), so the untrained G is exactly bicubic up-sampling and training only has to
  learn the detail (the residual learning the paper's Eq. 1 describes). This is our choice.
- F is fully convolutional on the image plus one channel of Gaussian noise (Sec. III-C, after
  Bulat et al. [30]); two stride-2 convs give the 1/4 size; it adds its output to the bicubic
  down-scaled image, so it too starts at plain bicubic degradation.
- D: an input conv and four blocks of conv, ReLU, batch norm (Fig. 3 caption text), then a 1x1 conv
  to one logit per patch; -log D of Eq. 4 is the logistic loss of these logits.
"""
from __future__ import annotations

import torch
from torch import nn

from sonoedge.train.registries import DISCRIMINATORS, GENERATORS
from sonoedge.train.sr.resize import resize

SCALE = 4  # 4x SR, the paper's only setting (Sec. IV-C)


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]


def _deconv(cin: int, cout: int, up: bool = False) -> list[nn.Module]:
    if up:  # exact 2x: (H - 1) * 2 - 2 + 3 + 1 = 2H
        layer = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    else:
        # Table I's stride-1 "deconv" is exactly a plain 3x3 convolution (the transposed one's kernel
        # flipped, in/out swapped): the same function, cheaper to run and to export.
        # DetailBranch._load_from_state_dict converts weights saved in the transposed layout.
        layer = nn.Conv2d(cin, cout, 3, stride=1, padding=1)
    return [layer, nn.ReLU(inplace=True)]


# Table I, one row per group: ("conv"|"deconv", channels, pairs). A group is two layers ("x2").
BRANCHES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("conv", 32),),                                                      # scale 1
    (("conv", 32), ("conv", 32), ("deconv", 32), ("deconv", 32)),         # scale 2
    (("conv", 32), ("conv", 32), ("conv", 64), ("deconv", 64), ("deconv", 32), ("deconv", 32)),  # scale 3
)


class DetailBranch(nn.Module):
    """One encoder-decoder stream of Table I: (N, 1, H, W) -> detail (N, 1, H, W); H, W % 2^depth == 0."""

    def __init__(self, groups: tuple[tuple[str, int], ...], width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        self._plain_decoder: list[int] = []  # indices in body of the stride-1 decoder convs
        cin = 1
        n_enc = sum(1 for kind, _ in groups if kind == "conv")
        for i, (kind, channels) in enumerate(groups):
            c = max(1, int(round(channels * width)))
            if kind == "conv":
                layers += _conv(cin, c, stride=2 if i > 0 else 1) + _conv(c, c)
            else:
                up = i > n_enc  # the bottom decoder group stays at the encoder's lowest resolution
                if not up:
                    self._plain_decoder.append(len(layers))
                layers += _deconv(cin, c, up=up)
                self._plain_decoder.append(len(layers))
                layers += _deconv(c, c)
            cin = c
        self.body = nn.Sequential(*layers)
        self.detail = nn.Conv2d(cin, 1, 3, padding=1)
        # marks the weight layout in every state dict and checkpoint (train/checkpoint.py keeps no torch
        # metadata): 2 = stride-1 decoder layers are Conv2d; a state dict without it is the older,
        # transposed layout and is converted on load (_load_from_state_dict)
        self.register_buffer("layout", torch.tensor(2, dtype=torch.int64))
        nn.init.zeros_(self.detail.weight)  # untrained branch adds no detail (module docstring)
        nn.init.zeros_(self.detail.bias)
        self.depth = max(0, n_enc - 1)  # number of stride-2 convs

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if f"{prefix}layout" not in state_dict:  # saved with ConvTranspose2d(stride 1) weights
            for i in self._plain_decoder:
                key = f"{prefix}body.{i}.weight"
                if key in state_dict:
                    state_dict[key] = state_dict[key].transpose(0, 1).flip(-2, -1).contiguous()
            state_dict[f"{prefix}layout"] = torch.tensor(2, dtype=torch.int64)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.detail(self.body(y))


@GENERATORS.register("liu_sr")
class LiuSRGenerator(nn.Module):
    """G of Fig. 1: (N, 1, H, W) in [-1, 1] -> (N, 1, 4H, 4W) in [-1, 1]; any H, W >= 1.

    ``width`` scales every channel count of Table I (1.0 is the paper's).
    """

    stride = 1  # branches run on the 4x up-sampled image, whose sides are multiples of 4 = 2^2
    scale = SCALE

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = width
        self.branches = nn.ModuleList(DetailBranch(groups, width) for groups in BRANCHES)
        self.fuse = nn.Conv2d(len(BRANCHES), 1, 3, padding=1)  # "conv" of Eq. 1
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.weight[:, :, 1, 1] = 1.0 / len(BRANCHES)
            self.fuse.bias.zero_()
        assert max(b.depth for b in self.branches) <= 2, "the 4x up-sampled size must fit the branch depth"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = resize(x, scale=self.scale)  # the low-frequency component, Eq. 1
        recon = torch.cat([y + branch(y) for branch in self.branches], dim=1)  # y + F_j(y, Theta_j)
        return torch.clamp(self.fuse(recon), -1.0, 1.0)


class DegradationGenerator(nn.Module):
    """F of Fig. 2: (N, 1, H, W) in [-1, 1] -> (N, 1, H/4, W/4) in [-1, 1]; H, W multiples of 4.

    Fed the image and one channel of N(0, ``noise_std``^2) noise (Sec. III-C). ``noise=None`` draws
    fresh noise; pass a tensor (N, 1, H, W) to make it deterministic. A training-only network: it is
    not in ``GENERATORS`` (whose entries are deployable, ``scale`` = output/input size).
    """

    stride = SCALE
    factor = SCALE  # down-scaling factor

    def __init__(self, channels: int = 64, blocks: int = 4, noise_std: float = 1.0):
        super().__init__()
        self.noise_std = noise_std
        layers = _conv(2, channels) + _conv(channels, channels, stride=2) + _conv(channels, channels, stride=2)
        for _ in range(blocks):
            layers += _conv(channels, channels)
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # untrained F is bicubic down-scaling (module docstring)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn_like(x) * self.noise_std
        residual = self.out(self.body(torch.cat([x, noise], dim=1)))
        return torch.clamp(resize(x, scale=1.0 / self.factor) + residual, -1.0, 1.0)


@DISCRIMINATORS.register("liu_patch")
class PatchDiscriminator(nn.Module):
    """D of Fig. 3: (N, 1, H, W) -> logits (N, 1, H/8, W/8); the paper feeds 64 x 64 crops.

    An input layer, four blocks of conv, ReLU, batch norm (the first three halve the size), and a
    1x1 conv to one real/fake logit per patch X_ij.
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1), nn.ReLU(inplace=True)]  # input layer
        for cin, cout, stride in ((c, c, 2), (c, 2 * c, 2), (2 * c, 4 * c, 2), (4 * c, 4 * c, 1)):
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(cout)]
        layers.append(nn.Conv2d(4 * c, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@GENERATORS.register("blind_sr")
class BlindSRNet(nn.Module):
    """A fast generator for blind 4x SR (train/sr/blind.py): (N, 1, H, W) in [-1, 1] -> (N, 1, 4H, 4W).

    All convolutions run at the LR size and the last one's 16 channels become the 4 x 4 sub-pixel
    positions of a PixelShuffle (ESPCN, Shi et al. 2016): about 1/16 of the cost of a network at the
    output size such as Table I's. The net predicts a residual added to the bicubic up-scaling (the
    global residual of VDSR, Kim et al. 2016, and Liu et al.'s Eq. 1 "LR image = low-frequency
    component"); the last conv starts at zero, so the untrained net is exactly bicubic.
    ``channels`` x ``layers`` 3x3 convs with ReLU, then the sub-pixel conv.
    """

    stride = 1
    scale = SCALE

    def __init__(self, channels: int = 32, layers: int = 8):
        super().__init__()
        self.channels, self.layers = channels, layers
        body: list[nn.Module] = []
        cin = 1
        for _ in range(layers):
            body += _conv(cin, channels)
            cin = channels
        self.body = nn.Sequential(*body)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # He et al. 2015 (as VDSR): PyTorch's default init shrinks the
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # signal ~3x per layer, and 10
                nn.init.zeros_(m.bias)  # layers of that left the net stuck at bicubic
        self.subpixel = nn.Conv2d(channels, SCALE * SCALE, 3, padding=1)
        nn.init.zeros_(self.subpixel.weight)  # untrained: no residual, exactly bicubic
        nn.init.zeros_(self.subpixel.bias)
        self.shuffle = nn.PixelShuffle(SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shuffle(self.subpixel(self.body(x)))
        return torch.clamp(resize(x, scale=self.scale) + residual, -1.0, 1.0)
