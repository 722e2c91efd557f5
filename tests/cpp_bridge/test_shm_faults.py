"""A forged peer against the shm:// source and the daemon: it writes the channel's header bytes
itself (Python mmap of /dev/shm/sonoedge-NAME) and must never crash or hang the enhancer side.

Each forgery runs in a child process, so a crash shows as a signal exit (SIGFPE, SIGSEGV, SIGBUS)
instead of taking pytest down, and a hang as a timeout.
"""
from __future__ import annotations

import importlib.util
import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from sonoedge.runtime.errors import InputError, MissingDependencyError
from sonoedge.runtime.stream import shm
from sonoedge.runtime.stream.base import open_source

# Byte offsets in the version-1 layout (cpp_bridge/src/layout.hpp): a 448-byte channel header,
# then each ring's slots of a 64-byte slot header and slot_bytes of pixels.
SLOT_COUNT, SLOT_STRIDE, RING_OFFSET = 12, 24, 32  # uint32, uint64, uint64[2]
IN_WRITE_SEQ = 192  # ring "in" (the device writes, the enhancer reads): write_seq, uint64
HEADER_BYTES = 448
SLOT_PAYLOAD = 52  # in a slot header: payload_bytes, uint32

PRELUDE = textwrap.dedent("""
    import json, mmap, os, struct, sys, threading, time
    import numpy as np
    from sonoedge.runtime.errors import SonoedgeError
    from sonoedge.runtime.frames import Frame
    from sonoedge.runtime.stream import shm
    from sonoedge.runtime.stream.base import open_source

    name = sys.argv[1]
    uri = f"shm://{name}?slots=4&max_bytes=4096&timeout_ms=50"
    path = f"/dev/shm/sonoedge-{name}"
    bridge = shm.native()

    def forge(offset, fmt, *values):
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            struct.pack_into(fmt, m, offset, *values)

    def send(device, frame_id):
        device.write(np.full((32, 32), frame_id % 256, np.uint8), frame_id, bridge.now_ns(), 0, 100, "rgb")

    def next_item(frames, timeout=10.0):
        '''("frame", id, meta) or ("error", type, message) or ("hang",): the next thing the source does.'''
        box = []
        def pull():
            try:
                frame = next(frames)
                box.append(("frame", frame.frame_id, {k: str(v) for k, v in frame.meta.items()}))
            except StopIteration:
                box.append(("end",))
            except Exception as exc:
                box.append(("error", type(exc).__name__, str(exc), isinstance(exc, SonoedgeError)))
        t = threading.Thread(target=pull, daemon=True)
        t0 = time.monotonic()
        t.start()
        t.join(timeout)
        return (box[0] if box else ("hang",)), time.monotonic() - t0

    def report(**result):
        print(json.dumps(result), flush=True)
        os._exit(0)  # no interpreter teardown racing a reader thread left in the native code
""")


@pytest.fixture
def bridge():
    try:
        return shm.native()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _run(body: str, name: str, timeout: float = 60) -> dict:
    """Run PRELUDE + body in a child; it must exit normally (not by a signal) and report JSON."""
    try:
        run = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body), name], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the forged peer hung the source for {timeout} s")
    assert run.returncode >= 0, f"the source crashed with {signal.Signals(-run.returncode).name}:\n{run.stderr[-3000:]}"
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_forged_geometry_after_attach_is_ignored(bridge, channel_name):
    result = _run(f"""
        device = bridge.Channel(name, "client", slots=4, max_bytes=4096)
        with open_source(uri) as source:
            frames = iter(source)
            send(device, 1)
            forge({SLOT_COUNT}, "<I", 0)                 # slot count 0: a division by zero
            forge({RING_OFFSET}, "<QQ", 1 << 40, 1 << 41)  # rings far past the end of the object
            forge({SLOT_STRIDE}, "<Q", 1 << 50)
            first, _ = next_item(frames)
            send(device, 2)
            second, _ = next_item(frames)
            report(first=first, second=second, slots=source.stats()["slot_count"])
    """, channel_name)
    assert result["first"][:2] == ["frame", 1] and result["second"][:2] == ["frame", 2]
    assert result["slots"] == 4  # the geometry checked at attach


def test_bogus_write_counter_is_an_error_in_time_not_a_spin(bridge, channel_name):
    result = _run(f"""
        device = bridge.Channel(name, "client", slots=4, max_bytes=4096)
        with open_source(uri) as source:
            frames = iter(source)
            send(device, 1)
            forge({IN_WRITE_SEQ}, "<Q", 1_000_000)  # frame 999999's slot holds frame 0
            item, took = next_item(frames)
            report(item=item, took=took)
    """, channel_name)
    assert result["item"][0] == "error", f"the source did not report the forged counter: {result}"
    _, error_type, message, is_sonoedge_error = result["item"]
    assert is_sonoedge_error and error_type == "InputError", result
    assert "SB_ERR_PROTOCOL" in message and f"/dev/shm/sonoedge-{channel_name}" in message
    assert "\n" not in message
    assert result["took"] < 5.0


def test_forged_frame_sizes_are_skipped_as_malformed(bridge, channel_name):
    slot0 = HEADER_BYTES  # ring "in", slot 0
    result = _run(f"""
        device = bridge.Channel(name, "client", slots=4, max_bytes=4096)
        with open_source(uri) as source:
            frames = iter(source)
            send(device, 0)
            forge({slot0 + SLOT_PAYLOAD}, "<I", 0xFFFFFFFF)  # "-1" bytes of pixels
            bad, _ = next_item(frames)
            send(device, 1)
            good, _ = next_item(frames)
            report(bad=bad, good=good)
    """, channel_name)
    assert result["bad"][0] == "frame" and result["bad"][1] == -1 and "SB_ERR_FRAME_TOO_LARGE" in result["bad"][2]["malformed"]
    assert result["good"][:2] == ["frame", 1]


