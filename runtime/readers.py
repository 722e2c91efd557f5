"""Read ultrasound data as it really comes, as uint8 grey frames.

Every supported kind goes through two functions:

    probe(path) -> MediaInfo                 # what the file is, without decoding every frame
    iter_frames(path) -> Iterator[ndarray]   # uint8 (H, W) grey frames, in order
    read_image(path) -> ndarray              # the first frame, uint8 (H, W)

Kinds (chosen by extension; a file without a known extension is sniffed for the DICOM preamble):

- ``image``: PNG, JPEG, BMP, TIFF stills (OpenCV, ``IMREAD_UNCHANGED``; multi-page TIFF gives
  one frame per page).
- ``dicom``: single- and multi-frame DICOM (pydicom), MONOCHROME1/2, RGB, YBR_* and PALETTE COLOR,
  and every compressed transfer syntax pydicom has a decoder for here; otherwise an error names the
  transfer syntax and the packages that decode it.
- ``nrrd``: NRRD (pynrrd), 2-D images or 3-D stacks whose slowest axis is time/frames.
- ``metaimage``: MetaImage ``.mha``/``.mhd`` (own reader: text header, raw or zlib data,
  ``ElementDataFile = LOCAL`` or a detached file). The PLUS toolkit ``.igs.mha`` sequences are
  W x H x N volumes and give N frames.
- ``video``: mp4, avi, mov, mkv and raw H.264 (``.h264``/``.264``) through OpenCV's FFmpeg backend.
  This OpenCV build (opencv-python-headless 5.0, FFmpeg) decodes H.264, MPEG-4 Part 2, MJPEG and
  FFV1; it writes mp4v, MJPG, XVID and FFV1 but not H.264 (no encoder). A video that stops well
  before the frame count its container states is reported as truncated after its last frame.
- ``folder``: the images of a directory, sorted naturally by name (``f2`` before ``f10``).

Conversion to uint8 grey (the runtime's native format, see ``frames.py``):

- colour (RGB/RGBA screen captures, decoded YBR DICOM, palette colour) goes through
  :func:`sonoedge.runtime.frames.to_grey` (ITU-R BT.601 luma), in OpenCV's BGR order where OpenCV
  decoded it (no channel swap copy); ``grey`` picks the method: ``"fast"`` (OpenCV's cvtColor, the
  default) or ``"exact"`` (the float32 reference, bit for bit), see ``frames.GREY_METHODS``.
- uint8 data passes unchanged.
- other data types are windowed linearly to 0..255: DICOM applies its Rescale Slope/Intercept and
  then its first Window Center/Width when present (DICOM PS3.3 C.11.2.1.2), MONOCHROME1 is
  inverted; everything else (16-bit PNG/TIFF, float or 16-bit NRRD/MetaImage, DICOM without a
  window) uses the minimum and maximum of the whole file, so frames of one clip share one window.

Errors a user can cause (a missing path, an unsupported extension, a folder without images, a
corrupt or truncated file, a video with no decodable frame, a frame smaller than
:data:`MIN_SIDE` pixels) raise :class:`~sonoedge.runtime.errors.InputError` with one sentence
naming the file. numpy only at import time; OpenCV, pydicom and pynrrd are imported when used.

Hostile or broken files (what a reader must survive on a device that reads whatever is plugged in):

- Only regular files are opened: a FIFO, a device or a symlink to one is refused before it is
  opened (a FIFO would block the reader, ``/dev/zero`` would be read until memory runs out).
- Every size is bounded before anything is allocated or decompressed: a frame side by
  :data:`~sonoedge.runtime.frames.MAX_FRAME_SIDE` (stills' headers are parsed first), what a reader
  holds of one file, and one frame, by :data:`~sonoedge.runtime.frames.MAX_DATA_BYTES`;
  decompression stops at the size the header states, so a 1 MB zlib bomb costs at most that.
- A MetaImage ``ElementDataFile`` or an NRRD ``data file`` must be a regular file in the header's
  folder (or below it) and not a symlink: a header cannot make the reader open ``../../etc/passwd``.
- OpenCV's and FFmpeg's own log lines are silenced while a file is decoded (the problem reaches the
  caller as one InputError instead); set ``OPENCV_LOG_LEVEL`` or ``OPENCV_FFMPEG_LOGLEVEL`` to see
  them. pydicom's warnings about non-conformant but readable files are silenced likewise.
"""
from __future__ import annotations

import bz2
import contextlib
import dataclasses
import os
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import GREY_METHODS, MAX_DATA_BYTES, MAX_FRAME_SIDE, check_frame_side, to_grey

VIDEO_COUNT_SLACK = 0.01  # containers may overstate their frame count by a frame or 1%; more is truncation
MIN_SIDE = 16  # pixels: the smallest frame height or width accepted anywhere (a 1x1 image is an error)
MAX_CHANNELS = 4  # grey, grey + alpha, colour, colour + alpha
_HEADER_BYTES = 1 << 20  # a MetaImage or NRRD text header is a few KB; 1 MB without its end is not a header
_CHUNK = 1 << 20  # bytes read at a time when decompressing
_STILL_BYTES_PER_PIXEL = 8  # the most OpenCV decodes a still pixel to (16-bit, 4 channels)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")
NRRD_EXTENSIONS = (".nrrd", ".nhdr")
METAIMAGE_EXTENSIONS = (".mha", ".mhd")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".h264", ".264")
KINDS = ("image", "dicom", "nrrd", "metaimage", "video", "folder")


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a file or folder.

    ``frames`` is None when the container does not say (raw H.264); ``height``/``width`` are of the
    first frame; ``channels`` is what the file stores (1 grey, 3 colour, 4 with alpha) before the
    conversion to grey; ``fps`` is the nominal rate or None; ``spacing`` is (row, column) in
    millimetres per pixel when the file states it, else None.
    """

    path: Path
    kind: str  # one of KINDS
    frames: int | None
    height: int
    width: int
    channels: int
    fps: float | None = None
    spacing: tuple[float, float] | None = None


def kind_of(path: str | Path) -> str:
    """The kind of ``path`` (see :data:`KINDS`); InputError when it is missing, not a regular file
    or folder, or unsupported."""
    path = Path(path)
    if _stat(path) is None:
        return "folder"
    suffix = path.suffix.lower()
    for kind, extensions in (
        ("image", IMAGE_EXTENSIONS),
        ("dicom", DICOM_EXTENSIONS),
        ("nrrd", NRRD_EXTENSIONS),
        ("metaimage", METAIMAGE_EXTENSIONS),
        ("video", VIDEO_EXTENSIONS),
    ):
        if suffix in extensions:
            return kind
    if _has_dicom_preamble(path):
        return "dicom"
    supported = " ".join(IMAGE_EXTENSIONS + DICOM_EXTENSIONS + NRRD_EXTENSIONS + METAIMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    raise InputError(f"{path} has an unsupported file type '{suffix or '(none)'}'; supported: {supported} or a folder of images.")


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path`` (a file of any supported kind or a folder of images) without reading all of it."""
    path = Path(path)
    kind = kind_of(path)
    return _PROBES[kind](path)


