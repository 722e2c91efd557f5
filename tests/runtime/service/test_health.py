"""The health endpoint stays small whatever its clients do, tells the truth about passthrough, and
speaks the Prometheus summary type in full."""
from __future__ import annotations

import json
import re
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


@pytest.mark.realus
def test_the_structure_guard_is_counted_in_metrics_and_logged_throttled(tmp_path, realus, broken_bundle, served,
                                                                          daemon_config):
    """A model that inverts intensities, served on real frames: every frame goes out unenhanced, the
    guard's counter counts each by reason, /healthz says why, and the log has one line per period."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted((realus / "clips" / "plus_toolkit" / "frames_png").glob("UltrasonixCurvilinear*.png"))[:3]:
        shutil.copy(p, frames / p.name)
    d = served(daemon_config(tmp_path, f"replay://{frames}?fps=30&loop=1", broken_bundle("invert"),
                             enhancer="[enhancer.guard]\nlog_every_s = 60.0"))
    h = d.wait_health(lambda code, h: h.get("passthrough", 0) >= 8)
    code, h = d.health()
    assert code == 503 and h["state"] == "passthrough" and h["failure"].startswith("structure guard")
    metrics = d.get("/metrics")[1]
    tripped = {r: float(re.search(rf'^sonoedge_guard_tripped_total{{reason="{r}"}} (\S+)$', metrics, re.M).group(1))
               for r in ("dark_over_tissue", "bright_over_dark", "decorrelated")}
    assert sum(tripped.values()) >= 8 and h["enhanced"] == 0
    assert d.metric("guard_enabled") == 1 and d.metric("guard_checked_total") >= sum(tripped.values())
    assert d.stop() == 0
    assert d.count("guard_tripped") == 1  # one line per 60 s, however many frames tripped
    assert d.wait_for("guard_tripped")["reason"] in tripped


def test_metrics_list_every_guard_reason_before_any_trip():
    text = prometheus_text(Stats().snapshot(), {"guard": {"enabled": 1, "checked": 3, "tripped": {}}})
    for reason in ("dark_over_tissue", "bright_over_dark", "decorrelated"):
        assert f'sonoedge_guard_tripped_total{{reason="{reason}"}} 0' in text
    assert "sonoedge_guard_checked_total 3" in text
