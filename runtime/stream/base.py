"""Frame sources and sinks chosen by URI (``file://``, ``v4l2://``, ``rtsp://``, ``shm://``, ...).

A source yields :class:`~sonoedge.runtime.frames.Frame` objects; a sink consumes them. Both share
the lifecycle open/close and work as context managers. Implementations register under their URI
scheme in ``SOURCES`` / ``SINKS``; ``open_source`` and ``open_sink`` pick by scheme, and a bare
path means ``file://``.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from sonoedge.runtime.frames import Frame
from sonoedge.runtime.registry import Registry

SOURCES = Registry("frame source")
SINKS = Registry("frame sink")


class Source(abc.ABC):
    """An iterator of frames. ``fps`` is the nominal rate (None when unknown). ``owns_frames``: every
    frame's image is a new array that nothing else (the source, a tap, the caller) holds or reads
    again, so the pipeline may paste the enhanced region into it instead of copying the frame."""

    fps: float | None = None
    owns_frames: bool = False

    def __init__(self, uri: str, **options: Any):
        self.uri = uri
        self.options = options

    def open(self) -> None:
        """Acquire the device or file; raise a SonoedgeError naming it on failure."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        """Ask an ``__iter__`` blocked waiting for a frame to return soon. Called from another
        thread when a stream stops; sources whose reads never block for long need nothing."""

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sink(abc.ABC):
    def __init__(self, uri: str, **options: Any):
        self.uri = uri
        self.options = options

    def open(self) -> None:
        pass

    @abc.abstractmethod
    def write(self, frame: Frame) -> None: ...

    def close(self) -> None:
        """Flush and finalise; must leave a complete file or nothing (never half-written)."""

    def __enter__(self) -> "Sink":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TappedSource(Source):
    """Another source's frames, each shown to ``tap`` on its way through (to keep inputs for a
    side-by-side or a quality report). Opening, closing, ``fps`` and ``live`` are the inner source's."""

    def __init__(self, inner: Source, tap: Callable[[Frame], None]):
        super().__init__(inner.uri)
        self.inner, self.tap = inner, tap
        self.fps, self.live = inner.fps, getattr(inner, "live", False)

    def open(self) -> None:
        self.inner.open()

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.inner:
            self.tap(frame)
            yield frame

    def interrupt(self) -> None:
        self.inner.interrupt()

    def close(self) -> None:
        self.inner.close()


def scheme_of(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    return scheme if len(scheme) > 1 else "file"  # a bare path (or a Windows drive letter)


def open_source(uri: str, **options: Any) -> Source:
    return SOURCES.create(scheme_of(uri), uri, **options)


def open_sink(uri: str, **options: Any) -> Sink:
    return SINKS.create(scheme_of(uri), uri, **options)
