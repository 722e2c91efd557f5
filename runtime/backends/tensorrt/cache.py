"""TensorRT engine cache (DESIGN.md, Contracts: Bundle): one plan file per device and model.

An engine belongs to one GPU and one TensorRT version, so bundles carry ONNX and engines are built
on the device and cached under a key made of everything that invalidates them:

    EngineKey(gpu_name, compute_capability, sm_count, trt_version, precision, dla_core, model_sha256)

Layout under the cache root (default ``$SONOEDGE_CACHE/engines`` when that variable is set, else
``~/.cache/sonoedge/engines``)::

    <digest>.plan      the serialized engine, exactly what ``builder.build_serialized_network`` gave
    <digest>.json      the sidecar: {"key": {...}, "plan_sha256": ..., "created": ..., ...extra}

``lookup`` returns a plan only when its sidecar holds the same key and the plan's sha256 matches,
so a truncated or foreign file is never handed to the TensorRT runtime.

    cache = EngineCache()
    key = describe_current_gpu().key("fp16", dla_core=None, model_sha256=sha)
    plan = cache.lookup(key) or cache.store(key, build(...), {"builder": "strongly_typed"})

This module imports no TensorRT at module level; ``describe_current_gpu`` imports it lazily.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.digest import sha256_file
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.precision import PRECISIONS


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything that invalidates a serialized TensorRT engine."""

    gpu_name: str  # e.g. "Orin (nvgpu)" or "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "8.7"
    sm_count: int  # streaming multiprocessors (0 when it cannot be queried)
    trt_version: str  # "10.3.0"
    precision: str  # fp32 | fp16 | int8
    dla_core: int | None  # None = GPU only
    model_sha256: str  # sha256 of the ONNX file the engine was built from

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"engine precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineKey":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: data[k] for k in names})

    def digest(self) -> str:
        """24 hex characters of the sha256 of the canonical JSON of the key (the file stem)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclasses.dataclass(frozen=True)
class GpuDescription:
    """The device half of an :class:`EngineKey`."""

    gpu_name: str
    compute_capability: str
    sm_count: int
    trt_version: str  # "" when TensorRT is not importable here

    def key(self, precision: str, dla_core: int | None, model_sha256: str) -> EngineKey:
        return EngineKey(self.gpu_name, self.compute_capability, self.sm_count, self.trt_version,
                         precision, dla_core, model_sha256)


def engine_key(model_path: str | Path, precision: str, dla_core: int | None = None,
               gpu: GpuDescription | None = None) -> EngineKey:
    """The cache key of the engine built from ``model_path`` here: the one place it is composed.

    ``model_path`` is the bundle's ONNX file of ``precision`` (what the TensorRT backend is given),
    whichever ONNX the build path parses (the legacy path parses model.onnx for every precision).
    ``gpu`` defaults to :func:`describe_current_gpu` (injectable for tests).
    """
    gpu = gpu if gpu is not None else describe_current_gpu()
    return gpu.key(precision, dla_core, sha256_file(Path(model_path)))


def default_cache_root() -> Path:
    env = os.environ.get("SONOEDGE_CACHE")
    return Path(env) / "engines" if env else Path.home() / ".cache" / "sonoedge" / "engines"


class EngineCache:
    """Plan files plus JSON sidecars in one directory, keyed by :meth:`EngineKey.digest`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        stem = key.digest()
        return self.root / f"{stem}.plan", self.root / f"{stem}.json"

    def lookup(self, key: EngineKey) -> Path | None:
        """The plan path when a valid entry for ``key`` exists, else None (a stale entry is ignored)."""
        plan, sidecar = self.paths(key)
        if not (plan.is_file() and sidecar.is_file()):
            return None
        meta = self._read_sidecar(sidecar)
        if meta is None or meta.get("key") != key.to_dict():
            return None
        if meta.get("plan_sha256") != sha256_file(plan):
            return None
        return plan

    def store(self, key: EngineKey, plan_bytes: bytes, sidecar_extra: dict[str, Any] | None = None) -> Path:
        """Write the plan then its sidecar, each atomically; returns the plan path."""
        if not plan_bytes:
            raise SonoedgeError("refusing to cache an empty TensorRT plan (the build produced nothing)")
        plan, sidecar = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(plan) as tmp:
            tmp.write_bytes(bytes(plan_bytes))
        meta = {
            **(sidecar_extra or {}),
            "key": key.to_dict(),
            "plan_sha256": hashlib.sha256(bytes(plan_bytes)).hexdigest(),
            "plan_bytes": len(plan_bytes),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_path(sidecar) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return plan

    def entries(self) -> Iterator[tuple[EngineKey, Path, dict[str, Any]]]:
        """(key, plan path, sidecar dict) for every complete entry, sorted by file name."""
        if not self.root.is_dir():
            return
        for sidecar in sorted(self.root.glob("*.json")):
            meta = self._read_sidecar(sidecar)
            plan = sidecar.with_suffix(".plan")
            if meta is None or "key" not in meta or not plan.is_file():
                continue
            try:
                key = EngineKey.from_dict(meta["key"])
            except (KeyError, TypeError, InputError):
                continue
            yield key, plan, meta

    def remove(self, key: EngineKey) -> bool:
        removed = False
        for path in self.paths(key):
            if path.exists():
                path.unlink()
                removed = True
        return removed

    @staticmethod
    def _read_sidecar(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None


Runner = Callable[[Sequence[str]], str]


def _run_command(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=True, timeout=20).stdout


def describe_current_gpu(runner: Runner | None = None, use_cuda: bool = True) -> GpuDescription:
    """The GPU of this machine: cuda-python's device query when importable, else ``nvidia-smi``.

    ``runner`` runs a command and returns its stdout (injectable for tests). Raises SonoedgeError
    when no NVIDIA GPU can be found, since an engine cannot be keyed without one.
    """
    trt_version = _tensorrt_version()
    if use_cuda and runner is None:
        described = _describe_with_cuda(trt_version)
        if described is not None:
            return described
    run = runner or _run_command
    if runner is None and shutil.which("nvidia-smi") is None:
        raise SonoedgeError("no NVIDIA GPU found here (cuda-python finds no device and nvidia-smi is not on PATH); "
                            "TensorRT engines can only be built and cached on an NVIDIA device")
    try:
        out = run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    except (OSError, subprocess.SubprocessError) as exc:
        raise SonoedgeError(f"nvidia-smi could not describe the GPU ({exc}); is the NVIDIA driver running?") from None
    return parse_nvidia_smi(out, trt_version)


def parse_nvidia_smi(text: str, trt_version: str = "") -> GpuDescription:
    """First line of ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``.

    nvidia-smi does not report the SM count; it is 0 in the key then (still consistent per device).
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or "," not in lines[0]:
        raise SonoedgeError(f"cannot read the GPU from nvidia-smi output {text.strip()[:80]!r}")
    name, cc = (part.strip() for part in lines[0].rsplit(",", 1))
    return GpuDescription(gpu_name=name, compute_capability=cc, sm_count=0, trt_version=trt_version)


def _tensorrt_version() -> str:
    try:
        import tensorrt
    except ImportError:
        return ""
    return str(tensorrt.__version__)


def _describe_with_cuda(trt_version: str) -> GpuDescription | None:
    """Device 0 through cuda-python's runtime API; None when cuda-python or a device is missing."""
    from sonoedge.runtime.backends.tensorrt.cuda import CudaRuntime, cuda_importable

    if not cuda_importable():
        return None
    try:
        rt = CudaRuntime()
        if rt.device_count() == 0:
            return None
        name, cc, sms = rt.describe(0)
    except SonoedgeError:  # no driver or no device: nvidia-smi gets its chance
        return None
    return GpuDescription(gpu_name=name, compute_capability=cc, sm_count=sms, trt_version=trt_version)
