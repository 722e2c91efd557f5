"""``shm://`` source and sink: frames to and from device software through cpp_bridge's channel.

    shm://NAME?slots=8&max_bytes=6220800&timeout_ms=100&peer_timeout_ms=2000&role=server

A channel (``cpp_bridge/include/sonoedge/bridge.h``) is one POSIX shared-memory object with two
lock-free frame rings: raw frames in, enhanced frames out. The device software (C or C++, e.g.
``cpp_bridge/examples/play.c``) is its CLIENT; the enhancer daemon is its SERVER:

    [source] uri = "shm://probe"     reads the raw frames the device writes
    [sink]   uri = "shm://probe"     writes the enhanced frames back, flagged enhanced/passthrough

``role=client`` turns it round, so a Python program can play the device side (tests, tools).
Query keys: ``slots`` (per ring) and ``max_bytes`` (pixel bytes per slot) size the channel when
this side creates it, and must match when it exists (0, the default: take the existing channel's,
or 8 slots of 1920x1080x3 bytes); ``timeout_ms`` is how often a waiting read looks up (100);
``peer_timeout_ms`` is how old the other side's heartbeat may get before it counts as dead (2000).

Frames are uint8 grey (H, W) or colour (H, W, 3); the source turns BGR frames into RGB (the frame
contract) and the sink always sends RGB, saying so in the frame header.

The source is live (the reader always takes the newest frame; frames the device wrote meanwhile are
counted as dropped by the ring). When the device process dies the source keeps waiting, and
carries on when the device software attaches again. An end-of-stream frame from the device ends
the source, and the sink then sends end of stream back when it closes. A malformed frame is
yielded empty (counted and skipped downstream); a peer that breaks the protocol (a counter that
cannot be right, the shared object shrunk) ends the iteration with an InputError naming the
channel, which the pipeline reports before it reopens the source with backoff.

Needs the native extension ``sonoedge.runtime._bridge``, built by the package install when a C++17
compiler and pybind11 are present; without it, opening shm:// fails with one sentence saying so.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import stat
import threading
import time
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np

from sonoedge.runtime.errors import InputError, MissingDependencyError, SonoedgeError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.stream.base import SINKS, SOURCES, Sink, Source

log = logging.getLogger("sonoedge.runtime.stream.shm")

NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")  # what sb_channel_open accepts
OPTIONS = {"slots": 0, "max_bytes": 0, "timeout_ms": 100, "peer_timeout_ms": 0, "role": "server"}
MALFORMED = ("SB_ERR_BAD_MAGIC", "SB_ERR_VERSION_MISMATCH", "SB_ERR_CORRUPT_HEADER", "SB_ERR_FRAME_TOO_LARGE")


def native():
    """The compiled bridge module, or MissingDependencyError saying how to build it."""
    import importlib

    try:
        return importlib.import_module("sonoedge.runtime._bridge")
    except ImportError as exc:
        raise MissingDependencyError(
            f"shm:// needs the native cpp_bridge extension (sonoedge.runtime._bridge), which is not built in "
            f"this install ({exc}); install a C++17 compiler and pybind11, then reinstall with "
            f"`pip install -e .` (see cpp_bridge/README.md)") from exc


def parse_uri(uri: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """``shm://NAME?k=v`` (plus constructor keyword overrides) -> (NAME, options with defaults)."""
    parts = urlsplit(uri)
    name = parts.netloc or parts.path.lstrip("/")
    if parts.scheme != "shm" or not NAME.fullmatch(name):
        raise InputError(f"'{uri}' is not a channel URI; write shm://NAME with NAME of 1-200 letters, digits, . _ -")
    given = {k: v[-1] for k, v in parse_qs(parts.query).items()} | overrides
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise InputError(f"{uri}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    options = dict(OPTIONS)
    for key, value in given.items():
        try:
            options[key] = str(value) if key == "role" else int(value)
        except ValueError:
            raise InputError(f"{uri}: {key}={value!r} is not a whole number") from None
    if options["role"] not in ("server", "client"):
        raise InputError(f"{uri}: role={options['role']!r} must be server (the enhancer) or client (the device)")
    if min(options[k] for k in ("slots", "max_bytes", "timeout_ms", "peer_timeout_ms")) < 0:
        raise InputError(f"{uri}: slots, max_bytes, timeout_ms and peer_timeout_ms must not be negative")
    return name, options


class _Attachment:
    """One native channel handle per (name, role) in this process, shared by a source and a sink.

    The native side allows one live handle per side of a channel; the daemon's source and sink are
    the same side (server), so they share this handle and it closes with the last of them.
    """

    _lock = threading.Lock()
    _open: dict[tuple[str, str], "_Attachment"] = {}
    _exit_hook = False

    def __init__(self, uri: str, name: str, options: dict[str, Any]):
        bridge = native()
        try:
            self.channel = bridge.Channel(name, options["role"], slots=options["slots"], max_bytes=options["max_bytes"],
                                          peer_timeout_ms=options["peer_timeout_ms"])
        except bridge.BridgeError as exc:
            raise channel_error(uri, exc) from None
        self.key = (name, options["role"])
        self.users = 0
        self.end_seen = False  # the peer sent end of stream on the ring we read
        self.stopping = threading.Event()  # set at interpreter exit: sources stop reading

    @classmethod
    def acquire(cls, uri: str, name: str, options: dict[str, Any]) -> "_Attachment":
        with cls._lock:
            attachment = cls._open.get((name, options["role"]))
            if attachment is None:
                attachment = cls._open[(name, options["role"])] = cls(uri, name, options)
            attachment.users += 1
            if not cls._exit_hook:
                atexit.register(cls.close_all)
                cls._exit_hook = True
            return attachment

    @classmethod
    def close_all(cls) -> None:
        """Detach every channel at interpreter exit, so the peer sees a clean detach (not a death)
        and no thread is left inside native code while the interpreter shuts down (a daemon thread
        still reading there would abort the process)."""
        with cls._lock:
            attachments = list(cls._open.values())
            cls._open.clear()
        for attachment in attachments:
            attachment.stopping.set()
            attachment.channel.close()  # waits for a read in flight (at most timeout_ms)

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            if self._open.get(self.key) is self:  # not already dropped by close_all
                del self._open[self.key]
        self.channel.close()


def segment_of(uri: str) -> str:
    """The shared-memory object behind a channel URI: /dev/shm/sonoedge-NAME."""
    parts = urlsplit(uri)
    return f"/dev/shm/sonoedge-{parts.netloc or parts.path.lstrip('/')}"


def _owner_and_mode(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f" (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}; we run as uid {os.geteuid()})"


def channel_error(uri: str, exc: Exception) -> SonoedgeError:
    """A BridgeError(status, message) as one sentence naming the channel and the fix."""
    status, message = exc.args if len(exc.args) == 2 else (-1, str(exc))
    names = {v: k for k, v in native().STATUS.items()}
    segment = segment_of(uri)
    fixes = {
        "SB_ERR_ROLE_TAKEN": "another live process holds this side; stop it or use another channel name",
        "SB_ERR_GEOMETRY_MISMATCH": "give the same slots and max_bytes on both sides, or leave them out on one",
        "SB_ERR_FRAME_TOO_LARGE": "raise max_bytes when the channel is created (both sides)",
        "SB_ERR_BAD_MAGIC": f"remove the stale object {segment} or use another name",
        "SB_ERR_VERSION_MISMATCH": "rebuild both sides from the same sonoedge version",
        "SB_ERR_CORRUPT_HEADER": f"remove the damaged object {segment} or use another name",
        "SB_ERR_PROTOCOL": f"the other side of {segment} wrote counters that cannot be right or shrank the object; "
                           "restart the device software (the channel resynchronises on its next frame)",
        "SB_ERR_PERMISSION": f"{segment} must belong to the user running both sides and be mode 0600"
                             f"{_owner_and_mode(segment)}; remove it and let sonoedge create it",
    }
    fix = fixes.get(names.get(status, ""), "")
    return InputError(f"{uri}: {message}" + (f"; {fix}" if fix else ""))


@SOURCES.register("shm")
class ShmSource(Source):
    """Raw frames from device software (the newest one at each read)."""

    live = True

    def __init__(self, uri: str, **options: Any):
        super().__init__(uri, **options)
        self.name, self.config = parse_uri(uri, **options)
        self.attachment: _Attachment | None = None
        self._closing = threading.Event()

    def open(self) -> None:
        if self.attachment is None:
            self.attachment = _Attachment.acquire(self.uri, self.name, self.config)
            self.attachment.end_seen = False  # a reopened source waits for a new stream
            self._closing.clear()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        bridge = native()
        attachment = self.attachment  # close() from another thread clears self.attachment
        channel = attachment.channel
        peer_gone = False
        while not (self._closing.is_set() or attachment.stopping.is_set()):
            try:
                item = channel.read(self.config["timeout_ms"])
            except bridge.BridgeError as exc:
                status = exc.args[0] if exc.args else -1
                if status == bridge.STATUS["SB_ERR_PEER_GONE"]:
                    if not peer_gone:
                        log.warning("the other side of the channel is gone; waiting for it to re-attach",
                                    extra={"event": "shm_peer_gone", "source": self.uri})
                    peer_gone = True
                    continue
                if status in {bridge.STATUS[name] for name in MALFORMED}:  # counted and skipped downstream
                    yield Frame(np.zeros((0, 0), np.uint8), -1, time.monotonic(), self.uri,
                                meta={"malformed": str(exc.args[-1])})
                    continue
                if self._closing.is_set() or attachment.stopping.is_set():
                    break
                raise channel_error(self.uri, exc) from None
            if item is None:
                continue
            if peer_gone:
                log.info("the other side of the channel is back", extra={"event": "shm_peer_back", "source": self.uri})
                peer_gone = False
            image, frame_id, timestamp_ns, flags, colour = item
            if flags & bridge.FLAG_END_OF_STREAM:
                attachment.end_seen = True
                return
            if colour == "bgr":  # the frame contract is RGB (runtime/frames.py)
                image = np.ascontiguousarray(image[:, :, ::-1])
            yield Frame(image, int(frame_id), timestamp_ns / 1e9, self.uri, meta={"shm_flags": int(flags)})

    def interrupt(self) -> None:
        """A blocked read returns within ``timeout_ms`` and the iteration ends (any thread)."""
        self._closing.set()

    def stats(self) -> dict[str, Any]:
        """The native ring counters: frames read and dropped on the ring this side reads, ..."""
        return self.attachment.channel.stats() if self.attachment else {}

    def close(self) -> None:
        """Stop iterating (from any thread: a blocked read returns within timeout_ms) and detach."""
        self._closing.set()
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            attachment.release()


@SINKS.register("shm")
class ShmSink(Sink):
    """Enhanced frames back to the device software, flagged enhanced or passthrough."""

    def __init__(self, uri: str, **options: Any):
        super().__init__(uri, **options)
        self.name, self.config = parse_uri(uri, **options)
        self.attachment: _Attachment | None = None
        self.last_id = -1

    def open(self) -> None:
        if self.attachment is None:
            self.attachment = _Attachment.acquire(self.uri, self.name, self.config)

    def write(self, frame: Frame) -> None:
        self.open()
        bridge = native()
        image = frame.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or not (
                image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            shape = getattr(image, "shape", None)
            raise InputError(f"{self.uri}: frame {frame.frame_id} must be uint8 (H, W) or (H, W, 3), got {shape}")
        flags = (bridge.FLAG_ENHANCED if frame.enhanced else 0) | (bridge.FLAG_PASSTHROUGH if frame.passthrough else 0)
        try:
            self.attachment.channel.write(image, max(int(frame.frame_id), 0), max(int(round(frame.timestamp * 1e9)), 0),
                                          flags, self.config["timeout_ms"])
        except bridge.BridgeError as exc:
            raise channel_error(self.uri, exc) from None
        self.last_id = frame.frame_id

    def end_stream(self) -> None:
        """Send end of stream now (a device-side client that has no more frames)."""
        self.open()
        bridge = native()
        try:
            self.attachment.channel.write_end(max(self.last_id + 1, 0), self.config["timeout_ms"])
        except bridge.BridgeError as exc:
            raise channel_error(self.uri, exc) from None

    def close(self) -> None:
        """Detach; when the device ended its stream, tell it this stream has ended too."""
        attachment, self.attachment = self.attachment, None
        if attachment is None:
            return
        try:
            if attachment.end_seen:
                attachment.channel.write_end(max(self.last_id + 1, 0), self.config["timeout_ms"])
        except native().BridgeError as exc:
            log.warning("could not send end of stream", extra={"event": "shm_end_failed", "sink": self.uri,
                                                               "error": str(exc.args[-1])})
        finally:
            attachment.release()
