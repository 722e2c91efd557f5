"""The runtime benchmark behind ``sonoedge bench``: the stream runtime against a careful hand loop
and against decode + model alone, decoding included, in ONE run.

    sonoedge bench bundle/ --input clip.mp4 --frames 100 --repeats 3 --json bench.json

Three alternatives over the same frames of the same file, interleaved (:func:`bench`), and a fourth
when the pipeline runs frames in parallel:

- ``bare``: decode (OpenCV read + cvtColor) and the model on tensors made beforehand: the floor;
- ``bare_parallel`` (pipeline ``infer_workers`` N > 1 only): the floor as the pipeline calls the
  model: N such loops at once, each over 1/N of the frames, on the pipeline's session (its intra-op
  threads), so that the pipeline's CPU against it is the cost of the runtime's own work alone;
- ``hand``: a careful hand-written loop with the same output as the pipeline (OpenCV read, cvtColor,
  the same region crop, reflect-pad, normalise, the model, de-normalise, paste back inside the mask
  into the decoded frame), buffers reused, one thread, no checks: what the runtime's safety
  features (frame validation, NaN check, fail-safe, region re-check, structure guard, bounded
  queues, threads) cost;
- ``pipeline``: the runtime as a user runs it (file source decoding in the capture thread with
  prepare, infer, finish with the null sink; blocking mode, nothing dropped).

``bare`` and ``hand`` run one model call at a time on one ONNX Runtime session (``--threads``
intra-op threads; auto: one per physical core). The pipeline runs on that same session, unless
frame-parallel inference is planned (``--infer-workers``, auto: :func:`.pipeline.frame_parallel_plan`:
2 calls at once with half the cores each for this blocking run on a CPU): then it and
``bare_parallel`` share a second session of the same model file with the planned intra-op threads.
Every setting is printed with the result.

Reported: fps and process CPU ms per frame of each (medians over repeats), pipeline fps / hand-loop
fps and pipeline CPU over decode + model (medians of per-repeat ratios, with quartiles: the runs of
a repeat are back to back, so a shared machine's load affects them alike), the pipeline's per-step
budget (capture/decode, prepare, infer, finish, sink: ms per frame, % of the frame time, thread CPU),
where each alternative's CPU goes (its Python threads against the others: ONNX Runtime's intra-op
workers and the decoder's threads; the pipeline threads' CPU outside their steps), and the load
average at start and end. ``--daemon`` measures the daemon's cold start and memory
instead (:func:`daemon_memory`).
"""
from __future__ import annotations

import dataclasses
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
from typing import Any, Callable, Iterator

import numpy as np

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame, to_grey
from sonoedge.runtime.readers import iter_frames, kind_of
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig, from_model, kernels_in_use, to_model
from sonoedge.runtime.stream.pipeline import STAGES, Pipeline, PipelineConfig, check_infer_workers, frame_parallel_plan
from sonoedge.runtime.stream.sinks import NullSink
from sonoedge.runtime.stream.sources import FileSource


def daemon_memory(cfg: EnhancerConfig, clip: str, marks: list[int], fps: float = 0.0, timeout_s: float = 7200.0) -> dict[str, Any]:
    """Start ``sonoedge serve`` as a subprocess replaying ``clip`` in a loop into null://; return the
    time from process start to the first frame out and the resident memory (from /metrics) at each mark."""
    query = f"?loop=1{f'&fps={fps:g}' if fps else ''}"
    uri = f"replay://{Path(clip).resolve()}{query}"
    bundle = str(Path(cfg.bundle).resolve()) if cfg.bundle else ""
    config = (f'[source]\nuri = "{uri}"\n[sink]\nuri = "null://"\n'
              f'[enhancer]\nbundle = "{bundle}"\nprecision = "{cfg.precision}"\nbackend = "{cfg.backend}"\n'
              f'region = "{cfg.region}"\nthreads = {cfg.threads}\n[enhancer.guard]\nenabled = {str(cfg.guard.enabled).lower()}\n'
              f'[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')
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


def write_clip(frames: list, path: Path, fps: float = 25.0) -> Path:
    """uint8 (H, W) grey frames -> a lossless FFV1 video at ``path`` (the phantom clip of ``bench``)."""
    import cv2

    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h), isColor=False)
    try:
        if not writer.isOpened():
            raise SonoedgeError(f"OpenCV cannot write an FFV1 video to {path}")
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


