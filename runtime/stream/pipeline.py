"""The pipelined stream: capture -> prepare -> infer -> finish -> sink.

Stages hand frames on through small bounded queues, so capture, pre-processing, inference,
post-processing and the sink overlap. Two thread layouts (``PipelineConfig.threads``):

- ``3`` (default): capture + prepare | infer | finish + sink. Prepare (about 0.4 ms a frame) and
  finish (about 0.5 ms) are short next to inference, so a thread of their own buys no overlap that
  the neighbouring thread does not already give, and costs two more queue hand-offs per frame
  (condition wake-ups, GIL hand-overs, the frame's pixels moving between cores): measured on a
  2-core CPU, the 5-thread layout used 1-5 % more process CPU per frame than this one
  (docs/benchmarks/runtime.md, section 0).
- ``5``: one thread per step, for a sink or source slow enough to be worth its own thread.
- ``2``: capture | prepare + infer + finish + sink: only reading and decoding run beside the model,
  so prepare and finish never take a core from ONNX Runtime's intra-op threads while it computes
  (on a CPU whose every core runs the model, that contention costs more CPU than the overlap
  saves; docs/benchmarks/runtime.md, section 0, second pass), and one hand-over per frame.

Frame-parallel inference (``PipelineConfig.infer_workers`` = N > 1, layouts 3 and 5): N infer
threads take frames from the one queue and run the model on up to N frames at once; a reorder
step hands them on in capture order, so the sink sees the stream's order whatever finishes first.
On a CPU this beats one call at a time with every core in ONNX Runtime's intra-op pool: a session
with one intra-op thread per worker wakes no pool threads per operator and never waits for the
slowest split, so each core runs whole operators. Measured on 2 cores (docs/benchmarks/runtime.md,
section 0, third pass; 6 clips x guard on/off): two decode + model loops at once with 1 intra-op
thread each gave 1.23-1.51x the fps of one loop with 2 threads, at 0.86-1.04x its CPU per frame
(lower in 11 of 12 runs). The model must then be loaded with
``threads = cores / N`` (:func:`frame_parallel_plan` chooses both for a blocking run on a CPU);
latency per frame is one single-thread call, so a live stream keeps ``infer_workers = 1``.

Two queue policies:

- ``live`` (a probe, a replayed clip, a camera): under overload the newest frame wins: a full queue
  drops its OLDEST frame and counts the drop, so the display never lags behind the probe.
- ``blocking`` (enhancing a file): a full queue makes the producer wait; nothing is dropped
  (:class:`HandOff`, lighter than the live mode's :class:`FrameQueue`).

Frame accounting holds at every moment the pipeline is idle, and always after :meth:`Pipeline.run`
returns: ``frames_in == frames_out + dropped`` where ``dropped`` sums the reasons (``overload``,
``malformed``, ``sink_error``, ``error`` for a bug in a stage, ``shutdown`` for stale frames of a live
stream at stop). A malformed frame is counted and skipped, never fatal; a failure
elsewhere in pre/post-processing sends the input frame on unenhanced (passthrough), so the
clinician never gets a black or frozen image.

Latency per stage and end to end (capture to sink written) is kept in fixed-size rings (no growth
over days of running) and summarised as p50/p95/p99/max in milliseconds; ``capture`` is the time
the source takes to hand over a frame (reading and decoding a file, or waiting for a live frame).
Each stage's thread CPU time is summed too (``cpu_ms_per_frame``): the work of that step alone
(ONNX Runtime's own worker threads are not in the ``infer`` figure, only in the process's). Each
pipeline thread's whole CPU time (``thread_cpu_ms_per_frame``, per thread, once it has ended) also
holds what no step counts: queue hand-offs, waits, the stats; its excess over the steps it runs is
the pipeline's own machinery.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.stream.base import Sink, Source
from sonoedge.runtime.stream.enhancer import Enhancer, Job, MalformedFrame

log = logging.getLogger("sonoedge.runtime.stream.pipeline")

STAGES = ("capture", "prepare", "infer", "finish", "sink")
THREAD_LAYOUTS = (2, 3, 5)  # threads per pipeline (PipelineConfig.threads)
_END = object()  # end-of-stream marker, never dropped
LATENCY_WINDOW = 4096  # samples kept per stage for the percentiles (fixed memory)
# A source faster than the pipeline (an unpaced in-memory loop, a replay at 1000 fps) would spin
# capture-and-drop under the GIL and starve the stages; after a drop the capture thread sleeps this
# long, far below any probe's frame period (>= 10 ms), so it costs a real source nothing.
OVERLOAD_YIELD_S = 0.001
LOG_EVERY_S = 5.0  # per-frame problems (malformed frames, sink errors) are logged at most this often per kind


class _Throttle:
    """Logs a per-frame event at most once every ``period`` seconds per event name, with the
    number of occurrences suppressed since the last line (a broken probe at 30 fps must not flood
    the journal). The counters in :class:`Stats` still count every frame."""

    def __init__(self, period: float = LOG_EVERY_S):
        self.period = period
        self.last: dict[str, float] = {}
        self.suppressed: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, level: int, msg: str, event: str, **fields: Any) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(event, -1e18) < self.period:
                self.suppressed[event] += 1
                return
            self.last[event] = now
            fields["suppressed"] = self.suppressed.pop(event, 0)
        log.log(level, msg, extra={"event": event, **fields})


@dataclasses.dataclass
class PipelineConfig:
    mode: str = "auto"  # auto (live sources drop, files block) | live | blocking
    queue_size: int = 2  # frames per inter-stage queue: small keeps latency low
    on_end: str = "stop"  # what the end of a source means: stop | restart (a probe that reconnects)
    restart_backoff_s: float = 0.5  # first wait before reopening a failed source; doubles
    restart_backoff_max_s: float = 10.0
    max_restarts: int = 10  # restarts allowed within restart_window_s (rate limit) before giving up
    restart_window_s: float = 60.0
    threads: int = 3  # 3: capture+prepare | infer | finish+sink; 2: capture | the rest; 5: one thread per step (module doc)
    infer_workers: int = 1  # model calls at once (layouts 3 and 5; module doc); pair with enhancer.threads = cores / N

    def __post_init__(self) -> None:
        if self.threads not in THREAD_LAYOUTS:
            raise InputError(f"pipeline.threads must be one of {', '.join(map(str, THREAD_LAYOUTS))}, got {self.threads}")
        check_infer_workers(self.infer_workers, self.threads)


MAX_INFER_WORKERS = 16


def check_infer_workers(value: Any, layout: int = 3) -> None:
    """InputError naming ``pipeline.infer_workers`` unless it is a whole number from 1 to 16, and 1
    with the 2-thread layout (whose one thread runs the model between prepare and finish)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INFER_WORKERS:
        raise InputError(f"pipeline.infer_workers = {value!r} must be a whole number from 1 to {MAX_INFER_WORKERS}")
    if value > 1 and layout == 2:
        raise InputError(f"pipeline.infer_workers = {value} needs pipeline.threads 3 or 5 (the 2-thread layout runs the "
                         "model in its one stage thread)")


