"""The health endpoint stays small whatever its clients do, tells the truth about passthrough, and
speaks the Prometheus summary type in full."""
from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.service import health
from sonoedge.runtime.service.health import HealthServer, prometheus_text
from sonoedge.runtime.stream.pipeline import Stats


def test_idle_connections_cost_no_threads_and_time_out():
    server = HealthServer("127.0.0.1", 0, lambda: {"healthy": True, "state": "serving"}, lambda: "").start()
    try:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        time.sleep(0.3)
        assert threading.active_count() <= before  # the pool's threads were there already: no thread per connection
        held = idle[0]
        held.settimeout(health.TIMEOUT_S + 3)
        t0 = time.monotonic()
        assert held.recv(1) == b""  # the server hung up on a client that sent nothing
        assert time.monotonic() - t0 < health.TIMEOUT_S + 2.5
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 3 * health.TIMEOUT_S
        while True:  # the workers are free again once the idle connections time out
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
                    assert json.loads(r.read())["state"] == "serving"
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        server.stop()


def test_a_port_in_use_is_one_sentence():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(InputError, match=f"health.port {port} on 127.0.0.1 is in use"):
            HealthServer("127.0.0.1", port, dict, str)


def test_latency_summary_has_sum_and_count():
    stats = Stats()
    for value in (0.010, 0.020, 0.030):
        stats.latency["end_to_end"].add(value)
    text = prometheus_text(stats.snapshot(), {})
    assert 'sonoedge_latency_seconds_sum{stage="end_to_end"} 0.06' in text
    assert 'sonoedge_latency_seconds_count{stage="end_to_end"} 3' in text
    assert 'sonoedge_latency_seconds_count{stage="infer"} 0' in text


def test_healthz_says_passthrough_when_no_frame_is_enhanced(tmp_path, tiny_bundle, rehash, served, daemon_config):
    """Every region larger than the model's size range: frames flow, none enhanced: not "serving"."""
    small = tmp_path / "small_model"
    shutil.copytree(tiny_bundle, small)
    rehash(small, lambda data: data["model"].update(size_range={"min": [16, 16], "opt": [32, 32], "max": [32, 32]}))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((64, 96), 60 + i, np.uint8))
    d = served(daemon_config(tmp_path, f"replay://{frames}?fps=40&loop=1", small, enhancer='region = "full"'))
    h = d.wait_health(lambda code, h: h.get("frames_out", 0) > 5)
    code, h = d.health()
    assert code == 503 and h["state"] == "passthrough" and not h["healthy"]
    assert "larger than the model's maximum 32x32" in h["failure"] and h["enhanced"] == 0
    assert "sonoedge_passthrough_active 1" in d.get("/metrics")[1]
    assert d.stop() == 0
