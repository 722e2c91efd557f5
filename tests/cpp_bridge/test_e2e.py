"""End to end: the C example feeds 300 frames of a real clip through `sonoedge serve` over shm://.

play (C, cpp_bridge/examples/play.c, built with ASan + UBSan) writes each frame into the channel and
waits for it to come back; the daemon reads it with the shm:// source, enhances the imaging region
with a bundle and writes it back with the shm:// sink. Every frame sent must be accounted for
(enhanced, passed through, or dropped), come back in order and once, and every pixel outside the
imaging region must be the input's pixel.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from sonoedge.runtime.frames import to_grey
from sonoedge.runtime.readers import iter_frames
from sonoedge.runtime.region import detect_region

pytestmark = [pytest.mark.slow, pytest.mark.realus]

CLIP = Path("clips/itkpocus/butterfly-ocular-phantom.mp4")  # 369 frames, 776x1080, Butterfly iQ with UI
FRAMES = 300
HEADER = re.compile(rb"P5\n# frame_id=(\d+) flags=(\d+)\n(\d+) (\d+)\n255\n")


def _tiny_bundle(root: Path) -> Path:
    """The runtime tests' small real ONNX bundle (tests/conftest.py), fast on any CPU."""
    pytest.importorskip("onnx", reason="the test bundle is written with onnx (the [export] extra)")
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("runtime_test_bundles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_bundle(root)


def _write_pgm_stream(clip: Path, out: Path, count: int) -> list[np.ndarray]:
    frames = []
    with out.open("wb") as f:
        for image in iter_frames(clip):
            grey = np.ascontiguousarray(to_grey(image))
            f.write(b"P5\n%d %d\n255\n" % (grey.shape[1], grey.shape[0]) + grey.tobytes())
            frames.append(grey)
            if len(frames) == count:
                break
    return frames


def _read_pgm_stream(path: Path):
    """(frame_id, flags, image) of each frame play wrote back."""
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        m = HEADER.match(data, pos)
        assert m, f"malformed output PGM at byte {pos}"
        frame_id, flags, w, h = (int(g) for g in m.groups())
        start = m.end()
        yield frame_id, flags, np.frombuffer(data, np.uint8, w * h, start).reshape(h, w)
        pos = start + w * h


def test_play_feeds_300_real_frames_through_sonoedge_serve(native_build, sanitizer_env, realus, tmp_path):
    frames = _write_pgm_stream(realus / CLIP, tmp_path / "clip.pgm", FRAMES)
    assert len(frames) == FRAMES
    h, w = frames[0].shape
    bundle = _tiny_bundle(tmp_path / "bundle")
    name = f"pytest-e2e-{uuid.uuid4().hex[:8]}"
    uri = f"shm://{name}?slots=4&max_bytes={w * h}"
    config = tmp_path / "enhancer.toml"
    config.write_text(
        f'[source]\nuri = "{uri}"\n[sink]\nuri = "{uri}"\n'
        f'[enhancer]\nbundle = "{bundle}"\nregion = "auto"\nthreads = 1\n'
        '[pipeline]\nmode = "live"\non_end = "stop"\n[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')
    daemon = subprocess.Popen([sys.executable, "-m", "sonoedge", "serve", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    play_args = [str(native_build / "play"), "--channel", name, "--input", str(tmp_path / "clip.pgm"), "--slots", "4",
                 "--timeout-ms", "20000"]
    try:
        # The 300 frames in lockstep: the daemon's region tracker detects the region on frame 0.
        play = subprocess.run(play_args + ["--output", str(tmp_path / "back.pgm")],
                              capture_output=True, text=True, env=sanitizer_env, timeout=400)
        # Then a second device session that outruns the daemon (8 frames in flight): frames are
        # dropped, and counted; its end of stream ends the daemon (on_end = "stop").
        rushed = subprocess.run(play_args + ["--frames", "120", "--inflight", "8", "--eos",
                                             "--output", str(tmp_path / "rushed.pgm")],
                                capture_output=True, text=True, env=sanitizer_env, timeout=400)
        _, log = daemon.communicate(timeout=60)  # on_end = "stop": the daemon exits after end of stream
    finally:
        daemon.kill()
        shm = Path("/dev/shm") / f"sonoedge-{name}"
        if shm.exists():
            shm.unlink()
    assert rushed.returncode == 0, rushed.stderr[-3000:]
    assert play.returncode == 0, play.stderr[-3000:]
    assert daemon.returncode == 0, log[-3000:]
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "stopped" for e in events), log[-3000:]

    region = detect_region(frames[0])  # the daemon's tracker detects once, on the first frame it gets
    outside = ~region.mask
    assert 0.05 < outside.mean() < 0.95, "the clip should have UI around a smaller imaging region"
    rushed_counts = _check_session(rushed.stdout, tmp_path / "rushed.pgm", frames, region.mask, sent=120)
    counts = _check_session(play.stdout, tmp_path / "back.pgm", frames, region.mask, sent=FRAMES)
    assert counts["enhanced"] > 0.9 * FRAMES, play.stdout[-2000:]  # lockstep: time for every frame
    assert rushed_counts["received"] > 0


def _check_session(stdout: str, back: Path, frames: list[np.ndarray], mask: np.ndarray, sent: int) -> dict:
    """Every frame sent is received (enhanced or passed through) or dropped, each once, in order;
    pixels outside the imaging region are the input's. Returns play's summary counts."""
    print(stdout.splitlines()[-1])
    summary = {k: int(v) if v.isdigit() else v for k, v in zip(*[iter(stdout.splitlines()[-1].split()[1:])] * 2)}
    assert summary["sent"] == sent
    assert summary["received"] + summary["dropped"] == sent
    assert summary["enhanced"] + summary["passthrough"] == summary["received"]
    ids = []
    for frame_id, flags, image in _read_pgm_stream(back):
        ids.append(frame_id)
        source = frames[frame_id]
        assert image.shape == source.shape
        np.testing.assert_array_equal(image[~mask], source[~mask], err_msg=f"frame {frame_id} outside the region")
        if flags & 1:  # enhanced: the model changed the imaging region
            assert (image[mask] != source[mask]).any(), f"frame {frame_id} flagged enhanced, unchanged"
        else:
            np.testing.assert_array_equal(image, source)  # passed through untouched
    assert len(ids) == summary["received"] and ids == sorted(set(ids)), "frames came back twice or out of order"
    return summary


def test_daemon_outlives_device_restarts_and_crashes_then_stops_cleanly(native_build, sanitizer_env, tmp_path):
    """The device software exits, comes back, is SIGKILLed mid-stream and comes back again; the
    daemon serves each new session without restarting, then stops on SIGTERM and detaches."""
    import signal
    import time

    bundle = _tiny_bundle(tmp_path / "bundle")
    name = f"pytest-restart-{uuid.uuid4().hex[:8]}"
    uri = f"shm://{name}?slots=4&max_bytes={128 * 128}&peer_timeout_ms=500"
    config = tmp_path / "enhancer.toml"
    config.write_text(f'[source]\nuri = "{uri}"\n[sink]\nuri = "{uri}"\n[enhancer]\nbundle = "{bundle}"\nthreads = 1\n'
                      '[health]\nport = 0\n[log]\nstats_interval_s = 0.0\n')
    daemon = subprocess.Popen([sys.executable, "-m", "sonoedge", "serve", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    play = [str(native_build / "play"), "--channel", name, "--width", "128", "--height", "128", "--slots", "4",
            "--quiet", "--timeout-ms", "20000"]
    shm = Path("/dev/shm") / f"sonoedge-{name}"
    try:
        for session in range(2):  # a clean exit, then a new session on the same daemon
            run = subprocess.run(play + ["--phantom", "40"], capture_output=True, text=True, env=sanitizer_env, timeout=120)
            assert run.returncode == 0 and "received 40 " in run.stdout, run.stdout + run.stderr
        crashed = subprocess.Popen(play + ["--phantom", "100000"], stdout=subprocess.PIPE, env=sanitizer_env)
        time.sleep(1.0)
        crashed.kill()  # the device software dies mid-stream
        crashed.wait()
        run = subprocess.run(play + ["--phantom", "40"], capture_output=True, text=True, env=sanitizer_env, timeout=120)
        assert run.returncode == 0 and "received 40 " in run.stdout, run.stdout + run.stderr
        assert daemon.poll() is None, "the daemon exited"
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, log[-3000:]
        assert not shm.exists(), "the channel was not removed after both sides left"
    finally:
        daemon.kill()
        if shm.exists():
            shm.unlink()