def frame_parallel_plan(cpu_only: bool, threads: int, live: bool, cores: int | None = None) -> tuple[int, int]:
    """(infer_workers, intra-op threads per session) for a run: two model calls at once with half the
    cores each for a blocking run (files, benchmarks) on a CPU of at least 2 cores whose intra-op
    threads are left to auto (``threads`` 0); otherwise one call at a time with ``threads`` as set
    (a GPU runs one call at a time best; a live stream wants the lowest latency per frame; a user's
    explicit thread count is kept). Module doc for the measurement behind it."""
    if cores is None:
        from sonoedge.runtime.backends.onnxruntime import physical_cores

        cores = physical_cores()
    if not cpu_only or live or threads != 0 or cores < 2:
        return 1, threads
    return 2, cores // 2


class Ring:
    """The last ``size`` float samples (fixed memory), plus the count and sum of every sample."""

    def __init__(self, size: int = LATENCY_WINDOW):
        self.data = np.zeros(size, np.float64)
        self.n = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.data[self.n % len(self.data)] = value
        self.n += 1
        self.total += value

    def summary(self) -> dict[str, float]:
        values = self.data[: min(self.n, len(self.data))]
        if values.size == 0:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0, "count": 0, "sum": 0.0}
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1000
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max() * 1000),
                "mean": float(values.mean() * 1000), "count": int(self.n), "sum": self.total * 1000}