def iter_frames(path: str | Path, grey: str = "fast") -> Iterator[np.ndarray]:
    """Yield every frame of ``path`` as uint8 (H, W) grey, in order (see the module docstring);
    colour becomes grey by ``grey`` (one of ``frames.GREY_METHODS``)."""
    path = Path(path)
    kind = kind_of(path)
    _check_grey(grey)
    yield from _checked(_READERS[kind](path, grey), path, kind)


def open_frames(path: str | Path, grey: str = "fast") -> tuple[MediaInfo, Iterator[np.ndarray]]:
    """:func:`probe` and :func:`iter_frames` with ONE opening of the file where that saves work: a
    video's probe opens the decoder and decodes the first frame, and the iterator goes on from
    there (opening an FFmpeg decoder and decoding a frame again cost about 15-20 ms of CPU per
    file). Other kinds: the probe, and the lazy :func:`iter_frames`."""
    path = Path(path)
    kind = kind_of(path)
    _check_grey(grey)
    if kind != "video":
        return probe(path), iter_frames(path, grey)
    capture = _open_video(path)
    try:
        info, first = _probe_capture(path, capture)
    except BaseException:
        capture.release()
        raise
    return info, _checked(_read_video(path, grey, capture, first), path, kind)


def _check_grey(grey: str) -> None:
    if grey not in GREY_METHODS:
        raise InputError(f"grey method '{grey}' is not one of {', '.join(GREY_METHODS)}")


def _checked(frames: Iterator[np.ndarray], path: Path, kind: str) -> Iterator[np.ndarray]:
    count = 0
    for frame in frames:
        _check_size(frame, path)
        count += 1
        yield frame
    if count == 0:
        raise InputError(f"{path} contains no decodable frame (empty or corrupt {kind}).")


def read_image(path: str | Path, grey: str = "fast") -> np.ndarray:
    """The first frame of ``path`` as uint8 (H, W) grey (a still, or frame 0 of a sequence)."""
    frames = iter_frames(path, grey)
    try:
        return next(frames)
    finally:
        frames.close()


# ---------------------------------------------------------------------------------------------
# files: regular files only, sizes bounded