def test_truncated_segment_is_refused_at_attach_and_reported_after(bridge, channel_name):
    result = _run("""
        device = bridge.Channel(name, "client", slots=4, max_bytes=4096, heartbeat_ms=0)
        full = os.path.getsize(path)
        os.truncate(path, 4096)  # the header claims more than the object holds
        try:
            open_source(uri).open()
            at_attach = "attached"
        except SonoedgeError as exc:
            at_attach = str(exc)
        os.truncate(path, full)  # whole again
        with open_source(uri) as source:
            frames = iter(source)
            os.truncate(path, 0)  # and shrunk to nothing under a waiting reader
            item, took = next_item(frames)
            report(at_attach=at_attach, item=item, took=took)
    """, channel_name)
    assert "SB_ERR_CORRUPT_HEADER" in result["at_attach"], result
    assert result["item"][0] == "error" and "SB_ERR_PROTOCOL" in result["item"][2], result
    assert result["took"] < 5.0


def test_precreated_world_writable_segment_is_refused_naming_it(bridge, channel_name):
    path = Path("/dev/shm") / f"sonoedge-{channel_name}"
    device = bridge.Channel(channel_name, "client", slots=4, max_bytes=4096)  # a well-formed channel...
    try:
        os.chmod(path, 0o666)  # ...that anyone may rewrite
        with pytest.raises(InputError) as err:
            open_source(f"shm://{channel_name}").open()
        message = str(err.value)
        assert "SB_ERR_PERMISSION" in message and str(path) in message and "mode 0666" in message
        assert "\n" not in message
        os.chmod(path, 0o600)
        with open_source(f"shm://{channel_name}") as source:  # private again: attached
            source.open()
    finally:
        device.close()


def test_created_segment_is_mode_0600(bridge, channel_name):
    old = os.umask(0)
    try:
        with open_source(f"shm://{channel_name}?slots=2&max_bytes=64") as source:
            source.open()
            st = os.stat(Path("/dev/shm") / f"sonoedge-{channel_name}")
    finally:
        os.umask(old)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()


# -- the daemon ---------------------------------------------------------------------------------------------

def _tiny_bundle(root: Path) -> Path:
    """The runtime tests' small real ONNX bundle (tests/conftest.py), as test_e2e.py makes it."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("runtime_test_bundles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_bundle(root)


@pytest.mark.slow
def test_daemon_with_a_forging_peer_stops_on_sigterm(bridge, tmp_path):
    """A device that keeps rewriting the write counter: the source reports the protocol error, the
    daemon keeps serving (restarting the source with backoff), and SIGTERM still stops it within a
    few seconds, by exiting, not by a signal."""
    pytest.importorskip("onnx", reason="the test bundle is written with onnx (the [export] extra)")
    bundle = _tiny_bundle(tmp_path / "bundle")
    name = f"pytest-forge-{uuid.uuid4().hex[:8]}"
    uri = f"shm://{name}?slots=4&max_bytes={64 * 64}"
    config = tmp_path / "enhancer.toml"
    config.write_text(f'[source]\nuri = "{uri}"\n[sink]\nuri = "{uri}"\n[enhancer]\nbundle = "{bundle}"\nthreads = 1\n'
                      '[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')
    daemon = subprocess.Popen([sys.executable, "-m", "sonoedge", "serve", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = Path("/dev/shm") / f"sonoedge-{name}"
    stop = threading.Event()
    forger = device = None
    try:
        device = _attach_when_served(bridge, name, daemon)
        device.write(np.zeros((64, 64), np.uint8), 0, bridge.now_ns(), 0, 100, "rgb")

        def forge() -> None:  # the lie comes back faster than the daemon reads
            with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
                for i in range(10**9):
                    if stop.wait(0.005):
                        return
                    struct.pack_into("<Q", m, IN_WRITE_SEQ, 10**6 + 7 * (i % 50))  # ahead of every slot

        forger = threading.Thread(target=forge, daemon=True)
        forger.start()
        time.sleep(2.0)
        assert daemon.poll() is None, "the daemon exited under a forging peer"
        t0 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        stop.set()
        if forger is not None:
            forger.join()
        daemon.kill()
        if device is not None:
            device.close()
        if path.exists():
            path.unlink()
    assert daemon.returncode == 0, f"exit status {daemon.returncode}:\n{log[-3000:]}"
    assert took < 6.0, f"SIGTERM took {took:.1f} s"
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    failures = [e for e in events if e.get("event") == "source_failed"]
    assert failures and "SB_ERR_PROTOCOL" in failures[0]["error"], log[-3000:]
    assert any(e.get("event") == "stopped" for e in events), log[-3000:]


def _attach_when_served(bridge, name: str, daemon: subprocess.Popen, timeout: float = 60.0):
    """The device side, once the daemon has created the channel (it loads its model first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, daemon.communicate()[1][-3000:]
        try:
            return bridge.Channel(name, "client", create=False, peer_timeout_ms=2000)
        except bridge.BridgeError:
            time.sleep(0.1)
    pytest.fail("the daemon did not create the channel")