class _LoopedFile(FileSource):
    """A file's frames, looped until ``n`` have been read (a short clip gives as many frames as asked):
    the pipeline's source in the benchmark, decoding in the pipeline's capture thread."""

    def __init__(self, path: str | Path, n: int, grey: str):
        super().__init__(str(path), grey=grey)
        self.n = n

    def __iter__(self) -> Iterator[Frame]:
        count = 0
        while count < self.n:
            for frame in super().__iter__():
                yield frame
                count += 1
                if count >= self.n:
                    return
            if count == 0:
                return


def opencv_frames(path: str | Path, n: int, grey: str) -> Iterator[np.ndarray]:
    """``n`` uint8 grey frames of ``path``, looped: a video read by OpenCV directly and converted with
    ``cv2.cvtColor`` (``grey="exact"``: the bit-exact table), what a careful hand-written loop does; any
    other kind (stills, DICOM, MetaImage, NRRD) through ``readers.iter_frames``, as nothing simpler reads it."""

    count = 0
    while count < n:
        if kind_of(path) != "video":
            frames: Iterator[np.ndarray] = iter_frames(path, grey)
        else:
            frames = _opencv_video(path, grey)
        for frame in frames:
            yield frame
            count += 1
            if count >= n:
                return
        if count == 0:
            raise InputError(f"{path} has no frame to benchmark")


def _opencv_video(path: str | Path, grey: str) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            if bgr.ndim == 2:
                yield bgr
            elif grey == "fast":
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            else:
                yield to_grey(bgr, grey, bgr=True)
    finally:
        capture.release()


def bare_loop(path: str | Path, n: int, grey: str, backend: Any, tensors: list[np.ndarray]) -> None:
    """The floor: decode every frame (as :func:`opencv_frames`) and run the model on a tensor made
    beforehand, with no crop, pad, normalise, paste or checks: decode + model and nothing else."""
    for i, _frame in enumerate(opencv_frames(path, n, grey)):
        backend.infer(tensors[i % len(tensors)])


