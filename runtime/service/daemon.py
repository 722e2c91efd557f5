"""The enhancer daemon, ``sonoedge serve --config enhancer.toml`` (STYLE.md rule 8).

Boring on purpose:

- one typed config (:class:`DaemonConfig`, TOML + ``key=value`` overrides), checked whole by
  ``--validate-config`` before anything runs: every key's type and range, the source and sink
  built from their URI and options by the code that start uses, the bundle (hashes, precision,
  warm-up size), loopback and a free health port; whatever start would fail on, validation fails on;
- start never traces back: a config, bundle, port or source that fails is one JSON log line
  (event ``start_failed``) and exit status 2 (1 for a failure that is not the user's);
- one stop event, set by SIGTERM and SIGINT: capture stops, frames inside drain to the sink, the
  daemon exits within ``stop_timeout_s`` (1 s);
- SIGHUP re-reads the config file and loads its bundle beside the running one, in a thread, while
  the old model serves (hashes, warm-up shapes, reference frames); only a model that passes
  replaces the old one, atomically between frames, with the new ``[enhancer]`` settings (region,
  fail-safe). Any failure of a reload, of whatever kind, is one JSON log line (event
  ``reload_failed``, with the bundle and the reason) and the old model keeps serving;
- a failed source is reopened with rate-limited exponential backoff (``pipeline.max_restarts`` per
  ``pipeline.restart_window_s``); the fail-safe of :mod:`.enhancer` passes frames through while the
  model fails and keeps retrying;
- structured logs: one JSON object per line on stderr (``ts``, ``level``, ``event``, ``msg``, ...);
- health and Prometheus metrics on loopback (:mod:`.health`); /healthz says "passthrough" (503)
  whenever frames go out unenhanced, with the reason;
- systemd ``Type=notify``: READY=1 once the first model is loaded and frames flow, WATCHDOG=1 from
  the serving loop while the stream makes progress (:mod:`.notify`), so a hung daemon is restarted.

A systemd unit and an example config live in ``runtime/service/``.
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import math
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sonoedge.runtime.bundle.manifest import load_manifest, model_file
from sonoedge.runtime.bundle.model import (
    MAX_WARMUP_SIDE,
    LoadedModel,
    auto_on_cpu,
    load_model,
    model_precision,
    resolve_bundle,
    warmup_size,
)
from sonoedge.runtime.config import load_config, to_dict
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.precision import AUTO, PRECISIONS
from sonoedge.runtime.region import REGION_CHOICES
from sonoedge.runtime.service.health import HealthServer, check_loopback, check_port_free, prometheus_text
from sonoedge.runtime.service.notify import notify, watchdog_interval
from sonoedge.runtime.stream.base import SINKS, SOURCES, Sink, open_sink, open_source, scheme_of
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig, check_opencv_threads, check_servable
from sonoedge.runtime.stream.guard import check_guard_config
from sonoedge.runtime.stream.pipeline import THREAD_LAYOUTS, Pipeline, PipelineConfig, Stats, check_infer_workers

log = logging.getLogger("sonoedge.runtime.service.daemon")

STOP_GRACE_S = 3.0  # beyond stop_timeout_s, for a frame inside a slow model; below systemd's TimeoutStopSec=5
PASSTHROUGH_AFTER = 3  # frames out unenhanced in a row before /healthz says "passthrough"
MAX_QUEUE_SIZE = 64  # frames per stage queue; more is latency and memory, not throughput


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


def _number(name: str, value: float, low: float, high: float = math.inf, open_low: bool = False) -> None:
    """InputError unless ``low <(=) value <= high`` and finite (TOML has nan and inf)."""
    above = value > low if open_low else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bound = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise InputError(f"{name} = {value!r} must be a number {bound}")


def _check_ranges(cfg: DaemonConfig) -> None:
    e, p = cfg.enhancer, cfg.pipeline
    _number("stop_timeout_s", cfg.stop_timeout_s, 0, 60)
    _number("pipeline.queue_size", p.queue_size, 1, MAX_QUEUE_SIZE)
    _number("pipeline.restart_backoff_s", p.restart_backoff_s, 0, 3600, open_low=True)
    _number("pipeline.restart_backoff_max_s", p.restart_backoff_max_s, p.restart_backoff_s, 3600)
    _number("pipeline.max_restarts", p.max_restarts, 0)
    _number("pipeline.restart_window_s", p.restart_window_s, 0, open_low=True)
    _number("enhancer.threads", e.threads, 0, 1024)
    _number("enhancer.region_every", e.region_every, 0)
    _number("enhancer.latency_budget_ms", e.latency_budget_ms, 0, 60_000)
    _number("enhancer.fail_after", e.fail_after, 1)
    _number("enhancer.retry_backoff_s", e.retry_backoff_s, 0, 3600, open_low=True)
    _number("enhancer.retry_backoff_max_s", e.retry_backoff_max_s, e.retry_backoff_s, 3600)
    check_guard_config(e.guard)
    h, w = e.warmup_size
    if (h, w) != (0, 0) and not (1 <= h <= MAX_WARMUP_SIDE and 1 <= w <= MAX_WARMUP_SIDE):
        raise InputError(f"enhancer.warmup_size [{h}, {w}] must be [0, 0] (the bundle's opt size) or "
                         f"1..{MAX_WARMUP_SIDE} a side")
    _number("health.port", cfg.health.port, 0, 65535)
    _number("health.stale_after_s", cfg.health.stale_after_s, 0, open_low=True)
    _number("log.stats_interval_s", cfg.log.stats_interval_s, 0)


def _build(what: str, uri: str, options: dict[str, Any]) -> Any:
    """The source or sink object for ``uri`` and ``options``, built as start builds it (not opened)."""
    try:
        return (open_source if what == "source" else open_sink)(uri, **options)
    except SonoedgeError:
        raise
    except Exception as exc:  # a bad query value (fps=abc) or option: the constructor's own error
        raise InputError(f"{what}.uri '{uri}' with {what}.options {options}: {type(exc).__name__}: {exc}") from None


def validate_config(cfg: DaemonConfig, check_bundle: bool = True, check_port: bool = True) -> list[str]:
    """Raise InputError/BundleError for the first problem; returns human-readable facts checked.

    Checks what start would fail on: every value's range, the source and sink as start builds them,
    the log level, loopback, and (``check_port``) that the health port is free now, and
    (``check_bundle``) the bundle's hashes, precision, channels and warm-up size.
    """
    facts = []
    if not cfg.source.uri:
        raise InputError("source.uri is empty; set it to a file, replay://, v4l2://, rtsp:// or shm:// URI")
    for what, uri, options, registry in (("source", cfg.source.uri, cfg.source.options, SOURCES),
                                         ("sink", cfg.sink.uri, cfg.sink.options, SINKS)):
        scheme = scheme_of(uri)
        if scheme not in registry:
            raise InputError(f"{what}.uri '{uri}': no {what} for scheme '{scheme}'; known: {', '.join(registry.names())}")
        _build(what, uri, options)
        facts.append(f"{what}: {uri} ({scheme})")
    choice = ("auto", "live", "blocking")
    if cfg.pipeline.mode not in choice:
        raise InputError(f"pipeline.mode '{cfg.pipeline.mode}' is not one of {', '.join(choice)}")
    if cfg.pipeline.on_end not in ("stop", "restart"):
        raise InputError(f"pipeline.on_end '{cfg.pipeline.on_end}' is not one of stop, restart")
    if cfg.pipeline.queue_size < 1:
        raise InputError("pipeline.queue_size must be at least 1")
    if cfg.pipeline.threads not in THREAD_LAYOUTS:
        raise InputError(f"pipeline.threads {cfg.pipeline.threads!r} is not one of {', '.join(map(str, THREAD_LAYOUTS))}")
    check_infer_workers(cfg.pipeline.infer_workers, cfg.pipeline.threads)
    if cfg.enhancer.precision not in (AUTO, *PRECISIONS):
        raise InputError(f"enhancer.precision '{cfg.enhancer.precision}' is not one of {', '.join((AUTO, *PRECISIONS))}")
    if cfg.enhancer.region not in REGION_CHOICES:
        raise InputError(f"enhancer.region '{cfg.enhancer.region}' is not one of {', '.join(REGION_CHOICES)}")
    check_opencv_threads(cfg.enhancer.opencv_threads)
    if cfg.enhancer.backend != "auto":
        from sonoedge.runtime.backends import BACKENDS

        BACKENDS.get(cfg.enhancer.backend)
    _check_ranges(cfg)
    if cfg.health.enabled:
        check_loopback(cfg.health.host)
        if check_port and cfg.health.port:
            check_port_free(cfg.health.host, cfg.health.port)
        facts.append(f"health: http://{cfg.health.host}:{cfg.health.port}/healthz")
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        raise InputError(f"log.level '{cfg.log.level}' is not one of debug, info, warning, error")
    if check_bundle:
        with tempfile.TemporaryDirectory(prefix="sonoedge-validate-") as tmp:
            root, manifest = load_manifest(resolve_bundle(cfg.enhancer.bundle), into=tmp)
            precision = model_precision(root, manifest, cfg.enhancer.precision, auto_on_cpu(cfg.enhancer))
            model_file(root, manifest, precision)
            check_servable(manifest, root)
            h, w = warmup_size(manifest, cfg.enhancer)
            facts.append(f"bundle: {resolve_bundle(cfg.enhancer.bundle)} ({manifest.model.name}, "
                         f"{precision}, warm-up {h}x{w}, hashes ok)")
    return facts


def serve(config_path: str | Path, overrides: list[str] = ()) -> int:
    """``sonoedge serve``: read and check the config, then run the daemon until it stops; the
    exit status. Every failure is a JSON log line on stderr, never a traceback."""
    from sonoedge.runtime.service.logs import setup_logging

    setup_logging("info")
    try:
        cfg = read_config(config_path, overrides)
        validate_config(cfg, check_bundle=False, check_port=False)  # the bundle and port: checked as they load
    except Exception as exc:
        _log_failure("the daemon cannot start", "start_failed", exc, config=str(config_path))
        return exc.exit_code
    setup_logging(cfg.log.level)
    daemon = Daemon(cfg, config_path, overrides)
    daemon.install_signals()
    return daemon.run()


def _reason(exc: BaseException) -> str:
    """The exception as one sentence: a SonoedgeError's message, else its type and message."""
    if isinstance(exc, SonoedgeError):
        return str(exc).strip()
    text = f"{type(exc).__name__}: {str(exc).strip()}" if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def _log_failure(msg: str, event: str, exc: BaseException, **fields: Any) -> None:
    """One JSON line; the traceback (as a field of that line) only for failures that are not the user's."""
    log.error(msg, extra={"event": event, "error": _reason(exc), "error_type": type(exc).__name__, **fields},
              exc_info=exc if not isinstance(exc, SonoedgeError) else None)


