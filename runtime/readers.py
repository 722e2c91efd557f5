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
  :func:`sonoedge.runtime.frames.to_grey` (ITU-R BT.601 luma); OpenCV's BGR order is swapped first.
- uint8 data passes unchanged.
- other data types are windowed linearly to 0..255: DICOM applies its Rescale Slope/Intercept and
  then its first Window Center/Width when present (DICOM PS3.3 C.11.2.1.2), MONOCHROME1 is
  inverted; everything else (16-bit PNG/TIFF, float or 16-bit NRRD/MetaImage, DICOM without a
  window) uses the minimum and maximum of the whole file, so frames of one clip share one window.

Errors a user can cause (a missing path, an unsupported extension, a folder without images, a
corrupt or truncated file, a video with no decodable frame, a frame smaller than
:data:`MIN_SIDE` pixels) raise :class:`~sonoedge.runtime.errors.InputError` with one sentence
naming the file. numpy only at import time; OpenCV, pydicom and pynrrd are imported when used.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import to_grey

VIDEO_COUNT_SLACK = 0.01  # containers may overstate their frame count by a frame or 1%; more is truncation
MIN_SIDE = 16  # pixels: the smallest frame height or width accepted anywhere (a 1x1 image is an error)

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
    """The kind of ``path`` (see :data:`KINDS`); InputError when it is missing or unsupported."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path.")
    if path.is_dir():
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


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every frame of ``path`` as uint8 (H, W) grey, in order (see the module docstring)."""
    path = Path(path)
    kind = kind_of(path)
    count = 0
    for frame in _READERS[kind](path):
        _check_size(frame, path)
        count += 1
        yield frame
    if count == 0:
        raise InputError(f"{path} contains no decodable frame (empty or corrupt {kind}).")


def read_image(path: str | Path) -> np.ndarray:
    """The first frame of ``path`` as uint8 (H, W) grey (a still, or frame 0 of a sequence)."""
    frames = iter_frames(path)
    try:
        return next(frames)
    finally:
        frames.close()


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


