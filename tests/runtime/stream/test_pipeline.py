"""The pipelined stream: frame accounting (in = out + dropped, always), drop policy, supervision."""
from __future__ import annotations

import itertools
import shutil
import threading
import time

import numpy as np
import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.stream.base import Sink, Source, open_source
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig, Ring
from sonoedge.runtime.stream.sinks import NullSink


@pytest.fixture(scope="module")
def model(tiny_bundle):
    m = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    yield m
    m.close()


class Synthetic(Source):
    """``n`` frames as fast as possible (live) with an optional failure after ``fail_at`` frames."""

    def __init__(self, n=50, live=True, fail_at=None, shape=(64, 64)):
        super().__init__("synthetic://")
        self.n, self.live, self.fail_at, self.shape = n, live, fail_at, shape

    def __iter__(self):
        for i in range(self.n):
            if self.fail_at is not None and i == self.fail_at:
                raise OSError("probe unplugged")
            yield Frame(np.full(self.shape, i % 256, np.uint8), i, source=self.uri)


def _assert_accounting(stats):
    assert stats["frames_in"] == stats["frames_out"] + stats["frames_dropped"], stats
    assert stats["in_flight"] == 0


@pytest.mark.realus
def test_blocking_file_stream_keeps_every_frame_in_order(model, realus):
    clip = realus / "clips" / "plus_toolkit" / "BoneUltrasound_L14.igs.mha"
    seen = []
    p = Pipeline(lambda: open_source(str(clip)), Enhancer(model, EnhancerConfig(region="auto")), NullSink(),
                 PipelineConfig(queue_size=1), on_frame=lambda f: seen.append(f.frame_id))
    stats = p.run()
    assert p.live is False
    assert stats["frames_in"] == stats["frames_out"] == stats["enhanced"] == 21 and stats["frames_dropped"] == 0
    assert seen == list(range(21))
    for stage in ("prepare", "infer", "finish", "sink", "end_to_end"):
        lat = stats["latency_ms"][stage]
        assert lat["count"] == 21 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_live_overload_drops_the_oldest_and_accounts_for_every_frame(model):
    enhancer = Enhancer(model, EnhancerConfig(region="full"))
    real = model.backend.infer

    def slow(x):
        time.sleep(0.004)
        return real(x)

    seen = []
    model.backend.infer = slow
    try:
        p = Pipeline(lambda: Synthetic(n=200), enhancer, NullSink(), PipelineConfig(mode="live", queue_size=2),
                     on_frame=lambda f: seen.append(f.frame_id))
        stats = p.run()
    finally:
        model.backend.infer = real
    _assert_accounting(stats)
    assert stats["frames_in"] == 200
    assert stats["dropped"]["overload"] > 0
    assert seen == sorted(seen) and seen[-1] == 199  # newest frame wins: the last frame always gets out


@pytest.mark.parametrize("mode, queue_size, n", list(itertools.product(["live", "blocking"], [1, 2, 5], [0, 1, 37])))
def test_accounting_holds_for_every_mode_and_queue_size(model, mode, queue_size, n):
    p = Pipeline(lambda: Synthetic(n=n), Enhancer(model, EnhancerConfig(region="full")), NullSink(),
                 PipelineConfig(mode=mode, queue_size=queue_size))
    stats = p.run()
    _assert_accounting(stats)
    assert stats["frames_in"] == n
    if mode == "blocking":
        assert stats["frames_out"] == n


