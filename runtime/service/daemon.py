"""The enhancer daemon, ``sonoedge serve --config enhancer.toml`` (STYLE.md rule 8).

Boring on purpose:

- one typed config (:class:`DaemonConfig`, TOML + ``key=value`` overrides), checked whole by
  ``--validate-config`` before anything runs (sources/sinks registered, bundle hashes, loopback);
- one stop event, set by SIGTERM and SIGINT: capture stops, frames inside drain to the sink, the
  daemon exits within ``stop_timeout_s`` (1 s);
- SIGHUP re-reads the config file and loads its bundle beside the running one (hashes, backend,
  reference frames); only a model that passes replaces the old one, atomically between frames, so
  a corrupt bundle on reload leaves the old model serving;
- a failed source is reopened with rate-limited exponential backoff (``pipeline.max_restarts`` per
  ``pipeline.restart_window_s``); the fail-safe of :mod:`.enhancer` passes frames through while the
  model fails and keeps retrying;
- structured logs: one JSON object per line on stderr (``ts``, ``level``, ``event``, ``msg``, ...);
- health and Prometheus metrics on loopback (:mod:`.health`).

A systemd unit and an example config live in ``runtime/service/``.
"""
from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from sonoedge.runtime.bundle.manifest import load_manifest, model_file
from sonoedge.runtime.bundle.model import LoadedModel, load_model, model_precision, resolve_bundle
from sonoedge.runtime.config import load_config
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.precision import AUTO, PRECISIONS
from sonoedge.runtime.region import REGION_CHOICES
from sonoedge.runtime.service.health import HealthServer, check_loopback, prometheus_text
from sonoedge.runtime.stream.base import SINKS, SOURCES, Sink, open_sink, open_source, scheme_of
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig, Stats

log = logging.getLogger("sonoedge.runtime.service.daemon")

STOP_GRACE_S = 3.0  # beyond stop_timeout_s, for a frame inside a slow model; below systemd's TimeoutStopSec=5


@dataclasses.dataclass
class SourceConfig:
    uri: str = ""  # file path, file://, replay://PATH?fps=F&loop=1, v4l2:///dev/video0, rtsp://, shm://
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to the source's constructor


@dataclasses.dataclass
class SinkConfig:
    uri: str = "null://"  # out.mp4, a folder for PNG frames, window://, null://, shm://
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class HealthConfig:
    enabled: bool = True
    host: str = "127.0.0.1"  # loopback only
    port: int = 9108  # 0 = any free port (logged as event health_listening)
    stale_after_s: float = 5.0  # /healthz turns 503 when no frame came out for this long


@dataclasses.dataclass
class LogConfig:
    level: str = "info"  # debug | info | warning | error
    stats_interval_s: float = 30.0  # a "stats" log line this often; 0 = never


