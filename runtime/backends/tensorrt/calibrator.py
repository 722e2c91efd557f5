"""The legacy TensorRT INT8 path (TensorRT 8.5-10.x, JetPack 5/6): IInt8EntropyCalibrator2.

TensorRT 11 removed calibrators (explicit Q/DQ only); below 10.1 the builder calibrates the fp32
network itself from batches this calibrator copies to the GPU with pycuda. The frames are the
same ultrasound tiles the Q/DQ model was calibrated on (the bundle's ``calibration/tiles.npz``,
or any folder/video given to ``build-engine --calib``), and the resulting calibration cache is
written to a file so the next build (or ``trtexec --calib=...``) skips calibration.

    batches = CalibrationBatches(tiles, batch_size=8)       # plain numpy, tested everywhere
    calibrator = make_entropy_calibrator(batches, "calibration/trt_int8.cache")  # needs tensorrt+pycuda
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


def make_entropy_calibrator(batches: CalibrationBatches, cache_file: str | Path, trt: Any = None) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``batches`` with a reusable cache file (needs pycuda)."""
    from sonoedge.runtime.errors import require

    if trt is None:
        trt = require("tensorrt", "tensorrt")
    cuda = require("pycuda.driver", "tensorrt")
    require("pycuda.autoinit", "tensorrt")  # creates the CUDA context the builder shares
    cache_file = Path(cache_file)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device_input = cuda.mem_alloc(batches.nbytes)

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None  # calibration done
            cuda.memcpy_htod(self.device_input, batch)
            return [int(self.device_input)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()
