"""ONNX Runtime CPU latency of each precision of a bundle beside PyTorch eager, same frames, same run.

    sonoedge bench-export BUNDLE CKPT [--rounds 20] [--threads 2] [--size 256] [--no-torch]

The frames are the bundle's reference frames (real crops), reflect-padded to the stride (or tiled
up to ``--size`` when given). Backends run interleaved round by round (torch, fp32, fp16, int8,
torch, ...) so machine noise hits all of them alike; the table reports the median and p90 wall
time per frame, the median process CPU time per frame (less sensitive to other jobs on a shared
machine than wall time), and the speed of each against PyTorch eager and against ONNX Runtime fp32
(ratios of the medians, wall and CPU). Prints a Markdown table plus the machine line, the load
average at start and end, and how the bundle's INT8 model is laid out (outputs quantized or not;
integer kernels only come with quantized outputs on the CPU provider: docs/benchmarks/export.md).
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sonoedge.runtime.bundle.manifest import Manifest


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _inputs(root: Path, manifest: "Manifest", size: int | None) -> list[np.ndarray]:
    """The bundle's reference frames as padded model inputs (1, 1, H, W) in [-1, 1]."""
    from sonoedge.runtime.bundle.manifest import bundle_file
    from sonoedge.runtime.bundle.verify import read_reference_frame
    from sonoedge.runtime.frames import normalise, pad_to_stride

    stride = manifest.model.stride
    inputs = manifest.reference.inputs if manifest.reference else ()
    frames = [read_reference_frame(bundle_file(root, manifest, rel)) for rel in inputs]
    if size:
        frames = [np.pad(f, ((0, max(0, size - f.shape[0])), (0, max(0, size - f.shape[1]))), mode="reflect")[:size, :size]
                  for f in frames]
    return [pad_to_stride(normalise(f), stride)[0] for f in frames]


def bench_bundle(bundle: str, checkpoint: str | None, rounds: int = 20, threads: int = 2, size: int | None = None,
                 torch_eager: bool = True) -> str:
    """The Markdown latency table (plus machine, model and load lines) of every precision of ``bundle``."""
    import onnxruntime as ort

    from sonoedge.runtime.bundle.manifest import load_manifest, model_file

    load_start = os.getloadavg()
    root, manifest = load_manifest(bundle)
    inputs = _inputs(root, manifest, size)
    runners = {}
    if torch_eager:
        import torch

        from sonoedge.train.checkpoint import load_generator

        torch.set_num_threads(threads)
        generator, _ = load_generator(checkpoint)

        def torch_run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return generator(torch.from_numpy(x)).numpy()

        runners["pytorch eager fp32"] = torch_run
    for precision in manifest.precisions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # CPU time = work, not spinning
        sess = ort.InferenceSession(str(model_file(root, manifest, precision)), opts, providers=["CPUExecutionProvider"])
        runners[f"onnxruntime {precision}"] = (lambda s: lambda x: s.run(None, {"input": x})[0])(sess)
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for name, run in runners.items():  # warm-up
        run(inputs[0])
    for _ in range(rounds):
        for name, run in runners.items():
            for x in inputs:
                start, c0 = time.perf_counter(), time.process_time()
                run(x)
                times[name].append((time.perf_counter() - start) * 1e3)
                cpu[name].append((time.process_time() - c0) * 1e3)
    med = {name: statistics.median(v) for name, v in times.items()}
    cpu_med = {name: statistics.median(v) for name, v in cpu.items()}
    base = med.get("pytorch eager fp32")
    fp32 = "onnxruntime fp32" if "onnxruntime fp32" in med else None
    shape = "x".join(str(v) for v in inputs[0].shape)
    versions = f"onnxruntime {ort.__version__}"
    if torch_eager:
        import torch

        versions = f"torch {torch.__version__}, {versions}"
    load_end = os.getloadavg()
    lines = [f"Machine: {_cpu_name()}, {threads} thread(s); Python {platform.python_version()}, {versions}; "
             f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end",
             f"Model: {manifest.model.generator} {manifest.model.kwargs or {}}; input {shape} "
             f"({len(inputs)} real reference frames x {rounds} rounds, interleaved)"]
    layout = _int8_layout(root, manifest)
    if layout:
        lines.append(f"INT8 model: {layout}")
    lines += ["", "| backend | median ms/frame | p90 ms/frame | median CPU ms/frame | speed vs PyTorch eager | "
                  "speed vs ORT fp32 (wall) | speed vs ORT fp32 (CPU) |", "|---|---|---|---|---|---|---|"]
    for name, values in times.items():
        p90 = float(np.percentile(values, 90))
        vs_torch = f"{base / med[name]:.2f}x" if base else "-"
        vs_fp32 = f"{med[fp32] / med[name]:.2f}x" if fp32 and name.startswith("onnxruntime") else "-"
        vs_fp32_cpu = f"{cpu_med[fp32] / cpu_med[name]:.2f}x" if fp32 and name.startswith("onnxruntime") and cpu_med[name] else "-"
        lines.append(f"| {name} | {med[name]:.2f} | {p90:.2f} | {cpu_med[name]:.2f} | {vs_torch} | {vs_fp32} | {vs_fp32_cpu} |")
    return "\n".join(lines)


def _int8_layout(root: Path, manifest: "Manifest") -> str:
    """How the bundle's INT8 model is laid out, from the manifest and the graph: '' without one."""
    if "int8" not in manifest.precisions:
        return ""
    from sonoedge.runtime.bundle.manifest import model_file

    try:
        import onnx
    except ImportError:
        return "present (install sonoedge[export] to describe its layout)"
    graph = onnx.load(str(model_file(root, manifest, "int8")), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    produced_by = {out: n.op_type for n in graph.node for out in n.output}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul")]
    consumers: dict[str, list[str]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    integer = sum(1 for n in weighted
                  if produced_by.get(n.input[0]) == "DequantizeLinear"
                  and "QuantizeLinear" in consumers.get(n.output[0], []))
    return (f"{ops.count('QuantizeLinear')} QuantizeLinear, {ops.count('DequantizeLinear')} DequantizeLinear; "
            f"{integer} of {len(weighted)} weighted layers have quantized inputs AND outputs "
            f"(what ONNX Runtime's CPU provider fuses into integer kernels), {len(weighted) - integer} stay float")
