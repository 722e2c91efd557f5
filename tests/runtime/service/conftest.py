"""The daemon as a subprocess, for the service tests: ``served(config, *overrides)`` starts
``sonoedge serve`` and collects its JSON log lines; ``daemon_config(tmp_path, source, bundle, ...)``
writes a config for it."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TIMEOUT = 20  # seconds any single wait may take before the test fails


class Served:
    """A running ``sonoedge serve`` with its JSON log lines collected from stderr."""

    def __init__(self, config: Path, *overrides: str, env: dict[str, str] | None = None):
        args = [sys.executable, "-m", "sonoedge", "serve", "--config", str(config)]
        for o in overrides:
            args += ["--set", o]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=None if env is None else {**os.environ, **env})
        self.events: list[dict] = []
        self.lines: "queue.Queue[dict]" = queue.Queue()
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self.wait_for("health_listening")["port"]

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            self.lines.put(event)

    def wait_for(self, name: str, timeout: float = TIMEOUT) -> dict:
        for e in self.events:
            if e.get("event") == name:
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if e.get("event") == name:
                return e
        raise AssertionError(f"no '{name}' event; rc={self.proc.poll()} log:\n" + "".join(self.raw[-30:]))

    def count(self, name: str) -> int:
        return sum(e.get("event") == name for e in list(self.events))

    def wait_count(self, name: str, n: int, timeout: float = TIMEOUT) -> dict:
        """The ``n``-th event called ``name`` (1-based), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if e.get("event") == name]
            if len(found) >= n:
                return found[n - 1]
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader thread take the last lines
                found = [e for e in list(self.events) if e.get("event") == name]
                if len(found) >= n:
                    return found[n - 1]
                break
            time.sleep(0.02)
        raise AssertionError(f"no {name} #{n}; rc={self.proc.poll()} log:\n" + "".join(self.raw[-30:]))

    def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics, e.g. ``frames_out_total``."""
        import re

        text = self.get("/metrics")[1]
        return float(re.search(rf"^sonoedge_{name} (\S+)$", text, re.M).group(1))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> tuple[int, dict]:
        code, body = self.get("/healthz")
        return code, json.loads(body)

    def wait_health(self, pred, timeout: float = TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, h = self.health()
            if pred(code, h):
                return h
            time.sleep(0.05)
        raise AssertionError(f"health never matched; last {code} {h}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = self.proc.wait(timeout=TIMEOUT)
        self.stop_s = time.monotonic() - t0
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_config(tmp_path: Path, source: str, bundle: Path, sink: str = "null://", enhancer: str = "",
                 **extra: str) -> Path:
    """The daemon's config file for ``source``, ``bundle`` and ``sink``; ``enhancer``: more lines of
    [enhancer]; other keyword arguments: whole sections (``pipeline='mode = "blocking"'``)."""
    lines = [f'[source]\nuri = "{source}"', f'[sink]\nuri = "{sink}"',
             f'[enhancer]\nbundle = "{bundle}"\nretry_backoff_s = 0.05\nretry_backoff_max_s = 0.2\n{enhancer}',
             '[health]\nport = 0\nstale_after_s = 2.0', "[log]\nstats_interval_s = 0.0"]
    for section, body in extra.items():
        lines.append(f"[{section}]\n{body}")
    path = tmp_path / "enhancer.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def daemon_config():
    """``write_config(tmp_path, source, bundle, sink="null://", **sections)``: the config file's path."""
    return write_config


@pytest.fixture
def served():
    started = []

    def start(*args, **kwargs):
        s = Served(*args, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()
