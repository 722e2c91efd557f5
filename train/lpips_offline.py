"""LPIPS without downloads, and the frozen VGG16 feature extractor built from the same trunk file.

The ``lpips`` package (Zhang et al., CVPR 2018) ships its linear heads (``weights/v0.1/vgg.pth``)
but builds its VGG16/AlexNet trunk with ``torchvision.models.vgg16(pretrained=True)``, which
downloads ImageNet weights at run time and fails on an air-gapped machine. Here the trunk is built
random (``pnet_rand=True``, so nothing is fetched) and then the torchvision weights are loaded from
the first of:

1. the path the caller gives (config key or ``--lpips-trunk``),
2. the environment variable ``SONOEDGE_LPIPS_TRUNK`` (a path, or ``random`` as for the option),
3. the torchvision hub cache, ``$TORCH_HOME/hub/checkpoints/`` (``vgg16-397923af.pth``,
   ``alexnet-owt-7be5be79.pth``: the files ``torchvision`` itself would have downloaded).

If none exists, :class:`~sonoedge.runtime.errors.InputError` says which file is missing, where it
looked and how to provide it. A random trunk is used only when asked for by name
(``trunk="random"``, seeded); its scores are not comparable with published LPIPS values, and
``trunk_description`` says so in every report.

The journal paper uses LPIPS with the VGG trunk both as a loss and as a metric (Athreya et al. 2024,
"Perceptual Loss" and "Evaluation Metrics"), so ``net="vgg"`` is the default.

torch, torchvision and lpips are imported inside the functions (STYLE.md 4).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sonoedge.runtime.errors import InputError

ENV_TRUNK = "SONOEDGE_LPIPS_TRUNK"
RANDOM = "random"
DEFAULT_RANDOM_SEED = 0

# The file names torchvision's model zoo uses for the ImageNet weights (torchvision.models
# VGG16_Weights.IMAGENET1K_V1 and AlexNet_Weights.IMAGENET1K_V1).
TRUNK_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}
_TORCHVISION_URL = "https://download.pytorch.org/models/"

# VGG16 configuration "D" (Simonyan & Zisserman 2015, Table 1): channels per conv, "M" = max-pool.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_layer_names() -> dict[str, int]:
    """Names of ``torchvision.models.vgg16().features`` indices: conv1_1 .. conv5_3 (1-based block
    and position), relu1_1 .. relu5_3, pool1 .. pool5, and conv1 .. conv13 (the n-th conv layer)."""
    names: dict[str, int] = {}
    index, block, position, conv_count = 0, 1, 1, 0
    for item in _VGG16_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, position = index + 1, block + 1, 1
            continue
        conv_count += 1
        names[f"conv{block}_{position}"] = index
        names[f"conv{conv_count}"] = index
        names[f"relu{block}_{position}"] = index + 1
        index, position = index + 2, position + 1
    return names


def resolve_trunk(net: str = "vgg", trunk: str | os.PathLike | None = None) -> Path | str:
    """The trunk to load: an existing file path, or ``"random"`` when asked for by name.

    Looks at ``trunk``, then ``$SONOEDGE_LPIPS_TRUNK``, then the torchvision hub cache.
    """
    if net not in TRUNK_FILES:
        raise InputError(f"unknown LPIPS trunk network '{net}'; choose one of {sorted(TRUNK_FILES)}")
    filename = TRUNK_FILES[net]
    if trunk is not None and str(trunk) == RANDOM:
        return RANDOM
    if trunk is not None:
        path = Path(trunk).expanduser()
        if path.is_dir():
            raise InputError(f"LPIPS trunk {path} is a folder; give the weights file itself ({filename})")
        if not path.is_file():
            raise InputError(
                f"LPIPS trunk file {path} does not exist; give the path of the torchvision {net} weights "
                f"({filename}, from {_TORCHVISION_URL}{filename}) or 'random' for an uncalibrated trunk"
            )
        return path
    env = os.environ.get(ENV_TRUNK)
    if env == RANDOM:  # the same names as the option: a file path or 'random'
        return RANDOM
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise InputError(f"{ENV_TRUNK}={env} names a file that does not exist; point it at {filename} "
                             f"or set it to 'random' for an uncalibrated trunk")
        return path
    cache = _hub_checkpoints() / filename
    if cache.is_file():
        return cache
    raise InputError(
        f"the LPIPS {net} trunk weights {filename} are missing: no path was given, {ENV_TRUNK} is not set "
        f"and {cache} does not exist; copy {filename} (from {_TORCHVISION_URL}{filename}, on a machine "
        f"with internet) to {cache.parent}/, or set {ENV_TRUNK}=PATH (every command reads it) or give PATH "
        f"with the command's option (--lpips-trunk in evaluate, export and sr; --set loss.lpips_trunk=PATH in "
        f"train); 'random' in either place is an uncalibrated trunk, not comparable to published LPIPS"
    )


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _load_features_state(path: Path, net: str) -> dict[str, Any]:
    """The ``features.*`` tensors of a torchvision state_dict file, keys without the prefix."""
    from sonoedge.train.trunks import read_state_dict

    state = read_state_dict(path, "LPIPS")
    features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise InputError(
            f"LPIPS trunk file {path} holds no 'features.*' weights; expected a torchvision {net} "
            f"state_dict such as {TRUNK_FILES[net]}"
        )
    return features


def _torchvision_features(net: str):
    """torchvision's ``features`` Sequential, same layer indices, randomly initialised as torchvision
    does; VGG16 is built without its 120 M-parameter classifier, which LPIPS never uses."""
    import torch
    import torchvision
    from torchvision.models import vgg

    if net == "alex":
        return torchvision.models.alexnet(weights=None).features
    features = vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    for layer in features:  # torchvision.models.VGG.__init__ initialisation of conv layers
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.constant_(layer.bias, 0)
    return features


def _trunk_features(net: str, trunk: Path | str, seed: int):
    """(features module, description): torchvision ``features`` with the trunk's weights."""
    import torch

    from sonoedge.runtime.digest import sha256_file

    if trunk == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            features = _torchvision_features(net)
        return features, f"random (seed {seed}) - not comparable to published LPIPS"
    features = _torchvision_features(net)
    state = _load_features_state(Path(trunk), net)
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"LPIPS trunk file {trunk} does not fit torchvision {net}: {first}") from exc
    return features, f"{Path(trunk).name} (sha256 {sha256_file(trunk)[:12]})"


