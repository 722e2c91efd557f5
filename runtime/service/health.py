"""Health and metrics over HTTP on loopback only: stdlib ``http.server`` in a thread.

    GET /healthz   JSON status; 200 when frames are being enhanced, 503 when the daemon is starting,
                   stopping, passing frames through (fail-safe) or has produced no frame for
                   ``stale_after_s`` seconds
    GET /metrics   Prometheus text exposition format 0.0.4

The server binds a loopback address only: the endpoint says what the device is doing and is not
meant for the network (put a reverse proxy in front when a fleet needs it).
"""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from sonoedge.runtime.errors import InputError

LOOPBACK_NAMES = ("localhost",)


def check_loopback(host: str) -> None:
    """InputError unless ``host`` is a loopback address (127.0.0.0/8, ::1 or localhost)."""
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise InputError(f"health.host '{host}' is not a loopback address; the health endpoint listens on "
                     "127.0.0.1 or ::1 only (use a reverse proxy to expose it)")


def resident_memory_bytes() -> int:
    """Resident set size of this process from /proc/self/status (0 where /proc is absent)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def prometheus_text(snapshot: dict[str, Any], info: dict[str, Any]) -> str:
    """The pipeline snapshot and daemon info as Prometheus metrics (names prefixed ``sonoedge_``)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP sonoedge_{name} {help_text}")
        lines.append(f"# TYPE sonoedge_{name} {kind}")
        for labels, value in samples:
            lines.append(f"sonoedge_{name}{labels} {float(value):.9g}")

    metric("frames_in_total", "counter", "Frames taken from the source.", [("", snapshot["frames_in"])])
    metric("frames_out_total", "counter", "Frames handed to the sink.", [("", snapshot["frames_out"])])
    metric("frames_dropped_total", "counter", "Frames dropped, by reason.",
           [(f'{{reason="{k}"}}', v) for k, v in sorted(snapshot["dropped"].items())] or [('{reason="overload"}', 0)])
    metric("frames_enhanced_total", "counter", "Frames whose imaging region went through the model.", [("", snapshot["enhanced"])])
    metric("frames_passthrough_total", "counter", "Frames passed through unenhanced (fail-safe).", [("", snapshot["passthrough"])])
    metric("source_restarts_total", "counter", "Source reopen attempts after a failure.", [("", snapshot["source_restarts"])])
    metric("fps", "gauge", "Frames out per second since the stream started.", [("", snapshot["fps"])])
    samples = []
    for stage, summary in snapshot["latency_ms"].items():
        for q in ("p50", "p95", "p99"):
            samples.append((f'{{stage="{stage}",quantile="0.{q[1:]}"}}', summary[q] / 1000))
    metric("latency_seconds", "summary", "Latency per stage and end to end over the last 4096 frames.", samples)
    metric("latency_max_seconds", "gauge", "Largest latency per stage over the last 4096 frames.",
           [(f'{{stage="{s}"}}', v["max"] / 1000) for s, v in snapshot["latency_ms"].items()])
    metric("passthrough_active", "gauge", "1 while the fail-safe passes frames through unenhanced.", [("", info.get("passthrough_active", 0))])
    metric("reloads_total", "counter", "Bundle reloads (SIGHUP), by result.",
           [(f'{{result="{k}"}}', v) for k, v in sorted(info.get("reloads", {}).items())] or [('{result="ok"}', 0)])
    metric("resident_memory_bytes", "gauge", "Resident set size of the daemon.", [("", resident_memory_bytes())])
    metric("uptime_seconds", "gauge", "Seconds since the daemon started.", [("", info.get("uptime_s", 0))])
    model = info.get("model", {})
    labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(model.items()))
    metric("model_info", "gauge", "The model being served.", [(f"{{{labels}}}", 1)])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class HealthServer:
    """Serves ``status()`` (dict with ``healthy``) and ``metrics()`` (text) on a loopback port."""

    def __init__(self, host: str, port: int, status: Callable[[], dict[str, Any]], metrics: Callable[[], str]):
        check_loopback(host)
        self.status, self.metrics = status, metrics
        handler = self._handler()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.server = Server((host, port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> "HealthServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status = outer.status()
                    self._send(200 if status.get("healthy") else 503, "application/json", json.dumps(status) + "\n")
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", outer.metrics())
                else:
                    self._send(404, "text/plain", "not found: try /healthz or /metrics\n")

            def _send(self, code: int, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # requests are not worth a log line each
                return

        return Handler


__all__ = ["HealthServer", "check_loopback", "prometheus_text", "resident_memory_bytes"]
