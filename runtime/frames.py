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


# How colour becomes grey (ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B, rounded):
# "fast"  OpenCV's cvtColor (fixed-point weights): 0.25-0.31 ms per 1080x776 frame here; it differs
#         from "exact" by one grey level on 0.13 % of all 2^24 colours, never by more;
# "exact" :func:`grey_reference` (float32, each product rounded, summed R, G, then B) through a
#         16 MiB table built from it on first use: bit-identical to it for every colour, about 3 ms
#         per 1080x776 frame. The float32 matrix product used before this table gave the same
#         values except on colours whose luma is a tie at .5, where its rounding depended on the
#         array's shape (the BLAS path): 35-260 pixels of a random-colour frame, none on grey pixels.
#         Measured in docs/benchmarks/runtime.md.
GREY_METHODS = ("fast", "exact")
_GREY_LUT: np.ndarray | None = None  # the "exact" table, indexed by (R << 16) | (G << 8) | B


def to_grey(image: np.ndarray, method: str = "fast", bgr: bool = False) -> np.ndarray:
    """uint8 (H, W) or (H, W, 1|3|4) -> uint8 (H, W). Colour is RGB(A), or BGR(A) (OpenCV's order)
    when ``bgr``; ``method`` is one of :data:`GREY_METHODS`. Grey input is returned as it is."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if not (image.ndim == 3 and image.shape[2] in (3, 4)):
        raise InputError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    if method == "fast":
        import cv2

        codes = {(3, False): cv2.COLOR_RGB2GRAY, (3, True): cv2.COLOR_BGR2GRAY,
                 (4, False): cv2.COLOR_RGBA2GRAY, (4, True): cv2.COLOR_BGRA2GRAY}
        return cv2.cvtColor(np.ascontiguousarray(image), codes[image.shape[2], bgr])
    if method == "exact":
        r, g, b = (image[:, :, i] for i in ((2, 1, 0) if bgr else (0, 1, 2)))
        index = r.astype(np.uint32)
        index <<= 8
        index |= g
        index <<= 8
        index |= b
        return _grey_lut()[index]
    raise InputError(f"grey method '{method}' is not one of {', '.join(GREY_METHODS)}")


def grey_reference(rgb: np.ndarray) -> np.ndarray:
    """The definition of the "exact" grey: uint8 (..., 3|4) RGB(A) -> uint8 (...), BT.601 luma in
    float32 with every step rounded in a fixed order, the same on every machine."""
    f = rgb[..., :3].astype(np.float32)
    luma = f[..., 0] * np.float32(0.299) + f[..., 1] * np.float32(0.587)
    luma += f[..., 2] * np.float32(0.114)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def _grey_lut() -> np.ndarray:
    """Every colour's "exact" grey, computed once (0.3 s) in 256 blocks of 65536 colours."""
    global _GREY_LUT
    if _GREY_LUT is None:
        gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), axis=-1).reshape(-1, 2)
        rgb = np.empty((65536, 3), np.uint8)
        rgb[:, 1:] = gb
        lut = np.empty(1 << 24, np.uint8)
        for r in range(256):
            rgb[:, 0] = r
            lut[r << 16:(r + 1) << 16] = grey_reference(rgb)
        _GREY_LUT = lut
    return _GREY_LUT


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
