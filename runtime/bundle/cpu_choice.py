"""The precision ``auto`` runs on ONNX Runtime's CPU provider: the one measured fastest at export.

Export (export/cpu_choice.py) times every precision the bundle kept on the machine it runs on and
records the fastest that passed its gates in the manifest's ``cpu_choice``. Here the runtime decides
whether that measurement speaks for this machine: the same CPU architecture and the same ONNX
Runtime major version at least (kernels and their fusions change between majors; an x86 timing
says nothing about an ARM core). A different CPU model of the same architecture is accepted and
named in the reason, since the ranking of fp32 against integer kernels holds across a family far
more often than the absolute times do. Without a usable measurement the device profile's rule
applies (the first of its preferred precisions the bundle kept). Either way the caller logs which
rule chose and why; nothing is silent.
"""
from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

from sonoedge.runtime.bundle.manifest import CpuChoice, Manifest


@dataclasses.dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    arch: str
    onnxruntime: str


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def this_machine() -> Machine:
    import onnxruntime as ort

    from sonoedge.runtime.backends.onnxruntime import physical_cores

    return Machine(cpu=cpu_model(), cores=physical_cores(), arch=platform.machine(), onnxruntime=ort.__version__)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def usable(choice: CpuChoice, here: Machine) -> tuple[bool, str]:
    """(whether ``choice`` speaks for ``here``, the reason in words)."""
    if choice.arch and choice.arch != here.arch:
        return False, f"measured on {choice.arch}, this machine is {here.arch}"
    if _major(choice.onnxruntime) != _major(here.onnxruntime):
        return False, f"measured with ONNX Runtime {choice.onnxruntime}, this is {here.onnxruntime} (another major version)"
    same = "this CPU" if choice.cpu == here.cpu else f"{choice.cpu} (this is {here.cpu})"
    return True, f"measured on {same}, ONNX Runtime {choice.onnxruntime}, {choice.measured[:10]}"


def describe(choice: CpuChoice) -> str:
    """'int8 3.10, fp32 9.00 CPU ms/frame': the measurement, fastest first."""
    order = sorted(choice.cpu_ms, key=choice.cpu_ms.get)
    return ", ".join(f"{p} {choice.cpu_ms[p]:.2f}" for p in order) + " CPU ms/frame"


def choose(manifest: Manifest, kept: list[str], here: Machine | None = None) -> tuple[str | None, str]:
    """(the recorded choice, reason) when it applies here, else (None, why not)."""
    choice = manifest.cpu_choice
    if choice is None:
        return None, "the bundle has no CPU timing (exported before it, or with --no-choose-cpu-precision)"
    if choice.precision not in kept or not manifest.precisions[choice.precision].passed:
        return None, f"the recorded fastest precision {choice.precision} is not a passing precision of this bundle"
    ok, why = usable(choice, here or this_machine())
    if not ok:
        return None, f"the bundle's CPU timing does not apply: {why}"
    excluded = "; ".join(f"{p} excluded: {r}" for p, r in choice.excluded.items())
    return choice.precision, (f"fastest passing precision on the CPU at export ({describe(choice)}; {why}"
                              + (f"; {excluded}" if excluded else "") + ")")


def cpu_provider_only(backend: str, providers: list[str]) -> bool:
    """Whether an onnxruntime backend with ``providers`` ([] = by availability) runs on the CPU provider alone."""
    if backend != "onnxruntime":
        return False
    if providers:
        return list(providers) == ["CPUExecutionProvider"]
    import onnxruntime as ort

    return "CUDAExecutionProvider" not in ort.get_available_providers()


def default_threads() -> int:
    """The runtime's CPU intra-op threads (runtime/backends/onnxruntime.py): one per physical core."""
    from sonoedge.runtime.backends.onnxruntime import physical_cores

    return physical_cores()



