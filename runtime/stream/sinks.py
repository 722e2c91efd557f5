"""Frame sinks by URI, registered in ``SINKS`` (DESIGN.md, Frames in the runtime).

    out.mp4 / out.avi  (or file:///abs/out.mp4)  a video (mp4v / MJPG), written to a temporary file
                                                 and renamed on close: complete or absent
    out_frames/        (any other path)          a folder of PNG frames, built in a temporary folder
                                                 and renamed on close: each frame of an image folder
                                                 keeps its file's name (``scan_07.png``), other
                                                 frames are ``frame_000000.png``, ...
    null://                                      discards frames (benchmarks, health-only runs)
    window://[title]                             an OpenCV window, only where a display exists

A sink that fails before ``close`` (an exception in the pipeline) leaves no partial output:
:meth:`Sink.abort` removes the temporary file or folder. A file sink never overwrites what it did
not write (:mod:`sonoedge.runtime.outputs`): an existing video, or a folder that is not empty, is
refused unless ``overwrite=True`` (``?overwrite=1``), and even then a folder is replaced only when
it is an earlier frame folder of a sonoedge sink. Video encoders need even sizes: an odd-sized
frame gets its last row or column repeated (said once in the log), so every pixel is kept.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.atomic import atomic_path, commit_dir
from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame, to_grey
from sonoedge.runtime.outputs import check_file, check_whole_folder, write_marker
from sonoedge.runtime.stream.base import SINKS, Sink
from sonoedge.runtime.stream.sources import _flag, uri_path, uri_query

log = logging.getLogger("sonoedge.runtime.stream.sinks")

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}  # FOURCCs every OpenCV FFmpeg build writes
DEFAULT_FPS = 25.0


def _bgr(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return np.ascontiguousarray(image[:, :, ::-1])  # frames are RGB; OpenCV writes BGR


def _even(image: np.ndarray) -> np.ndarray:
    """``image`` with its last row / column repeated where a side is odd (video encoders need even
    sizes and would otherwise drop them)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)