def _grey(frame: np.ndarray, bgr: bool = False) -> np.ndarray:
    """uint8 (H, W[, C]) -> uint8 (H, W); ``bgr`` marks OpenCV channel order."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[:, :, 0])
    if frame.ndim == 3 and bgr and frame.shape[2] in (3, 4):
        frame = frame[:, :, [2, 1, 0]]
    return np.ascontiguousarray(to_grey(frame))


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
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}).") from exc


# ---------------------------------------------------------------------------------------------
# stills


def _decode_still_pages(path: Path) -> list[np.ndarray]:
    """Raw decoded pages (H, W[, C]) in OpenCV BGR order, any depth; InputError when corrupt."""
    import cv2

    data = _read_bytes(path)
    if not data:
        raise InputError(f"{path} is empty (0 bytes).")
    _check_still_complete(path, data)
    buffer = np.frombuffer(data, np.uint8)
    pages: list[np.ndarray] = []
    if path.suffix.lower() in (".tif", ".tiff"):
        ok, decoded = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED)
        pages = list(decoded) if ok else []
    else:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        pages = [image] if image is not None else []
    if not pages:
        raise InputError(f"{path} cannot be decoded as an image (corrupt, truncated or not really {path.suffix}).")
    return pages


def _check_still_complete(path: Path, data: bytes) -> None:
    """Catch truncation that decoders tolerate silently (libjpeg pads a cut JPEG with grey)."""
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg") and b"\xff\xd9" not in data[-1024:]:
        raise InputError(f"{path} is a truncated JPEG (no end-of-image marker).")
    if suffix == ".png" and b"IEND" not in data[-16:]:
        raise InputError(f"{path} is a truncated PNG (no IEND chunk).")


def _still_to_grey(page: np.ndarray) -> np.ndarray:
    if page.dtype != np.uint8:
        page = window_to_uint8(page)
    return _grey(page, bgr=True)


def _read_still(path: Path) -> Iterator[np.ndarray]:
    for page in _decode_still_pages(path):
        yield _still_to_grey(page)


def _probe_still(path: Path) -> MediaInfo:
    pages = _decode_still_pages(path)
    first = pages[0]
    channels = 1 if first.ndim == 2 else first.shape[2]
    info = MediaInfo(path, "image", len(pages), first.shape[0], first.shape[1], channels)
    _check_size(np.zeros((info.height, info.width), np.uint8), path)
    return info


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


def _read_folder(path: Path) -> Iterator[np.ndarray]:
    for file in folder_files(path):
        for page in _decode_still_pages(file):
            frame = _still_to_grey(page)
            _check_size(frame, file)
            yield frame


def _probe_folder(path: Path) -> MediaInfo:
    files = folder_files(path)
    first = _probe_still(files[0])
    return dataclasses.replace(first, path=path, kind="folder", frames=len(files))


# ---------------------------------------------------------------------------------------------
# DICOM


def _dicom_dataset(path: Path, pixels: bool):
    from sonoedge.runtime.errors import require

    pydicom = require("pydicom", "runtime")
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a readable DICOM file ({exc}).") from exc
    if "PixelData" not in ds and pixels:
        raise InputError(f"{path} is a DICOM file without readable pixel data (truncated, or not an image).")
    if not pixels and not {"Rows", "Columns"} <= set(ds.dir()):
        raise InputError(f"{path} is a DICOM file without image rows/columns (not an image).")
    return ds


def _decode_errors(path: Path, ds):
    """Context manager turning pydicom decoding failures into one InputError naming the file."""
    import contextlib

    syntax = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    syntax_name = getattr(syntax, "name", str(syntax))

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (RuntimeError, NotImplementedError, ImportError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{path} uses the transfer syntax '{syntax_name}', which no installed decoder handles "
                f"({first_line}); install pylibjpeg, pylibjpeg-libjpeg/-openjpeg or python-gdcm to read it."
            ) from exc
        except (ValueError, EOFError, AttributeError, TypeError, KeyError) as exc:
            raise InputError(f"{path} has corrupt or truncated DICOM pixel data ({exc}).") from exc

    return guard()


def _dicom_pixels(path: Path, ds) -> np.ndarray:
    """Decoded pixel array (N, H, W[, 3]) of every frame, colour converted to RGB."""
    with _decode_errors(path, ds):
        array = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
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


def _dicom_frames_uint8(path: Path) -> Iterator[np.ndarray]:
    ds = _dicom_dataset(path, pixels=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    window = None if samples > 1 else _dicom_window(ds)
    eight_bit = int(ds.get("BitsAllocated", 8)) == 8 and int(ds.get("PixelRepresentation", 0) or 0) == 0
    if frames > 1 and photometric != "PALETTE COLOR" and (eight_bit or window is not None):
        # each frame converts on its own (no whole-file min/max needed): stream them
        for frame in _dicom_stream(path, ds):
            yield _dicom_to_grey(frame[None], ds, window)[0]
        return
    for frame in _dicom_to_grey(_dicom_pixels(path, ds), ds, window):
        yield frame


def _dicom_to_grey(array: np.ndarray, ds, window: tuple[float, float] | None) -> np.ndarray:
    """(N, H, W[, 3]) decoded pixels -> (N, H, W) uint8: modality rescale, window (or the min/max
    of ``array``), MONOCHROME1 inversion, colour to luma."""
    if array.dtype != np.uint8:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        values = array.astype(np.float32) * slope + intercept if (slope, intercept) != (1.0, 0.0) else array
        array = window_to_uint8(values, *(window or (None, None)))
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        array = 255 - array  # MONOCHROME1: the minimum value is white
    return np.stack([_grey(frame) for frame in array])


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
    info = MediaInfo(
        path=path,
        kind="dicom",
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        height=int(ds.Rows),
        width=int(ds.Columns),
        channels=int(ds.get("SamplesPerPixel", 1) or 1),
        fps=_dicom_fps(ds),
        spacing=_dicom_spacing(ds),
    )
    _check_size(np.zeros((info.height, info.width), np.uint8), path)
    return info


# ---------------------------------------------------------------------------------------------
# NRRD

_NRRD_CHANNEL_KINDS = {"rgb-color", "rgba-color", "3-color", "4-color", "vector", "covariant-vector", "hsv-color", "xyz-color"}


def _nrrd_read(path: Path, header_only: bool) -> tuple[np.ndarray | None, dict]:
    from sonoedge.runtime.errors import require

    nrrd = require("nrrd", "runtime")
    try:
        if header_only:
            return None, nrrd.read_header(str(path))
        data, header = nrrd.read(str(path), index_order="C")
    except (nrrd.NRRDError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(f"{path} is not a readable NRRD file ({exc}).") from exc
    return data, header


def _nrrd_layout(path: Path, header: dict) -> tuple[int | None, int, int, int]:
    """(channel axis in C order or None, frames, height, width) from the header."""
    sizes = [int(s) for s in header["sizes"]][::-1]  # C order: slowest axis first
    kinds = [str(k).lower() for k in header.get("kinds", [])][::-1]
    channel_axis = next((i for i, k in enumerate(kinds) if k in _NRRD_CHANNEL_KINDS), None)
    spatial = [s for i, s in enumerate(sizes) if i != channel_axis]
    if len(spatial) == 2:
        frames, (height, width) = 1, spatial
    elif len(spatial) == 3:
        frames, height, width = spatial
    else:
        raise InputError(f"{path} has {len(spatial)} image axes ({sizes}); expected a 2-D image or a 3-D frame stack.")
    return channel_axis, frames, height, width


def _nrrd_spacing(header: dict) -> tuple[float, float] | None:
    if "space directions" in header:
        vectors = [np.asarray(v, dtype=float) for v in header["space directions"]]
        lengths = [float(np.linalg.norm(v)) for v in vectors if np.isfinite(v).all()]
        if len(lengths) >= 2:
            return lengths[1], lengths[0]  # axis 0 is x (columns), axis 1 is y (rows)
    if "spacings" in header:
        spacings = [float(s) for s in header["spacings"]]
        if len(spacings) >= 2 and all(np.isfinite(spacings[:2])):
            return spacings[1], spacings[0]
    return None


def _probe_nrrd(path: Path) -> MediaInfo:
    _, header = _nrrd_read(path, header_only=True)
    channel_axis, frames, height, width = _nrrd_layout(path, header)
    channels = int(header["sizes"][::-1][channel_axis]) if channel_axis is not None else 1
    info = MediaInfo(path, "nrrd", frames, height, width, channels, None, _nrrd_spacing(header))
    _check_size(np.zeros((height, width), np.uint8), path)
    return info


def _read_nrrd(path: Path) -> Iterator[np.ndarray]:
    data, header = _nrrd_read(path, header_only=False)
    channel_axis, frames, height, width = _nrrd_layout(path, header)
    if channel_axis is not None:
        data = np.moveaxis(data, channel_axis, -1)
    channels = (data.shape[-1],) if channel_axis is not None else ()
    data = data.reshape((frames, height, width) + channels)
    data = window_to_uint8(data)
    for frame in data:
        yield _grey(frame)


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
    try:
        with open(path, "rb") as fh:
            while True:
                line = fh.readline()
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
                if offset > 4 << 20:  # a MetaImage header is text of a few KB; 4 MB means no header
                    break
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    if "ElementDataFile" not in fields or "DimSize" not in fields or "ElementType" not in fields:
        raise InputError(f"{path} is not a MetaImage file (header lacks DimSize/ElementType/ElementDataFile).")
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError as exc:
        raise InputError(f"{path} has a malformed MetaImage header ({exc}).") from exc
    ndims = int(fields.get("NDims", len(dims)))
    if ndims != len(dims) or ndims not in (2, 3) or min(dims) < 1:
        raise InputError(f"{path} has DimSize {dims} with NDims {ndims}; expected a 2-D image or a 3-D frame sequence.")
    element = fields["ElementType"].upper()
    if element not in _MET_TYPES:
        raise InputError(f"{path} has ElementType {element}; supported: {', '.join(_MET_TYPES)}.")
    dtype = np.dtype(_MET_TYPES[element])
    msb = (fields.get("BinaryDataByteOrderMSB") or fields.get("ElementByteOrderMSB") or "False").lower() == "true"
    dtype = dtype.newbyteorder(">" if msb else "<")
    compressed = fields.get("CompressedData", "False").lower() == "true"
    return _MetaHeader(fields, offset, dims, channels, dtype, compressed, fields["ElementDataFile"])


def _meta_location(path: Path, header: _MetaHeader) -> tuple[Path, int]:
    """(file, byte offset) where the image data of a MetaImage starts."""
    data_file = header.data_file
    if data_file.upper() == "LOCAL":
        return path, header.data_offset
    if data_file.upper().startswith("LIST") or "%" in data_file:
        raise InputError(f"{path} spreads its data over several files (ElementDataFile = {data_file}); "
                         "only LOCAL or one data file is supported.")
    target = path.parent / data_file
    if not target.is_file():
        raise InputError(f"{path} names the data file {target}, which does not exist.")
    header_size = int(header.fields.get("HeaderSize", "0"))
    if header_size == -1 and not header.compressed:  # -1: the data is the end of the file
        return target, max(0, target.stat().st_size - _meta_nbytes(header))
    return target, max(0, header_size)


def _meta_nbytes(header: _MetaHeader) -> int:
    return int(np.prod(header.dims)) * header.channels * header.dtype.itemsize


def _read_metaimage_array(path: Path) -> tuple[_MetaHeader, np.ndarray]:
    """(header, array (N, H, W[, C])) in the file's dtype; raw data is memory-mapped, not read."""
    header = _meta_header(path)
    source, offset = _meta_location(path, header)
    expected = _meta_nbytes(header)
    count = expected // header.dtype.itemsize
    if header.compressed:
        with open(source, "rb") as fh:
            fh.seek(offset)
            raw = fh.read()
        try:
            raw = zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(raw)  # zlib or gzip stream
        except zlib.error as exc:
            raise InputError(f"{path} has corrupt or truncated compressed MetaImage data ({exc}).") from exc
        if len(raw) < expected:
            raise InputError(f"{path} is truncated: {len(raw)} of {expected} bytes of image data.")
        array = np.frombuffer(raw, dtype=header.dtype, count=count)
    else:
        available = source.stat().st_size - offset
        if available < expected:
            raise InputError(f"{path} is truncated: {available} of {expected} bytes of image data.")
        array = np.memmap(source, dtype=header.dtype, mode="r", offset=offset, shape=(count,))
    width, height = header.dims[:2]
    frames = header.dims[2] if len(header.dims) == 3 else 1
    shape = (frames, height, width) + ((header.channels,) if header.channels > 1 else ())
    return header, array.reshape(shape)