@pytest.mark.realus
def test_truncated_frames_are_counted_and_skipped(model, realus, tmp_path):
    src = sorted((realus / "clips" / "plus_toolkit" / "frames_png").glob("BoneUltrasound_L14_frame00*.png"))
    for p in src:
        shutil.copy(p, tmp_path / p.name)
    for victim in (src[1].name, src[6].name):
        data = (tmp_path / victim).read_bytes()
        (tmp_path / victim).write_bytes(data[: len(data) // 2])
    p = Pipeline(lambda: open_source(str(tmp_path)), Enhancer(model, EnhancerConfig(region="auto")), NullSink())
    stats = p.run()
    _assert_accounting(stats)
    assert stats["frames_in"] == 10 and stats["dropped"] == {"malformed": 2} and stats["frames_out"] == 8


def test_wrong_size_and_dtype_frames_never_stop_the_stream(model):
    class Mixed(Source):
        live = False

        def __iter__(self):
            for i in range(12):
                if i % 4 == 1:
                    yield Frame(np.zeros((64, 64), np.uint16), i)
                elif i % 4 == 2:
                    yield Frame(np.zeros((4, 4), np.uint8), i)
                else:
                    yield Frame(np.full((64, 80), 100, np.uint8), i)

    stats = Pipeline(lambda: Mixed("mixed://"), Enhancer(model, EnhancerConfig(region="full")), NullSink()).run()
    _assert_accounting(stats)
    assert stats["dropped"] == {"malformed": 6} and stats["frames_out"] == 6


@pytest.mark.realus
def test_stop_drains_within_a_second(model, realus):
    folder = realus / "clips" / "plus_toolkit" / "frames_png"
    stop = threading.Event()
    p = Pipeline(lambda: open_source(f"replay://{folder}?fps=60&loop=1"), Enhancer(model, EnhancerConfig(region="full")),
                 NullSink(), stop=stop)
    p.start()
    time.sleep(0.4)
    t0 = time.monotonic()
    p.stop()
    assert p.join(timeout=2.0)
    assert time.monotonic() - t0 < 1.0
    stats = p.stats.snapshot()
    _assert_accounting(stats)
    assert stats["frames_out"] > 5


class Idle(Source):
    """A live source whose device sends nothing: its read blocks until ``interrupt``."""

    live = True

    def __init__(self):
        super().__init__("idle://")
        self.woken = threading.Event()

    def __iter__(self):
        self.woken.wait(30.0)
        return iter(())

    def interrupt(self):
        self.woken.set()


def test_stop_interrupts_a_source_blocked_waiting_for_frames(model):
    source = Idle()
    p = Pipeline(lambda: source, Enhancer(model, EnhancerConfig(region="full")), NullSink(),
                 PipelineConfig(mode="live", on_end="restart"))
    p.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert p.join(timeout=2.0), "capture still blocked in the idle source"
    assert time.monotonic() - t0 < 1.0 and source.woken.is_set()
    _assert_accounting(p.stats.snapshot())


def test_failed_live_source_is_restarted_with_backoff(model):
    opened = []

    def factory():
        opened.append(1)
        return Synthetic(n=10, fail_at=4 if len(opened) == 1 else None)

    cfg = PipelineConfig(mode="blocking", on_end="stop", restart_backoff_s=0.01)
    p = Pipeline(factory, Enhancer(model, EnhancerConfig(region="full")), NullSink(), cfg)
    stats = p.run()
    _assert_accounting(stats)
    assert len(opened) == 2 and stats["source_restarts"] == 1
    assert stats["frames_in"] == 4 + 10


def test_restart_rate_limit_gives_up(model):
    cfg = PipelineConfig(mode="live", on_end="restart", restart_backoff_s=0.001, restart_backoff_max_s=0.002,
                         max_restarts=3, restart_window_s=60)
    p = Pipeline(lambda: Synthetic(n=5, fail_at=2), Enhancer(model, EnhancerConfig(region="full")), NullSink(), cfg)
    with pytest.raises(RuntimeError, match="failed 3 times within 60 s"):
        p.run()
    stats = p.stats.snapshot()
    _assert_accounting(stats)
    assert stats["source_restarts"] == 3 and stats["frames_in"] == 4 * 2


def test_sink_errors_are_counted(model):
    class Flaky(Sink):
        def write(self, frame):
            if frame.frame_id % 3 == 0:
                raise OSError("disk full")

    stats = Pipeline(lambda: Synthetic(n=9, live=False), Enhancer(model, EnhancerConfig(region="full")), Flaky("flaky://")).run()
    _assert_accounting(stats)
    assert stats["dropped"] == {"sink_error": 3} and stats["frames_out"] == 6


def test_nan_model_frames_still_come_out(nan_bundle):
    m = load_model(EnhancerConfig(bundle=str(nan_bundle), verify_reference=False))
    stats = Pipeline(lambda: Synthetic(n=20, live=False), Enhancer(m, EnhancerConfig(region="full")), NullSink()).run()
    _assert_accounting(stats)
    assert stats["frames_out"] == stats["passthrough"] == 20 and stats["enhanced"] == 0
    m.close()


def test_ring_percentiles_use_a_fixed_window():
    ring = Ring(size=100)
    for v in range(1, 1001):
        ring.add(v / 1000)  # seconds
    s = ring.summary()
    assert s["count"] == 1000 and s["max"] == pytest.approx(1000) and s["p50"] == pytest.approx(950.5)
    assert ring.data.size == 100


def test_per_frame_problems_are_logged_at_most_every_few_seconds(model, caplog):
    import logging

    class Broken(Source):
        live = False

        def __iter__(self):
            for i in range(50):
                yield Frame(np.zeros((64, 64), np.uint16), i)

    caplog.set_level(logging.WARNING, logger="sonoedge")
    stats = Pipeline(lambda: Broken("broken://"), Enhancer(model, EnhancerConfig(region="full")), NullSink()).run()
    assert stats["dropped"] == {"malformed": 50}
    lines = [r for r in caplog.records if getattr(r, "event", "") == "malformed_frame"]
    assert len(lines) == 1 and lines[0].suppressed == 0  # 49 more counted, not logged


def test_a_live_source_that_is_not_up_yet_is_retried(model):
    attempts = []

    class NotYet(Synthetic):
        def open(self):
            attempts.append(1)
            if len(attempts) < 3:
                raise OSError("no such device")

    cfg = PipelineConfig(mode="live", on_end="stop", restart_backoff_s=0.01)
    stats = Pipeline(lambda: NotYet(n=5), Enhancer(model, EnhancerConfig(region="full")), NullSink(), cfg).run()
    assert len(attempts) == 3 and stats["source_restarts"] == 2 and stats["frames_in"] == 5
    _assert_accounting(stats)


def test_a_file_that_cannot_be_opened_is_an_error_at_once(model, tmp_path):
    from sonoedge.runtime.errors import InputError

    p = Pipeline(lambda: open_source(str(tmp_path / "missing.mp4")), Enhancer(model, EnhancerConfig(region="full")), NullSink())
    with pytest.raises(InputError, match="missing.mp4 does not exist"):
        p.run()


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_every_thread_layout_keeps_every_frame_in_order_and_times_every_step(model, threads):
    seen = []
    p = Pipeline(lambda: Synthetic(n=30, live=False), Enhancer(model, EnhancerConfig(region="full")), NullSink(),
                 PipelineConfig(threads=threads), on_frame=lambda f: seen.append(f.frame_id))
    stats = p.run()
    assert len(p.threads) == threads
    _assert_accounting(stats)
    assert seen == list(range(30)) and stats["enhanced"] == 30
    for stage in ("capture", "prepare", "infer", "finish", "sink"):
        assert stats["latency_ms"][stage]["count"] == 30
    # a live source faster than the stream: the oldest frames are dropped, every frame accounted for
    live = Pipeline(lambda: Synthetic(n=200, live=True), Enhancer(model, EnhancerConfig(region="full")), NullSink(),
                    PipelineConfig(threads=threads)).run()
    _assert_accounting(live)
    assert live["frames_in"] == 200 and live["frames_out"] >= 1


def test_an_unknown_thread_layout_is_refused():
    from sonoedge.runtime.errors import InputError

    with pytest.raises(InputError, match="pipeline.threads"):
        PipelineConfig(threads=4)


@pytest.mark.realus
def test_file_frames_are_pasted_in_place_and_keep_the_input_outside_the_region(model, realus):
    """A file source owns its decoded frames, so the pipeline pastes into them: the output equals
    the enhancer's copying result, pixels outside the region are the file's, and a tapped source
    (someone else holds the input) is never written into."""
    from sonoedge.runtime.readers import iter_frames
    from sonoedge.runtime.region import detect_region
    from sonoedge.runtime.stream.base import TappedSource

    clip = realus / "clips" / "itkpocus" / "sonosite-anon-eye1-video.mp4"
    inputs = [f for _, f in zip(range(4), iter_frames(clip))]
    mask = detect_region(inputs[0]).mask
    reference = Enhancer(model, EnhancerConfig(region="auto"))
    expected = [reference(Frame(f.copy(), i)).image for i, f in enumerate(inputs)]

    yielded = []

    class FirstFour(Source):
        owns_frames = True
        live = False

        def __iter__(self):
            for i, f in enumerate(inputs):
                yielded.append(f.copy())
                yield Frame(yielded[-1], i, source=self.uri)

    for tapped in (False, True):
        outs, kept = [], []
        yielded.clear()
        source = FirstFour("four://") if not tapped else TappedSource(FirstFour("four://"), lambda f: kept.append(f.image))
        Pipeline(lambda: source, Enhancer(model, EnhancerConfig(region="auto")), NullSink(),
                 PipelineConfig(mode="blocking"), on_frame=lambda f: outs.append(f.image)).run()
        assert len(outs) == 4
        for i, out in enumerate(outs):
            assert np.array_equal(out, expected[i]) and np.array_equal(out[~mask], inputs[i][~mask])
        if not tapped:  # pasted into the source's own arrays
            assert all(o is y for o, y in zip(outs, yielded))
        else:  # the tap's arrays are the inputs, untouched
            assert all(np.array_equal(k, f) for k, f in zip(kept, inputs))
            assert not any(np.shares_memory(k, o) for k, o in zip(kept, outs))


def test_the_blocking_hand_off_waits_when_full_and_clear_keeps_the_end_marker():
    from sonoedge.runtime.stream.pipeline import _END, HandOff

    q = HandOff(2)
    assert q.put("a") is False and q.put("b") is False and len(q) == 2
    third = threading.Thread(target=q.put, args=("c",), daemon=True)
    third.start()
    third.join(0.2)
    assert third.is_alive()  # full: the producer waits, nothing is dropped
    assert q.get() == "a"
    third.join(2)
    assert not third.is_alive() and len(q) == 2
    dropped: list = []
    q.clear(dropped.append)
    assert dropped == ["b", "c"] and len(q) == 0
    q.put("d")
    q.put(_END, force=True)
    q.clear(dropped.append)
    assert dropped[-1] == "d" and len(q) == 1 and q.get() is _END
    q.put("e")
    q.put("f")  # every place was given back: two fit again without waiting
    assert [q.get(), q.get()] == ["e", "f"]


@pytest.mark.parametrize("threads", [3, 5])
@pytest.mark.parametrize("mode", ["blocking", "live"])
def test_frame_parallel_inference_hands_frames_on_in_order_and_the_same(model, threads, mode):
    """Two infer workers, one slowed down on every third frame so frames finish out of order: the
    sink still sees capture order, every frame is the one-worker pipeline's frame, every frame is
    accounted for, and both workers' threads are timed."""
    enhancer = Enhancer(model, EnhancerConfig(region="full"))
    real = model.backend.infer
    calls = itertools.count()

    def uneven(x):
        if next(calls) % 3 == 0:
            time.sleep(0.01)
        return real(x)

    def run(workers):
        seen, images = [], []
        p = Pipeline(lambda: Synthetic(n=40, live=False), enhancer, NullSink(),
                     PipelineConfig(mode=mode, threads=threads, infer_workers=workers, queue_size=4),
                     on_frame=lambda f: (seen.append(f.frame_id), images.append(f.image)))
        return p, p.run(), seen, images

    _, one, seen1, images1 = run(1)
    model.backend.infer = uneven
    try:
        p, two, seen2, images2 = run(2)
    finally:
        model.backend.infer = real
    _assert_accounting(two)
    assert seen2 == sorted(seen2) and len(set(seen2)) == len(seen2)
    if mode == "blocking":
        assert seen1 == seen2 == list(range(40)) and two["enhanced"] == 40
        assert all(np.array_equal(a, b) for a, b in zip(images1, images2))
    assert {"infer0", "infer1"} <= set(two["thread_cpu_ms_per_frame"]) and len(p.threads) == threads + 1
    if mode == "blocking":
        assert two["latency_ms"]["infer"]["count"] == 40


def test_a_frame_whose_inference_step_fails_does_not_hold_the_frames_after_it(model):
    """A bug in the infer step on one frame (counted as ``error``) takes its turn in the reorder
    step: the frames after it still come out, in order."""
    from sonoedge.runtime.stream import pipeline as P

    enhancer = Enhancer(model, EnhancerConfig(region="full"))
    real = enhancer.infer

    def broken(job):
        if job.frame.frame_id == 7:
            raise RuntimeError("a bug in the infer step")
        return real(job)

    enhancer.infer = broken
    seen = []
    stats = P.Pipeline(lambda: Synthetic(n=20, live=False), enhancer, NullSink(),
                       PipelineConfig(mode="blocking", infer_workers=3), on_frame=lambda f: seen.append(f.frame_id)).run()
    _assert_accounting(stats)
    assert seen == [i for i in range(20) if i != 7] and stats["dropped"] == {"error": 1}


@pytest.mark.parametrize("value,layout,message", [(0, 3, "from 1 to 16"), (17, 3, "from 1 to 16"), (True, 3, "whole number"),
                                                  (2.0, 3, "whole number"), (2, 2, "needs pipeline.threads 3 or 5")])
def test_a_bad_infer_workers_value_is_refused_naming_it(value, layout, message):
    from sonoedge.runtime.errors import InputError

    with pytest.raises(InputError, match=f"pipeline.infer_workers.*{message}"):
        PipelineConfig(threads=layout, infer_workers=value)


def test_the_frame_parallel_plan_is_two_calls_with_half_the_cores_only_for_a_blocking_cpu_run_on_auto_threads():
    from sonoedge.runtime.stream.pipeline import frame_parallel_plan

    assert frame_parallel_plan(True, 0, live=False, cores=2) == (2, 1)
    assert frame_parallel_plan(True, 0, live=False, cores=8) == (2, 4)
    assert frame_parallel_plan(True, 0, live=False, cores=1) == (1, 0)
    assert frame_parallel_plan(True, 0, live=True, cores=8) == (1, 0)  # a live stream: lowest latency per frame
    assert frame_parallel_plan(False, 0, live=False, cores=8) == (1, 0)  # a GPU
    assert frame_parallel_plan(True, 3, live=False, cores=8) == (1, 3)  # the user's thread count stands
