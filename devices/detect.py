"""Which device profile is this machine? Jetson model string first, then an NVIDIA GPU query.

    detected = detect_device()                 # DetectedDevice(profile, reason)
    detect_device(root=tmp_path)               # tests fake /proc/device-tree/model under tmp_path

Order: ``<root>/proc/device-tree/model`` (Jetson boards write e.g. "NVIDIA Jetson Orin NX
Engineering Reference Developer Kit" there) matched against each profile's ``device_tree_models``;
else ``nvidia-smi -L`` listing a GPU gives ``x86-cuda``; else ``cpu``.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from sonoedge.devices.profiles import PROFILE_DIR, DeviceProfile, load_profiles

Runner = Callable[[Sequence[str]], str]


@dataclasses.dataclass(frozen=True)
class DetectedDevice:
    profile: DeviceProfile
    reason: str  # what the detection saw, for `sonoedge devices`


def read_device_tree_model(root: Path) -> str | None:
    path = Path(root) / "proc" / "device-tree" / "model"
    try:
        return path.read_bytes().rstrip(b"\x00\n ").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def match_model(model: str, profiles: dict[str, DeviceProfile]) -> DeviceProfile | None:
    """The profile whose longest ``device_tree_models`` entry occurs in ``model`` (case-insensitive)."""
    best, best_len = None, 0
    for prof in profiles.values():
        for needle in prof.device_tree_models:
            if needle.lower() in model.lower() and len(needle) > best_len:
                best, best_len = prof, len(needle)
    return best


def _nvidia_smi(cmd: Sequence[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def detect_device(root: str | Path = "/", runner: Runner | None = None,
                  directory: Path = PROFILE_DIR) -> DetectedDevice:
    profiles = load_profiles(directory)
    model = read_device_tree_model(Path(root))
    if model:
        prof = match_model(model, profiles)
        if prof is not None:
            return DetectedDevice(prof, f"device tree model '{model}'")
    gpus = (runner or _nvidia_smi)(["nvidia-smi", "-L"])
    gpu_lines = [line.strip() for line in gpus.splitlines() if line.strip().startswith("GPU ")]
    if gpu_lines:
        return DetectedDevice(profiles["x86-cuda"], f"nvidia-smi: {gpu_lines[0]}")
    seen = f"device tree model '{model}' matches no profile; " if model else ""
    return DetectedDevice(profiles["cpu"], f"{seen}no NVIDIA GPU found (nvidia-smi lists none)")