class Stats:
    """Counters and latency rings, safe to read from the health thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0
        self.enhanced = 0
        self.passthrough = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.source_restarts = 0
        self.latency = {name: Ring() for name in (*STAGES, "end_to_end")}
        self.cpu_s = dict.fromkeys(STAGES, 0.0)  # thread CPU seconds per stage (each written by its own thread)
        self.thread_cpu_s: dict[str, float] = {}  # pipeline thread -> its whole CPU seconds, written as it ends
        self.last_out = 0.0
        self.first_why: dict[str, str] = {}  # drop or passthrough kind -> the first frame's reason (bounded)

    def drop(self, reason: str, n: int = 1, why: str = "") -> None:
        with self.lock:
            self.dropped[reason] += n
            if why:
                self.first_why.setdefault(reason, why)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            dropped = sum(self.dropped.values())
            return {
                "frames_in": self.frames_in, "frames_out": self.frames_out, "frames_dropped": dropped,
                "dropped": dict(self.dropped), "enhanced": self.enhanced, "passthrough": self.passthrough,
                "in_flight": self.frames_in - self.frames_out - dropped, "source_restarts": self.source_restarts,
                "first_reasons": dict(self.first_why),
                "elapsed_s": elapsed, "fps": self.frames_out / elapsed,
                "latency_ms": {k: r.summary() for k, r in self.latency.items()},
                "cpu_ms_per_frame": {k: 1000 * v / max(self.latency[k].n, 1) for k, v in self.cpu_s.items()},
                "thread_cpu_ms_per_frame": {k: 1000 * v / max(self.frames_in, 1) for k, v in self.thread_cpu_s.items()},
            }


class FrameQueue:
    """A bounded queue; ``put`` blocks (blocking) or drops the oldest (live) when full."""

    def __init__(self, size: int, drop_oldest: bool, on_drop: Callable[[Any], None], stop: threading.Event):
        self.items: collections.deque = collections.deque()
        self.size = max(1, size)
        self.drop_oldest = drop_oldest
        self.on_drop = on_drop
        self.stop = stop
        self.cond = threading.Condition()

    def put(self, item: Any, force: bool = False) -> bool:
        """Enqueue; the end marker (``force``) always gets in, waiting for room if needed.
        Returns True when an older frame was dropped to make room."""
        dropped = False
        with self.cond:
            while len(self.items) >= self.size:
                if self.drop_oldest and not force:
                    dropped = self._drop_one() is not None
                    if dropped:
                        break
                self.cond.wait(0.05)
            self.items.append(item)
            self.cond.notify_all()
        return dropped

    def _drop_one(self) -> Any:
        for i, item in enumerate(self.items):
            if item is not _END:
                del self.items[i]
                self.on_drop(item)
                return item
        return None

    def clear(self, on_drop: Callable[[Any], None]) -> None:
        """Drop every queued frame (the end marker stays)."""
        with self.cond:
            kept = [item for item in self.items if item is _END]
            for item in self.items:
                if item is not _END:
                    on_drop(item)
            self.items = collections.deque(kept)
            self.cond.notify_all()

    def get(self) -> Any:
        with self.cond:
            while not self.items:
                self.cond.wait(0.05)
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def __len__(self) -> int:
        return len(self.items)


class HandOff:
    """The blocking mode's bounded queue (a full queue makes the producer wait; nothing is dropped),
    with :class:`FrameQueue`'s interface, built on two C-level ``queue.SimpleQueue``: the items and
    the free places. A hand-over is one lock operation on each side, no Python condition variable,
    waiter list or timed wake-up (docs/benchmarks/runtime.md, section 0: a few hundredths of a ms
    of thread CPU per frame)."""

    def __init__(self, size: int):
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.free: queue.SimpleQueue = queue.SimpleQueue()  # one token per free place
        for _ in range(max(1, size)):
            self.free.put(None)

    def put(self, item: Any, force: bool = False) -> bool:
        """Enqueue, waiting for a free place (the end marker too); never drops, so returns False."""
        self.free.get()
        self.items.put(item)
        return False

    def get(self) -> Any:
        item = self.items.get()
        self.free.put(None)
        return item

    def clear(self, on_drop: Callable[[Any], None]) -> None:
        """Drop every queued frame (the end marker stays, still holding its place)."""
        ends = 0
        while True:
            try:
                item = self.items.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                ends += 1
            else:
                on_drop(item)
                self.free.put(None)
        for _ in range(ends):
            self.items.put(_END)

    def __len__(self) -> int:
        return self.items.qsize()


@dataclasses.dataclass
class _Item:
    """What travels between stages: the job plus the pipeline's own timing."""

    frame: Frame
    t_in: float  # perf_counter at capture
    owned: bool = False  # the source gave the frame's pixels away (Source.owns_frames): finish may paste into them
    seq: int = 0  # order taken by the infer workers (frame-parallel inference hands frames on in this order)
    job: Job | None = None
    out: Frame | None = None


