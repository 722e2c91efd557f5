"""systemd's notify protocol over a real unix datagram socket: READY=1 once the model is loaded and
frames flow, WATCHDOG=1 from the serving loop, STOPPING=1 at SIGTERM; the unit file asks for them."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime.service.notify import notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    yield path, sock
    sock.close()


def test_notify_sends_one_datagram(notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert notify("READY=1", "STATUS=serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")  # outside systemd: nothing, no error
    monkeypatch.setenv("NOTIFY_SOCKET", str(path.parent / "nobody.sock"))
    assert not notify("READY=1")  # a manager that went away is not the daemon's failure


def test_notify_speaks_to_abstract_sockets(monkeypatch):
    name = f"sonoedge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_the_watchdog(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_daemon_notifies_ready_watchdog_and_stopping(tmp_path, tiny_bundle, notify_socket, served, daemon_config):
    path, sock = notify_socket
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "f0.png"), np.full((64, 96), 90, np.uint8))
    d = served(daemon_config(tmp_path, f"replay://{frames}?fps=30&loop=1", tiny_bundle),
               env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})  # WatchdogSec=0.4: a ping every 0.2 s
    messages = []
    t0 = time.monotonic()
    while sum(m == "WATCHDOG=1" for m in messages) < 3:
        messages.append(sock.recv(4096).decode())
        assert time.monotonic() - t0 < 20
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    assert ready < messages.index("WATCHDOG=1")  # READY first: the model is loaded
    assert any(e["event"] == "model_loaded" for e in d.events)
    assert d.stop() == 0
    rest = []
    sock.settimeout(2)
    try:
        while True:
            rest.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    assert "STOPPING=1" in rest


def test_the_unit_file_asks_for_notify_and_a_watchdog():
    unit = (Path(__file__).resolve().parents[3] / "runtime" / "service" / "sonoedge-enhancer.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "NotifyAccess=main" in unit


def test_the_watchdog_goes_unfed_only_when_frames_come_in_and_none_go_out():
    from types import SimpleNamespace

    from sonoedge.runtime.service.daemon import Daemon, DaemonConfig
    from sonoedge.runtime.stream.pipeline import Stats

    daemon = Daemon(DaemonConfig())
    daemon.watchdog_s = 1.0  # WatchdogSec=2
    stats = Stats()
    daemon.pipeline = SimpleNamespace(stats=stats)
    daemon._progress = (0, 0, 0.0)
    assert daemon._progressing(0.0)
    stats.frames_in = 5  # frames arrive, none leaves: a stage is stuck
    assert daemon._progressing(1.5)
    assert not daemon._progressing(2.5)  # two intervals without output: no more pings
    stats.frames_out = 1
    assert daemon._progressing(2.6)  # output moved again
    assert daemon._progressing(60.0)  # an idle source (nothing in) is not a hang
