"""The checkpoint file (DESIGN.md, Contracts: Checkpoint): one ``torch.save`` of plain containers.

    {
      "format": "sonoedge-checkpoint", "format_version": 1,
      "model": {"generator": "resnet", "kwargs": {...}, "task": "enhance" | "sr", "scale": 1 | 4,
                "channels": 1, "stride": int, "normalisation": "minus1_1", "deploy": "G_H"},
      "state_dicts": {"G_H": ..., "G_L": ..., "D_H": ..., "D_L": ...},   # unwrapped (no "module.")
      "config": {...the resolved training config...},
      "optimizers": {...}, "schedulers": {...}, "scaler": {...} | None,
      "rng": {...torch / numpy / python RNG states...},
      "meta": {"epoch", "step", "git_revision", "data_hash", "metrics", "created", "sonoedge"},
    }

It loads with ``torch.load(path, weights_only=True)``: nothing executes on load. ``model["deploy"]``
names the state dict that export turns into a bundle (the enhancing generator G_H: L -> H).

    save_checkpoint(run / "best.pt", model_info=info, state_dicts={"G_H": g.state_dict()}, config={}, meta={})
    G, info = load_generator(run / "best.pt")            # eval mode, weights loaded
"""
from __future__ import annotations

import datetime as _dt
import pickle
import random
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.errors import InputError

FORMAT = "sonoedge-checkpoint"
FORMAT_VERSION = 1
MODEL_KEYS = ("generator", "kwargs", "task", "scale", "channels", "stride", "normalisation", "deploy")


def model_info(generator: str, kwargs: dict[str, Any], *, task: str = "enhance", scale: int = 1,
               channels: int = 1, stride: int, deploy: str = "G_H") -> dict[str, Any]:
    """The ``model`` entry of a checkpoint: everything needed to rebuild the deployed generator."""
    if task not in ("enhance", "sr"):
        raise ValueError(f"task must be 'enhance' or 'sr', got {task!r}")
    return {"generator": generator, "kwargs": dict(kwargs), "task": task, "scale": int(scale),
            "channels": int(channels), "stride": int(stride), "normalisation": "minus1_1", "deploy": deploy}


def save_checkpoint(path: str | Path, *, model_info: dict[str, Any], state_dicts: dict[str, Any],
                    config: dict[str, Any], optimizers: dict[str, Any] | None = None,
                    schedulers: dict[str, Any] | None = None, scaler: dict[str, Any] | None = None,
                    rng: dict[str, Any] | None = None, meta: dict[str, Any]) -> Path:
    """Write the checkpoint atomically (never a half-written file) and return its path.

    ``state_dicts`` values may be modules' state dicts from DDP-wrapped models: a leading
    ``module.`` is stripped. ``meta`` is completed with ``created`` and ``sonoedge`` when absent.
    """
    import torch

    from sonoedge import __version__

    missing = [k for k in MODEL_KEYS if k not in model_info]
    if missing:
        raise ValueError(f"model_info lacks {', '.join(missing)}")
    if model_info["deploy"] not in state_dicts:
        raise ValueError(f"model_info deploys '{model_info['deploy']}' but state_dicts has only {sorted(state_dicts)}")
    meta = {"epoch": 0, "step": 0, "git_revision": git_revision(), "data_hash": "", "metrics": {},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sonoedge": __version__, **meta}
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": dict(model_info),
        "state_dicts": {name: _unwrap(sd) for name, sd in state_dicts.items()},
        "config": config, "optimizers": optimizers or {}, "schedulers": schedulers or {},
        "scaler": scaler, "rng": rng or {}, "meta": meta,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _unwrap(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop DistributedDataParallel's ``module.`` prefix; tensors are detached CPU copies."""
    out = {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        out[key] = value.detach().cpu() if hasattr(value, "detach") else value
    return out


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; InputError naming the file when it is unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist; pass the .pt file written by 'sonoedge train'")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"checkpoint {path} is corrupt or not a torch file ({first}); re-save it with 'sonoedge train'") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path} is not a sonoedge checkpoint (no format '{FORMAT}'); train one with 'sonoedge train'")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"checkpoint {path} has format_version {data.get('format_version')!r}; this sonoedge reads {FORMAT_VERSION}")
    model = data.get("model")
    if not isinstance(model, dict) or any(k not in model for k in MODEL_KEYS) or not isinstance(data.get("state_dicts"), dict):
        raise InputError(f"checkpoint {path} is malformed: its 'model' entry needs {', '.join(MODEL_KEYS)} and a 'state_dicts' table")
    return data


def build_generator(model_info: dict[str, Any]):
    """An untrained generator as ``model_info`` describes it (registry name + constructor kwargs)."""
    from sonoedge.train.registries import GENERATORS, load_all

    load_all()
    return GENERATORS.create(model_info["generator"], **model_info.get("kwargs", {}))


def load_generator(path: str | Path, key: str | None = None):
    """(generator in eval mode with its weights, model_info). ``key`` defaults to ``model["deploy"]``."""
    data = load_checkpoint(path)
    info = data["model"]
    key = key or info["deploy"]
    if key not in data["state_dicts"]:
        raise InputError(f"checkpoint {path} has no state dict '{key}'; it holds {', '.join(sorted(data['state_dicts']))}")
    model = build_generator(info)
    try:
        model.load_state_dict(data["state_dicts"][key])
    except RuntimeError as exc:
        raise InputError(f"checkpoint {path}: weights '{key}' do not fit generator '{info['generator']}' "
                         f"with {info.get('kwargs')} ({str(exc).splitlines()[0]})") from None
    return model.eval(), info


def rng_state() -> dict[str, Any]:
    """torch, numpy and python RNG states as tensors / lists (weights_only-loadable)."""
    import numpy as np
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    import numpy as np
    import torch

    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def git_revision() -> str:
    """The repository's HEAD commit (with '+dirty' when the tree has changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
