"""Frame sources by URI, registered in ``SOURCES`` (DESIGN.md, Frames in the runtime).

    file:///data/clip.mp4  or a bare path   every kind ``sonoedge.runtime.readers`` reads: stills,
                                            DICOM, NRRD, .mha sequences, mp4/avi/.h264, image folders
    replay:///data/clip.mp4?fps=25&loop=1   the same files paced at their frame rate, like a probe
                                            (fps defaults to the file's, else 25; loop=1 repeats)
    v4l2:///dev/video0?width=640&height=480 a USB capture device (OpenCV V4L2)
    rtsp://host:8554/stream                 a network stream (OpenCV's FFmpeg backend)

A source yields :class:`Frame` objects with increasing ids and a monotonic capture timestamp.
``live`` says whether it produces frames on its own clock (replay, v4l2, rtsp: the pipeline drops the
oldest frame under overload) or on demand (file: the pipeline blocks and never drops). A frame that
cannot be decoded (a truncated still in a folder, a corrupt image, a header stating 100000 x 100000
pixels) is yielded with ``meta["malformed"]`` set to one sentence naming the file, so the pipeline
counts and skips it and the stream goes on.

Every source that decodes colour takes ``grey`` (constructor option, a ``[source.options]`` key of
the daemon's config, or ``?grey=exact`` in the URI): ``"fast"`` (OpenCV's cvtColor, the default) or
``"exact"`` (the float32 BT.601 reference, bit for bit; see ``frames.GREY_METHODS``). Decoding and
the grey conversion run in the thread that iterates the source: the pipeline's capture stage, so
they overlap inference.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import GREY_METHODS, Frame, to_grey
from sonoedge.runtime.stream.base import SOURCES, Source

DEFAULT_REPLAY_FPS = 25.0  # when a file states no rate (a folder of stills): a typical B-mode rate


def uri_path(uri: str) -> Path:
    """The filesystem path of ``scheme://path``, ``scheme:///abs/path`` or a bare path."""
    parts = urlsplit(uri)
    if len(parts.scheme) <= 1:  # bare path (or a drive letter)
        return Path(uri)
    return Path(unquote(parts.netloc + parts.path))


def uri_query(uri: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(uri).query).items()}


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _grey_option(uri: str, grey: str | None) -> str:
    method = grey if grey is not None else uri_query(uri).get("grey", "fast")
    if method not in GREY_METHODS:
        raise InputError(f"source {uri}: grey '{method}' is not one of {', '.join(GREY_METHODS)}")
    return method


def _malformed(frame_id: int, source: str, reason: str) -> Frame:
    return Frame(np.zeros((0, 0), np.uint8), frame_id, time.monotonic(), source, meta={"malformed": reason})


@SOURCES.register("file")
class FileSource(Source):
    """Every frame of a file or image folder once, as fast as the consumer takes them."""

    live = False
    owns_frames = True  # each frame freshly decoded (a replay's loop decodes again), held by no one else

    def __init__(self, uri: str, grey: str | None = None, **options: Any):
        super().__init__(uri, **options)
        self.path = uri_path(uri)
        self.grey = _grey_option(uri, grey)
        self.info = None
        self.next_id = 0
        self._opened: Iterator[np.ndarray] | None = None  # the first pass, continuing the probe's opening

    def open(self) -> None:
        from sonoedge.runtime.readers import open_frames

        # InputError naming the path when it is missing or unsupported; a video stays open, its
        # first frame decoded, for the first pass (readers.open_frames: one opening, not two)
        self.info, frames = open_frames(self.path, self.grey)
        self._opened = frames if self.info.kind != "folder" else None
        self.fps = self.info.fps

    def close(self) -> None:
        frames, self._opened = self._opened, None
        if frames is not None and hasattr(frames, "close"):
            frames.close()  # a first pass never read: its decoder is released

    def frames(self) -> Iterator[np.ndarray | str]:
        """Decoded uint8 frames; a string in place of a frame that could not be decoded."""
        for _name, item in self.named_frames():
            yield item

    def named_frames(self) -> Iterator[tuple[str | None, np.ndarray | str]]:
        """(file name inside a folder, else None; the frame or the reason it could not be decoded)."""
        from sonoedge.runtime.readers import folder_files, iter_frames

        if self.info is None:
            self.open()
        if self.info.kind != "folder":
            frames, self._opened = self._opened, None
            for item in frames if frames is not None else iter_frames(self.path, self.grey):
                yield None, item
            return
        for file in folder_files(self.path):  # per file, so one bad still does not end the stream
            try:
                for item in iter_frames(file, self.grey):
                    yield file.name, item
            except InputError as exc:
                yield file.name, str(exc)
            except Exception as exc:  # a reader bug on one file: counted as that file's, the stream goes on
                yield file.name, f"{file} could not be read ({type(exc).__name__}: {exc})"

    def __iter__(self) -> Iterator[Frame]:
        source = str(self.path)
        for name, item in self.named_frames():
            if isinstance(item, str):
                frame = _malformed(self.next_id, source, item)
            else:
                frame = Frame(item, self.next_id, time.monotonic(), source)
            if name is not None:
                frame.meta["name"] = name  # a folder sink writes the result under the input's name
            yield frame
            self.next_id += 1