def bare_parallel(path: str | Path, n: int, grey: str, backend: Any, tensors: list[np.ndarray], workers: int) -> float:
    """:func:`bare_loop` ``workers`` times at once (threads, each decoding its own reader and calling
    the model, which releases the GIL), over ``n`` frames in all: the floor of frame-parallel
    inference. Returns the CPU seconds of those threads (the caller's own only waits)."""
    counts = [n // workers + (i < n % workers) for i in range(workers)]
    errors: list[BaseException] = []
    cpu: list[float] = []

    def one(k: int) -> None:
        try:
            bare_loop(path, k, grey, backend, tensors)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
        finally:
            cpu.append(time.thread_time())

    threads = [threading.Thread(target=one, args=(k,), name=f"bare{i}") for i, k in enumerate(counts) if k]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(cpu)


def hand_loop(path: str | Path, n: int, grey: str, backend: Any, bbox: tuple[int, int, int, int],
              mask: np.ndarray | None, stride: int, on_frame: Callable[[np.ndarray], None] | None = None) -> None:
    """A careful hand-written loop that produces the pipeline's output frames (enhancement bundles,
    scale 1): OpenCV read and cvtColor, the same region crop, reflect-pad, normalise, one backend call,
    de-normalise, paste inside the mask into the decoded frame. Buffers are reused, one thread, no
    frame validation, NaN check, fail-safe, region re-check or hand-offs: what the runtime's safety
    features cost is the difference. ``on_frame`` sees each uint8 (H, W) output (for tests)."""
    import cv2

    x0, y0, x1, y1 = bbox
    h, w = y1 - y0, x1 - x0
    hp, wp = h + (-h) % stride, w + (-w) % stride
    padded = np.empty((hp, wp), np.uint8)
    tensor = np.empty((1, 1, hp, wp), np.float32)
    out_f, out_u8 = np.empty((h, w), np.float32), np.empty((h, w), np.uint8)
    for grey_frame in opencv_frames(path, n, grey):
        cv2.copyMakeBorder(grey_frame[y0:y1, x0:x1], 0, hp - h, 0, wp - w, cv2.BORDER_REFLECT_101, dst=padded)
        to_model(padded, out=tensor)  # the same passes a careful loop writes: the runtime's own
        y = backend.infer(tensor)
        from_model(y[0, 0, :h, :w], out_f, out_u8)
        image = grey_frame  # freshly decoded and ours: paste into it (the pipeline does so too)
        if mask is None:
            image[y0:y1, x0:x1] = out_u8
        else:
            cv2.copyTo(out_u8, mask, image[y0:y1, x0:x1])
        if on_frame is not None:
            on_frame(image)


ALTERNATIVES = ("bare", "bare_parallel", "hand", "pipeline")


def plan_workers(cfg: EnhancerConfig, model: Any, infer_workers: int = 0) -> tuple[int, int]:
    """(pipeline infer workers, intra-op threads of the pipeline's session) for ``bench``: the
    ``infer_workers`` asked for (0 = auto: :func:`.pipeline.frame_parallel_plan` for a blocking run),
    with ``cfg.threads`` or, when that is auto, the physical cores shared among the workers."""
    from sonoedge.runtime.backends.onnxruntime import physical_cores
    from sonoedge.runtime.bundle.cpu_choice import cpu_provider_only

    cpu_only = cpu_provider_only(model.backend_name, cfg.providers)  # as stream/files.py decides it
    if infer_workers == 0:
        return frame_parallel_plan(cpu_only, cfg.threads, live=False)
    check_infer_workers(infer_workers)
    threads = cfg.threads or (max(1, physical_cores() // infer_workers) if cpu_only else 0)
    return infer_workers, threads


def bench(cfg: EnhancerConfig, path: str | Path, frames: int = 100, repeats: int = 3, queue_size: int = 2,
          infer_workers: int = 0) -> dict[str, Any]:
    """Three ways through the same ``frames`` frames of ``path`` (looped), decoding included, run
    interleaved ``repeats`` times (the order rotates each repeat):

    - ``bare``: decode + the model on tensors made beforehand (:func:`bare_loop`), the floor;
    - ``hand``: a careful hand-written loop with the pipeline's output (:func:`hand_loop`);
    - ``pipeline``: the stream runtime (file source decoding in the capture thread -> prepare ->
      infer -> finish -> null sink, blocking mode: nothing dropped), with ``infer_workers`` model
      calls at once (0 = auto, :func:`plan_workers`);
    - ``bare_parallel``, when the pipeline has more than one infer worker: the floor as the pipeline
      calls the model (:func:`bare_parallel` on the pipeline's session).

    Wall time and process CPU time per run; fps and CPU ms per frame are medians over repeats, ratios
    are medians of per-repeat ratios (the runs of a repeat are back to back: a shared machine's load
    affects them alike). The pipeline's per-step budget (ms per frame and % of the frame time, wall
    and thread CPU) is from its last run. Load averages at start and end are part of the result."""
    import cv2

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    model = load_model(cfg)
    load_s = time.perf_counter() - t0
    pmodel = model
    try:
        workers, pthreads = plan_workers(cfg, model, infer_workers)
        if workers > 1 and pthreads != cfg.threads:  # the pipeline's own session (module doc)
            pmodel = load_model(dataclasses.replace(cfg, threads=pthreads))
        enhancer = Enhancer(pmodel, cfg)
        sample = list(opencv_frames(path, min(frames, 16), cfg.grey))
        jobs = [enhancer.prepare(Frame(image, i)) for i, image in enumerate(sample)]
        tensors = [job.tensor for job in jobs]
        bbox, mask, shape = jobs[0].bbox, jobs[0].mask, list(tensors[0].shape)
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: bare_loop(path, frames, cfg.grey, model.backend, tensors),
            "pipeline": lambda: Pipeline(lambda: _LoopedFile(path, frames, cfg.grey), enhancer, NullSink(),
                                         PipelineConfig(mode="blocking", queue_size=queue_size, infer_workers=workers)).run(),
        }
        if workers > 1:
            runs["bare_parallel"] = lambda: bare_parallel(path, frames, cfg.grey, pmodel.backend, tensors, workers)
        if model.scale == 1:
            runs["hand"] = lambda: hand_loop(path, frames, cfg.grey, model.backend, bbox, mask, model.stride)
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        python_cpu: dict[str, list[float]] = {k: [] for k in runs}  # the Python threads' CPU: the caller's (+ the stages')
        machinery: list[float] = []  # pipeline threads' CPU outside their steps
        order, last = [k for k in ALTERNATIVES if k in runs], None
        for r in range(repeats):
            for name in order[r % len(order):] + order[: r % len(order)]:
                t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
                result = runs[name]()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                python_cpu[name].append(time.thread_time() - m0)
                if name == "bare_parallel":
                    python_cpu[name][-1] += result
                if name == "pipeline":
                    last = result
                    threads = sum(result["thread_cpu_ms_per_frame"].values()) * result["frames_in"] / 1000
                    python_cpu[name][-1] += threads
                    steps = sum(v * result["latency_ms"][k]["count"] for k, v in result["cpu_ms_per_frame"].items()) / 1000
                    machinery.append(threads - steps)
        assert last is not None
        out = {
            "input": str(path), "bundle": str(model.root), "model": model.name, "precision": model.precision,
            "precision_reason": model.precision_reason, "backend": model.backend_name, "frames": frames, "repeats": repeats, "frame_shape": list(sample[0].shape),
            "model_input_shape": shape, "region": enhancer.region.mode, "grey": cfg.grey, "load_s": load_s,
            "wall_s": wall, "cpu_s": cpu,
            "fps": {k: frames / statistics.median(v) for k, v in wall.items()},
            "cpu_ms_per_frame": {k: 1000 * statistics.median(v) / frames for k, v in cpu.items()},
            "pipeline_vs_hand_fps": _ratio(wall.get("hand"), wall["pipeline"]),
            "pipeline_vs_bare_cpu_pct": _pct(cpu["pipeline"], cpu["bare"]),
            "pipeline_vs_bare_parallel_cpu_pct": _pct(cpu["pipeline"], cpu.get("bare_parallel")),
            "infer_workers": workers,
            "pipeline_vs_hand_cpu_pct": _pct(cpu["pipeline"], cpu.get("hand")),
            "steps": step_budget(last, frames),
            # where the process CPU goes: the Python threads (the loop's, or the pipeline's three) and
            # every other thread (ONNX Runtime's intra-op workers, the decoder's threads)
            "python_threads_cpu_ms_per_frame": {k: 1000 * statistics.median(v) / frames for k, v in python_cpu.items()},
            "other_threads_cpu_ms_per_frame": {k: 1000 * statistics.median(c - p for c, p in zip(cpu[k], python_cpu[k])) / frames
                                               for k in runs},
            "pipeline_machinery_cpu_ms_per_frame": 1000 * statistics.median(machinery) / frames,
            "latency_ms": last["latency_ms"], "frames_out": last["frames_out"], "frames_dropped": last["frames_dropped"],
            "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
            "intra_op_threads": {k: _threads_of((pmodel if k in ("pipeline", "bare_parallel") else model).backend) for k in runs},
            "opencv_threads": cv2.getNumThreads(),  # process-wide, set by the Enhancer: the same for all
            "kernels": kernels_in_use(),
            "guard": enhancer.guard.enabled,
            "machine": machine(),
        }
        return out
    finally:
        if pmodel is not model:
            pmodel.close()
        model.close()


def _threads_of(backend: Any) -> int | None:
    session = getattr(backend, "session", None)
    if session is None:
        return None
    value = session.get_session_options().intra_op_num_threads
    return int(value) if value else None


def _ratio(numerators: list[float] | None, denominators: list[float]) -> dict[str, Any] | None:
    """Median and quartiles of numerator / denominator per repeat (a / b of wall times: b's speed over a's)."""
    if not numerators:
        return None
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return {"median": statistics.median(ratios), "quartiles": _quartiles(ratios)}


def _pct(values: list[float], bases: list[float] | None) -> dict[str, Any] | None:
    """(value / base - 1) in %, median and quartiles over repeats."""
    r = _ratio(values, bases) if bases else None
    if r is None:
        return None
    return {"median": (r["median"] - 1) * 100, "quartiles": [(q - 1) * 100 for q in r["quartiles"]]}


def step_budget(stats: dict[str, Any], frames: int) -> dict[str, dict[str, float]]:
    """Per pipeline step: mean wall ms per frame, that as % of the frame time (elapsed / frames; the
    steps overlap in their threads, so the shares can add up to more than 100 %), thread CPU ms."""
    frame_ms = 1000 * stats["elapsed_s"] / max(stats["frames_out"], 1)
    out = {}
    for stage in STAGES:
        mean = stats["latency_ms"][stage]["mean"]
        out[stage] = {"ms": mean, "pct_of_frame": 100 * mean / frame_ms if frame_ms else 0.0,
                      "cpu_ms": stats["cpu_ms_per_frame"][stage]}
    out["frame"] = {"ms": frame_ms, "pct_of_frame": 100.0, "cpu_ms": sum(v["cpu_ms"] for v in out.values())}
    return out


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
    fps, cpu = r["fps"], r["cpu_ms_per_frame"]
    workers = r.get("infer_workers", 1)
    labels = {"bare": "decode + model (floor)", "bare_parallel": f"  the same, {workers} at once",
              "hand": "careful hand loop", "pipeline": "sonoedge pipeline"}
    lines = [
        f"{r['input']}: bundle {r['model']} ({r['precision']}, {r['backend']}), {r['frames']} frames {r['frame_shape']} "
        f"-> model input {r['model_input_shape'][2:]}, region {r['region']}, grey {r['grey']}, "
        f"{r['repeats']} interleaved repeats, medians",
        f"  precision {r['precision']}: {r.get('precision_reason', 'requested')}",
        f"  {'':26s} {'fps':>8s} {'CPU ms/frame':>13s}",
    ]
    for name in ALTERNATIVES:
        if name in fps:
            lines.append(f"  {labels[name]:26s} {fps[name]:8.2f} {cpu[name]:13.2f}")
    hand, bare = r["pipeline_vs_hand_fps"], r["pipeline_vs_bare_cpu_pct"]
    if hand:
        lines.append(f"  pipeline fps / hand-loop fps {hand['median']:.3f} (quartiles {hand['quartiles'][0]:.3f} .. "
                     f"{hand['quartiles'][1]:.3f}); CPU vs hand loop {r['pipeline_vs_hand_cpu_pct']['median']:+.1f}%")
    lines.append(f"  pipeline CPU vs decode + model {bare['median']:+.1f}% "
                 f"(quartiles {bare['quartiles'][0]:+.1f}% .. {bare['quartiles'][1]:+.1f}%)")
    par = r.get("pipeline_vs_bare_parallel_cpu_pct")
    if par:
        lines.append(f"  pipeline CPU vs decode + model {workers} at once as the pipeline calls the model {par['median']:+.1f}% "
                     f"(quartiles {par['quartiles'][0]:+.1f}% .. {par['quartiles'][1]:+.1f}%): the runtime's own work")
    if "other_threads_cpu_ms_per_frame" in r:
        py, other = r["python_threads_cpu_ms_per_frame"], r["other_threads_cpu_ms_per_frame"]
        names = [k for k in ALTERNATIVES if k in py]
        lines.append("  CPU ms/frame in the Python threads / in the others (ONNX Runtime's workers, the decoder's): "
                     + ", ".join(f"{k} {py[k]:.2f} / {other[k]:.2f}" for k in names)
                     + f"; the pipeline's threads outside their steps {r['pipeline_machinery_cpu_ms_per_frame']:.3f}")
    lines.append("  per-step budget (last pipeline run; steps overlap in their threads):")
    for stage, v in r["steps"].items():
        lines.append(f"    {stage:9s} {v['ms']:8.2f} ms {v['pct_of_frame']:6.1f}% of frame time, thread CPU {v['cpu_ms']:7.2f} ms")
    threads = r.get("intra_op_threads") or {}
    if threads:
        names = {"bare": "decode + model", "bare_parallel": f"{workers} at once", "hand": "hand loop", "pipeline": "pipeline"}
        lines.append(f"  pipeline infer workers {workers}; intra-op threads per session: "
                     + ", ".join(f"{names[k]} {v if v else 'provider default'}" for k, v in threads.items() if k in fps)
                     + (f"; OpenCV threads {r['opencv_threads']} (all)" if "opencv_threads" in r else "")
                     + (f"; pre/post kernels {r['kernels']}" if "kernels" in r else ""))
    start, end = r["load_average"]["start"], r["load_average"]["end"]
    lines.append(f"  machine        {r['machine']['cpu']}, {r['machine']['cores']} cores; load average "
                 f"{start[0]:.2f} at start, {end[0]:.2f} at end")
    return "\n".join(lines)
