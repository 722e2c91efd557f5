"""The legacy TensorRT INT8 path (TensorRT 8.5-10.x, JetPack 5/6): IInt8EntropyCalibrator2.

TensorRT 11 removed calibrators (explicit Q/DQ only; 10.1 deprecated them); on the builder-flag
path the builder calibrates the fp32 network itself from batches this calibrator copies to the GPU
with cuda-python. The frames are the same ultrasound tiles the Q/DQ model was calibrated on (the
bundle's ``calibration/tiles.npz``, or any folder/video given to ``build-engine --calib``, cropped
to its imaging region), and the resulting calibration cache is written to a file so the next build
(or ``trtexec --calib=...``) skips calibration.

Shapes: TensorRT calibrates at the OPT shape of the *calibration profile* (its MIN and MAX are
overwritten by OPT). The builder (:func:`.build.build_serialized`) therefore gives calibration a
profile of its own whose MIN = OPT = MAX is :attr:`CalibrationBatches.shape`, and the calibrator's
device buffer holds exactly one batch of that shape: what TensorRT reads is what was copied.

    batches = CalibrationBatches(tiles, batch_size=8)       # plain numpy, tested everywhere
    calibrator = make_entropy_calibrator(batches, "calib.trt_int8.cache")  # needs tensorrt + cuda-python
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.errors import BundleError, InputError
from sonoedge.runtime.frames import normalise


class CalibrationBatches:
    """uint8 (H, W) tiles of one shape -> float32 (B, 1, H, W) batches in [-1, 1], contiguous.

    The last partial batch is dropped (TensorRT's calibrator asks for full batches of
    ``get_batch_size()``), so ``len(self)`` = number of tiles // batch_size.
    """

    def __init__(self, tiles: Sequence[np.ndarray], batch_size: int = 1):
        if batch_size < 1:
            raise InputError(f"calibration batch size must be >= 1, got {batch_size}")
        if not tiles:
            raise InputError("INT8 calibration needs at least one frame")
        shapes = {t.shape for t in tiles}
        if len(shapes) != 1:
            raise InputError(f"calibration tiles must share one shape, got {sorted(shapes)}")
        if len(tiles) < batch_size:
            raise InputError(f"{len(tiles)} calibration frames cannot fill one batch of {batch_size}")
        self.tiles, self.batch_size = list(tiles), batch_size
        self.shape = (batch_size, 1, *self.tiles[0].shape)

    def __len__(self) -> int:
        return len(self.tiles) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = np.concatenate([normalise(t) for t in self.tiles[start:start + self.batch_size]], axis=0)
            yield np.ascontiguousarray(batch, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4


def load_tiles(path: str | Path) -> list[np.ndarray]:
    """The uint8 tiles of a bundle's ``calibration/tiles.npz`` (array ``tiles``: (N, H, W))."""
    try:
        with np.load(path, allow_pickle=False) as data:
            tiles = data["tiles"]
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"calibration tiles {path} cannot be read ({exc})") from None
    if tiles.dtype != np.uint8 or tiles.ndim != 3:
        raise BundleError(f"calibration tiles {path} must be uint8 (N, H, W), got {tiles.dtype} {tiles.shape}")
    return list(tiles)


def region_tiles(frames: Sequence[np.ndarray], opt_hw: Sequence[int], min_hw: Sequence[int], stride: int) -> list[np.ndarray]:
    """uint8 (H, W) frames -> calibration tiles of one shape, cut from each frame's imaging region.

    Each frame is cropped to the bounding box of its imaging region
    (:func:`sonoedge.runtime.region.detect_region`: the fan or rectangle, not the UI around it);
    the tile shape is the profile's OPT, shrunk to the smallest region and rounded down to the model
    stride, and each tile is the centre of its region. Frames whose region is smaller than the
    profile's MIN are skipped. InputError when no frame is left.
    """
    from sonoedge.runtime.region import detect_region

    crops = []
    for frame in frames:
        x0, y0, x1, y1 = detect_region(frame).bbox
        crop = frame[y0:y1, x0:x1]
        if crop.shape[0] >= min_hw[0] and crop.shape[1] >= min_hw[1]:
            crops.append(crop)
    if not crops:
        raise InputError(f"no calibration frame has an imaging region of at least {min_hw[0]}x{min_hw[1]} pixels")
    h = min(int(opt_hw[0]), *(c.shape[0] for c in crops)) // stride * stride
    w = min(int(opt_hw[1]), *(c.shape[1] for c in crops)) // stride * stride
    if h < 1 or w < 1:
        raise InputError(f"the calibration frames' imaging regions are smaller than the model stride {stride}")
    tiles = []
    for crop in crops:
        top, left = (crop.shape[0] - h) // 2, (crop.shape[1] - w) // 2
        tiles.append(np.ascontiguousarray(crop[top:top + h, left:left + w]))
    return tiles


def make_entropy_calibrator(batches: CalibrationBatches, cache_file: str | Path, trt: Any = None, cuda: Any = None) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``batches`` with a reusable cache file.

    ``trt`` (the tensorrt module) and ``cuda`` (a :class:`.cuda.CudaRuntime`) are made here when
    None. The calibrator carries ``shape`` (B, C, H, W) and ``nbytes`` of one batch, which the
    builder turns into the calibration profile.
    """
    from sonoedge.runtime.errors import require

    if trt is None:
        trt = require("tensorrt", "tensorrt")
    if cuda is None:
        from sonoedge.runtime.backends.tensorrt.cuda import CudaRuntime

        cuda = CudaRuntime()
    cache_file = Path(cache_file)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        shape = batches.shape
        nbytes = batches.nbytes

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device_input = cuda.malloc(batches.nbytes)

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None  # calibration done
            if batch.shape != self.shape or batch.nbytes != self.nbytes:
                raise AssertionError(f"calibration batch {batch.shape} does not fill the buffer of {self.shape}")
            cuda.memcpy_htod(self.device_input, batch)
            return [int(self.device_input)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()