def _probe_metaimage(path: Path) -> MediaInfo:
    header = _meta_header(path)
    width, height = header.dims[:2]
    frames = header.dims[2] if len(header.dims) == 3 else 1
    spacing = None
    if "ElementSpacing" in header.fields:
        values = [float(v) for v in header.fields["ElementSpacing"].split()]
        spacing = (values[1], values[0]) if len(values) >= 2 else None
    info = MediaInfo(path, "metaimage", frames, height, width, header.channels, _meta_fps(header.fields), spacing)
    _check_size(np.zeros((height, width), np.uint8), path)
    return info


def _meta_fps(fields: dict[str, str]) -> float | None:
    """Median rate of the PLUS per-frame timestamps (``Seq_FrameNNNN_Timestamp``), or None."""
    stamps = sorted(
        (int(m.group(1)), float(v))
        for k, v in fields.items()
        if (m := re.fullmatch(r"Seq_Frame(\d+)_Timestamp", k))
    )
    if len(stamps) < 2:
        return None
    step = float(np.median(np.diff([t for _, t in stamps])))
    return 1.0 / step if step > 0 else None


def _read_metaimage(path: Path) -> Iterator[np.ndarray]:
    _, array = _read_metaimage_array(path)
    low = high = None
    if array.dtype != np.uint8:  # one window for the whole sequence, then frame by frame
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    for frame in array:
        frame = np.array(frame)  # a copy: nothing keeps the memory map open
        yield _grey(window_to_uint8(frame, low, high) if low is not None else frame)


