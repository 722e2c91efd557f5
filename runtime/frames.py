"""The image contract shared by every stage (DESIGN.md, Contracts: Images).

Inside a model: float32 N x C x H x W in [-1, 1]. Outside: uint8 H x W (grey) or H x W x 3.
Generators are fully convolutional; H and W must be multiples of the model stride, so frames are
reflect-padded before inference and cropped after, never resized.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from sonoedge.runtime.errors import InputError

# Bounds every reader and stage holds a frame to, checked on header values before anything is
# allocated or decompressed: beyond them a frame is not a probe's output but a corrupt or hostile
# header (the largest real frame in ../shared/data/realus is 2083 x 1455).
MAX_FRAME_SIDE = 8192  # pixels, height or width
MAX_DATA_BYTES = 1 << 30  # 1 GiB: the most one file's decoded data may take when a reader must hold
# it whole (a still, a DICOM file, compressed MetaImage or NRRD data), and the most one frame may take


def check_frame_side(height: int, width: int, where: str) -> None:
    """InputError naming ``where`` unless 1 <= height, width <= MAX_FRAME_SIDE."""
    if not (1 <= height <= MAX_FRAME_SIDE and 1 <= width <= MAX_FRAME_SIDE):
        raise InputError(f"{where} states a frame of {width}x{height} pixels; the largest accepted is "
                         f"{MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} (a corrupt or wrong header).")


@dataclasses.dataclass
class Frame:
    """One frame of a stream: the uint8 image plus where and when it came from."""

    image: np.ndarray  # (H, W) or (H, W, 3) uint8
    frame_id: int
    timestamp: float = dataclasses.field(default_factory=time.monotonic)  # capture time, seconds
    source: str = ""
    enhanced: bool = False  # the imaging region went through the model
    passthrough: bool = False  # the frame is the input, unenhanced (fail-safe or by choice)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3|4) -> uint8 (H, W). RGB screen captures use ITU-R BT.601 luma."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3].astype(np.float32)
        luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    raise InputError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> float32 (1, 1, H, W) in [-1, 1]: x / 127.5 - 1."""
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim != 2:
        raise InputError(f"expected a grey (H, W) image, got shape {image.shape}")
    return (image.astype(np.float32) / 127.5 - 1.0)[None, None]


def denormalise(tensor: np.ndarray) -> np.ndarray:
    """float (..., H, W) in [-1, 1] -> uint8 (H, W), rounded and clipped; NaN is an error."""
    plane = np.asarray(tensor, dtype=np.float32).reshape(tensor.shape[-2:])
    if not np.isfinite(plane).all():
        raise FloatingPointError("model output contains NaN or Inf")
    return np.clip(np.rint((plane + 1.0) * 127.5), 0, 255).astype(np.uint8)


def pad_to_stride(array: np.ndarray, stride: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad the last two axes up to multiples of ``stride``; returns (padded, (H, W)).

    Padding goes to the bottom and right so cropping is ``[..., :H, :W]``. Images smaller than the
    padding are reflected repeatedly, so any size >= 1 x 1 works.
    """
    h, w = array.shape[-2:]
    widths = [(0, 0)] * (array.ndim - 2) + [(0, (-h) % stride), (0, (-w) % stride)]
    # numpy reflects repeatedly when the pad exceeds the side, and repeats a 1-pixel side
    return np.pad(array, widths, mode="reflect"), (h, w)


def crop(array: np.ndarray, size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Undo :func:`pad_to_stride` on a model output that is ``scale`` times the input."""
    h, w = size
    return array[..., : h * scale, : w * scale]