@dataclasses.dataclass
class DaemonConfig:
    source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
    sink: SinkConfig = dataclasses.field(default_factory=SinkConfig)
    enhancer: EnhancerConfig = dataclasses.field(default_factory=EnhancerConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=lambda: PipelineConfig(mode="live", on_end="restart"))
    health: HealthConfig = dataclasses.field(default_factory=HealthConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    stop_timeout_s: float = 1.0  # drain time allowed after SIGTERM/SIGINT


def read_config(path: str | Path | None, overrides: list[str] = ()) -> DaemonConfig:
    return load_config(DaemonConfig, path, list(overrides))


def validate_config(cfg: DaemonConfig, check_bundle: bool = True) -> list[str]:
    """Raise InputError/BundleError for the first problem; returns human-readable facts checked."""
    facts = []
    if not cfg.source.uri:
        raise InputError("source.uri is empty; set it to a file, replay://, v4l2://, rtsp:// or shm:// URI")
    for what, uri, registry in (("source", cfg.source.uri, SOURCES), ("sink", cfg.sink.uri, SINKS)):
        scheme = scheme_of(uri)
        if scheme not in registry:
            raise InputError(f"{what}.uri '{uri}': no {what} for scheme '{scheme}'; known: {', '.join(registry.names())}")
        facts.append(f"{what}: {uri} ({scheme})")
    choice = ("auto", "live", "blocking")
    if cfg.pipeline.mode not in choice:
        raise InputError(f"pipeline.mode '{cfg.pipeline.mode}' is not one of {', '.join(choice)}")
    if cfg.pipeline.on_end not in ("stop", "restart"):
        raise InputError(f"pipeline.on_end '{cfg.pipeline.on_end}' is not one of stop, restart")
    if cfg.pipeline.queue_size < 1:
        raise InputError("pipeline.queue_size must be at least 1")
    if cfg.enhancer.precision not in (AUTO, *PRECISIONS):
        raise InputError(f"enhancer.precision '{cfg.enhancer.precision}' is not one of {', '.join((AUTO, *PRECISIONS))}")
    if cfg.enhancer.region not in REGION_CHOICES:
        raise InputError(f"enhancer.region '{cfg.enhancer.region}' is not one of {', '.join(REGION_CHOICES)}")
    if cfg.enhancer.backend != "auto":
        from sonoedge.runtime.backends import BACKENDS

        BACKENDS.get(cfg.enhancer.backend)
    if cfg.enhancer.latency_budget_ms < 0 or cfg.enhancer.fail_after < 1:
        raise InputError("enhancer.latency_budget_ms must be >= 0 and enhancer.fail_after >= 1")
    if cfg.health.enabled:
        check_loopback(cfg.health.host)
        if not 0 <= cfg.health.port < 65536:
            raise InputError(f"health.port {cfg.health.port} is not a port number")
        facts.append(f"health: http://{cfg.health.host}:{cfg.health.port}/healthz")
    if logging.getLevelName(cfg.log.level.upper()) not in (10, 20, 30, 40):
        raise InputError(f"log.level '{cfg.log.level}' is not one of debug, info, warning, error")
    if check_bundle:
        root, manifest = load_manifest(resolve_bundle(cfg.enhancer.bundle))
        precision = model_precision(root, manifest, cfg.enhancer.precision)
        model_file(root, manifest, precision)
        facts.append(f"bundle: {root} ({manifest.model.name}, {precision}, hashes ok)")
    return facts


# -- structured logs ----------------------------------------------------------------------------
class Daemon:
    """Owns the model, the pipeline, the health server and the signal handling."""

    def __init__(self, cfg: DaemonConfig, config_path: str | Path | None = None, overrides: list[str] = ()):
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = list(overrides)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.started = time.monotonic()
        self.reloads = {"ok": 0, "failed": 0}
        self.first_frame_logged = False
        self.last_out = 0.0
        self.state = "starting"
        self.enhancer: Enhancer | None = None
        self.pipeline: Pipeline | None = None
        self.health: HealthServer | None = None
        self.sink: Sink | None = None

    # signals
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stop_event.set()

    def _on_reload(self, signum: int, _frame: Any) -> None:
        self.reload_event.set()

    # lifecycle
    def run(self) -> int:
        model = self._load(self.cfg.enhancer)
        self.enhancer = Enhancer(model, self.cfg.enhancer)
        if self.cfg.health.enabled:
            self.health = HealthServer(self.cfg.health.host, self.cfg.health.port, self.status, self.metrics).start()
            log.info("health endpoint listening", extra={"event": "health_listening", "host": self.cfg.health.host,
                                                          "port": self.health.port})
        try:
            self.sink = open_sink(self.cfg.sink.uri, **self.cfg.sink.options)
            self.sink.open()
            self.pipeline = Pipeline(self._make_source, self.enhancer, self.sink, self.cfg.pipeline,
                                     stop=self.stop_event, on_frame=self._on_frame)
            self.pipeline.start()
            self.state = "serving"
            log.info("serving", extra={"event": "serving", "source": self.cfg.source.uri, "sink": self.cfg.sink.uri,
                                       "live": self.pipeline.live})
            self._loop()
            return self._shutdown()
        finally:
            if self.health is not None:
                self.health.stop()
            self.enhancer.close()

    def _make_source(self):
        return open_source(self.cfg.source.uri, **self.cfg.source.options)

    def _load(self, cfg: EnhancerConfig) -> LoadedModel:
        t0 = time.perf_counter()
        model = load_model(cfg)
        log.info("model loaded", extra={"event": "model_loaded", "bundle": str(model.root), "model": model.name,
                                        "precision": model.precision, "backend": model.backend_name,
                                        "sha256": model.model_sha256[:12], "load_s": round(time.perf_counter() - t0, 3)})
        return model

    def _loop(self) -> None:
        next_stats = time.monotonic() + (self.cfg.log.stats_interval_s or float("inf"))
        while not self.stop_event.wait(0.05):
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            if not self.pipeline.running():
                break  # the source ended (on_end = stop) or gave up after its restarts
            if time.monotonic() >= next_stats:
                next_stats += self.cfg.log.stats_interval_s
                log.info("stats", extra={"event": "stats", **_brief(self.pipeline.stats.snapshot())})

    def reload(self) -> bool:
        """SIGHUP: load the (re-read) config's bundle; swap only when it loads and verifies."""
        self.state = "reloading"
        try:
            cfg = read_config(self.config_path, self.overrides) if self.config_path else self.cfg
            model = self._load(cfg.enhancer)
        except SonoedgeError as exc:
            self.reloads["failed"] += 1
            log.error("reload failed; the previous model keeps serving",
                      extra={"event": "reload_failed", "error": str(exc)})
            self.state = "serving"
            return False
        old = self.enhancer.swap(model)
        self.reloads["ok"] += 1
        log.info("model reloaded", extra={"event": "reloaded", "model": model.name, "sha256": model.model_sha256[:12],
                                          "previous_sha256": old.model_sha256[:12]})
        self.state = "serving"
        return True

    def _shutdown(self) -> int:
        self.state = "stopping"
        stopping = self.stop_event.is_set()
        self.pipeline.stop()
        drained = self.pipeline.join(self.cfg.stop_timeout_s if stopping else None)
        if not drained:  # a frame still inside a slow stage: let it finish before the sink is closed
            log.warning("frames still in flight after stop_timeout_s", extra={"event": "stop_slow",
                                                                             "stop_timeout_s": self.cfg.stop_timeout_s})
            self.pipeline.join(STOP_GRACE_S)
        self.sink.close()
        snapshot = self.pipeline.stats.snapshot()
        log.info("stopped", extra={"event": "stopped", "drained": drained, "signal": stopping, **_brief(snapshot)})
        if self.pipeline.error is not None and not stopping:
            log.error("stream ended with an error", extra={"event": "stream_failed", "error": str(self.pipeline.error)})
            return 1
        return 0

    def _on_frame(self, frame: Frame) -> None:
        self.last_out = time.monotonic()
        if not self.first_frame_logged:
            self.first_frame_logged = True
            log.info("first frame out", extra={"event": "first_frame", "since_start_s": round(self.last_out - self.started, 3),
                                               "enhanced": frame.enhanced})

    # health
    def status(self) -> dict[str, Any]:
        snap = self.pipeline.stats.snapshot() if self.pipeline else None
        failing = bool(self.enhancer and self.enhancer.failed)
        stale = self.last_out == 0.0 or time.monotonic() - self.last_out > self.cfg.health.stale_after_s
        state = self.state
        if state == "serving" and failing:
            state = "passthrough"
        elif state == "serving" and stale:
            state = "stalled"
        model = self.enhancer.model if self.enhancer else None
        return {
            "healthy": state in ("serving", "reloading") and not stale,
            "state": state, "failure": self.enhancer.failure_reason if failing else "",
            "model": model.name if model else None, "sha256": model.model_sha256[:12] if model else None,
            "reloads": dict(self.reloads), "uptime_s": round(time.monotonic() - self.started, 3),
            **(_brief(snap) if snap else {}),
        }

    def metrics(self) -> str:
        snap = (self.pipeline.stats if self.pipeline else Stats()).snapshot()
        model = self.enhancer.model
        info = {"passthrough_active": int(self.enhancer.failed), "reloads": self.reloads,
                "uptime_s": time.monotonic() - self.started,
                "model": {"name": model.name, "precision": model.precision, "backend": model.backend_name,
                          "sha256": model.model_sha256[:12]}}
        return prometheus_text(snap, info)


def _brief(snap: dict[str, Any]) -> dict[str, Any]:
    e2e = snap["latency_ms"]["end_to_end"]
    return {"frames_in": snap["frames_in"], "frames_out": snap["frames_out"], "frames_dropped": snap["frames_dropped"],
            "dropped": snap["dropped"], "enhanced": snap["enhanced"], "passthrough": snap["passthrough"],
            "fps": round(snap["fps"], 2), "e2e_p50_ms": round(e2e["p50"], 2), "e2e_p99_ms": round(e2e["p99"], 2)}


__all__ = ["Daemon", "DaemonConfig", "read_config", "validate_config"]