def _exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, SonoedgeError) else 1


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim, all arenas). A model's session
    freed on a reload otherwise stays in the process's malloc arenas; no-op without glibc."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


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
        self.passthrough_run = 0  # frames out unenhanced in a row
        self.passthrough_reason = ""
        self.state = "starting"
        self.enhancer: Enhancer | None = None
        self.pipeline: Pipeline | None = None
        self.health: HealthServer | None = None
        self.sink: Sink | None = None
        self.reloader: threading.Thread | None = None
        self.watchdog_s = watchdog_interval()
        self._progress = (0, 0, time.monotonic())  # frames in, frames out, when output last moved

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
        """Start, serve until stopped or the stream ends, stop; the exit status. Never raises for a
        failure (start, stream, shutdown): each is one JSON log line and a non-zero status."""
        try:
            self._start()
        except Exception as exc:
            _log_failure("the daemon cannot start", "start_failed", exc, bundle=str(self.cfg.enhancer.bundle or "(default)"))
            self._abandon()
            return _exit_code(exc)
        notify("READY=1", f"STATUS=serving {self.cfg.source.uri}")
        try:
            self._loop()
            return self._shutdown()
        except Exception as exc:  # a bug in the daemon itself: stop the stream, say why, exit non-zero
            _log_failure("the daemon failed", "daemon_failed", exc)
            self._abandon()
            return 1
        finally:
            self._close()

    def _start(self) -> None:
        if self.cfg.health.enabled:  # first: a port in use fails at once, and /healthz says "starting" during the load
            self.health = HealthServer(self.cfg.health.host, self.cfg.health.port, self.status, self.metrics).start()
            log.info("health endpoint listening", extra={"event": "health_listening", "host": self.cfg.health.host,
                                                          "port": self.health.port})
        model = self._load(self.cfg.enhancer)
        try:
            self.enhancer = Enhancer(model, self.cfg.enhancer)
        except BaseException:
            model.close()
            raise
        self.sink = open_sink(self.cfg.sink.uri, **self.cfg.sink.options)
        self.sink.open()
        self.pipeline = Pipeline(self._make_source, self.enhancer, self.sink, self.cfg.pipeline,
                                 stop=self.stop_event, on_frame=self._on_frame)
        self.pipeline.start()
        self.state = "serving"
        log.info("serving", extra={"event": "serving", "source": self.cfg.source.uri, "sink": self.cfg.sink.uri,
                                   "live": self.pipeline.live})

    def _abandon(self) -> None:
        """After a failure: stop what was started, leave no partial output, release the model."""
        self.stop_event.set()
        try:
            if self.pipeline is not None:
                self.pipeline.stop()
                self.pipeline.join(self.cfg.stop_timeout_s + STOP_GRACE_S)
            if self.sink is not None:
                getattr(self.sink, "abort", self.sink.close)()
        except Exception as exc:
            _log_failure("cleaning up after a failure failed", "cleanup_failed", exc)
        finally:
            self._close()

    def _close(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None
        if self.reloader is not None and self.reloader.is_alive():
            self.reloader.join(STOP_GRACE_S)
            if self.reloader.is_alive():
                log.warning("a reload is still loading at exit", extra={"event": "reload_abandoned"})
        if self.enhancer is not None:
            self.enhancer.close()
            self.enhancer = None

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
        next_ping = time.monotonic()
        while not self.stop_event.wait(0.05):
            now = time.monotonic()
            if self.reload_event.is_set() and not (self.reloader and self.reloader.is_alive()):
                self.reload_event.clear()  # a SIGHUP during a reload runs one more after it
                self.reloader = threading.Thread(target=self.reload, name="reload", daemon=True)
                self.reloader.start()
            if not self.pipeline.running():
                break  # the source ended (on_end = stop) or gave up after its restarts
            if self.watchdog_s is not None and now >= next_ping and self._progressing(now):
                notify("WATCHDOG=1")
                next_ping = now + self.watchdog_s
            if now >= next_stats:
                next_stats += self.cfg.log.stats_interval_s
                log.info("stats", extra={"event": "stats", **_brief(self.pipeline.stats.snapshot())})

    def _progressing(self, now: float) -> bool:
        """False once frames have come in but none has gone out for two watchdog intervals (a hung
        stage); an idle source (nothing in) is not a hang. Only then does the watchdog go unfed."""
        stats = self.pipeline.stats
        with stats.lock:
            frames_in, frames_out = stats.frames_in, stats.frames_out
        seen_in, seen_out, moved = self._progress
        if frames_out != seen_out or frames_in == seen_in:
            self._progress = (frames_in, frames_out, now)
            return True
        return now - moved < 2 * (self.watchdog_s or 0.0)

    def reload(self) -> bool:
        """SIGHUP: re-read the config, load its bundle and swap it in only when everything passes.
        Never raises: any failure is one ``reload_failed`` log line and the old model serves on."""
        self.state = "reloading"
        notify("STATUS=reloading the bundle")
        bundle, model = str(self.cfg.enhancer.bundle or "(default)"), None
        try:
            cfg = read_config(self.config_path, self.overrides) if self.config_path else self.cfg
            bundle = str(resolve_bundle(cfg.enhancer.bundle))
            validate_config(cfg, check_bundle=False, check_port=False)
            model = self._load(cfg.enhancer)
            if self.stop_event.is_set():
                model.close()
                return False
            old = self.enhancer.swap(model, cfg.enhancer)
        except Exception as exc:
            if model is not None:
                model.close()
            self.reloads["failed"] += 1
            log.error("reload failed; the previous model keeps serving",
                      extra={"event": "reload_failed", "bundle": bundle, "error": _reason(exc),
                             "error_type": type(exc).__name__})
            return False
        finally:
            if self.state == "reloading":
                self.state = "serving"
            notify(f"STATUS=serving {self.cfg.source.uri}")
            _trim_heap()
        self.reloads["ok"] += 1
        changed = [k for k, v in to_dict(cfg).items() if k != "enhancer" and v != to_dict(self.cfg)[k]]
        self.cfg = dataclasses.replace(self.cfg, enhancer=cfg.enhancer)
        log.info("model reloaded", extra={"event": "reloaded", "bundle": bundle, "model": model.name,
                                          "sha256": model.model_sha256[:12], "previous_sha256": old.model_sha256[:12]})
        if changed:
            log.warning("config changes outside [enhancer] take effect at the next start",
                        extra={"event": "config_needs_restart", "sections": changed})
        return True

    def _shutdown(self) -> int:
        self.state = "stopping"
        stopping = self.stop_event.is_set()
        notify("STOPPING=1")
        self.pipeline.stop()
        drained = self.pipeline.join(self.cfg.stop_timeout_s if stopping else None)
        if not drained:  # a frame still inside a slow stage: let it finish before the sink is closed
            log.warning("frames still in flight after stop_timeout_s", extra={"event": "stop_slow",
                                                                             "stop_timeout_s": self.cfg.stop_timeout_s})
            self.pipeline.join(STOP_GRACE_S)
        code = 0
        try:
            self.sink.close()
        except Exception as exc:
            _log_failure("the sink could not be closed", "sink_failed", exc, sink=self.cfg.sink.uri)
            code = 1
        snapshot = self.pipeline.stats.snapshot()
        log.info("stopped", extra={"event": "stopped", "drained": drained, "signal": stopping, **_brief(snapshot)})
        if self.pipeline.error is not None and not stopping:
            log.error("stream ended with an error", extra={"event": "stream_failed", "error": _reason(self.pipeline.error)})
            return 1
        return code

    def _on_frame(self, frame: Frame) -> None:
        self.last_out = time.monotonic()
        if frame.passthrough:
            self.passthrough_run += 1
            self.passthrough_reason = str(frame.meta.get("passthrough_reason", "")) or "not enhanced"
        else:
            self.passthrough_run = 0
        if not self.first_frame_logged:
            self.first_frame_logged = True
            log.info("first frame out", extra={"event": "first_frame", "since_start_s": round(self.last_out - self.started, 3),
                                               "enhanced": frame.enhanced})

    # health
    def passing_through(self) -> tuple[bool, str]:
        """(frames are going out unenhanced, why): the fail-safe is active, or the last
        PASSTHROUGH_AFTER frames out were passed through (e.g. a region over the model's size range)."""
        if self.enhancer is not None and self.enhancer.failed:
            return True, self.enhancer.failure_reason
        if self.passthrough_run >= PASSTHROUGH_AFTER:
            return True, self.passthrough_reason
        return False, ""

    def status(self) -> dict[str, Any]:
        snap = self.pipeline.stats.snapshot() if self.pipeline else None
        passing, reason = self.passing_through()
        stale = self.last_out == 0.0 or time.monotonic() - self.last_out > self.cfg.health.stale_after_s
        state = self.state
        if state in ("serving", "reloading") and stale:
            state = "stalled"
        elif state in ("serving", "reloading") and passing:
            state = "passthrough"
        enhancer = self.enhancer
        model = enhancer.model if enhancer else None
        return {
            "healthy": state in ("serving", "reloading"),
            "state": state, "failure": reason,
            "model": model.name if model else None, "sha256": model.model_sha256[:12] if model else None,
            "reloads": dict(self.reloads), "uptime_s": round(time.monotonic() - self.started, 3),
            **(_brief(snap) if snap else {}),
        }

    def metrics(self) -> str:
        snap = (self.pipeline.stats if self.pipeline else Stats()).snapshot()
        enhancer = self.enhancer
        info: dict[str, Any] = {"passthrough_active": int(self.passing_through()[0]), "reloads": dict(self.reloads),
                                "uptime_s": time.monotonic() - self.started}
        if enhancer is not None:
            model = enhancer.model
            info["model"] = {"name": model.name, "precision": model.precision, "backend": model.backend_name,
                             "sha256": model.model_sha256[:12]}
            info["guard"] = {"enabled": int(enhancer.guard.enabled), **enhancer.guard.counts()}
        return prometheus_text(snap, info)


def _brief(snap: dict[str, Any]) -> dict[str, Any]:
    e2e = snap["latency_ms"]["end_to_end"]
    return {"frames_in": snap["frames_in"], "frames_out": snap["frames_out"], "frames_dropped": snap["frames_dropped"],
            "dropped": snap["dropped"], "enhanced": snap["enhanced"], "passthrough": snap["passthrough"],
            "fps": round(snap["fps"], 2), "e2e_p50_ms": round(e2e["p50"], 2), "e2e_p99_ms": round(e2e["p99"], 2)}


__all__ = ["Daemon", "DaemonConfig", "read_config", "serve", "validate_config"]
