"""The VGG19 loss network of Menini 2020 (Sec. 2.1, 4.2, 4.3), loaded offline like the LPIPS trunk.

    net = vgg19_features(trunk=None, layers=STYLE_LAYERS + CONTENT_LAYERS)   # file, $SONOEDGE_VGG19_TRUNK, cache
    feats = net(x)          # {"block1_conv1": (N, 64, H, W), ..., "block5_conv2": (N, 512, H/16, W/16)}

Layer names are Keras's (the thesis used Keras/TensorFlow): ``block{b}_conv{i}`` is the i-th conv
of block b *after its ReLU* (Keras's Conv2D carries the activation). The weights are torchvision's
``vgg19-dcbb9e9d.pth`` (ImageNet), so the input is normalised as torchvision expects (mean/std on
[0, 1]), not Keras's caffe mode (BGR, 0-255 minus mean): features differ in scale by about x58, so
the thesis's loss weights (Table 4.1, 4.6) balance content and style differently here; they are
kept as the paper's values and are config keys. No pretrained weights exist on this machine: runs
here use ``trunk="random"``, labelled in ``trunk_description`` and in every output.
"""
from __future__ import annotations

import torch

from sonoedge.runtime.errors import InputError
from sonoedge.train.nst.config import CONTENT_LAYERS, STYLE_LAYERS
from sonoedge.train.trunks import RANDOM, TRUNKS, describe, load_state, resolve

# VGG19 configuration "E" (Simonyan & Zisserman 2015, Table 1): convs per block
_BLOCKS = (2, 2, 4, 4, 4)


def layer_indices() -> dict[str, int]:
    """Keras name -> index of the ReLU after that conv in ``torchvision.models.vgg19().features``,
    plus ``block{b}_pool`` -> its max-pool index."""
    names, index = {}, 0
    for block, convs in enumerate(_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names[f"block{block}_conv{conv}"] = index + 1  # conv at index, ReLU at index + 1
            index += 2
        names[f"block{block}_pool"] = index
        index += 1
    return names


def pools_before(layer: str) -> int:
    """How many 2x2 max-pools precede ``layer`` (its feature map is 2^k times smaller)."""
    return int(layer[len("block"):].split("_")[0]) - 1


def vgg19_features(trunk: str | None = None, layers=STYLE_LAYERS + CONTENT_LAYERS, seed: int = 0):
    """A frozen VGG19 returning {layer name: features} for (N, 1|3, H, W) in [-1, 1] (grey repeated)."""
    from torchvision.models import vgg

    names = layer_indices()
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise InputError(f"unknown VGG19 layer {unknown[0]!r}; valid: {', '.join(n for n in names if 'conv' in n)}")
    spec = TRUNKS["vgg19"]
    where = resolve(spec, trunk)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
        for layer in features:  # torchvision.models.VGG.__init__ initialisation of the convs
            if isinstance(layer, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.constant_(layer.bias, 0)
    if where != RANDOM:
        state = {k[len("features."):]: v for k, v in load_state(where, spec).items() if k.startswith("features.")}
        try:
            features.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputError(f"vgg19 trunk file {where} does not fit torchvision VGG19: {str(exc).splitlines()[0]}") from exc
    return _Extractor(features, {n: names[n] for n in layers}, describe(where, seed))


class _Extractor(torch.nn.Module):
    """Frozen VGG19 prefix that returns the wanted layers' outputs by name."""

    def __init__(self, features, wanted: dict[str, int], description: str):
        super().__init__()
        self.features = features[: max(wanted.values()) + 1]
        for layer in self.features:
            if isinstance(layer, torch.nn.ReLU):
                layer.inplace = False  # a kept output must not be overwritten
        self.wanted = dict(wanted)
        self.trunk_description = description
        # torchvision's ImageNet statistics (VGG19_Weights transforms)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # (N, 1|3, H, W) in [-1, 1]
        h = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
        h = ((h + 1.0) / 2.0 - self.mean) / self.std
        by_index = {i: n for n, i in self.wanted.items()}
        out = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in by_index:
                out[by_index[i]] = h
        return out