@dataclasses.dataclass
class LPIPSMetric:
    """LPIPS distance with a known trunk. ``model`` is the ``lpips.LPIPS`` module (frozen, eval).

    ``distance(a, b)`` takes uint8 (H, W) images; ``__call__(x, y)`` takes tensors (N, 1|3, H, W)
    in [-1, 1] and returns (N,) distances (differentiable in x and y, usable as a loss).
    """

    model: Any
    net: str
    trunk_description: str

    def to(self, device) -> "LPIPSMetric":
        self.model.to(device)
        return self

    def __call__(self, x, y):
        x, y = _three_channels(x), _three_channels(y)
        return self.model(x, y).reshape(-1)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS of two uint8 (H, W) grey images (>= 16 x 16), >= 0; lower is more similar."""
        import torch

        from sonoedge.runtime.frames import normalise

        if np.asarray(a).shape != np.asarray(b).shape:
            raise InputError(f"LPIPS images differ in shape: {np.asarray(a).shape} vs {np.asarray(b).shape}")
        if min(np.asarray(a).shape[:2]) < 16:
            raise InputError(f"LPIPS needs images of at least 16 x 16 pixels, got {np.asarray(a).shape}")
        device = next(self.model.parameters()).device
        x = torch.from_numpy(normalise(np.asarray(a))).to(device)
        y = torch.from_numpy(normalise(np.asarray(b))).to(device)
        with torch.no_grad():
            value = float(self(x, y)[0])
        if not np.isfinite(value):
            raise InputError("LPIPS came out NaN or Inf; the metric cannot be computed")
        return value


    def distances(self, reference: np.ndarray, others: list[np.ndarray]) -> list[float]:
        """LPIPS of each uint8 (H, W) image in ``others`` against ``reference`` (all one shape).

        The same computation as ``lpips.LPIPS.forward`` (v0.1, linear heads, spatial average),
        with the reference's features computed once and the others in one batch: for a table of
        several methods this is what makes LPIPS affordable on a CPU.
        """
        import lpips
        import torch

        from sonoedge.runtime.frames import normalise

        shapes = {np.asarray(o).shape for o in others} | {np.asarray(reference).shape}
        if len(shapes) != 1:
            raise InputError(f"LPIPS images differ in shape: {sorted(shapes)}")
        if min(np.asarray(reference).shape[:2]) < 16:
            raise InputError(f"LPIPS needs images of at least 16 x 16 pixels, got {np.asarray(reference).shape}")
        if not others:
            return []
        device = next(self.model.parameters()).device
        batch = np.concatenate([normalise(np.asarray(im)) for im in [reference, *others]])  # (N, 1, H, W)
        x = _three_channels(torch.from_numpy(batch).to(device))
        model = self.model
        with torch.no_grad():
            feats = [lpips.normalize_tensor(f) for f in model.net.forward(model.scaling_layer(x))]
            total = 0
            for head, f in zip(model.lins, feats):
                total = total + lpips.spatial_average(head((f[1:] - f[:1]) ** 2), keepdim=False)
        values = [float(v) for v in total.reshape(-1)]
        if not all(np.isfinite(values)):
            raise InputError("LPIPS came out NaN or Inf; the metric cannot be computed")
        return values


def _three_channels(x):
    """(N, 1, H, W) -> (N, 3, H, W) by repetition; 3-channel input passes unchanged."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InputError(f"expected a (N, 1|3, H, W) tensor in [-1, 1], got shape {tuple(x.shape)}")
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def build_lpips(net: str = "vgg", trunk: str | os.PathLike | None = None, seed: int = DEFAULT_RANDOM_SEED) -> LPIPSMetric:
    """LPIPS v0.1 with the package's linear heads and a trunk loaded offline (see module doc).

    ``trunk``: a file path, ``"random"`` (seeded by ``seed``), or None to search the env var and
    the torchvision cache. Never downloads.
    """
    import lpips
    import torch

    resolved = resolve_trunk(net, trunk)
    # building layers draws from torch's RNG; fork it so callers' seeded runs are not disturbed
    with torch.random.fork_rng(devices=[]):
        features, description = _trunk_features(net, resolved, seed)
        # pnet_rand=True: lpips builds torchvision's net with pretrained=False (no download); the
        # trunk weights are copied in below. pretrained=True loads only the package's linear heads.
        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated pretrained=False
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    _copy_trunk(model.net, features)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return LPIPSMetric(model=model, net=net, trunk_description=description)


