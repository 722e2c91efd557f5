"""Device profiles (DESIGN.md, Contracts: Device profile): one TOML file per device kind here.

    profile = load_profile("jetson-orin-nano-8gb")     # DeviceProfile
    target = resolve_target("jetson")                   # Target: every Jetson profile, merged ranges
    target.profiles[0].input.opt                        # (H, W) the engine is tuned for

A target is a profile name, a family name (``jetson``, ``x86``, ``cpu``) or ``all``; a family gives one bundle
for every profile in it (a bundle holds ONNX, not engines), and the device picks its own profile at
``build-engine`` time. An unknown name is an error listing the known ones.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from sonoedge.runtime.config import from_dict
from sonoedge.runtime.errors import InputError, UnknownNameError
from sonoedge.runtime.precision import PRECISIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILE_DIR = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class InputRange:
    """Optimization-profile shapes (H, W) in pixels, each a multiple of the model stride after padding."""

    min: tuple[int, int] = (64, 64)
    opt: tuple[int, int] = (512, 512)
    max: tuple[int, int] = (1024, 1024)

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            value = getattr(self, name)
            if len(value) != 2 or any(int(v) < 1 for v in value):
                raise InputError(f"input.{name} must be [H, W] of positive integers, got {list(value)}")
        if not all(self.min[i] <= self.opt[i] <= self.max[i] for i in range(2)):
            raise InputError(f"input range must satisfy min <= opt <= max, got {self.min}, {self.opt}, {self.max}")

    def aligned(self, stride: int) -> "InputRange":
        """Every shape rounded up to a multiple of ``stride`` (what the padded model input will be)."""
        up = lambda hw: tuple(-(-int(v) // stride) * stride for v in hw)  # noqa: E731
        return InputRange(up(self.min), up(self.opt), up(self.max))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclasses.dataclass(frozen=True)
class Roofline:
    """The ``[estimate]`` table of a profile: peak numbers (dense, from the data sheet cited in the
    TOML) and the efficiency factors the latency estimate assumes (devices/estimate.py). These are
    stated assumptions, not measurements; ``sonoedge devices --estimate`` labels its output so."""

    int8_tops: float  # dense INT8 tensor-core tera-ops/s (NVIDIA quotes sparse: half of it)
    fp16_tflops: float  # dense FP16 tensor-core TFLOPS
    fp32_tflops: float  # CUDA cores x 2 x GPU clock
    memory_gbps: float  # DRAM bandwidth, GB/s
    compute_efficiency: float = 0.4  # share of the peak a conv layer reaches (assumption)
    memory_efficiency: float = 0.7  # share of the DRAM bandwidth a layer reaches (assumption)
    layer_overhead_us: float = 5.0  # fixed cost per launched (unfused) layer, microseconds (assumption)
    channel_align_int8: int = 32  # tensor-core INT8 tiles: channels padded up to this (assumption)
    channel_align_fp16: int = 8  # FP16 tensor-core tiles (assumption)
    dla_int8_tops: float = 0.0  # dense INT8 tera-ops/s of ONE DLA core; 0 = no DLA
    clock_note: str = ""  # power mode / clocks the peaks are for

    def __post_init__(self) -> None:
        values = (self.int8_tops, self.fp16_tflops, self.fp32_tflops, self.memory_gbps)
        if min(values) <= 0 or not 0 < self.compute_efficiency <= 1 or not 0 < self.memory_efficiency <= 1:
            raise InputError("[estimate] needs positive peaks and efficiencies in (0, 1]")


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """One device kind. Hardware numbers cite NVIDIA's public specs in the TOML file's header."""

    name: str
    display_name: str
    family: str  # jetson | x86 | cpu
    gpu_arch: str  # ampere, volta, blackwell, ...; "" for cpu
    compute_capability: str  # "8.7"; "" for cpu
    cuda_cores: int
    sm_count: int
    memory_gb: int
    dla_cores: int  # NVDLA engines; 0 = none
    jetpack: str
    tensorrt: str  # "10.3"; "" when the device runs ONNX Runtime only
    precisions: tuple[str, ...]  # preferred first
    target_fps: int
    workspace_mb: int  # TensorRT builder workspace limit
    device_tree_models: tuple[str, ...] = ()  # substrings of /proc/device-tree/model
    sources: tuple[str, ...] = ()
    input: InputRange = InputRange()
    estimate: Roofline | None = None  # roofline assumptions for `sonoedge devices --estimate`; None = no estimate

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise InputError(f"profile {self.name}: precisions {list(self.precisions)} must be a non-empty "
                             f"subset of {', '.join(PRECISIONS)}")

    @property
    def has_tensorrt(self) -> bool:
        return bool(self.tensorrt)

    @property
    def trt_major(self) -> int | None:
        """Major TensorRT version from the profile ("10.3" -> 10); None when it has no TensorRT."""
        head = self.tensorrt.split(".")[0]
        return int(head) if head.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input"] = self.input.to_dict()
        data["estimate"] = dataclasses.asdict(self.estimate) if self.estimate is not None else None
        data["precisions"] = list(self.precisions)
        data["device_tree_models"] = list(self.device_tree_models)
        data["sources"] = list(self.sources)
        return data


@dataclasses.dataclass(frozen=True)
class Target:
    """What ``export --target`` asked for: one profile or a family of them."""

    name: str
    profiles: tuple[DeviceProfile, ...]

    @property
    def precisions(self) -> tuple[str, ...]:
        """Union of the profiles' preferred precisions, in the canonical order fp32, fp16, int8."""
        have = {p for prof in self.profiles for p in prof.precisions}
        return tuple(p for p in PRECISIONS if p in have)

    @property
    def input(self) -> InputRange:
        """The smallest min, the largest max, and the smallest opt among the profiles."""
        profs = self.profiles
        lo = tuple(min(p.input.min[i] for p in profs) for i in range(2))
        hi = tuple(max(p.input.max[i] for p in profs) for i in range(2))
        opt = min((p.input.opt for p in profs), key=lambda hw: hw[0] * hw[1])
        return InputRange(lo, opt, hi)

    def profile_names(self) -> list[str]:
        return [p.name for p in self.profiles]


