"""The teacher of ``sonoedge distill``: a training checkpoint (PyTorch) or a bundle (ONNX Runtime).

    teacher = load_teacher("runs/t/best.pt")       # the checkpoint's deployed generator
    teacher = load_teacher("default")              # the embedded default bundle's fp32 model.onnx
    teacher = load_teacher("b_final.tar")          # any bundle, directory or .tar
    y = teacher.module(x)                          # (N, C, H, W) in [-1, 1] -> (N, C, sH, sW) in [-1, 1]

A bundle teaches with exactly what ships: its fp32 ONNX model run by ONNX Runtime on the CPU (the
reference the fp16/INT8 files of the bundle were gated against). It has no torch graph, so there are
no intermediate features to tap (GAN Compression's Eq. 3 term is skipped) and no discriminator (the
distiller makes a fresh one); output reconstruction, adversarial and perceptual terms work as with a
checkpoint. The default's torch checkpoint was never published, so this is how it can teach.
"""
from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass
class Teacher:
    """What the distiller needs from a teacher, whatever its kind."""

    module: nn.Module  # eval mode, no gradients; (N, C, H, W) in [-1, 1] -> (N, C, sH, sW)
    info: dict[str, Any]  # generator, kwargs, task, scale, channels, stride (checkpoint model_info keys)
    checkpoint: dict[str, Any]  # the training checkpoint ({} for a bundle): its data config and D_H
    kind: str  # "checkpoint" | "bundle"
    sha256: str  # of the checkpoint file, or of the bundle's fp32 ONNX model
    description: str


class OnnxTeacher(nn.Module):
    """A bundle's fp32 ONNX model as a (gradient-free) torch module, run by ONNX Runtime on the CPU."""

    def __init__(self, onnx_path: Path, input_name: str, threads: int = 0):
        super().__init__()
        from sonoedge.runtime.backends import create_backend

        # the runtime's own backend: its session settings and its one-sentence error for a bad model file
        self.backend = create_backend("onnxruntime", onnx_path, providers=["CPUExecutionProvider"],
                                      intra_op_threads=threads, input_name=input_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [-1, 1]
        out = self.backend.infer(x.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


def is_bundle(spec: str | Path) -> bool:
    """``default``, a directory (a bundle's; load_manifest refuses one without a valid manifest), or a
    .tar file that is not a .pt checkpoint (a bundle archive)."""
    path = Path(spec)
    if str(spec) == "default":
        return True
    if path.is_dir():
        return True
    return path.is_file() and path.suffix != ".pt" and tarfile.is_tarfile(path)


def load_teacher(spec: str | Path, threads: int = 0) -> Teacher:
    """A Teacher for a checkpoint path, a bundle directory/.tar, or ``default`` (module doc)."""
    if is_bundle(spec):
        return _bundle_teacher(spec, threads)
    from sonoedge.runtime.digest import sha256_file
    from sonoedge.train.checkpoint import load_checkpoint, load_generator

    ckpt = load_checkpoint(spec)
    module, info = load_generator(spec)
    module.requires_grad_(False)
    return Teacher(module, info, ckpt, "checkpoint", sha256_file(spec), f"checkpoint {spec} ({info['generator']})")


def _bundle_teacher(spec: str | Path, threads: int) -> Teacher:
    from sonoedge.runtime.bundle import default_bundle_path
    from sonoedge.runtime.bundle.manifest import load_manifest
    from sonoedge.runtime.errors import InputError

    path = default_bundle_path() if str(spec) == "default" else Path(spec)
    root, manifest = load_manifest(path)  # refuses a bundle whose files do not match bundle.sha256
    entry = manifest.precisions.get("fp32")
    if entry is None:
        raise InputError(f"bundle {spec} has no fp32 model; the teacher must be the float reference")
    m = manifest.model
    info = {"generator": m.generator, "kwargs": dict(m.kwargs or {}), "task": m.task, "scale": int(m.scale),
            "channels": int(m.channels), "stride": int(m.stride)}
    sha = manifest.files.get(entry.file, "")
    module = OnnxTeacher(root / entry.file, m.input_name, threads)
    return Teacher(module, info, {}, "bundle", sha,
                   f"bundle {spec} ({m.generator}, fp32 {entry.file} through ONNX Runtime)")