@SINKS.register("file")
class FileSink(Sink):
    """A video by extension (.mp4, .avi) or a folder of PNG frames; atomic on close."""

    def __init__(self, uri: str, fps: float | None = None, overwrite: bool | None = None, **options: Any):
        super().__init__(uri, **options)
        self.path = uri_path(uri)
        self.fps = float(fps or uri_query(uri).get("fps", 0) or DEFAULT_FPS)
        self.overwrite = _flag(overwrite if overwrite is not None else uri_query(uri).get("overwrite", "0"))
        self.video = self.path.suffix.lower() in VIDEO_CODECS
        if not self.video and self.path.suffix:
            raise InputError(f"sink {self.path}: unsupported extension '{self.path.suffix}'; "
                             f"use {', '.join(VIDEO_CODECS)} for a video or a folder name for PNG frames")
        self.tmp: Path | None = None
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.count = 0
        self.names: set[str] = set()

    def open(self) -> None:
        if self.video:
            check_file(self.path, overwrite=self.overwrite)
        else:
            check_whole_folder(self.path, overwrite=self.overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.video:
            # not mkstemp: its 0600 mode would stick to the finished video; a unique name is enough
            self.tmp = self.path.parent / f".{self.path.stem}.{uuid.uuid4().hex[:12]}.partial{self.path.suffix}"
        else:
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent))

    def write(self, frame: Frame) -> None:
        import cv2

        if self.tmp is None:
            self.open()
        image = frame.image
        h, w = image.shape[:2]
        if self.video:
            if self.writer is None:
                self._open_writer(h, w)
            if (h, w) != self.size:
                raise InputError(f"frame {frame.frame_id} is {h}x{w} but the video {self.path.name} is "
                                 f"{self.size[0]}x{self.size[1]}; write a folder of PNG frames for streams that change size")
            self.writer.write(_bgr(_even(image)))
        else:
            out = image if image.ndim == 2 else _bgr(image)
            if not cv2.imwrite(str(self.tmp / self._name(frame)), out):
                raise SonoedgeError(f"cannot write PNG frame {self.count} into {self.tmp}")
        self.count += 1

    def _open_writer(self, h: int, w: int) -> None:
        import cv2

        even = (h + h % 2, w + w % 2)
        if even != (h, w):
            log.warning(f"frames are {w}x{h} (width x height) but video encoders need even sides: {self.path.name} is "
                        f"{even[1]}x{even[0]} with the last row/column repeated (write a folder for exact PNG frames)",
                        extra={"event": "video_padded"})
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()]),
                                      self.fps, (even[1], even[0]), True)
        if not self.writer.isOpened():
            raise SonoedgeError(f"OpenCV cannot write {self.path.suffix} video here; write PNG frames to a folder instead")
        self.size = (h, w)

    def _name(self, frame: Frame) -> str:
        """The input file's name (as .png) for frames of an image folder, else ``frame_000000.png``."""
        given = frame.meta.get("name")
        stem = Path(given).stem if given else f"frame_{self.count:06d}"
        name, k = f"{stem}.png", 1
        while name in self.names:  # a.png and a.jpg, or a multi-frame file inside the folder
            name, k = f"{stem}_{k}.png", k + 1
        self.names.add(name)
        return name

    def close(self) -> None:
        """Finalise: the video or folder appears whole under its name (nothing when no frame came)."""
        if self.tmp is None:
            return
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        tmp, self.tmp = self.tmp, None
        if self.count == 0:
            _remove(tmp)
            return
        if self.video:
            os.replace(tmp, self.path)
            return
        tmp.chmod(0o755)  # mkdtemp made it 0700
        write_marker(tmp, "sonoedge file sink")
        commit_dir(tmp, self.path, replace=self.overwrite)

    def abort(self) -> None:
        """Drop everything written so far (the pipeline failed): no half-written output."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            _remove(self.tmp)
            self.tmp = None

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


@SINKS.register("null")
class NullSink(Sink):
    """Counts frames and discards them."""

    def __init__(self, uri: str = "null://", **options: Any):
        super().__init__(uri, **options)
        self.count = 0
        self.last: Frame | None = None

    def write(self, frame: Frame) -> None:
        self.count += 1
        self.last = frame


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@SINKS.register("window")
class WindowSink(Sink):
    """An OpenCV window titled by the URI (``window://Enhanced``); needs a display and OpenCV highgui."""

    def __init__(self, uri: str = "window://", **options: Any):
        super().__init__(uri, **options)
        self.title = (uri_path(uri).as_posix().strip("/") or "sonoedge") if "://" in uri else "sonoedge"
        self.opened = False

    def open(self) -> None:
        import cv2

        if not display_available():
            raise SonoedgeError("the window sink needs a display (DISPLAY or WAYLAND_DISPLAY is not set); "
                                "use a file sink (out.mp4) or null:// on a headless device")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SonoedgeError(f"OpenCV here has no GUI support ({exc.msg.strip() if hasattr(exc, 'msg') else exc}); "
                                "install opencv-python instead of opencv-python-headless, or use a file sink") from None
        self.opened = True

    def write(self, frame: Frame) -> None:
        import cv2

        if not self.opened:
            self.open()
        cv2.imshow(self.title, _bgr(frame.image))
        cv2.waitKey(1)

    def close(self) -> None:
        if self.opened:
            import cv2

            cv2.destroyWindow(self.title)
            self.opened = False


__all__ = ["FileSink", "NullSink", "WindowSink", "display_available"]


class SideBySide:
    """A sink wrapper writing ``input | output`` (the input upscaled plainly for SR bundles)."""

    def __init__(self, inner, scale: int = 1):
        self.inner, self.scale = inner, scale
        self.uri = inner.uri
        self.inputs: dict[int, object] = {}

    def open(self) -> None:
        self.inner.open()

    def write(self, frame) -> None:
        source = self.inputs.pop(frame.frame_id)
        if self.scale > 1:
            source = np.repeat(np.repeat(source, self.scale, axis=0), self.scale, axis=1)
        left, right = source, frame.image
        if left.ndim != right.ndim:
            left, right = to_grey(left), to_grey(right)
        self.inner.write(dataclasses.replace(frame, image=np.concatenate([left, right], axis=1)))

    def close(self) -> None:
        self.inner.close()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.inner.__exit__(*exc)


class ImageSink:
    """One output image, written atomically; a second frame is an error."""

    def __init__(self, path: Path, overwrite: bool = False):
        self.path, self.uri, self.frame, self.overwrite = Path(path), str(path), None, overwrite

    def open(self) -> None:
        check_file(self.path, overwrite=self.overwrite)

    def write(self, frame) -> None:
        if self.frame is not None:
            raise InputError(f"{self.path} is a single image but the input has more than one frame")
        self.frame = frame

    def close(self) -> None:
        if self.frame is None:
            return
        image = self.frame.image
        if image.ndim == 3:
            image = image[:, :, 2::-1]  # RGB -> BGR for OpenCV
        with atomic_path(self.path) as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise SonoedgeError(f"OpenCV cannot write {self.path} (unsupported image extension?)")
        self.path.chmod(0o644)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
