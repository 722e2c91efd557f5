"""Offline pretrained trunks for FID/KID (Inception-v3) and neural style transfer (VGG19).

The same rules as the LPIPS trunk (``sonoedge.train.lpips_offline``): nothing is ever downloaded.
The weights are the file torchvision itself would fetch, found at the first of

1. the path the caller gives (an option or config key),
2. an environment variable (a path, or ``random``),
3. the torchvision hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``.

If none exists, :class:`~sonoedge.runtime.errors.InputError` is one sentence naming the missing
file, where it looked and how to provide it. A random trunk is used only when asked for by name
(``"random"``, seeded); every output that uses it says so through ``description``.

    spec = TRUNKS["inception"]
    where = resolve(spec, option)          # Path or "random"
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from sonoedge.runtime.errors import InputError

RANDOM = "random"
_URL = "https://download.pytorch.org/models/"


@dataclasses.dataclass(frozen=True)
class TrunkSpec:
    name: str  # "inception", "vgg19"
    filename: str  # torchvision's model-zoo file name
    env: str  # environment variable that may name the file (or "random")
    option: str  # how a user gives the path on the command line, for the error message
    use: str  # what the trunk is for, e.g. "FID/KID"


TRUNKS = {
    # torchvision.models.Inception_V3_Weights.IMAGENET1K_V1 (the Inception-v3 of FID, Heusel et al. 2017)
    "inception": TrunkSpec("inception", "inception_v3_google-0cc3c7bd.pth", "SONOEDGE_INCEPTION_TRUNK",
                           "--inception-trunk", "FID/KID"),
    # torchvision.models.VGG19_Weights.IMAGENET1K_V1 (Menini 2020, Sec. 2.1: VGG19 pretrained on ImageNet)
    "vgg19": TrunkSpec("vgg19", "vgg19-dcbb9e9d.pth", "SONOEDGE_VGG19_TRUNK", "--vgg-trunk", "neural style transfer"),
}


def hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve(spec: TrunkSpec, trunk: str | os.PathLike | None = None) -> Path | str:
    """An existing weights file, or ``"random"`` when asked for by name (option or env var)."""
    if trunk is not None and str(trunk) == RANDOM:
        return RANDOM
    if trunk is not None and str(trunk) != "":
        path = Path(trunk).expanduser()
        if not path.is_file():
            raise InputError(f"{spec.name} trunk file {path} does not exist; give the torchvision weights "
                             f"{spec.filename} (from {_URL}{spec.filename}) or 'random' for an uncalibrated trunk")
        return path
    env = os.environ.get(spec.env)
    if env == RANDOM:
        return RANDOM
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise InputError(f"{spec.env}={env} names a file that does not exist; point it at {spec.filename} "
                             "or set it to 'random' for an uncalibrated trunk")
        return path
    cache = hub_checkpoints() / spec.filename
    if cache.is_file():
        return cache
    raise InputError(
        f"the {spec.name} trunk weights {spec.filename} for {spec.use} are missing: no path was given, {spec.env} "
        f"is not set and {cache} does not exist; copy {spec.filename} (from {_URL}{spec.filename}, on a machine "
        f"with internet) to {cache.parent}/, or set {spec.env}=PATH, or pass {spec.option} PATH; 'random' in "
        "either place is an uncalibrated trunk whose numbers are not comparable to published ones"
    )


def load_state(path: Path, spec: TrunkSpec) -> dict:
    """The state_dict in a torchvision weights file (weights_only: nothing executes on load)."""
    return read_state_dict(path, spec.name)


def read_state_dict(path: Path, label: str) -> dict:
    """A torchvision weights file's state_dict, ``label`` naming the trunk in the one-sentence error
    (also the LPIPS trunk's reader, ``lpips_offline``)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise InputError(f"cannot read {label} trunk file {path} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise InputError(f"{label} trunk file {path} is not a state_dict (got {type(state).__name__})")
    return state


def describe(path: Path | str, seed: int) -> str:
    """The label every output carries: the file and its digest, or that the trunk is random."""
    from sonoedge.runtime.digest import sha256_file

    if path == RANDOM:
        return f"random (seed {seed}) - uncalibrated, not comparable to published values"
    return f"{Path(path).name} (sha256 {sha256_file(path)[:12]})"
