"""What the structure guard costs per frame, against inference, in ONE interleaved run:
``sonoedge bench BUNDLE --input CLIP --guard-cost``.

The guard (:mod:`sonoedge.runtime.stream.guard`) must stay under 5 % of inference time at 512 x 512.
Frames of ``--input`` are cropped to their imaging region (detected once, as the runtime does per
stream) and resized to ``size`` (512 x 512 by default), so the model and the guard see 512 x 512
whatever the clip's size. For every frame, in turn: the model runs on it (``backend.infer``, the
call the pipeline makes), the output is de-normalised as the runtime does, then the guard checks
it against the input: the guard's time is ``StructureGuard.input_cells`` (what ``Enhancer.prepare``
adds, timed before inference as prepare runs it, the crop just read) plus ``StructureGuard.check``
(what ``Enhancer.finish`` adds); a trip's log line and count are not timed, they are the exception. Guard and inference alternate frame by
frame, so a shared machine's load falls on both alike; the ratio is sum(guard) / sum(inference)
per repeat, reported as the median and quartiles over repeats, with the load average. On a loaded
machine a descheduled thread adds whole time slices to a sub-millisecond check (the guard's mean
and p99 grow far more than its median), so the budget is judged on CPU time, which the neighbours
do not inflate: the guard thread's CPU time against the process's CPU time during inference (every
ONNX Runtime worker included), per repeat; the wall-time ratios (sums, and per-frame medians) are
reported beside it.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.region import detect_region
from sonoedge.runtime.service.bench import _quartiles, machine, opencv_frames
from sonoedge.runtime.stream.enhancer import EnhancerConfig, from_model, to_model
from sonoedge.runtime.stream.guard import StructureGuard

GUARD_BUDGET_PCT = 5.0  # the guard's cost must stay under this share of inference time


def guard_cost(cfg: EnhancerConfig, path: str | Path, frames: int = 100, repeats: int = 5,
               size: tuple[int, int] = (512, 512)) -> dict[str, Any]:
    """Inference and guard time per frame at ``size``, interleaved; see the module docstring."""
    load_start = os.getloadavg()
    sample = list(opencv_frames(path, min(frames, 32), cfg.grey))
    region = detect_region(sample[0])
    x0, y0, x1, y1 = region.bbox
    h, w = size
    greys = [cv2.resize(im[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_AREA) for im in sample]
    mask = cv2.resize(region.mask[y0:y1, x0:x1].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    model = load_model(cfg)
    try:
        lo, hi = model.size_range()
        if not (lo[0] <= h <= hi[0] and lo[1] <= w <= hi[1]) or h % model.stride or w % model.stride:
            raise InputError(f"bundle {model.root}: the model does not take {h}x{w} (size range {lo}..{hi}, "
                             f"stride {model.stride}); the guard benchmark runs at {h}x{w}")
        guard = StructureGuard(cfg.guard)
        tensor = to_model(greys[0])
        infer_s: list[list[float]] = []
        guard_s: list[list[float]] = []
        guard_cpu_s: list[float] = []
        infer_cpu_s: list[float] = []
        tripped = 0
        for _ in range(repeats):
            run_infer, run_guard, cpu, infer_cpu = [], [], 0.0, 0.0
            for i in range(frames):
                k = i % len(greys)
                to_model(greys[k], out=tensor)  # prepare's normalisation (untimed): it reads the crop
                g0, c0 = time.perf_counter(), time.thread_time()
                cells = guard.input_cells(greys[k])  # Enhancer.prepare's part, after the crop is padded
                pre_s, pre_cpu = time.perf_counter() - g0, time.thread_time() - c0
                t0, p0 = time.perf_counter(), time.process_time()
                y = model.backend.infer(tensor)
                t1 = time.perf_counter()
                infer_cpu += time.process_time() - p0  # every thread of the process: ONNX Runtime's workers too
                out = from_model(y)  # uint8 (s*h, s*w), as Enhancer.finish makes it before the guard
                t2, c2 = time.perf_counter(), time.thread_time()
                verdict = guard.check(greys[k], out, mask, model.scale, cells)
                run_guard.append(time.perf_counter() - t2 + pre_s)
                cpu += time.thread_time() - c2 + pre_cpu
                run_infer.append(t1 - t0)
                tripped += verdict.tripped
            infer_s.append(run_infer)
            guard_s.append(run_guard)
            guard_cpu_s.append(cpu)
            infer_cpu_s.append(infer_cpu)
        ratios = [100 * sum(g) / sum(i) for g, i in zip(guard_s, infer_s)]
        cpu_ratios = [100 * g / i for g, i in zip(guard_cpu_s, infer_cpu_s)]
        every_infer = [t for run in infer_s for t in run]
        every_guard = [t for run in guard_s for t in run]
        return {
            "input": str(path), "bundle": str(model.root), "model": model.name, "precision": model.precision,
            "backend": model.backend_name, "size": [h, w], "frames": frames, "repeats": repeats,
            "region": region.kind, "cells": int(guard.check(greys[0], greys[0], mask).cells),
            "infer_ms": {"median": 1000 * statistics.median(every_infer), "mean": 1000 * statistics.fmean(every_infer)},
            "guard_ms": {"median": 1000 * statistics.median(every_guard), "mean": 1000 * statistics.fmean(every_guard),
                         "p99": 1000 * float(np.percentile(every_guard, 99))},
            "guard_cpu_ms_per_frame": 1000 * statistics.median(guard_cpu_s) / frames,
            "infer_cpu_ms_per_frame": 1000 * statistics.median(infer_cpu_s) / frames,
            "guard_cpu_pct_of_infer_cpu": {"median": statistics.median(cpu_ratios), "quartiles": _quartiles(cpu_ratios)},
            "guard_pct_of_infer": {"median": statistics.median(ratios), "quartiles": _quartiles(ratios)},
            "median_guard_pct_of_median_infer": 100 * statistics.median(every_guard) / statistics.median(every_infer),
            "budget_pct": GUARD_BUDGET_PCT, "tripped_frames": tripped,
            "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
            "machine": machine(),
        }
    finally:
        model.close()


def format_guard_cost(r: dict[str, Any]) -> str:
    pct, cpu = r["guard_pct_of_infer"], r["guard_cpu_pct_of_infer_cpu"]
    start, end = r["load_average"]["start"], r["load_average"]["end"]
    verdict = "within" if cpu["median"] < r["budget_pct"] else "OVER"
    return "\n".join([
        f"{r['input']}: bundle {r['model']} ({r['precision']}, {r['backend']}), region {r['region']} resized to "
        f"{r['size'][0]}x{r['size'][1]} ({r['cells']} guard cells judged), {r['frames']} frames x {r['repeats']} repeats, "
        "guard and inference interleaved frame by frame",
        f"  inference      median {r['infer_ms']['median']:8.3f} ms/frame (mean {r['infer_ms']['mean']:.3f})",
        f"  guard check    median {r['guard_ms']['median']:8.3f} ms/frame (mean {r['guard_ms']['mean']:.3f}, "
        f"p99 {r['guard_ms']['p99']:.3f}; thread CPU {r['guard_cpu_ms_per_frame']:.3f} ms)",
        f"  CPU time       inference {r['infer_cpu_ms_per_frame']:.3f} ms/frame (all threads), guard "
        f"{r['guard_cpu_ms_per_frame']:.3f} ms/frame: guard / inference {cpu['median']:.2f} % (quartiles over repeats "
        f"{cpu['quartiles'][0]:.2f} .. {cpu['quartiles'][1]:.2f} %): {verdict} the {r['budget_pct']:g} % budget",
        f"  wall time      sum(guard) / sum(inference) {pct['median']:.2f} % (quartiles {pct['quartiles'][0]:.2f} .. "
        f"{pct['quartiles'][1]:.2f} %), median guard / median inference {r['median_guard_pct_of_median_infer']:.2f} %; "
        f"{r['tripped_frames']} frame checks tripped",
        f"  machine        {r['machine']['cpu']}, {r['machine']['cores']} cores; load average "
        f"{start[0]:.2f} at start, {end[0]:.2f} at end",
    ])


__all__ = ["GUARD_BUDGET_PCT", "format_guard_cost", "guard_cost"]