@SOURCES.register("replay")
class ReplaySource(FileSource):
    """A file paced at its frame rate (``?fps=F`` overrides), optionally looped (``?loop=1``)."""

    live = True

    def __init__(self, uri: str, fps: float | None = None, loop: bool | None = None, **options: Any):
        super().__init__(uri, **options)
        query = uri_query(uri)
        self.requested_fps = float(fps if fps is not None else query.get("fps", 0) or 0)
        self.loop = _flag(loop if loop is not None else query.get("loop", "0"))
        if self.requested_fps < 0:
            raise InputError(f"replay source {uri}: fps must be positive")

    def open(self) -> None:
        super().open()
        self.fps = self.requested_fps or self.info.fps or DEFAULT_REPLAY_FPS

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps
        due = time.monotonic()
        while True:
            for frame in super().__iter__():
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                due = max(due + period, time.monotonic() - period)  # a late consumer does not cause a burst
                frame.timestamp = time.monotonic()
                yield frame
            if not self.loop:
                return


class FramesSource(Source):
    """Frames already in memory (benchmarks, the demo, tests); not registered under a scheme."""

    live = False

    def __init__(self, images: list[np.ndarray], name: str = "memory", fps: float | None = None, live: bool = False):
        super().__init__(f"memory://{name}")
        self.images, self.fps, self.live = images, fps, live

    def __iter__(self) -> Iterator[Frame]:
        for i, image in enumerate(self.images):
            yield Frame(image, i, time.monotonic(), self.uri)


class _CaptureSource(Source):
    """OpenCV VideoCapture devices and streams; a failed read ends the iteration (the supervisor reopens)."""

    live = True
    api_name = "CAP_ANY"

    def __init__(self, uri: str, open_timeout_ms: int = 5000, grey: str | None = None, **options: Any):
        super().__init__(uri, **options)
        self.open_timeout_ms = int(open_timeout_ms)
        self.grey = _grey_option(uri, grey)
        self.capture = None
        self.next_id = 0

    def target(self) -> str:
        return self.uri

    def open(self) -> None:
        import cv2

        api = getattr(cv2, self.api_name)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.open_timeout_ms]
        capture = cv2.VideoCapture(self.target(), api, params)
        if not capture.isOpened():
            capture.release()
            raise InputError(self.open_error())
        for key, prop in (("width", cv2.CAP_PROP_FRAME_WIDTH), ("height", cv2.CAP_PROP_FRAME_HEIGHT), ("fps", cv2.CAP_PROP_FPS)):
            value = uri_query(self.uri).get(key)
            if value:
                capture.set(prop, float(value))
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        self.capture = capture

    def open_error(self) -> str:
        return f"cannot open {self.uri}"

    def __iter__(self) -> Iterator[Frame]:
        if self.capture is None:
            self.open()
        while True:
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            grey = to_grey(image, self.grey, bgr=True)  # OpenCV gives BGR(A)
            yield Frame(np.ascontiguousarray(grey), self.next_id, time.monotonic(), self.uri)
            self.next_id += 1

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


@SOURCES.register("v4l2")
class V4l2Source(_CaptureSource):
    api_name = "CAP_V4L2"

    def target(self) -> str:
        return str(uri_path(self.uri))

    def open_error(self) -> str:
        dev = self.target()
        if not Path(dev).exists():
            return f"capture device {dev} does not exist; plug in the probe or capture card, or check `ls /dev/video*`"
        return f"capture device {dev} cannot be opened (busy or not a V4L2 video device); check its permissions (group 'video')"


@SOURCES.register("rtsp")
class RtspSource(_CaptureSource):
    api_name = "CAP_FFMPEG"

    def target(self) -> str:
        parts = urlsplit(self.uri)  # sonoedge's own query keys (width/height/fps/grey) are not the server's
        return parts._replace(query="").geturl() if set(uri_query(self.uri)) <= {"width", "height", "fps", "grey"} else self.uri

    def open_error(self) -> str:
        return (f"cannot open the stream {self.uri} within {self.open_timeout_ms} ms; "
                "check the address, that the server is up, and that OpenCV was built with FFmpeg")


__all__ = ["FileSource", "FramesSource", "ReplaySource", "V4l2Source", "RtspSource", "uri_path", "uri_query"]
