"""Which precision runs fastest on ONNX Runtime's CPU provider here, among those that pass their gates.

    choice = measure_cpu_choice(root, manifest)       # at export, before the manifest is written
    record_cpu_choice("bundle/")                       # an existing bundle: re-time, rewrite the manifest

Every precision the bundle holds is timed: fp32, fp16 and the INT8 model as built (its layout,
integer kernels or Q/DQ around float ones, is described with the result: export/bench.py). Sessions
are set as the runtime sets them on the CPU (runtime/backends/onnxruntime.py: full graph
optimisation, sequential, intra-op threads one per physical core, no spinning, so
process CPU time is work, not waiting) and run interleaved round by round on the bundle's reference
frames, so load from other jobs hits every precision alike. The figure compared is the median
process CPU time per frame (less sensitive to a shared machine than wall time); the median wall
time is recorded beside it. Candidates are the precisions that passed their accuracy gate and,
where it was run, the fidelity gate (runtime/bundle/gates.py); a degraded or failing one is timed
but never chosen. The TensorRT-oriented INT8 model is not altered: devices keep it as it is.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sonoedge.runtime.bundle.manifest import (
    CHECKSUMS,
    MANIFEST,
    CpuChoice,
    Manifest,
    PrecisionEntry,
    bundle_file,
    load_manifest,
    write_manifest,
)
from sonoedge.runtime.errors import BundleError, InputError

Progress = Callable[[str], None]
DEFAULT_ROUNDS = 5


def exclusion(entry: PrecisionEntry) -> str | None:
    """Why ``entry`` cannot be the CPU choice, or None for a candidate."""
    if not entry.passed:
        return "failed its accuracy gate" + (" (kept degraded)" if entry.degraded else "")
    if entry.fidelity is not None and entry.fidelity.status == "fail":
        return "failed the fidelity gate on real frames"
    return None


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure_cpu_choice(root: Path, manifest: Manifest, rounds: int = DEFAULT_ROUNDS, threads: int = 0,
                       progress: Progress = print) -> CpuChoice | None:
    """Time every precision of the bundle at ``root`` and return the fastest candidate's record;
    None (said through ``progress``) when no precision passed its gates or there are no reference frames."""
    from sonoedge.export.bench import _inputs, _int8_layout
    from sonoedge.runtime.bundle.cpu_choice import default_threads, this_machine

    if rounds < 1:
        raise InputError(f"CPU timing rounds must be at least 1, not {rounds}")
    excluded = {p: why for p, e in manifest.precisions.items() if (why := exclusion(e)) is not None}
    if len(excluded) == len(manifest.precisions):
        progress("export: CPU precision not chosen: no precision passed its gates")
        return None
    inputs = _inputs(root, manifest, None)
    if not inputs:
        progress("export: CPU precision not chosen: the bundle has no reference frames to time")
        return None
    threads = threads or default_threads()
    load = os.getloadavg()[0]
    sessions = {p: _session(bundle_file(root, manifest, e.file), threads) for p, e in manifest.precisions.items()}
    name = {p: s.get_inputs()[0].name for p, s in sessions.items()}
    for p, s in sessions.items():  # warm-up: first-run allocations are not the model's cost
        s.run(None, {name[p]: inputs[0]})
    cpu: dict[str, list[float]] = {p: [] for p in sessions}
    wall: dict[str, list[float]] = {p: [] for p in sessions}
    total = rounds * len(sessions) * len(inputs)
    done, step = 0, max(1, total // 10)
    for _ in range(rounds):
        for p, s in sessions.items():
            for x in inputs:
                w0, c0 = time.perf_counter(), time.process_time()
                s.run(None, {name[p]: x})
                wall[p].append((time.perf_counter() - w0) * 1e3)
                cpu[p].append((time.process_time() - c0) * 1e3)
                done += 1
                if done % step == 0 or done == total:
                    progress(f"export: CPU timing {done}/{total} runs")
    cpu_ms = {p: round(statistics.median(v), 3) for p, v in cpu.items()}
    wall_ms = {p: round(statistics.median(v), 3) for p, v in wall.items()}
    candidates = [p for p in sessions if p not in excluded]
    best = min(candidates, key=lambda p: cpu_ms[p])
    here = this_machine()
    choice = CpuChoice(precision=best, cpu_ms=cpu_ms, wall_ms=wall_ms, excluded=excluded,
                       int8_layout=_int8_layout(root, manifest) or None, cpu=here.cpu, cores=here.cores, arch=here.arch,
                       onnxruntime=here.onnxruntime, threads=threads, frames=len(inputs), rounds=rounds,
                       input="x".join(str(v) for v in inputs[0].shape), load=round(load, 2),
                       measured=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    table = ", ".join(f"{p} {cpu_ms[p]:.2f} ms" + (" (excluded)" if p in excluded else "") for p in cpu_ms)
    progress(f"export: CPU precision {best}: median CPU time per frame {table} on {here.cpu}, {threads} thread(s), "
             f"ONNX Runtime {here.onnxruntime}, load {load:.2f}")
    return choice


def record_cpu_choice(bundle: str | Path, rounds: int = DEFAULT_ROUNDS, threads: int = 0,
                      progress: Progress = print) -> Manifest:
    """Time ``bundle`` (a directory) here and rewrite its manifest.json and bundle.sha256 with the choice.

    Only the ``cpu_choice`` field changes; every model file stays byte for byte. Refuses a .tar
    (unpack it first) and a folder holding files the manifest does not list (they would be hashed
    into the bundle by the rewrite)."""
    path = Path(bundle)
    if path.is_file():
        raise InputError(f"{path} is a file; pass the bundle directory (unpack the .tar first)")
    root, manifest = load_manifest(path)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST, CHECKSUMS}
    extra = sorted(present - set(manifest.files))
    if extra:
        raise BundleError(f"bundle {root}: its folder holds {extra[0]}, which {MANIFEST} does not list; "
                          "remove it before recording the CPU precision")
    choice = measure_cpu_choice(root, manifest, rounds, threads, progress)
    if choice is None:
        return manifest
    written = write_manifest(root, dataclasses.replace(manifest, cpu_choice=choice))
    progress(f"export: {root}: cpu_choice recorded in {MANIFEST} (and {CHECKSUMS} re-hashed)")
    return written