# ---------------------------------------------------------------------------------------------
# video


def _open_video(path: Path):
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{path} cannot be opened as a video (corrupt, truncated or an unsupported codec).")
    return capture


def _video_count_fps(capture) -> tuple[int | None, float | None]:
    import cv2

    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = int(count) if count and count > 0 and np.isfinite(count) else None
    return frames, (float(fps) if fps and fps > 0 and np.isfinite(fps) else None)


def _probe_video(path: Path) -> MediaInfo:
    capture = _open_video(path)
    try:
        frames, fps = _video_count_fps(capture)
        if path.suffix.lower() in (".h264", ".264"):
            frames = None  # a raw elementary stream has no container to count frames; the number is a guess
        ok, first = capture.read()
    finally:
        capture.release()
    if not ok or first is None:
        raise InputError(f"{path} contains no decodable video frame (empty or corrupt video).")
    info = MediaInfo(path, "video", frames, first.shape[0], first.shape[1], 1 if first.ndim == 2 else first.shape[2], fps)
    _check_size(np.zeros(first.shape[:2], np.uint8), path)
    return info


def _read_video(path: Path) -> Iterator[np.ndarray]:
    capture = _open_video(path)
    decoded = 0
    try:
        stated, _ = _video_count_fps(capture)
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            decoded += 1
            yield _grey(frame, bgr=True)
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
