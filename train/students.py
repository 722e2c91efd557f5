"""The edge student family: generators designed for TensorRT INT8 (and DLA), registered in ``GENERATORS``.

    S = GENERATORS.create("edge-small")            # ~120 K parameters
    S = GENERATORS.create("edge-tiny", scale=4)    # an SR student (output 4x the input)
    macs_per_pixel(S)                               # multiply-accumulates per input pixel

Why they look the way they do (DESIGN.md, "What runs where"; issue "edge student"):
- conv 3x3 + BatchNorm + ReLU blocks only: at export (eval mode) BatchNorm folds into the conv
  (torch.onnx constant folding), so the graph is Conv/Relu/Add/Resize/Clip, every one of which
  TensorRT runs in INT8 and DLA supports; no InstanceNorm (a per-image reduction TensorRT keeps in
  float and DLA does not run);
- nearest-neighbour up-sampling plus a conv instead of ConvTranspose (the layer the INT8 search of
  export/int8.py had to keep in float in the U-Net default; nearest Resize is exact in INT8);
- channel widths that are multiples of 16 (INT8 tensor-core tiles on Ampere/Orin are 16/32
  channels wide; an odd width is padded up and wastes the rest);
- the decoder convolves at the LOW resolution and then up-samples (conv -> nearest x2, not
  nearest x2 -> conv): the same family of functions for a quarter of the MACs at each level;
- a global residual: output = clamp(x + head(features), -1, 1), so an untrained student is the
  identity and the network only learns the correction (Clip is INT8-friendly, tanh would compress
  the residual's range);
- static-shape friendly: no shape-dependent op (no Shape/Gather chains), only stride-2 convs and
  scale-2 Resizes, so H and W multiples of ``stride`` give one static engine per size.

Three sizes from about 20 K to about 500 K parameters (``SIZES``), and edge-nano (``EdgeNano``, 3 K
parameters, under a tenth of the shipped default's MACs, no full-resolution layer) for distilling
the default itself; ``macs_per_pixel`` counts the
convolutions' multiply-accumulates per input pixel (``sonoedge devices --estimate`` prints MACs per
512x512 frame from the exported ONNX graph).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.train.registries import GENERATORS

# name -> (widths per encoder level, residual blocks at the bottom, full-resolution branch)
SIZES: dict[str, tuple[tuple[int, ...], int, bool]] = {
    "edge-tiny": ((16, 32), 1, False),  # 28 K parameters, 1.9 K MACs per pixel (EdgeSRIE's class: about 20 K)
    "edge-small": ((16, 32, 64), 1, False),  # 121 K parameters, 2.5 K MACs per pixel
    "edge-base": ((32, 64, 128), 1, False),  # 481 K parameters, 9.6 K MACs per pixel
}


class ConvBNReLU(nn.Sequential):
    """conv k x k (no bias: BatchNorm's shift replaces it) + BatchNorm + ReLU; folds into one Conv at export."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU: the ResNet basic block, all foldable."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(channels, channels), ConvBNReLU(channels, channels, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def _down_and_up(net: nn.Module, y: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """The students' shared U pass: stride-2 encoder convs (each output kept as a skip), residual
    blocks at the bottom, then per level a conv, nearest x2 up and the additive skip. Records the
    bottleneck and the last decoder feature in ``net.features`` for feature distillation."""
    for layer in net.encoder:
        y = layer(y)
        skips.append(y)
    y = net.blocks(skips.pop())
    bottleneck = y
    for layer in net.decoder:
        y = F.interpolate(layer(y), scale_factor=2.0, mode="nearest") + skips.pop()
    net.features = [bottleneck, y]
    return y


class EdgeStudent(nn.Module):
    """Encoder of stride-2 ConvBNReLU levels (``widths``), ``n_blocks`` residual blocks at the bottom,
    decoder per level: ConvBNReLU to the next width at the low resolution, nearest x2, add the encoder
    feature of that resolution; a last nearest x2 (x ``scale`` for SR) and a 3x3 conv to the output,
    added to the (nearest-upsampled) input. (N, C, H, W) in [-1, 1] -> (N, C, scale*H, scale*W) in [-1, 1].

    ``full_res``: one more ConvBNReLU(C -> widths[0]) on the input at FULL resolution, added to the
    up-sampled decoder feature before the head: a speckle-scale path for students too small to carry
    full-resolution detail through the encoder (the variant tried before edge-nano: docs/results/edge.md,
    section 0, explains why edge-nano has no full-resolution layer instead).

    ``features`` (after a forward) holds the bottleneck and the last decoder feature, the taps the
    distiller matches against the teacher (train/distill.py).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                 n_blocks: int = 2, scale: int = 1, full_res: bool = False):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1 or n_blocks < 0 or scale not in (1, 2, 4):
            raise ValueError(f"edge student needs widths >= 1, n_blocks >= 0 and scale 1, 2 or 4; got {widths}, {n_blocks}, {scale}")
        self.stride = 2 ** len(widths)
        self.scale = scale
        self.in_channels, self.out_channels = in_channels, out_channels
        chans = (in_channels, *widths)
        self.encoder = nn.ModuleList(ConvBNReLU(chans[i], chans[i + 1], stride=2) for i in range(len(widths)))
        self.blocks = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(n_blocks)))
        self.decoder = nn.ModuleList(ConvBNReLU(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.full = ConvBNReLU(in_channels, widths[0]) if full_res else None
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start as the identity (the residual); distillation learns the rest
        nn.init.zeros_(self.head.bias)
        self.features: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1]
        y = _down_and_up(self, x, [])
        y = F.interpolate(y, scale_factor=2.0 * self.scale, mode="nearest")
        base_in = x if self.scale == 1 else F.interpolate(x, scale_factor=float(self.scale), mode="nearest")
        if self.full is not None:
            y = y + self.full(base_in)
        base = base_in
        if base.shape[1] != self.out_channels:
            base = base.mean(dim=1, keepdim=True).expand(-1, self.out_channels, -1, -1)
        return torch.clamp(base + self.head(y), -1.0, 1.0)  # (N, C, scale*H, scale*W) in [-1, 1]


def _register(name: str, widths: tuple[int, ...], n_blocks: int, full_res: bool) -> None:
    """One class per size, with the registry's class attributes ``stride`` and ``scale`` (the
    default; an SR student sets its own ``scale`` on the instance)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, scale: int = 1,
                 widths: tuple[int, ...] = widths, n_blocks: int = n_blocks, full_res: bool = full_res) -> None:
        EdgeStudent.__init__(self, in_channels, out_channels, widths=widths, n_blocks=n_blocks, scale=scale,
                             full_res=full_res)

    cls = type(name.title().replace("-", ""), (EdgeStudent,),
               {"__init__": __init__, "stride": 2 ** len(widths), "scale": 1, "__module__": __name__,
                "__doc__": f"{name}: EdgeStudent(widths={widths}, n_blocks={n_blocks}, full_res={full_res})"})
    GENERATORS.register(name)(cls)


for _name, (_widths, _blocks, _full) in SIZES.items():
    _register(_name, _widths, _blocks, _full)


def macs_per_pixel(model: nn.Module, side: int = 64) -> float:
    """Convolution multiply-accumulates per input pixel, measured by running ``model`` on a
    (1, C, side, side) zero input with hooks on every Conv2d/ConvTranspose2d."""
    total = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        k = module.weight.shape[2] * module.weight.shape[3]
        c_in = module.in_channels // module.groups
        per_out = c_in * k
        if isinstance(module, nn.ConvTranspose2d):  # each input pixel meets every weight once
            per_out /= module.stride[0] * module.stride[1]
        total[0] += output.numel() // output.shape[0] * per_out

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    c = getattr(model, "in_channels", None) or next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))).in_channels
    stride = max(int(getattr(model, "stride", 1)), 1)
    side = -(-side // stride) * stride
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, c, side, side))
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    return total[0] / (side * side)


class EdgeShuffleStudent(nn.Module):
    """The smallest student: the whole network at half resolution or below, full-resolution detail
    carried by a space-to-depth rearrangement instead of full-resolution layers.

        f = ConvBNReLU(C -> widths[0], 4 x 4, stride 2)(x)   the speckle-scale path: every input pixel,
                                                          4 x 4 windows, computed at half resolution
        encoder: stride-2 ConvBNReLU levels widths[1:], decoder conv -> nearest x2 -> + skip, back to f's level
        r = DepthToSpace2(conv(4C)(y))           the full-resolution residual
        out = clamp(x + r, -1, 1)

    Why (docs/results/edge.md, section 5): on a CPU, and in TensorRT's memory-bound small layers, the
    cost of a tiny network is its full-resolution tensors, not its MACs; a nearest x2 up-sampling of a
    4-channel feature to full resolution plus a full-resolution conv cost more than the shipped
    default's whole decoder in ONNX Runtime. DepthToSpace is pure re-indexing (a TensorRT shuffle
    layer, exact in INT8). (N, C, H, W) in [-1, 1], H and W multiples of ``stride``.
    """

    scale = 1

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: tuple[int, ...] = (4, 8, 16),
                 n_blocks: int = 0, scale: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1 or n_blocks < 0 or scale != 1:
            raise ValueError(f"edge shuffle student needs widths >= 1, n_blocks >= 0 and scale 1; got {widths}, {n_blocks}, {scale}")
        self.stride = 2 ** len(widths)
        self.in_channels, self.out_channels = in_channels, out_channels
        # a 4 x 4 stride-2 conv: every input pixel enters, in overlapping 4 x 4 windows, computed at half
        # resolution (a 6 x 6 one, exactly a 3 x 3 conv on SpaceToDepth2(x), was 4 % slower in ONNX
        # Runtime for 20 more MACs per pixel; torch's pixel_unshuffle exports a Reshape/Transpose pair)
        self.full = nn.Sequential(nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.encoder = nn.ModuleList(ConvBNReLU(widths[i], widths[i + 1], stride=2) for i in range(len(widths) - 1))
        self.blocks = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(n_blocks)))
        self.decoder = nn.ModuleList(ConvBNReLU(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 4 * out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start as the identity, as EdgeStudent
        nn.init.zeros_(self.head.bias)
        self.features: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1]
        first = self.full(x)
        y = _down_and_up(self, first, [first])
        base = x if x.shape[1] == self.out_channels else x.mean(dim=1, keepdim=True).expand(-1, self.out_channels, -1, -1)
        return torch.clamp(base + F.pixel_shuffle(self.head(y), 2), -1.0, 1.0)  # (N, C, H, W) in [-1, 1]


@GENERATORS.register("edge-nano")
class EdgeNano(EdgeShuffleStudent):
    """edge-nano: EdgeShuffleStudent(widths=(4, 8, 16)), 124 MACs per pixel, under a tenth of the shipped
    default's 1 472 (docs/results/edge.md, section 5). Widths 4 and 8 break the multiple-of-16 rule on
    purpose: a 16-wide half-resolution conv alone would cost 144 MACs per pixel; TensorRT pads them to
    its tile, which ``sonoedge devices --estimate`` accounts for."""

    stride = 8
