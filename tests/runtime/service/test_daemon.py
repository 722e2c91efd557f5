"""The daemon as a SUBPROCESS: serves a clip, /healthz and /metrics, SIGHUP reload (good and corrupt
bundles), a NaN model, truncated frames, SIGTERM within a second, --validate-config."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sonoedge.runtime.readers import probe

TIMEOUT = 20  # seconds any single wait may take before the test fails


@pytest.mark.realus
def test_serves_reloads_survives_a_corrupt_bundle_and_stops(tmp_path, realus, tiny_bundle, bundle_factory, served, daemon_config):
    bundle = tmp_path / "live_bundle"
    shutil.copytree(tiny_bundle, bundle)
    clip = realus / "clips" / "itkpocus" / "sonosite-anon-eye1-video.mp4"
    d = served(daemon_config(tmp_path, f"replay://{clip}?fps=40&loop=1", bundle))
    d.wait_for("first_frame")
    h = d.wait_health(lambda code, h: code == 200 and h["frames_out"] > 5)
    assert h["state"] == "serving" and h["model"] == "tiny-enhance"
    code, metrics = d.get("/metrics")
    assert code == 200 and "sonoedge_frames_in_total" in metrics and 'sonoedge_latency_seconds{stage="infer",quantile="0.99"}' in metrics
    first_sha = h["sha256"]

    # SIGHUP with a new, good bundle in place: swapped
    shutil.rmtree(bundle)
    bundle_factory(bundle, seed=9)
    d.proc.send_signal(signal.SIGHUP)
    reloaded = d.wait_for("reloaded")
    assert reloaded["previous_sha256"] == first_sha and reloaded["sha256"] != first_sha
    assert d.health()[1]["sha256"] == reloaded["sha256"]

    # SIGHUP with a corrupt bundle: refused, the previous model keeps serving
    with open(bundle / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"garbage")
    d.proc.send_signal(signal.SIGHUP)
    failed = d.wait_for("reload_failed")
    assert "does not match its manifest sha256" in failed["error"]
    before = d.health()[1]["frames_out"]
    h = d.wait_health(lambda code, h: code == 200 and h["frames_out"] > before + 5)
    assert h["sha256"] == reloaded["sha256"] and h["reloads"] == {"ok": 1, "failed": 1}

    assert d.stop() == 0
    assert d.stop_s < 1.5  # SIGTERM: drained and gone within about a second (plus interpreter exit)
    stopped = d.wait_for("stopped")
    assert stopped["drained"] and stopped["frames_in"] == stopped["frames_out"] + stopped["frames_dropped"]


def test_nan_model_passes_through_and_reports_unhealthy(tmp_path, nan_bundle, served, daemon_config):
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    import numpy as np

    for i in range(5):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((64, 96), 40 * i, np.uint8))
    cfg = daemon_config(tmp_path, f"replay://{frames}?fps=50&loop=1", nan_bundle)
    d = served(cfg, "enhancer.verify_reference=false", "enhancer.marker=true")
    alarm = d.wait_for("alarm")
    assert "NaN" in alarm["reason"]
    h = d.wait_health(lambda code, h: code == 503 and h["passthrough"] > 5)
    assert h["state"] == "passthrough" and h["enhanced"] == 0
    code, metrics = d.get("/metrics")
    assert "sonoedge_passthrough_active 1" in metrics
    assert d.stop() == 0


@pytest.mark.realus
def test_truncated_frames_are_skipped_and_counted(tmp_path, realus, tiny_bundle, served, daemon_config):
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted((realus / "clips" / "plus_toolkit" / "frames_png").glob("BoneUltrasound_L14_frame00[0-3].png")):
        shutil.copy(p, frames / p.name)
    victim = sorted(frames.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:5000])
    d = served(daemon_config(tmp_path, f"replay://{frames}?fps=40&loop=1", tiny_bundle))
    h = d.wait_health(lambda code, h: h.get("dropped", {}).get("malformed", 0) >= 2 and h["frames_out"] >= 6)
    assert h["state"] == "serving"
    code, metrics = d.get("/metrics")
    assert 'sonoedge_frames_dropped_total{reason="malformed"}' in metrics
    assert d.stop() == 0


@pytest.mark.realus
def test_serves_a_clip_to_a_file_and_exits_at_its_end(tmp_path, realus, tiny_bundle, served, daemon_config):
    clip = realus / "clips" / "plus_toolkit" / "BoneUltrasound_L14.igs.mha"
    out = tmp_path / "out.avi"
    d = served(daemon_config(tmp_path, str(clip), tiny_bundle, sink=str(out), pipeline='mode = "blocking"\non_end = "stop"'))
    assert d.proc.wait(timeout=TIMEOUT) == 0
    stopped = d.wait_for("stopped")
    assert stopped["frames_in"] == stopped["frames_out"] == 21
    assert probe(out).frames == 21


def test_validate_config(tmp_path, tiny_bundle, daemon_config):
    good = daemon_config(tmp_path, "v4l2:///dev/video0", tiny_bundle)
    run = subprocess.run([sys.executable, "-m", "sonoedge", "serve", "--config", str(good), "--validate-config"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "hashes ok" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "sonoedge", "serve", "--config", str(good), "--validate-config",
                          "--set", "health.host=0.0.0.0"], capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode == 2 and "not a loopback address" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    typo = subprocess.run([sys.executable, "-m", "sonoedge", "serve", "--config", str(good), "--validate-config",
                           "--set", "enhancer.precison=fp16"], capture_output=True, text=True, timeout=TIMEOUT)
    assert typo.returncode == 2 and "unknown key(s) precison" in typo.stderr


def test_example_config_in_the_repo_is_valid_apart_from_its_device():
    from sonoedge.runtime.service.daemon import read_config, validate_config

    example = Path(__file__).resolve().parents[3] / "runtime" / "service" / "enhancer.toml"
    cfg = read_config(example)
    assert cfg.source.uri == "v4l2:///dev/video0" and cfg.health.host == "127.0.0.1"
    validate_config(cfg, check_bundle=False)
    unit = (example.parent / "sonoedge-enhancer.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "--validate-config" in unit


def test_infer_workers_in_the_daemon_config_are_checked_naming_the_key():
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.service.daemon import read_config

    example = Path(__file__).resolve().parents[3] / "runtime" / "service" / "enhancer.toml"
    assert read_config(example).pipeline.infer_workers == 1  # live: one call at a time, the lowest latency
    assert read_config(example, ["pipeline.infer_workers=2"]).pipeline.infer_workers == 2
    with pytest.raises(InputError, match="pipeline.infer_workers = 0 must be a whole number from 1 to 16"):
        read_config(example, ["pipeline.infer_workers=0"])
    with pytest.raises(InputError, match="pipeline.infer_workers = 2 needs pipeline.threads 3 or 5"):
        read_config(example, ["pipeline.infer_workers=2", "pipeline.threads=2"])


def test_health_endpoint_is_loopback_only_and_speaks_prometheus():
    import re

    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.service.health import HealthServer, check_loopback, prometheus_text
    from sonoedge.runtime.stream.pipeline import Stats

    for host in ("127.0.0.1", "127.0.0.53", "::1", "localhost"):
        check_loopback(host)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        with pytest.raises(InputError, match="not a loopback address"):
            check_loopback(host)
    stats = Stats()
    stats.frames_in, stats.frames_out = 7, 5
    stats.drop("malformed", 2)
    stats.latency["infer"].add(0.02)
    text = prometheus_text(stats.snapshot(), {"model": {"name": 'a"b'}, "reloads": {"ok": 1}})
    for line in text.splitlines():  # every sample line is `name{labels} value`
        assert line.startswith("#") or re.fullmatch(r'sonoedge_[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+|sonoedge_[a-z_]+(\{[^}]*\})? (nan|inf)', line), line
    assert 'sonoedge_frames_dropped_total{reason="malformed"} 2' in text and 'name="a\\"b"' in text
    server = HealthServer("127.0.0.1", 0, lambda: {"healthy": False, "state": "starting"}, lambda: text).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert err.value.code == 503 and json.loads(err.value.read())["state"] == "starting"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4") and r.read().decode() == text
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()


def test_json_log_lines_carry_the_event_and_extras():
    import logging

    from sonoedge.runtime.service.logs import JsonFormatter

    record = logging.LogRecord("sonoedge.x", logging.ERROR, __file__, 1, "enhancement failed", (), None)
    record.event, record.reason = "alarm", "NaN"
    data = json.loads(JsonFormatter().format(record))
    assert data["event"] == "alarm" and data["reason"] == "NaN" and data["level"] == "error" and data["ts"].endswith("Z")