class Pipeline:
    """Runs a source through an enhancer into a sink until the source ends or :meth:`stop`.

    ``source_factory`` makes (and may remake, after a failure) the source; the pipeline opens and
    closes it. The sink is opened by the caller (so a daemon can keep one sink across restarts).
    ``on_frame`` (optional) sees every output frame after the sink.
    """

    def __init__(self, source_factory: Callable[[], Source], enhancer: Enhancer, sink: Sink,
                 cfg: PipelineConfig | None = None, stop: threading.Event | None = None,
                 on_frame: Callable[[Frame], None] | None = None):
        self.source_factory = source_factory
        self.enhancer = enhancer
        self.sink = sink
        self.cfg = cfg or PipelineConfig()
        self.stop_event = stop or threading.Event()
        self.on_frame = on_frame
        self.stats = Stats()
        self.error: BaseException | None = None
        self.live: bool | None = None
        self.threads: list[threading.Thread] = []
        self.queues: list[FrameQueue | HandOff] = []
        self.say = _Throttle()
        self.source: Source | None = None  # the one capture reads now (replaced on restart)

    # -- public ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run to the end (or stop) and return the stats snapshot. Raises what killed the source.

        An interrupt (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the CLI) stops capture,
        drops the queued frames and joins every stage before it propagates, so no stage thread (and
        no native code it runs: OpenCV, ONNX Runtime) is still writing when the caller's sink is
        aborted or the interpreter exits."""
        self.start()
        try:
            self.join()
        except BaseException:
            self.halt()
            raise
        if self.error is not None:
            raise self.error
        return self.stats.snapshot()

    def halt(self) -> None:
        """Stop now, whatever the mode: drop every queued frame (``shutdown``) and join the stages;
        a second interrupt while they finish their current frame does not cut the join short."""
        self.stop_event.set()
        if self.source is not None:
            self.source.interrupt()
        for q in self.queues:
            q.clear(lambda item: self.stats.drop("shutdown"))
        while True:
            try:
                if self.join(timeout=0.2):
                    return
                for q in self.queues:  # frames a stage handed on after the first clear
                    q.clear(lambda item: self.stats.drop("shutdown"))
            except KeyboardInterrupt:
                continue

    def start(self) -> None:
        """Open the source and start the stages. A live source that cannot be opened yet (a probe
        not plugged in, a stream not up) is retried by the supervisor like one that failed later;
        a file that cannot be opened is an error now."""
        source = self.source_factory()
        try:
            source.open()
        except Exception as exc:
            if not getattr(source, "live", False):
                raise
            log.error("source cannot be opened; retrying with backoff",
                      extra={"event": "source_failed", "source": source.uri, "error": str(exc)})
            source = _FailedSource(source.uri, exc)
        mode = self.cfg.mode
        self.live = getattr(source, "live", False) if mode == "auto" else mode == "live"
        layout = self.cfg.threads
        self.queues = [FrameQueue(self.cfg.queue_size, True, self._dropped, self.stop_event) if self.live
                       else HandOff(self.cfg.queue_size) for _ in range({2: 1, 3: 2, 5: 4}[layout])]
        if layout == 2:  # capture | prepare+infer+finish+sink (module doc)
            self.threads = [
                threading.Thread(target=self._capture, args=(source, self.queues[0]), name="capture", daemon=True),
                threading.Thread(target=self._sink, args=(self.queues[0], True, True), name="sink", daemon=True),
            ]
        elif layout == 3:  # capture+prepare | infer | finish+sink (module doc)
            q_infer, q_sink = self.queues
            self.threads = [
                threading.Thread(target=self._capture, args=(source, q_infer, True), name="capture", daemon=True),
                *self._infer_threads(q_infer, q_sink),
                threading.Thread(target=self._sink, args=(q_sink, True), name="sink", daemon=True),
            ]
        else:
            q_prep, q_infer, q_finish, q_sink = self.queues
            self.threads = [
                threading.Thread(target=self._capture, args=(source, q_prep), name="capture", daemon=True),
                threading.Thread(target=self._stage, args=(q_prep, q_infer, self._prepare, "prepare"), name="prepare", daemon=True),
                *self._infer_threads(q_infer, q_finish),
                threading.Thread(target=self._stage, args=(q_finish, q_sink, self._finish, "finish"), name="finish", daemon=True),
                threading.Thread(target=self._sink, args=(q_sink,), name="sink", daemon=True),
            ]
        self.stats.started = time.monotonic()
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        """Stop capturing. Blocking mode: every frame inside drains to the sink. Live mode: frames
        still waiting in the queues are stale, so they are dropped (counted as ``shutdown``) and only
        the frames already inside a stage finish, which bounds the stop time by one frame per stage."""
        self.stop_event.set()
        if self.source is not None:
            self.source.interrupt()  # an idle live source (a probe that sends nothing) returns now
        if self.live:
            for q in self.queues:
                q.clear(lambda item: self.stats.drop("shutdown"))

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self.threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    # -- stages ------------------------------------------------------------------------------
    def _dropped(self, item: Any) -> None:
        self.stats.drop("overload")

    def _capture(self, source: Source, out: FrameQueue | HandOff, prepare: bool = False) -> None:
        restarts: collections.deque[float] = collections.deque()
        backoff = self.cfg.restart_backoff_s
        ring = self.stats.latency["capture"]
        try:
            while not self.stop_event.is_set():
                self.source = source
                try:
                    frames = self._frames(source)
                    owned = bool(getattr(source, "owns_frames", False))
                    while True:
                        t0, c0 = time.perf_counter(), time.thread_time()
                        frame = next(frames, _END)  # the source reads and decodes here, in this thread
                        if frame is _END:
                            break
                        ring.add(time.perf_counter() - t0)
                        self.stats.cpu_s["capture"] += time.thread_time() - c0
                        if self.stop_event.is_set():
                            break
                        with self.stats.lock:
                            self.stats.frames_in += 1
                        item = _Item(frame, time.perf_counter(), owned)
                        if prepare and not self._step(self._prepare, item, "prepare"):
                            continue
                        if out.put(item):
                            time.sleep(OVERLOAD_YIELD_S)  # overloaded: let the stages have the GIL
                        backoff = self.cfg.restart_backoff_s
                    ended = "end of stream"
                except Exception as exc:  # a source that fails (a camera unplugged, a stream cut)
                    ended = f"{type(exc).__name__}: {exc}"
                    log.error("source failed", extra={"event": "source_failed", "source": source.uri, "error": ended})
                    if self.cfg.on_end == "stop" and not getattr(source, "live", False):
                        raise
                finally:
                    source.close()
                if self.stop_event.is_set() or (self.cfg.on_end == "stop" and ended == "end of stream"):
                    break
                source = self._restart(source, restarts, backoff, ended)
                backoff = min(backoff * 2, self.cfg.restart_backoff_max_s)
                if source is None:
                    break
        except BaseException as exc:
            self.error = exc
        finally:
            out.put(_END, force=True)
            self.stats.thread_cpu_s["capture"] = time.thread_time()  # this thread's whole life

    def _frames(self, source: Source) -> Iterator[Frame]:
        return iter(source)

    def _restart(self, old: Source, restarts: collections.deque, backoff: float, why: str) -> Source | None:
        """Reopen the source after ``backoff`` seconds, at most ``max_restarts`` per window."""
        now = time.monotonic()
        while restarts and now - restarts[0] > self.cfg.restart_window_s:
            restarts.popleft()
        if len(restarts) >= self.cfg.max_restarts:
            self.error = RuntimeError(f"source {old.uri} failed {len(restarts)} times within "
                                      f"{self.cfg.restart_window_s:g} s (last: {why}); giving up")
            log.error("source restart limit reached", extra={"event": "source_gave_up", "source": old.uri, "error": why})
            return None
        log.warning("restarting source", extra={"event": "source_restart", "source": old.uri, "in_s": backoff, "after": why})
        if self.stop_event.wait(backoff):
            return None
        restarts.append(time.monotonic())
        with self.stats.lock:
            self.stats.source_restarts += 1
        try:
            source = self.source_factory()
            source.open()
            return source
        except Exception as exc:
            log.error("source reopen failed", extra={"event": "source_failed", "source": old.uri, "error": str(exc)})
            return _FailedSource(old.uri, exc)

    def _stage(self, inp: FrameQueue | HandOff, out: FrameQueue | HandOff, fn: Callable[[_Item], bool], name: str) -> None:
        try:
            while True:
                item = inp.get()
                if item is _END:
                    break
                if self._step(fn, item, name):
                    out.put(item)
        finally:
            out.put(_END, force=True)
            self.stats.thread_cpu_s[name] = time.thread_time()

    def _infer_threads(self, inp: FrameQueue | HandOff, out: FrameQueue | HandOff) -> list[threading.Thread]:
        n = self.cfg.infer_workers
        if n == 1:
            return [threading.Thread(target=self._stage, args=(inp, out, self._infer, "infer"), name="infer", daemon=True)]
        shared = _Workers(inp, _InOrder(out), n)
        return [threading.Thread(target=self._infer_worker, args=(shared, f"infer{i}"), name=f"infer{i}", daemon=True)
                for i in range(n)]

    def _infer_worker(self, shared: "_Workers", name: str) -> None:
        """One of ``infer_workers`` threads: take the next frame (numbered as taken), run the model,
        hand it to the reorder step; the last worker to see the end marker passes it on."""
        try:
            while True:
                item = shared.take()
                if item is _END:
                    break
                shared.order.put(item, self._step(self._infer, item, "infer"))
        finally:
            shared.done()
            self.stats.thread_cpu_s[name] = time.thread_time()

    def _step(self, fn: Callable[[_Item], bool], item: _Item, name: str) -> bool:
        """Run one step on ``item``, timed (wall and thread CPU) under its name; False: the frame
        goes no further (malformed, or a bug in the step, counted as ``error``)."""
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            keep = fn(item)
        except Exception as exc:  # a bug in a stage: count the frame, keep the stream alive
            self.stats.drop("error")
            self.say(logging.ERROR, "stage failed", "stage_error", stage=name,
                     frame_id=item.frame.frame_id, error=repr(exc))
            return False
        cpu = time.thread_time() - c0
        with self.stats.lock:  # frame-parallel inference: several threads add to one stage's figures
            self.stats.latency[name].add(time.perf_counter() - t0)
            self.stats.cpu_s[name] += cpu
        return keep

    def _prepare(self, item: _Item) -> bool:
        try:
            item.job = self.enhancer.prepare(item.frame)
        except MalformedFrame as exc:
            self.stats.drop("malformed", why=str(exc))
            self.say(logging.WARNING, "malformed frame skipped", "malformed_frame", frame_id=item.frame.frame_id,
                     error=str(exc))
            return False
        except Exception as exc:  # anything else: this frame goes out as it came
            item.out = self.enhancer.passthrough(item.frame, f"pre-processing failed: {type(exc).__name__}: {exc}")
            self.say(logging.ERROR, "pre-processing failed; frame passed through", "preprocess_failed",
                     frame_id=item.frame.frame_id, error=str(exc))
        return True

    def _infer(self, item: _Item) -> bool:
        if item.job is not None:
            self.enhancer.infer(item.job)
        return True

    def _finish(self, item: _Item) -> bool:
        if item.out is None:
            try:
                item.out = self.enhancer.finish(item.job, in_place=item.owned)
            except Exception as exc:
                item.out = self.enhancer.passthrough(item.frame, f"post-processing failed: {type(exc).__name__}: {exc}")
                self.say(logging.ERROR, "post-processing failed; frame passed through", "postprocess_failed",
                         frame_id=item.frame.frame_id, error=str(exc))
        item.job = None  # release the tensors early
        return True

    def _sink(self, inp: FrameQueue | HandOff, finish: bool = False, serial: bool = False) -> None:
        """Write each frame to the sink; ``finish``: finish it first; ``serial``: prepare, infer and
        finish it first (the 2-thread layout: only capture runs beside the model)."""
        try:
            ring, e2e = self.stats.latency["sink"], self.stats.latency["end_to_end"]
            while True:
                item = inp.get()
                if item is _END:
                    break
                if serial and not (self._step(self._prepare, item, "prepare") and self._step(self._infer, item, "infer")):
                    continue
                if finish and not self._step(self._finish, item, "finish"):
                    continue
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    self.sink.write(item.out)
                except Exception as exc:  # a sink that cannot take a frame: counted, the stream goes on
                    self.stats.drop("sink_error", why=str(exc))
                    self.say(logging.ERROR, "sink write failed", "sink_error", frame_id=item.frame.frame_id, error=str(exc))
                    continue
                t1 = time.perf_counter()
                ring.add(t1 - t0)
                self.stats.cpu_s["sink"] += time.thread_time() - c0
                e2e.add(t1 - item.t_in)
                with self.stats.lock:
                    self.stats.frames_out += 1
                    if item.out.enhanced:
                        self.stats.enhanced += 1
                    if item.out.passthrough:
                        self.stats.passthrough += 1
                        self.stats.first_why.setdefault("passthrough", str(item.out.meta.get("passthrough_reason", "")))
                if self.on_frame is not None:
                    self.on_frame(item.out)
        finally:
            self.stats.thread_cpu_s["sink"] = time.thread_time()  # this thread's whole life


class _InOrder:
    """Hands items on to ``out`` in the order of their ``seq`` (0, 1, 2, ...), whatever order they
    arrive in; an item that goes no further (``keep`` False: a frame a step counted and dropped)
    still takes its turn, so the items after it are not held. Holds at most as many items as there
    are infer workers, less one."""

    def __init__(self, out: FrameQueue | HandOff):
        self.out = out
        self.next = 0
        self.waiting: dict[int, tuple[_Item, bool]] = {}
        self.lock = threading.Lock()

    def put(self, item: _Item, keep: bool) -> None:
        with self.lock:  # forwarding under the lock keeps the order; a full blocking queue waits here
            self.waiting[item.seq] = (item, keep)
            while self.next in self.waiting:
                ready, ok = self.waiting.pop(self.next)
                self.next += 1
                if ok:
                    self.out.put(ready)


class _Workers:
    """What the infer workers share: the input queue (an item is numbered as it is taken, under a
    lock, so the numbers follow the queue's order), the reorder step and the end marker (passed on
    once, by the last worker to stop)."""

    def __init__(self, inp: FrameQueue | HandOff, order: _InOrder, n: int):
        self.inp, self.order, self.left = inp, order, n
        self.seq = 0
        self.lock = threading.Lock()

    def take(self) -> Any:
        with self.lock:
            item = self.inp.get()
            if item is _END:
                self.inp.put(_END, force=True)  # for the next worker (this get freed its place)
                return _END
            item.seq, self.seq = self.seq, self.seq + 1
            return item

    def done(self) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            self.order.out.put(_END, force=True)


class _FailedSource(Source):
    """Stands in for a source whose reopen failed, so the restart loop retries it with backoff."""

    live = True

    def __init__(self, uri: str, exc: Exception):
        super().__init__(uri)
        self.exc = exc

    def __iter__(self) -> Iterator[Frame]:
        raise self.exc


__all__ = ["Pipeline", "PipelineConfig", "Stats", "FrameQueue", "HandOff", "Ring", "THREAD_LAYOUTS",
           "check_infer_workers", "frame_parallel_plan"]
