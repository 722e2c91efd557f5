"""The runtime benchmark behind ``sonoedge bench``: pure-backend and full-pipeline fps in ONE run.

    sonoedge bench bundle/ --input clip.mp4 --frames 200 --repeats 3 --json bench.json

Both measurements use the same frames, decoded into memory first (decoding is the source's cost, not
the runtime's):

- backend: ``backend.infer`` back to back on the pre-processed tensors of those frames (region crop,
  pad and normalise done beforehand, untimed): the engine's own speed, as if pre/post-processing
  were free (timing each call between untimed pre-processing instead lets ONNX Runtime's idle
  workers fall asleep between calls and penalises the backend figure);
- pipeline: the frames through the real stream (capture -> prepare -> infer -> finish -> null sink,
  blocking mode so nothing is dropped): what a user gets.

The two alternate ``--repeats`` times; fps are medians, and the overhead is the median over repeats
of (pipeline time / backend time of the same repeat) - 1, with its quartiles: the two runs of a
repeat are back to back, so a shared, noisy machine affects both alike. The same ratio in process
CPU seconds (``cpu_overhead_pct``) is the work the pipeline adds (pre/post-processing, thread
hand-offs) and does not depend on what other processes do to the wall clock.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.readers import iter_frames
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig
from sonoedge.runtime.stream.sinks import NullSink
from sonoedge.runtime.stream.sources import FramesSource


def daemon_memory(cfg: EnhancerConfig, clip: str, marks: list[int], fps: float = 0.0, timeout_s: float = 7200.0) -> dict[str, Any]:
    """Start ``sonoedge serve`` as a subprocess replaying ``clip`` in a loop into null://; return the
    time from process start to the first frame out and the resident memory (from /metrics) at each mark."""
    query = f"?loop=1{f'&fps={fps:g}' if fps else ''}"
    uri = f"replay://{Path(clip).resolve()}{query}"
    bundle = str(Path(cfg.bundle).resolve()) if cfg.bundle else ""
    config = (f'[source]\nuri = "{uri}"\n[sink]\nuri = "null://"\n'
              f'[enhancer]\nbundle = "{bundle}"\nprecision = "{cfg.precision}"\nbackend = "{cfg.backend}"\n'
              f'region = "{cfg.region}"\nthreads = {cfg.threads}\n[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "enhancer.toml"
        path.write_text(config)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "sonoedge", "serve", "--config", str(path)],
                                stderr=subprocess.PIPE, text=True)
        try:
            port, first = None, None
            for line in proc.stderr:
                event = json.loads(line).get("event") if line.startswith("{") else None
                if event == "health_listening":
                    port = json.loads(line)["port"]
                elif event == "first_frame":
                    first = time.monotonic() - t0
                    break
            if port is None or first is None:
                raise SonoedgeError(f"the daemon exited before serving a frame (rc {proc.poll()})")
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            rows = []
            for mark in sorted(marks):
                while True:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
                    value = {k: float(re.search(rf"^sonoedge_{k} (\S+)$", text, re.M).group(1))
                             for k in ("frames_out_total", "frames_in_total", "resident_memory_bytes", "fps")}
                    if value["frames_out_total"] >= mark:
                        e2e = {q: round(float(re.search(rf'^sonoedge_latency_seconds{{stage="end_to_end",quantile="{q}"}} (\S+)$',
                                                         text, re.M).group(1)) * 1000, 1) for q in ("0.50", "0.99")}
                        rows.append({"frames_out": int(value["frames_out_total"]), "frames_in": int(value["frames_in_total"]),
                                     "rss_mib": round(value["resident_memory_bytes"] / 2**20, 1),
                                     "fps": round(value["fps"], 2), "e2e_latency_ms": e2e,
                                     "elapsed_s": round(time.monotonic() - t0, 1)})
                        break
                    if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                        raise SonoedgeError(f"the daemon stopped or timed out before {mark} frames")
                    time.sleep(0.2)
        finally:
            proc.terminate()
            rc = proc.wait(timeout=30)
    return {"clip": str(clip), "bundle": bundle or "embedded default", "cold_start_to_first_frame_s": round(first, 3),
            "memory": rows, "exit_code": rc, "machine": machine()}


def load_frames(path: str, n: int) -> list:
    """``n`` uint8 frames from ``path``, decoded into memory (looped when the file is shorter)."""
    frames = []
    for frame in iter_frames(path):
        frames.append(frame)
        if len(frames) >= n:
            break
    return loop_frames(frames, n)


def loop_frames(frames: list, n: int) -> list:
    """``n`` frames: ``frames`` repeated in order."""
    if not frames:
        raise InputError("no frames to benchmark")
    return [frames[i % len(frames)] for i in range(n)]


def bench(cfg: EnhancerConfig, images: list, repeats: int = 3, queue_size: int = 2) -> dict[str, Any]:
    """Alternate backend-only and full-pipeline runs over ``images``; medians, overhead, latencies."""
    t0 = time.perf_counter()
    model = load_model(cfg)
    load_s = time.perf_counter() - t0
    try:
        enhancer = Enhancer(model, cfg)
        tensors = [enhancer.prepare(Frame(image, i)).tensor for i, image in enumerate(images)]
        shape = list(tensors[0].shape)
        backend_s, pipeline_s, last = [], [], None
        backend_cpu, pipeline_cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for x in tensors:  # back to back, as the engine would run if pre/post-processing were free
                model.backend.infer(x)
            backend_s.append(time.perf_counter() - t0)
            backend_cpu.append(time.process_time() - c0)
            sink = NullSink()
            pipe = Pipeline(lambda: FramesSource(images), enhancer, sink,  # region already found: the steady state
                            PipelineConfig(mode="blocking", queue_size=queue_size))
            t0, c0 = time.perf_counter(), time.process_time()
            last = pipe.run()
            pipeline_s.append(time.perf_counter() - t0)
            pipeline_cpu.append(time.process_time() - c0)
        n = len(images)
        b, p = statistics.median(backend_s), statistics.median(pipeline_s)
        ratios = [pi / bi for pi, bi in zip(pipeline_s, backend_s)]  # each pair ran back to back: same machine load
        cpu_ratios = [pi / bi for pi, bi in zip(pipeline_cpu, backend_cpu)]  # CPU seconds: robust to other processes
        return {
            "bundle": str(model.root), "model": model.name, "precision": model.precision, "backend": model.backend_name,
            "frames": n, "repeats": repeats, "frame_shape": list(images[0].shape),
            "model_input_shape": shape, "region": enhancer.region.mode,
            "backend_fps": n / b, "pipeline_fps": n / p, "overhead_pct": (statistics.median(ratios) - 1) * 100,
            "overhead_pct_quartiles": [(q - 1) * 100 for q in _quartiles(ratios)],
            "cpu_overhead_pct": (statistics.median(cpu_ratios) - 1) * 100,
            "cpu_overhead_pct_quartiles": [(q - 1) * 100 for q in _quartiles(cpu_ratios)],
            "backend_cpu_s": backend_cpu, "pipeline_cpu_s": pipeline_cpu,
            "backend_s": backend_s, "pipeline_s": pipeline_s, "load_s": load_s,
            "latency_ms": last["latency_ms"], "frames_out": last["frames_out"], "frames_dropped": last["frames_dropped"],
            "machine": machine(),
        }
    finally:
        model.close()


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [q[0], q[2]]


def machine() -> dict[str, Any]:
    """The CPU, its cores and the versions that decide a benchmark figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "onnxruntime": onnxruntime.__version__}


