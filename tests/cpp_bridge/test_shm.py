"""runtime/stream/shm.py: the shm:// source and sink over the native channel, from Python."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from sonoedge.runtime.errors import InputError, MissingDependencyError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.stream import shm
from sonoedge.runtime.stream.base import SINKS, SOURCES, open_sink, open_source


@pytest.fixture
def bridge():
    try:
        return shm.native()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _frame(frame_id: int, shape=(48, 64), **kw) -> Frame:
    rng = np.random.default_rng(frame_id)
    return Frame(rng.integers(0, 256, shape, dtype=np.uint8), frame_id, time.monotonic(), **kw)


def _next(source, timeout=5.0):
    """The next frame of a live source, read in a thread so a hang fails instead of blocking."""
    box = []
    t = threading.Thread(target=lambda: box.append(next(iter(source), None)), daemon=True)
    t.start()
    t.join(timeout)
    assert box, "no frame within the timeout"
    return box[0]


def test_registered_under_shm():
    assert "shm" in SOURCES and "shm" in SINKS


def test_round_trip_device_to_enhancer_and_back(bridge, channel_name):
    uri = f"shm://{channel_name}?slots=4&max_bytes=20000"
    with open_sink(uri + "&role=client") as device_out, open_source(uri + "&role=client") as device_in, \
            open_source(uri) as enhancer_in, open_sink(uri) as enhancer_out:
        sent = _frame(7)
        device_out.write(sent)
        got = _next(enhancer_in)
        assert got.frame_id == 7 and got.source == uri
        np.testing.assert_array_equal(got.image, sent.image)
        assert got.timestamp == pytest.approx(sent.timestamp, abs=1e-6)  # carried through, same clock

        reply = Frame(255 - got.image, got.frame_id, got.timestamp, enhanced=True)
        enhancer_out.write(reply)
        back = _next(device_in)
        np.testing.assert_array_equal(back.image, reply.image)
        assert back.frame_id == 7 and back.meta["shm_flags"] == bridge.FLAG_ENHANCED

        bgr = _frame(9, shape=(6, 5, 3)).image
        # the device may send BGR (OpenCV order): the enhancer gets RGB, the frame contract
        device_out.attachment.channel.write(bgr, 9, bridge.now_ns(), 0, 100, "bgr")
        np.testing.assert_array_equal(_next(enhancer_in).image, bgr[:, :, ::-1])

        colour = _frame(8, shape=(20, 30, 3), passthrough=True)
        enhancer_out.write(colour)
        back = _next(device_in)
        assert back.image.shape == (20, 30, 3) and back.meta["shm_flags"] == bridge.FLAG_PASSTHROUGH
        np.testing.assert_array_equal(back.image, colour.image)


def test_newest_frame_wins_and_drops_are_counted(bridge, channel_name):
    uri = f"shm://{channel_name}?slots=3&max_bytes=4096"
    with open_sink(uri + "&role=client") as device_out, open_source(uri) as enhancer_in:
        for i in range(10):
            device_out.write(_frame(i))
        assert _next(enhancer_in).frame_id == 9
        stats = enhancer_in.stats()
        assert stats["frames_read"] == 1 and stats["frames_dropped"] == 9


def test_end_of_stream_ends_the_source_and_is_acknowledged_by_the_sink(bridge, channel_name):
    uri = f"shm://{channel_name}?slots=4&max_bytes=4096"
    device_out, device_in = open_sink(uri + "&role=client"), open_source(uri + "&role=client")
    enhancer_in, enhancer_out = open_source(uri), open_sink(uri)
    for s in (device_out, device_in, enhancer_in, enhancer_out):
        s.open()
    try:
        device_out.write(_frame(0))
        assert _next(enhancer_in).frame_id == 0
        device_out.end_stream()
        assert _iter_with_timeout(enhancer_in) == []  # the source ends by itself
        enhancer_out.write(_frame(0, enhanced=True))
        assert _next(device_in).frame_id == 0
        enhancer_in.close()
        enhancer_out.close()  # the device ended its stream: the sink answers with end of stream
        assert _iter_with_timeout(device_in) == []
    finally:
        for s in (device_out, device_in, enhancer_in, enhancer_out):
            s.close()


def _iter_with_timeout(source, timeout=5.0):
    box = []
    t = threading.Thread(target=lambda: box.extend(source), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the source did not end"
    return box


def test_close_from_another_thread_stops_a_waiting_source(bridge, channel_name):
    source = open_source(f"shm://{channel_name}?slots=2&max_bytes=1024&timeout_ms=50")
    source.open()
    done = threading.Event()
    t = threading.Thread(target=lambda: (list(source), done.set()), daemon=True)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    source.close()
    assert done.wait(2.0), "the source kept waiting after close()"
    assert time.monotonic() - t0 < 1.0


def test_device_process_killed_and_restarted_while_the_source_waits(bridge, channel_name, tmp_path):
    uri = f"shm://{channel_name}?slots=4&max_bytes=4096&peer_timeout_ms=500"
    device = tmp_path / "device.py"
    device.write_text(textwrap.dedent(f"""
        import sys, time, numpy as np
        from sonoedge.runtime.frames import Frame
        import sonoedge.runtime.stream.shm  # registers shm://
        from sonoedge.runtime.stream.base import open_sink
        first = int(sys.argv[1])
        with open_sink("{uri}&role=client") as out:
            for i in range(first, first + 100000):
                out.write(Frame(np.full((32, 32), i % 256, np.uint8), i, time.monotonic()))
                time.sleep(0.005)
    """))
    with open_source(uri) as source:
        frames = iter(source)
        procs = []
        try:
            for first in (1000, 2000):  # the device software dies and comes back
                procs.append(subprocess.Popen([sys.executable, str(device), str(first)]))
                got = _next_from(frames)
                assert first <= got.frame_id < first + 1000
                assert (got.image == got.frame_id % 256).all()
                procs[-1].kill()
                procs[-1].wait()
            assert source.stats()["peer_generation"] == 2
        finally:
            for p in procs:
                p.kill()


def _next_from(frames, timeout=20.0):
    box = []
    t = threading.Thread(target=lambda: box.append(next(frames)), daemon=True)
    t.start()
    t.join(timeout)
    assert box, "no frame from the device"
    return box[0]


def test_bad_uris_and_frames_fail_with_one_clear_sentence(bridge, channel_name):
    for uri, words in ((f"shm://{channel_name}?slotz=4", "unknown option(s) slotz"),
                       (f"shm://{channel_name}?slots=four", "slots='four' is not a whole number"),
                       (f"shm://{channel_name}?role=boss", "role='boss'"),
                       ("shm://", "not a channel URI"),
                       ("shm://bad name", "not a channel URI"),
                       (f"shm://{channel_name}?slots=-1", "must not be negative")):
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            open_source(uri)
    with open_sink(f"shm://{channel_name}?slots=2&max_bytes=100&role=client") as sink:
        with pytest.raises(InputError, match="SB_ERR_FRAME_TOO_LARGE.*raise max_bytes"):
            sink.write(_frame(1, shape=(20, 20)))
        with pytest.raises(InputError, match=r"must be uint8 \(H, W\) or \(H, W, 3\)"):
            sink.write(Frame(np.zeros((4, 4), np.float32), 1))
        with pytest.raises(InputError, match="SB_ERR_GEOMETRY_MISMATCH.*same slots and max_bytes"):
            open_source(f"shm://{channel_name}?slots=3&max_bytes=100").open()


def test_a_second_enhancer_on_a_served_channel_is_refused(bridge, channel_name, tmp_path):
    uri = f"shm://{channel_name}?slots=2&max_bytes=1024"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        import sonoedge.runtime.stream.shm  # registers shm://
        from sonoedge.runtime.stream.base import open_source
        with open_source("{uri}") as s:
            print("attached", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "attached"
        with pytest.raises(InputError, match="SB_ERR_ROLE_TAKEN.*another live process"):
            open_source(uri).open()
    finally:
        holder.kill()
        holder.wait()


def test_without_the_native_extension_shm_fails_with_how_to_build_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sonoedge.runtime._bridge", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError) as err:
        open_source("shm://anything").open()
    message = str(err.value)
    assert "native cpp_bridge extension" in message and "not built" in message and "pip install -e ." in message
    assert "\n" not in message
