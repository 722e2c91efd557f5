"""What start would fail on, --validate-config fails on; and start itself never traces back.

Configs that used to pass validation and then trace back at start (a bad query value in the source
URI, options that are not a table, a warm-up size of 3 values or of 37 GiB, a boolean port, a port
in use) are refused by ``validate_config`` with one sentence; a bad bundle, a port in use or a bad
config at start is one JSON log line and exit status 2.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.service.daemon import read_config, validate_config

TIMEOUT = 30


@pytest.fixture
def busy_port():
    """A loopback port held open (listening) by this test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("override, message", [
    ('source.uri="replay:///tmp/clip.mp4?fps=abc&loop=1"', "could not convert string to float: 'abc'"),
    ("source.options=3", "source.options: expected a table"),
    ("sink.options='fast'", "sink.options: expected a table"),
    ("enhancer.warmup_size=[16, 16, 16]", "expected 2 values"),
    ("enhancer.warmup_size=[100000, 100000]", "warmup_size [100000, 100000] must be"),
    ("enhancer.warmup_size=[0, 64]", "warmup_size [0, 64] must be"),
    ("health.port=true", "health.port: expected int, got True"),
    ("health.port=70000", "health.port = 70000"),
    ("enhancer.threads=1.5", "enhancer.threads: expected int"),
    ("stop_timeout_s=nan", "stop_timeout_s = nan"),
    ("pipeline.queue_size=1000000000", "pipeline.queue_size"),
    ("pipeline.threads=4", "pipeline.threads"),
    ("pipeline.restart_backoff_s=0", "pipeline.restart_backoff_s"),
    ("enhancer.retry_backoff_max_s=0.01", "enhancer.retry_backoff_max_s"),
    ("health.stale_after_s=-1", "health.stale_after_s"),
    ("log.stats_interval_s=inf", "log.stats_interval_s"),
    ("log.level='verbose'", "log.level"),
    ("enhancer.providers=[1]", "enhancer.providers[0]: expected str"),
])
def test_validation_refuses_what_start_would_fail_on(tmp_path, tiny_bundle, daemon_config, override, message):
    config = daemon_config(tmp_path, "v4l2:///dev/video0", tiny_bundle)
    with pytest.raises(InputError) as err:
        validate_config(read_config(config, [override]))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_validation_checks_the_port_is_free_and_the_warmup_fits_the_bundle(tmp_path, tiny_bundle, daemon_config, busy_port):
    config = daemon_config(tmp_path, "v4l2:///dev/video0", tiny_bundle)
    with pytest.raises(InputError, match=f"health.port {busy_port} on 127.0.0.1 is in use"):
        validate_config(read_config(config, [f"health.port={busy_port}"]))
    validate_config(read_config(config, [f"health.port={busy_port}"]), check_port=False)  # at reload: the daemon holds it
    with pytest.raises(SonoedgeError, match="outside the bundle's size range"):
        validate_config(read_config(config, ["enhancer.warmup_size=[4000, 4000]"]))  # tiny: at most 2048
    facts = validate_config(read_config(config, ["enhancer.warmup_size=[64, 96]"]))
    assert any("warm-up 64x96" in fact for fact in facts)


def _serve(config, *overrides: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "sonoedge", "serve", "--config", str(config)]
    for o in overrides:
        args += ["--set", o]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)


def _json_lines(stderr: str) -> list[dict]:
    lines = stderr.strip().splitlines()
    assert lines and all(line.startswith("{") for line in lines), stderr  # no traceback, no stray text
    return [json.loads(line) for line in lines]


def test_start_failures_are_one_json_line_and_exit_2(tmp_path, tiny_bundle, daemon_config, rehash, busy_port):
    import shutil

    bad = tmp_path / "bad_bundle"
    shutil.copytree(tiny_bundle, bad)
    rehash(bad, lambda data: data["model"].update(stride=1))  # passes its hashes, fails at load
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(frames / "f0.png"), np.full((64, 96), 90, np.uint8))
    config = daemon_config(tmp_path, f"replay://{frames}?fps=20&loop=1", bad)

    run = _serve(config)
    assert run.returncode == 2
    failed = [e for e in _json_lines(run.stderr) if e["event"] == "start_failed"]
    assert len(failed) == 1 and "stride" in failed[0]["error"] and failed[0]["bundle"] == str(bad)

    run = _serve(config, f"enhancer.bundle='{tiny_bundle}'", f"health.port={busy_port}")
    assert run.returncode == 2
    assert "is in use" in [e for e in _json_lines(run.stderr) if e["event"] == "start_failed"][0]["error"]

    run = _serve(config, f"source.uri='replay://{frames}?fps=abc'")
    assert run.returncode == 2
    assert "'abc'" in _json_lines(run.stderr)[0]["error"]
