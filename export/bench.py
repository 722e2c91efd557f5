"""ONNX Runtime CPU latency of each precision of a bundle beside PyTorch eager, same frames, same run.

    sonoedge bench-export BUNDLE CKPT [--rounds 20] [--threads 2] [--size 256]

The frames are the bundle's reference frames (real crops), reflect-padded to the stride (or tiled
up to ``--size`` when given). Backends run interleaved round by round (torch, fp32, fp16, int8,
torch, ...) so machine noise hits all of them alike; the table reports the median and p90 per
frame and the speed ratio against PyTorch eager. Prints a Markdown table plus the machine line.
"""
from __future__ import annotations

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


def bench_bundle(bundle: str, checkpoint: str, rounds: int = 20, threads: int = 2, size: int | None = None) -> str:
    """The Markdown latency table (plus machine and model lines) of every precision of ``bundle``."""
    import onnxruntime as ort
    import torch

    from sonoedge.runtime.bundle.manifest import load_manifest, model_file
    from sonoedge.train.checkpoint import load_generator

    root, manifest = load_manifest(bundle)
    inputs = _inputs(root, manifest, size)
    torch.set_num_threads(threads)
    generator, _ = load_generator(checkpoint)
    runners = {}

    def torch_run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return generator(torch.from_numpy(x)).numpy()

    runners["pytorch eager fp32"] = torch_run
    for precision in manifest.precisions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(model_file(root, manifest, precision)), opts, providers=["CPUExecutionProvider"])
        runners[f"onnxruntime {precision}"] = (lambda s: lambda x: s.run(None, {"input": x})[0])(sess)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for name, run in runners.items():  # warm-up
        run(inputs[0])
    for _ in range(rounds):
        for name, run in runners.items():
            for x in inputs:
                start = time.perf_counter()
                run(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["pytorch eager fp32"])
    shape = "x".join(str(v) for v in inputs[0].shape)
    lines = [f"Machine: {_cpu_name()}, {threads} thread(s); Python {platform.python_version()}, "
             f"torch {torch.__version__}, onnxruntime {ort.__version__}",
             f"Model: {manifest.model.generator} {manifest.model.kwargs or {}}; input {shape} "
             f"({len(inputs)} real reference frames x {rounds} rounds, interleaved)", "",
             "| backend | median ms/frame | p90 ms/frame | speed vs PyTorch eager |", "|---|---|---|---|"]
    for name, values in times.items():
        med = statistics.median(values)
        p90 = float(np.percentile(values, 90))
        lines.append(f"| {name} | {med:.2f} | {p90:.2f} | {base / med:.2f}x |")
    return "\n".join(lines)