def _copy_trunk(lpips_net, features) -> None:
    """lpips' slices hold torchvision ``features`` layers under their original indices ("0", "2", ...)."""
    copied = 0
    for index in range(lpips_net.N_slices):
        for name, layer in getattr(lpips_net, f"slice{index + 1}").named_children():
            layer.load_state_dict(features[int(name)].state_dict())
            copied += sum(1 for _ in layer.parameters())
    expected = sum(1 for p in features.parameters())
    if copied != expected:  # lpips changed its slicing: refuse rather than score with a half-random trunk
        raise RuntimeError(f"copied {copied} of {expected} trunk tensors into lpips; the lpips layout changed")


def vgg16_features(trunk: str | os.PathLike | None = None, layers: Sequence[str | int] = ("relu3_3",), seed: int = DEFAULT_RANDOM_SEED):
    """A frozen VGG16 feature extractor loaded offline like :func:`build_lpips` (same trunk search).

    Returns a ``torch.nn.Module`` whose forward takes (N, 1|3, H, W) in [-1, 1] (grey is repeated to
    3 channels, then ImageNet mean/std normalisation as torchvision's VGG expects) and returns a
    list of feature maps, one per entry of ``layers`` (names from :func:`vgg16_layer_names`, e.g.
    ``"relu3_3"``, ``"conv12"``, or ``features`` indices). The module has ``trunk_description``.
    Parameters are frozen (requires_grad False) and it is in eval mode; gradients flow to the input.
    """
    import torch

    names = vgg16_layer_names()
    indices = []
    for layer in layers:
        if isinstance(layer, int):
            if not 0 <= layer < 31:
                raise InputError(f"VGG16 feature index {layer} is out of range 0..30")
            indices.append(layer)
        elif layer in names:
            indices.append(names[layer])
        else:
            raise InputError(f"unknown VGG16 layer '{layer}'; valid names: {', '.join(sorted(names))}")
    resolved = resolve_trunk("vgg", trunk)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
        features, description = _trunk_features("vgg", resolved, seed)

    class VGGFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features[: max(indices) + 1]
            for layer in self.features:  # a kept conv output must not be overwritten by the next ReLU
                if isinstance(layer, torch.nn.ReLU):
                    layer.inplace = False
            self.indices = list(indices)
            self.trunk_description = description
            # ImageNet statistics of torchvision's VGG16 (torchvision.models.VGG16_Weights transforms)
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

        def forward(self, x):  # (N, 1|3, H, W) in [-1, 1] -> list of (N, C_i, H_i, W_i)
            h = (_three_channels(x) + 1.0) / 2.0
            h = (h - self.mean) / self.std
            wanted, out = set(self.indices), {}
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in wanted:
                    out[i] = h
            return [out[i] for i in self.indices]

    module = VGGFeatures().eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module