def profile_paths(directory: Path = PROFILE_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


def load_profile_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"device profile {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"device profile {path} is not valid TOML: {exc}") from None
    for key in ("precisions", "device_tree_models", "sources"):
        if key in data:
            data[key] = tuple(data[key])
    if isinstance(data.get("input"), dict):
        data["input"] = from_dict(InputRange, {k: tuple(v) for k, v in data["input"].items()}, f"{path.name} [input]")
    if isinstance(data.get("estimate"), dict):
        data["estimate"] = from_dict(Roofline, data["estimate"], f"{path.name} [estimate]")
    profile = from_dict(DeviceProfile, data, where=path.name)
    if profile.name != path.stem:
        raise InputError(f"device profile {path}: name '{profile.name}' must equal the file name '{path.stem}'")
    return profile


def load_profiles(directory: Path = PROFILE_DIR) -> dict[str, DeviceProfile]:
    return {name: load_profile_file(path) for name, path in profile_paths(directory).items()}


def families(profiles: dict[str, DeviceProfile] | None = None) -> dict[str, list[str]]:
    profiles = profiles if profiles is not None else load_profiles()
    out: dict[str, list[str]] = {}
    for prof in profiles.values():
        out.setdefault(prof.family, []).append(prof.name)
    return out


ALL = "all"  # every profile: the embedded demo bundle, which must run anywhere


def known_targets(profiles: dict[str, DeviceProfile] | None = None) -> list[str]:
    profiles = profiles if profiles is not None else load_profiles()
    return sorted(set(profiles) | set(families(profiles)) | {ALL})


def load_profile(name: str, directory: Path = PROFILE_DIR) -> DeviceProfile:
    profiles = load_profiles(directory)
    if name not in profiles:
        raise UnknownNameError(f"unknown device profile '{name}'; known profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


def resolve_target(name: str, directory: Path = PROFILE_DIR) -> Target:
    """A profile name gives that profile; a family name gives all of its profiles (name order)."""
    profiles = load_profiles(directory)
    if name in profiles:
        return Target(name, (profiles[name],))
    if name == ALL:
        return Target(name, tuple(profiles[n] for n in sorted(profiles)))
    fams = families(profiles)
    if name in fams:
        return Target(name, tuple(profiles[n] for n in sorted(fams[name])))
    raise UnknownNameError(f"unknown target '{name}'; known targets: {', '.join(known_targets(profiles))} "
                           "(see `sonoedge devices`)")
