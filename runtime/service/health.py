"""Health and metrics over HTTP on loopback only: stdlib ``http.server`` with a small fixed pool.

    GET /healthz   JSON status; 200 when frames are being enhanced, 503 when the daemon is starting,
                   stopping, passing frames through (fail-safe, structure guard or a frame the model cannot take;
                   state "passthrough" with the reason in "failure") or has produced no frame for
                   ``stale_after_s`` seconds
    GET /metrics   Prometheus text exposition format 0.0.4

The server binds a loopback address only: the endpoint says what the device is doing and is not
meant for the network (put a reverse proxy in front when a fleet needs it). It never grows with its
clients: ``WORKERS`` threads answer, each connection gets ``TIMEOUT_S`` to send its request, and
connections beyond the ``BACKLOG`` waiting for a worker are closed at once.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import queue
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.stream.guard import REASONS

LOOPBACK_NAMES = ("localhost",)
WORKERS = 2  # threads answering requests (a scraper and a health check at once)
BACKLOG = 8  # accepted connections waiting for a worker; more are closed at once
TIMEOUT_S = 2.0  # per connection: to send the request and to take the answer


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


def port_error(host: str, port: int, exc: OSError) -> str:
    """One sentence for a health port that cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        return (f"health.port {port} on {host} is in use (another sonoedge serve?); stop that process, "
                "choose another port, or 0 for any free port")
    return f"health.port {port} on {host} cannot be bound ({exc.strerror or exc}); choose another port"


def check_port_free(host: str, port: int) -> None:
    """InputError when the health server could not bind ``host:port`` now (port 0 always can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HTTPServer does
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(port_error(host, port, exc)) from None


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
    metric("frames_passthrough_total", "counter", "Frames passed through unenhanced (fail-safe or structure guard).", [("", snapshot["passthrough"])])
    metric("source_restarts_total", "counter", "Source reopen attempts after a failure.", [("", snapshot["source_restarts"])])
    metric("fps", "gauge", "Frames out per second since the stream started.", [("", snapshot["fps"])])
    samples = []
    for stage, summary in snapshot["latency_ms"].items():
        for q in ("p50", "p95", "p99"):
            samples.append((f'{{stage="{stage}",quantile="0.{q[1:]}"}}', summary[q] / 1000))
    for stage, summary in snapshot["latency_ms"].items():
        samples.append((f'_sum{{stage="{stage}"}}', summary.get("sum", 0.0) / 1000))
        samples.append((f'_count{{stage="{stage}"}}', summary.get("count", 0)))
    metric("latency_seconds", "summary", "Latency per stage and end to end: quantiles over the last 4096 frames, "
           "sum and count over every frame.", samples)
    metric("latency_max_seconds", "gauge", "Largest latency per stage over the last 4096 frames.",
           [(f'{{stage="{s}"}}', v["max"] / 1000) for s, v in snapshot["latency_ms"].items()])
    metric("passthrough_active", "gauge", "1 while the fail-safe passes frames through unenhanced.", [("", info.get("passthrough_active", 0))])
    metric("reloads_total", "counter", "Bundle reloads (SIGHUP), by result.",
           [(f'{{result="{k}"}}', v) for k, v in sorted(info.get("reloads", {}).items())] or [('{result="ok"}', 0)])
    guard = info.get("guard", {})
    metric("guard_enabled", "gauge", "1 while the structure guard checks every enhanced frame.", [("", guard.get("enabled", 0))])
    metric("guard_checked_total", "counter", "Enhanced frames the structure guard checked.", [("", guard.get("checked", 0))])
    metric("guard_tripped_total", "counter", "Frames the structure guard passed through unenhanced, by reason "
           "(dark_over_tissue: structure erased or a dark blob painted over tissue; bright_over_dark: echoes "
           "invented in a dark area; decorrelated: the output's echogenicity map no longer follows the input's).",
           [(f'{{reason="{k}"}}', guard.get("tripped", {}).get(k, 0)) for k in REASONS])
    metric("resident_memory_bytes", "gauge", "Resident set size of the daemon.", [("", resident_memory_bytes())])
    metric("uptime_seconds", "gauge", "Seconds since the daemon started.", [("", info.get("uptime_s", 0))])
    model = info.get("model", {})
    labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(model.items()))
    metric("model_info", "gauge", "The model being served.", [(f"{{{labels}}}", 1)])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _PooledServer(HTTPServer):
    """HTTPServer whose accepted connections go to a fixed pool of workers through a bounded queue."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.waiting: queue.Queue = queue.Queue(maxsize=BACKLOG)
        self.refused = 0
        self.workers: list[threading.Thread] = []
        super().__init__(address, handler)  # binds (or closes itself and raises)
        self.workers = [threading.Thread(target=self._work, name=f"health-{i}", daemon=True) for i in range(WORKERS)]
        for worker in self.workers:
            worker.start()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.waiting.put_nowait((request, client_address))
        except queue.Full:  # every worker busy and the backlog full: no thread, no wait
            self.refused += 1
            self.shutdown_request(request)

    def _work(self) -> None:
        while (item := self.waiting.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:  # a client that hangs up or sends garbage: its connection only
                pass
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        while True:  # connections still waiting are closed, then each worker gets its end marker
            try:
                item = self.waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self.workers:
            self.waiting.put(None)


class HealthServer:
    """Serves ``status()`` (dict with ``healthy``) and ``metrics()`` (text) on a loopback port."""

    def __init__(self, host: str, port: int, status: Callable[[], dict[str, Any]], metrics: Callable[[], str]):
        check_loopback(host)
        self.status, self.metrics = status, metrics
        handler = self._handler()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(_PooledServer):
            address_family = family

        try:
            self.server = Server((host, port), handler)
        except OSError as exc:
            raise InputError(port_error(host, port, exc)) from None
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> "HealthServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = TIMEOUT_S  # a client that connects and sends nothing holds a worker this long at most

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


__all__ = ["HealthServer", "check_loopback", "check_port_free", "prometheus_text", "resident_memory_bytes"]