def format_result(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    lines = [
        f"bundle {r['model']} ({r['precision']}, {r['backend']}), {r['frames']} frames {r['frame_shape']} "
        f"-> model input {r['model_input_shape'][2:]}, region {r['region']}, {r['repeats']} repeats, median",
        f"  backend only   {r['backend_fps']:8.2f} fps",
        f"  full pipeline  {r['pipeline_fps']:8.2f} fps   overhead {r['overhead_pct']:+.1f}% "
        f"(median of per-repeat ratios; quartiles {r['overhead_pct_quartiles'][0]:+.1f}% .. {r['overhead_pct_quartiles'][1]:+.1f}%)",
        f"  CPU time       pipeline uses {r['cpu_overhead_pct']:+.1f}% more CPU than the backend alone "
        f"(quartiles {r['cpu_overhead_pct_quartiles'][0]:+.1f}% .. {r['cpu_overhead_pct_quartiles'][1]:+.1f}%)",
        "  latency ms     " + "  ".join(f"{stage} p50 {lat[stage]['p50']:.1f} p99 {lat[stage]['p99']:.1f}"
                                         for stage in ("prepare", "infer", "finish", "end_to_end")),
        f"  machine        {r['machine']['cpu']}, {r['machine']['cores']} cores",
    ]
    return "\n".join(lines)