def _stat(path: Path) -> os.stat_result | None:
    """The stat of a regular file (symlinks followed); None for a folder; InputError otherwise."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; check the path.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise InputError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file (a FIFO, device or socket, or a link to one); "
                         "give a file or a folder of images.")
    return st


@contextlib.contextmanager
def _open_regular(path: Path, limit: int | None = MAX_DATA_BYTES) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading, refusing anything but a regular file of at most ``limit`` bytes.

    O_NONBLOCK: a FIFO put in place after a check opens without waiting for a writer and is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    fh = os.fdopen(fd, "rb")
    with fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path} is not a regular file (a FIFO, device or socket); give a file or a folder of images.")
        if limit is not None and st.st_size > limit:
            raise InputError(f"{path} is {st.st_size} bytes; a file read whole may be at most {limit} bytes.")
        os.set_blocking(fd, True)
        yield fh


def _read_bytes(path: Path, limit: int = MAX_DATA_BYTES) -> bytes:
    try:
        with _open_regular(path, limit) as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}).") from exc


def _data_file(header_path: Path, name: str) -> Path:
    """The data file ``name`` a header names: a regular file in the header's folder or below it,
    not a symlink (a header cannot point the reader at ``../../etc/passwd`` or a device)."""
    folder = header_path.parent.resolve()
    target = header_path.parent / name
    try:
        inside = target.resolve().is_relative_to(folder)
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        inside = False
    if not inside or Path(name).is_absolute():
        raise InputError(f"{header_path} names the data file '{name}' outside its own folder; "
                         "a data file must sit beside its header.")
    if target.is_symlink():
        raise InputError(f"{header_path} names the data file {target}, which is a symlink; give the file itself.")
    if not target.exists():
        raise InputError(f"{header_path} names the data file {target}, which does not exist.")
    try:
        folder_or_file = _stat(target)
    except InputError:
        raise InputError(f"{header_path} names the data file {target}, which is not a regular file "
                         "(a FIFO, device or socket).") from None
    if folder_or_file is None:
        raise InputError(f"{header_path} names the data file {target}, which is a folder.")
    return target


def _inflate(path: Path, fh: IO[bytes], expected: int, method: str = "zlib") -> bytearray:
    """Decompress a zlib/gzip (``zlib``) or bzip2 (``bz2``) stream from ``fh``, stopping at
    ``expected`` bytes: a stream that would inflate further is never expanded in memory."""
    out = bytearray()
    decoder = bz2.BZ2Decompressor() if method == "bz2" else zlib.decompressobj(zlib.MAX_WBITS | 32)  # | 32: zlib or gzip
    try:
        while len(out) < expected and not decoder.eof:
            if method == "bz2":
                data = fh.read(_CHUNK) if decoder.needs_input else b""
                if not data and decoder.needs_input:
                    break
            else:
                data = decoder.unconsumed_tail or fh.read(_CHUNK)
                if not data:
                    break
            out += decoder.decompress(data, expected - len(out))
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path} has corrupt compressed image data ({exc}).") from None
    if len(out) < expected:
        raise InputError(f"{path} is truncated: {len(out)} of {expected} bytes of image data.")
    return out


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[Any]:
    """OpenCV with its log (and FFmpeg's, from the first video opened on) silenced; yields cv2.

    FFmpeg's level is read once per process when OpenCV's FFmpeg backend starts: the variable is
    set for that moment only and removed again."""
    import cv2

    # two lookups, not a set of the whole environment: this runs around every decoded video frame
    unset_ffmpeg = "OPENCV_FFMPEG_LOGLEVEL" not in os.environ and "OPENCV_FFMPEG_DEBUG" not in os.environ
    if unset_ffmpeg:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    level = cv2.utils.logging.getLogLevel()
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield cv2
    finally:
        cv2.utils.logging.setLogLevel(level)
        if unset_ffmpeg:
            os.environ.pop("OPENCV_FFMPEG_LOGLEVEL", None)


_NATIVE_CHATTER = (b"libpng ", b"Corrupt JPEG data", b"Premature end of JPEG", b"Invalid SOS parameters", b"Bogus ")


@contextlib.contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    """Drop the lines libpng and libjpeg print straight to file descriptor 2 while a still decodes
    (OpenCV cannot turn them off); anything else written there meanwhile (another thread's log) is
    passed on afterwards. Without a usable descriptor 2 nothing is filtered."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = b"".join(line for line in capture.read().splitlines(keepends=True) if not line.startswith(_NATIVE_CHATTER))
            if kept:
                os.write(2, kept)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _positive_ints(path: Path, what: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split()]
    except ValueError:
        raise InputError(f"{path} has a malformed {what} '{text}' (expected whole numbers).") from None
    if not values or min(values) < 1:
        raise InputError(f"{path} has {what} '{text}'; every value must be 1 or more.")
    return values


def _check_dims(path: Path, height: int, width: int, frames: int = 1, channels: int = 1, itemsize: int = 1,
                whole: bool = True) -> None:
    """Header sizes within the bounds: sides, channels, and the bytes of one frame (``whole``: of
    every frame, when the reader must hold the file whole). Nothing is allocated."""
    check_frame_side(height, width, str(path))
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InputError(f"{path} is {width}x{height} pixels; the smallest usable frame is {MIN_SIDE}x{MIN_SIDE}.")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{path} states {channels} channels per pixel; expected 1 to {MAX_CHANNELS}.")
    nbytes = height * width * channels * itemsize * (frames if whole else 1)
    if nbytes > MAX_DATA_BYTES:
        raise InputError(f"{path} states {nbytes} bytes of image data ({frames} frame(s) of {width}x{height}x{channels}); "
                         f"the most a reader holds is {MAX_DATA_BYTES} bytes.")


# ---------------------------------------------------------------------------------------------
# conversion helpers


def window_to_uint8(array: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linearly map [low, high] (default: the array's min and max) to uint8 0..255, clipping.

    uint8 input is returned unchanged when no window is given. A constant array maps to 0.
    """
    if array.dtype == np.uint8 and low is None and high is None:
        return array
    data = np.asarray(array, dtype=np.float64) if array.dtype != np.float32 else array
    finite = np.isfinite(data)
    if low is None or high is None:
        if not finite.any():
            return np.zeros(array.shape, np.uint8)
        values = data[finite] if not finite.all() else data
        low = float(values.min()) if low is None else low
        high = float(values.max()) if high is None else high
    scale = 255.0 / (high - low) if high > low else 0.0
    out = (np.where(finite, data, low) - low) * scale
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grey(frame: np.ndarray, bgr: bool = False, method: str = "fast") -> np.ndarray:
    """uint8 (H, W[, C]) -> uint8 (H, W); ``bgr`` marks OpenCV channel order. Two channels are
    grey and alpha: the grey is kept."""
    if frame.ndim == 3 and frame.shape[2] in (1, 2):
        return np.ascontiguousarray(frame[:, :, 0])
    return np.ascontiguousarray(to_grey(frame, method, bgr=bgr))


def _check_size(frame: np.ndarray, path: Path) -> None:
    if frame.ndim != 2 or frame.dtype != np.uint8:  # a reader bug, not a user error
        raise AssertionError(f"reader produced {frame.dtype} {frame.shape} for {path}")
    h, w = frame.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"{path} is {w}x{h} pixels; the smallest usable frame is {MIN_SIDE}x{MIN_SIDE}.")


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with _open_regular(path, limit=None) as fh:
            head = fh.read(132)
    except (OSError, InputError):
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


# ---------------------------------------------------------------------------------------------
# stills: the header's size is checked before OpenCV decodes anything

_STILL_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
                     (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # ITU T.81, Table B.1
_TIFF_MAX_PAGES = 10000


def _still_format(path: Path, data: bytes) -> str:
    for signature, name in _STILL_SIGNATURES:
        if data.startswith(signature):
            return name
    raise InputError(f"{path} is not a PNG, JPEG, BMP or TIFF image (no known signature); it is corrupt or misnamed.")


def _still_sizes(path: Path, data: bytes, fmt: str) -> list[tuple[int, int]]:
    """(height, width) of every page as the header states it, without decoding."""
    try:
        sizes = {"PNG": _png_size, "JPEG": _jpeg_size, "BMP": _bmp_size, "TIFF": _tiff_sizes}[fmt](data)
    except (struct.error, IndexError, ValueError) as exc:
        raise InputError(f"{path} has a corrupt {fmt} header ({_first_line(exc)}).") from None
    if not sizes:
        raise InputError(f"{path} has a corrupt {fmt} header (no image size in it).")
    return sizes


def _png_size(data: bytes) -> list[tuple[int, int]]:
    if data[12:16] != b"IHDR":
        raise ValueError("the first chunk is not IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return [(height, width)]


def _jpeg_size(data: bytes) -> list[tuple[int, int]]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return [(height, width)]
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return []


def _bmp_size(data: bytes) -> list[tuple[int, int]]:
    (info_size,) = struct.unpack("<I", data[14:18])
    if info_size == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return [(abs(height), width)]  # a negative height is a top-down bitmap


def _tiff_sizes(data: bytes) -> list[tuple[int, int]]:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    sizes, seen = [], set()
    while offset and offset not in seen and len(sizes) < _TIFF_MAX_PAGES:
        seen.add(offset)
        (count,) = struct.unpack(order + "H", data[offset:offset + 2])
        tags = {}
        for k in range(count):
            entry = data[offset + 2 + 12 * k:offset + 14 + 12 * k]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
                tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        if 256 not in tags or 257 not in tags:
            raise ValueError("a page without ImageWidth/ImageLength")
        sizes.append((tags[257], tags[256]))
        (offset,) = struct.unpack(order + "I", data[offset + 2 + 12 * count:offset + 6 + 12 * count])
    return sizes


def _decode_still_pages(path: Path) -> list[np.ndarray]:
    """Raw decoded pages (H, W[, C]) in OpenCV BGR order, any depth; InputError when corrupt."""
    data = _read_bytes(path)
    if not data:
        raise InputError(f"{path} is empty (0 bytes).")
    fmt = _still_format(path, data)
    sizes = _still_sizes(path, data, fmt)
    for height, width in sizes:
        _check_dims(path, height, width)
    if sum(h * w for h, w in sizes) * _STILL_BYTES_PER_PIXEL > MAX_DATA_BYTES:
        raise InputError(f"{path} holds {len(sizes)} pages of up to {max(sizes)} pixels; "
                         f"the most a reader holds is {MAX_DATA_BYTES} bytes.")
    _check_still_complete(path, data, fmt)
    buffer = np.frombuffer(data, np.uint8)
    with _quiet_opencv() as cv2, _native_stderr_filtered():
        try:
            if fmt == "TIFF":
                ok, decoded = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED)
                pages = list(decoded) if ok else []
            else:
                image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
                pages = [image] if image is not None else []
        except cv2.error as exc:
            raise InputError(f"{path} cannot be decoded as a {fmt} image ({_first_line(exc)}).") from None
    if not pages:
        raise InputError(f"{path} cannot be decoded as an image (corrupt, truncated or not really {fmt}).")
    for page in pages:
        if page.ndim == 3 and page.shape[2] > MAX_CHANNELS or (page.shape[0], page.shape[1]) not in sizes:
            raise InputError(f"{path} decodes to {page.shape}, not the size its header states (corrupt {fmt}).")
    return pages


def _check_still_complete(path: Path, data: bytes, fmt: str) -> None:
    """Catch truncation that decoders tolerate silently (libjpeg pads a cut JPEG with grey)."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        raise InputError(f"{path} is a truncated JPEG (no end-of-image marker).")
    if fmt == "PNG" and b"IEND" not in data[-16:]:
        raise InputError(f"{path} is a truncated PNG (no IEND chunk).")


def _still_to_grey(page: np.ndarray, grey: str = "fast") -> np.ndarray:
    if page.dtype != np.uint8:
        page = window_to_uint8(page)
    return _grey(page, bgr=True, method=grey)


def _read_still(path: Path, grey: str = "fast") -> Iterator[np.ndarray]:
    for page in _decode_still_pages(path):
        yield _still_to_grey(page, grey)


def _probe_still(path: Path) -> MediaInfo:
    pages = _decode_still_pages(path)
    first = pages[0]
    channels = 1 if first.ndim == 2 else first.shape[2]
    return MediaInfo(path, "image", len(pages), first.shape[0], first.shape[1], channels)


# ---------------------------------------------------------------------------------------------
# folders


def folder_files(path: Path) -> list[Path]:
    """The image files of a folder (not recursive, hidden files skipped), sorted naturally."""
    files = [
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise InputError(f"{path} contains no images ({' '.join(IMAGE_EXTENSIONS)}); point at a folder of frames.")
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_folder(path: Path, grey: str = "fast") -> Iterator[np.ndarray]:
    for file in folder_files(path):
        for page in _decode_still_pages(file):
            frame = _still_to_grey(page, grey)
            _check_size(frame, file)
            yield frame


def _probe_folder(path: Path) -> MediaInfo:
    """The folder's frame count and the size of its first readable image (a bad file is that
    file's error when its frames are read, not the folder's)."""
    files = folder_files(path)
    errors = []
    for file in files:
        try:
            first = _probe_still(file)
        except InputError as exc:
            errors.append(exc)
            continue
        return dataclasses.replace(first, path=path, kind="folder", frames=len(files))
    raise InputError(f"{path} contains no readable image ({len(errors)} file(s); the first: {errors[0]})")


# ---------------------------------------------------------------------------------------------
# DICOM


_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"  # JPEG Baseline (Process 1): 8-bit, decoded by OpenCV


@contextlib.contextmanager
def _dicom_guard(path: Path) -> Iterator[None]:
    """pydicom raises many kinds of exception on a malformed file (and warns about non-conformant
    but readable ones): any of them is one InputError naming the file; warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except SonoedgeError:
            raise
        except Exception as exc:  # a parser of hostile input: every failure is the file's
            raise InputError(f"{path} is not a readable DICOM image ({type(exc).__name__}: {_first_line(exc)}).") from None


def _dicom_dataset(path: Path, pixels: bool):
    from sonoedge.runtime.errors import require

    pydicom = require("pydicom", "runtime")
    with _open_regular(path) as fh, _dicom_guard(path):
        ds = pydicom.dcmread(fh, stop_before_pixels=not pixels)
        if "PixelData" not in ds and pixels:
            raise InputError(f"{path} is a DICOM file without readable pixel data (truncated, or not an image).")
        if not pixels and not {"Rows", "Columns"} <= set(ds.dir()):
            raise InputError(f"{path} is a DICOM file without image rows/columns (not an image).")
        _dicom_geometry(path, ds)
    return ds


def _dicom_geometry(path: Path, ds) -> tuple[int, int, int, int]:
    """(frames, rows, columns, samples per pixel) from the header, checked against the bounds."""
    if "Rows" not in ds or "Columns" not in ds:
        raise InputError(f"{path} is a DICOM file without image rows/columns (not an image).")
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if frames < 1 or samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise InputError(f"{path} states {frames} frame(s), {samples} samples per pixel and {bits} bits allocated; "
                         "expected 1 or more frames, 1 or 3 samples and 1, 8, 16, 32 or 64 bits.")
    _check_dims(path, rows, columns, frames, samples, max(1, bits // 8))
    return frames, rows, columns, samples


def _decode_errors(path: Path, ds):
    """Context manager turning pydicom decoding failures into one InputError naming the file."""
    syntax = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    syntax_name = getattr(syntax, "name", str(syntax))

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (RuntimeError, NotImplementedError, ImportError) as exc:
            raise InputError(
                f"{path} uses the transfer syntax '{syntax_name}', which no installed decoder handles "
                f"({_first_line(exc)}); install pylibjpeg, pylibjpeg-libjpeg/-openjpeg or python-gdcm to read it."
            ) from None

    return guard()


def _transfer_syntax(ds) -> str:
    return str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""


def _dicom_jpeg_frames(path: Path, ds) -> Iterator[np.ndarray]:
    """JPEG Baseline frames decoded by OpenCV (the runtime has no Pillow): uint8 (H, W) or RGB (H, W, 3).

    libjpeg-turbo behind both, so the pixels equal pydicom's Pillow decoder's (checked on the
    Sonoque files of ../shared/data/realus)."""
    from pydicom.encaps import generate_frames

    frames, rows, columns, samples = _dicom_geometry(path, ds)
    decoded = 0
    for fragment in generate_frames(ds.PixelData, number_of_frames=frames):
        if decoded == frames:
            break
        buffer = np.frombuffer(fragment, np.uint8)
        with _quiet_opencv() as cv2, _native_stderr_filtered():
            try:
                image = cv2.imdecode(buffer, cv2.IMREAD_COLOR if samples == 3 else cv2.IMREAD_GRAYSCALE)
            except cv2.error:
                image = None
        if image is None or image.shape[:2] != (rows, columns):
            raise InputError(f"{path} has corrupt JPEG pixel data in frame {decoded}.")
        decoded += 1
        yield image[:, :, ::-1] if samples == 3 else image
    if decoded < frames:
        raise InputError(f"{path} is truncated: {decoded} of its {frames} JPEG frames.")


def _dicom_pixels(path: Path, ds) -> np.ndarray:
    """Decoded pixel array (N, H, W[, 3]) of every frame, colour converted to RGB."""
    frames, _, _, samples = _dicom_geometry(path, ds)
    if _transfer_syntax(ds) == _JPEG_BASELINE:
        array = np.stack(list(_dicom_jpeg_frames(path, ds)))
    else:
        with _decode_errors(path, ds):
            array = ds.pixel_array
        if frames == 1:
            array = array[None]
    if samples == 1 and array.ndim != 3 or samples > 1 and array.ndim != 4:
        raise InputError(f"{path} decodes to an unexpected pixel array shape {array.shape}.")
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, ds)
        if array.dtype != np.uint8:  # 16-bit palette entries: keep the top 8 bits of the LUT range
            array = (array.astype(np.float32) / 257.0).round().clip(0, 255).astype(np.uint8)
    return array


def _dicom_stream(path: Path, ds) -> Iterator[np.ndarray]:
    """Decoded frames (H, W[, 3]) one at a time (pydicom.pixels.iter_pixels): a long cine loop
    never sits in memory whole."""
    if _transfer_syntax(ds) == _JPEG_BASELINE:
        yield from _dicom_jpeg_frames(path, ds)
        return
    from pydicom.pixels import iter_pixels

    frames = iter_pixels(ds)
    while True:
        with _decode_errors(path, ds):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


def _first_value(value: Any) -> float:
    """A DICOM DS/IS value that may be multi-valued (several windows): its first entry."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[0]
    return float(value)


def _dicom_window(ds) -> tuple[float, float] | None:
    """(low, high) of the first VOI window (DICOM PS3.3 C.11.2.1.2), or None."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    centre, width = _first_value(ds.WindowCenter), _first_value(ds.WindowWidth)
    if width < 1:
        return None
    # linear VOI: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255 on [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2]
    return centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2


def _dicom_frames_uint8(path: Path, grey: str = "fast") -> Iterator[np.ndarray]:
    ds = _dicom_dataset(path, pixels=True)
    frames = _dicom_frames_of(path, ds, grey)
    while True:
        with _dicom_guard(path):  # around each step, not across a yield: the warning filters are global
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


def _dicom_frames_of(path: Path, ds, grey: str = "fast") -> Iterator[np.ndarray]:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    window = None if samples > 1 else _dicom_window(ds)
    eight_bit = int(ds.get("BitsAllocated", 8)) == 8 and int(ds.get("PixelRepresentation", 0) or 0) == 0
    if frames > 1 and photometric != "PALETTE COLOR" and (eight_bit or window is not None):
        # each frame converts on its own (no whole-file min/max needed): stream them
        for frame in _dicom_stream(path, ds):
            yield _dicom_to_grey(frame[None], ds, window, grey)[0]
        return
    for frame in _dicom_to_grey(_dicom_pixels(path, ds), ds, window, grey):
        yield frame


def _dicom_to_grey(array: np.ndarray, ds, window: tuple[float, float] | None, grey: str = "fast") -> np.ndarray:
    """(N, H, W[, 3]) decoded pixels -> (N, H, W) uint8: modality rescale, window (or the min/max
    of ``array``), MONOCHROME1 inversion, colour to luma."""
    if array.dtype != np.uint8:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        values = array.astype(np.float32) * slope + intercept if (slope, intercept) != (1.0, 0.0) else array
        array = window_to_uint8(values, *(window or (None, None)))
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        array = 255 - array  # MONOCHROME1: the minimum value is white
    return np.stack([_grey(frame, method=grey) for frame in array])


def _dicom_spacing(ds) -> tuple[float, float] | None:
    if "PixelSpacing" in ds and ds.PixelSpacing:
        row, col = (float(v) for v in ds.PixelSpacing[:2])
        return row, col
    for region in ds.get("SequenceOfUltrasoundRegions", []) or []:
        # Physical units 3 = cm (DICOM PS3.3 C.8.5.5.1.15); the deltas are cm per pixel
        if int(region.get("PhysicalUnitsXDirection", 0)) == 3 and int(region.get("PhysicalUnitsYDirection", 0)) == 3:
            return float(region.PhysicalDeltaY) * 10.0, float(region.PhysicalDeltaX) * 10.0
    return None


def _dicom_fps(ds) -> float | None:
    for key in ("RecommendedDisplayFrameRate", "CineRate"):
        if key in ds and ds.get(key):
            return float(ds.get(key))
    if "FrameTime" in ds and ds.FrameTime and float(ds.FrameTime) > 0:
        return 1000.0 / float(ds.FrameTime)  # FrameTime is in milliseconds
    return None


def _probe_dicom(path: Path) -> MediaInfo:
    ds = _dicom_dataset(path, pixels=False)
    with _dicom_guard(path):
        frames, rows, columns, samples = _dicom_geometry(path, ds)
        return MediaInfo(path, "dicom", frames, rows, columns, samples, _dicom_fps(ds), _dicom_spacing(ds))


# ---------------------------------------------------------------------------------------------
# NRRD

_NRRD_CHANNEL_KINDS = {"rgb-color", "rgba-color", "3-color", "4-color", "vector", "covariant-vector", "hsv-color", "xyz-color"}


_NRRD_ASCII_MAX_VALUES = 1 << 21  # text-encoded data parses through Python strings: 2 M values (1448 x 1448)


def _nrrd_header(path: Path) -> tuple[dict, int]:
    """(header as pynrrd parses it, byte offset of attached data). The header is read from at most
    1 MB of the file: pynrrd itself would read a file without line breaks whole."""
    from sonoedge.runtime.errors import require

    nrrd = require("nrrd", "runtime")
    with _open_regular(path, limit=None) as fh:
        head = fh.read(_HEADER_BYTES)
    if not head:
        raise InputError(f"{path} is empty (0 bytes).")
    if not head.startswith(b"NRRD000"):
        raise InputError(f"{path} is not an NRRD file (no NRRD000x magic line).")
    end = re.search(rb"\r?\n\r?\n", head)
    if end is None and len(head) == _HEADER_BYTES:
        raise InputError(f"{path} has no end of its NRRD header in its first {_HEADER_BYTES} bytes.")
    text, offset = (head[:end.start()], end.end()) if end else (head, len(head))  # a detached header ends with the file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = nrrd.read_header(text.decode("latin-1").splitlines())
    except Exception as exc:  # pynrrd's parser of hostile input: every failure is the file's
        raise InputError(f"{path} has a malformed NRRD header ({type(exc).__name__}: {_first_line(exc)}).") from None
    return header, offset


def _nrrd_layout(path: Path, header: dict) -> tuple[int | None, int, int, int, int, np.dtype]:
    """(channel axis in C order or None, frames, height, width, channels, dtype) from the header,
    checked against the bounds."""
    import nrrd

    sizes = _positive_ints(path, "NRRD sizes", " ".join(str(s) for s in header.get("sizes", [])))[::-1]  # C order
    kinds = [str(k).lower() for k in header.get("kinds", [])][::-1]
    channel_axis = next((i for i, k in enumerate(kinds) if k in _NRRD_CHANNEL_KINDS), None)
    spatial = [s for i, s in enumerate(sizes) if i != channel_axis]
    if len(spatial) == 2:
        frames, (height, width) = 1, spatial
    elif len(spatial) == 3:
        frames, height, width = spatial
    else:
        raise InputError(f"{path} has {len(spatial)} image axes ({sizes}); expected a 2-D image or a 3-D frame stack.")
    channels = sizes[channel_axis] if channel_axis is not None else 1
    try:
        dtype = np.dtype(nrrd.reader._determine_datatype(header))
    except Exception as exc:  # an unknown or unsupported type (block), or a missing endian field
        raise InputError(f"{path} has an unsupported NRRD type ({type(exc).__name__}: {_first_line(exc)}).") from None
    if dtype.kind not in "uif":
        raise InputError(f"{path} has NRRD type {dtype}; expected integer or floating-point samples.")
    _check_dims(path, height, width, frames, channels, dtype.itemsize)
    return channel_axis, frames, height, width, channels, dtype


def _nrrd_int(path: Path, header: dict, *names: str) -> int:
    value = next((header[n] for n in names if n in header), 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{path} has a malformed NRRD field {names[0]} '{value}'.") from None


def _nrrd_data(path: Path, header: dict, offset: int, dtype: np.dtype, count: int) -> np.ndarray:
    """The header's ``count`` samples, flat, reading and inflating no more than they take."""
    encoding = str(header.get("encoding", "raw")).lower()
    name = header.get("data file", header.get("datafile"))
    source, start = (path, offset) if name is None else (_nrrd_data_file(path, str(name)), 0)
    line_skip, byte_skip = _nrrd_int(path, header, "line skip", "lineskip"), _nrrd_int(path, header, "byte skip", "byteskip")
    if line_skip < 0 or byte_skip < -1 or byte_skip == -1 and encoding != "raw":
        raise InputError(f"{path} has line skip {line_skip} and byte skip {byte_skip}; expected 0 or more "
                         "(byte skip -1 only for raw data).")
    nbytes = count * dtype.itemsize
    with _open_regular(source, limit=None) as fh:
        fh.seek(start)
        for _ in range(line_skip):
            fh.readline(_HEADER_BYTES)
        if encoding == "raw":
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - nbytes) if byte_skip == -1 else fh.tell() + byte_skip)
            raw = fh.read(nbytes)
            if len(raw) < nbytes:
                raise InputError(f"{path} is truncated: {len(raw)} of {nbytes} bytes of image data.")
        elif encoding in ("gzip", "gz", "bzip2", "bz2"):
            raw = _inflate(path, fh, byte_skip + nbytes, "bz2" if encoding.startswith("bz") else "zlib")[byte_skip:]
        elif encoding in ("ascii", "text", "txt"):
            return _nrrd_ascii(path, fh, dtype, count)
        else:
            raise InputError(f"{path} has NRRD encoding '{encoding}'; supported: raw, gzip, bzip2, ascii.")
    return np.frombuffer(raw, dtype, count)


def _nrrd_data_file(path: Path, name: str) -> Path:
    if name.upper().startswith("LIST") or len(name.split()) > 1:
        raise InputError(f"{path} spreads its data over several files (data file: {name}); only one data file is supported.")
    return _data_file(path, name)


def _nrrd_ascii(path: Path, fh: IO[bytes], dtype: np.dtype, count: int) -> np.ndarray:
    if count > _NRRD_ASCII_MAX_VALUES:
        raise InputError(f"{path} stores {count} values as text; text-encoded NRRD is read up to "
                         f"{_NRRD_ASCII_MAX_VALUES} values (write it raw or gzip).")
    values = fh.read(count * 32).split()  # 32 bytes per number is generous
    if len(values) < count:
        raise InputError(f"{path} is truncated: {len(values)} of {count} text values.")
    try:
        return np.array(values[:count], dtype=np.float64).astype(dtype)
    except (ValueError, OverflowError):
        raise InputError(f"{path} has text data that is not numbers.") from None


def _nrrd_spacing(path: Path, header: dict) -> tuple[float, float] | None:
    try:
        if "space directions" in header:
            vectors = [np.asarray(v, dtype=float) for v in header["space directions"]]
            lengths = [float(np.linalg.norm(v)) for v in vectors if v.ndim == 1 and np.isfinite(v).all()]
            if len(lengths) >= 2:
                return lengths[1], lengths[0]  # axis 0 is x (columns), axis 1 is y (rows)
        if "spacings" in header:
            spacings = [float(s) for s in header["spacings"]]
            if len(spacings) >= 2 and all(np.isfinite(spacings[:2])):
                return spacings[1], spacings[0]
    except (TypeError, ValueError):
        raise InputError(f"{path} has a malformed NRRD spacing.") from None
    return None


def _probe_nrrd(path: Path) -> MediaInfo:
    header, _ = _nrrd_header(path)
    _, frames, height, width, channels, _ = _nrrd_layout(path, header)
    return MediaInfo(path, "nrrd", frames, height, width, channels, None, _nrrd_spacing(path, header))


def _read_nrrd(path: Path, grey: str = "fast") -> Iterator[np.ndarray]:
    header, offset = _nrrd_header(path)
    channel_axis, frames, height, width, channels, dtype = _nrrd_layout(path, header)
    count = frames * height * width * channels
    data = _nrrd_data(path, header, offset, dtype, count)
    data = data.reshape([int(s) for s in header["sizes"]][::-1])
    if channel_axis is not None:
        data = np.moveaxis(data, channel_axis, -1)
    data = data.reshape((frames, height, width) + ((channels,) if channel_axis is not None else ()))
    data = window_to_uint8(data)
    for frame in data:
        yield _grey(frame, method=grey)


# ---------------------------------------------------------------------------------------------
# MetaImage (.mha / .mhd)

_MET_TYPES = {
    "MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
    "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_ULONG": np.uint32, "MET_LONG": np.int32,
    "MET_ULONG_LONG": np.uint64, "MET_LONG_LONG": np.int64, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64,
}


@dataclasses.dataclass
class _MetaHeader:
    fields: dict[str, str]
    data_offset: int  # byte offset of LOCAL data in the header file
    dims: list[int]  # DimSize, fastest axis first (x, y[, z])
    channels: int
    dtype: np.dtype
    compressed: bool
    data_file: str  # "LOCAL" or a file name relative to the header


def _meta_header(path: Path) -> _MetaHeader:
    fields: dict[str, str] = {}
    offset = 0
    with _open_regular(path, limit=None) as fh:
        while offset <= _HEADER_BYTES:
            line = fh.readline(_HEADER_BYTES + 1)
            if not line:
                break
            offset += len(line)
            text = line.decode("latin-1").strip()
            if not text or "=" not in text:
                if len(fields) == 0 and text:
                    break
                continue
            key, value = (part.strip() for part in text.split("=", 1))
            fields[key] = value
            if key == "ElementDataFile":
                break
    if "ElementDataFile" not in fields or "DimSize" not in fields or "ElementType" not in fields:
        raise InputError(f"{path} is not a MetaImage file (header lacks DimSize/ElementType/ElementDataFile).")
    dims = _positive_ints(path, "MetaImage DimSize", fields["DimSize"])
    channels = _positive_ints(path, "MetaImage ElementNumberOfChannels", fields.get("ElementNumberOfChannels", "1"))[0]
    ndims = _positive_ints(path, "MetaImage NDims", fields.get("NDims", str(len(dims))))[0]
    if ndims != len(dims) or ndims not in (2, 3):
        raise InputError(f"{path} has DimSize {dims} with NDims {ndims}; expected a 2-D image or a 3-D frame sequence.")
    element = fields["ElementType"].upper()
    if element not in _MET_TYPES:
        raise InputError(f"{path} has ElementType {element}; supported: {', '.join(_MET_TYPES)}.")
    dtype = np.dtype(_MET_TYPES[element])
    msb = (fields.get("BinaryDataByteOrderMSB") or fields.get("ElementByteOrderMSB") or "False").lower() == "true"
    dtype = dtype.newbyteorder(">" if msb else "<")
    compressed = fields.get("CompressedData", "False").lower() == "true"
    width, height = dims[:2]
    # compressed data is inflated whole; raw data is memory-mapped and copied a frame at a time
    _check_dims(path, height, width, dims[2] if ndims == 3 else 1, channels, dtype.itemsize, whole=compressed)
    return _MetaHeader(fields, offset, dims, channels, dtype, compressed, fields["ElementDataFile"])


def _meta_location(path: Path, header: _MetaHeader) -> tuple[Path, int]:
    """(file, byte offset) where the image data of a MetaImage starts."""
    data_file = header.data_file
    if data_file.upper() == "LOCAL":
        return path, header.data_offset
    if data_file.upper().startswith("LIST") or "%" in data_file:
        raise InputError(f"{path} spreads its data over several files (ElementDataFile = {data_file}); "
                         "only LOCAL or one data file is supported.")
    target = _data_file(path, data_file)
    text = header.fields.get("HeaderSize", "0")
    try:
        header_size = int(text)
    except ValueError:
        header_size = -2
    if header_size < -1:
        raise InputError(f"{path} has HeaderSize '{text}'; expected -1 (data at the end of the file) or 0 or more bytes.")
    if header_size == -1 and not header.compressed:  # -1: the data is the end of the file
        return target, max(0, target.stat().st_size - _meta_nbytes(header))
    return target, max(0, header_size)


def _meta_nbytes(header: _MetaHeader) -> int:
    return int(np.prod(header.dims, dtype=np.int64)) * header.channels * header.dtype.itemsize


def _read_metaimage_array(path: Path) -> tuple[_MetaHeader, np.ndarray]:
    """(header, array (N, H, W[, C])) in the file's dtype; raw data is memory-mapped, not read."""
    header = _meta_header(path)
    source, offset = _meta_location(path, header)
    expected = _meta_nbytes(header)
    count = expected // header.dtype.itemsize
    if header.compressed:
        with _open_regular(source, limit=None) as fh:
            fh.seek(offset)
            raw = _inflate(path, fh, expected)
        array = np.frombuffer(raw, dtype=header.dtype, count=count)
    else:
        available = source.stat().st_size - offset
        if available < expected:
            raise InputError(f"{path} is truncated: {max(0, available)} of {expected} bytes of image data.")
        try:
            array = np.memmap(source, dtype=header.dtype, mode="r", offset=offset, shape=(count,))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path} cannot map its image data ({_first_line(exc)}).") from None
    width, height = header.dims[:2]
    frames = header.dims[2] if len(header.dims) == 3 else 1
    shape = (frames, height, width) + ((header.channels,) if header.channels > 1 else ())
    return header, array.reshape(shape)


def _meta_spacing(path: Path, fields: dict[str, str]) -> tuple[float, float] | None:
    text = fields.get("ElementSpacing")
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        values = []
    if len(values) < 2 or not all(np.isfinite(values[:2])) or min(values[:2]) <= 0:
        raise InputError(f"{path} has ElementSpacing '{text}'; expected two or more positive numbers (mm per pixel).")
    return values[1], values[0]


def _probe_metaimage(path: Path) -> MediaInfo:
    header = _meta_header(path)
    width, height = header.dims[:2]
    frames = header.dims[2] if len(header.dims) == 3 else 1
    spacing = _meta_spacing(path, header.fields)
    return MediaInfo(path, "metaimage", frames, height, width, header.channels, _meta_fps(path, header.fields), spacing)


def _meta_fps(path: Path, fields: dict[str, str]) -> float | None:
    """Median rate of the PLUS per-frame timestamps (``Seq_FrameNNNN_Timestamp``), or None."""
    try:
        stamps = sorted(
            (int(m.group(1)), float(v))
            for k, v in fields.items()
            if (m := re.fullmatch(r"Seq_Frame(\d+)_Timestamp", k))
        )
    except ValueError:
        raise InputError(f"{path} has a PLUS frame timestamp that is not a number.") from None
    if len(stamps) < 2:
        return None
    step = float(np.median(np.diff([t for _, t in stamps])))
    return 1.0 / step if step > 0 and np.isfinite(step) else None


def _read_metaimage(path: Path, grey: str = "fast") -> Iterator[np.ndarray]:
    _, array = _read_metaimage_array(path)
    low = high = None
    if array.dtype != np.uint8:  # one window for the whole sequence, then frame by frame
        low, high = np.inf, -np.inf
        for frame in array:
            finite = frame[np.isfinite(frame)] if array.dtype.kind == "f" else frame
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        low, high = (low, high) if low <= high else (0.0, 0.0)
    for frame in array:
        frame = np.array(frame)  # a copy: nothing keeps the memory map open
        yield _grey(window_to_uint8(frame, low, high) if low is not None else frame, method=grey)


# ---------------------------------------------------------------------------------------------
# video


def _open_video(path: Path):
    with _quiet_opencv() as cv2:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise InputError(f"{path} cannot be opened as a video (corrupt, truncated or an unsupported codec).")
        width, height = (int(capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
    if width > MAX_FRAME_SIDE or height > MAX_FRAME_SIDE:
        capture.release()
        check_frame_side(height, width, str(path))
    return capture


def _read_frame(path: Path, capture) -> np.ndarray | None:
    """The next decoded BGR frame, or None at the end (a frame beyond the bounds is an error).

    OpenCV's log is silenced around the read as :func:`_quiet_opencv` does, without its FFmpeg
    variable, which FFmpeg reads only when the backend starts (at the opening): this runs for every
    frame, and the variable's set and removal were half of the 15-20 us the silencing cost per frame."""
    import cv2

    silence = "OPENCV_LOG_LEVEL" not in os.environ
    level = cv2.utils.logging.getLogLevel()
    if silence:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        ok, frame = capture.read()
    except cv2.error as exc:
        raise InputError(f"{path} has a video frame that cannot be decoded ({_first_line(exc)}).") from None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not ok or frame is None:
        return None
    check_frame_side(frame.shape[0], frame.shape[1], str(path))
    return frame


def _video_count_fps(capture) -> tuple[int | None, float | None]:
    import cv2

    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = int(count) if count and count > 0 and np.isfinite(count) else None
    return frames, (float(fps) if fps and fps > 0 and np.isfinite(fps) else None)


def _probe_video(path: Path) -> MediaInfo:
    capture = _open_video(path)
    try:
        return _probe_capture(path, capture)[0]
    finally:
        capture.release()


def _probe_capture(path: Path, capture) -> tuple[MediaInfo, np.ndarray]:
    """The MediaInfo of an opened video and its first decoded (BGR) frame."""
    frames, fps = _video_count_fps(capture)
    if path.suffix.lower() in (".h264", ".264"):
        frames = None  # a raw elementary stream has no container to count frames; the number is a guess
    first = _read_frame(path, capture)
    if first is None:
        raise InputError(f"{path} contains no decodable video frame (empty or corrupt video).")
    _check_dims(path, first.shape[0], first.shape[1])
    info = MediaInfo(path, "video", frames, first.shape[0], first.shape[1], 1 if first.ndim == 2 else first.shape[2], fps)
    return info, first


def _read_video(path: Path, grey: str = "fast", capture=None, first: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Every frame, grey; ``capture`` (already opened) and its ``first`` decoded frame continue a probe."""
    capture = _open_video(path) if capture is None else capture
    decoded = 0
    try:
        stated, _ = _video_count_fps(capture)
        while (frame := first if first is not None else _read_frame(path, capture)) is not None:
            first = None
            decoded += 1
            yield _grey(frame, bgr=True, method=grey)
    finally:
        capture.release()
    raw_stream = path.suffix.lower() in (".h264", ".264")  # no container, so no stated count
    if decoded and stated and not raw_stream and stated - decoded > max(1, VIDEO_COUNT_SLACK * stated):
        raise InputError(f"{path} ended after {decoded} of its {stated} frames (truncated or corrupt video).")


_PROBES = {
    "image": _probe_still,
    "dicom": _probe_dicom,
    "nrrd": _probe_nrrd,
    "metaimage": _probe_metaimage,
    "video": _probe_video,
    "folder": _probe_folder,
}
_READERS = {
    "image": _read_still,
    "dicom": _dicom_frames_uint8,
    "nrrd": _read_nrrd,
    "metaimage": _read_metaimage,
    "video": _read_video,
    "folder": _read_folder,
}
