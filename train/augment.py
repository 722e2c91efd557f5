"""Seeded geometric augmentation for training images (numpy/OpenCV only; no torch).

Every transform is drawn once per item from a ``numpy.random.Generator`` and applied identically
to all images of the item, so the two images of a registered pair stay registered (the paired L1
term of Athreya et al. 2024, journal, "Implementation Details", compares them pixel by pixel).

What the papers say:
- Grimwood et al. (seed 004, Methods): "random horizontal flips and random cropping within a
  40 pixel margin", intensities normalised to [-1, 1]. These are the defaults.
- Athreya et al. (seeds 000, 001) state no augmentation. The small affine (rotation of a few
  degrees, ~5% scale) is not from a paper: it is available, off by default.
Vertical flips are never applied: depth runs down the image and the near field looks different
from the far field.

    rng = np.random.default_rng([seed, epoch, index])
    low, high = augment_images([low, high], AugmentConfig(), rng, size=256)
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class AugmentConfig:
    """Which augmentations run on the train split (val/test get none)."""

    enabled: bool = True  # master switch for the train split
    hflip: bool = True  # p = 0.5 horizontal flip, Grimwood et al. (004), Methods
    crop_margin: int = 40  # px: random crop within a 40 pixel margin, Grimwood et al. (004), Methods; 0 = off
    affine: bool = False  # small random rotation and scale; not in the papers, off by default
    max_rotation_deg: float = 3.0  # +- degrees when affine is on
    max_scale: float = 0.05  # +- relative scale when affine is on


def augment_images(images: list[np.ndarray], cfg: AugmentConfig, rng: np.random.Generator,
                   size: int = 0) -> list[np.ndarray]:
    """Apply one draw of the augmentations to every uint8 (H, W) image of ``images`` (same shape).

    With ``size`` > 0 the images are first resized to (size + margin) squared so the random crop
    returns size x size; with ``size`` = 0 they keep their resolution and lose ``margin`` pixels
    in each dimension. Returns uint8 arrays of one shape.
    """
    margin = cfg.crop_margin if cfg.enabled else 0
    if size:
        images = [resize(im, size + margin) for im in images]
    _check_same_shape(images)
    if not cfg.enabled:
        return images
    if cfg.affine:
        angle = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
        scale = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale)
        images = [_affine(im, angle, scale) for im in images]
    if margin:
        h, w = images[0].shape
        if margin >= min(h, w):
            from sonoedge.runtime.errors import InputError

            raise InputError(f"an image of {w}x{h} pixels is too small for a crop margin of {margin}; lower data.augment.crop_margin.")
        dy, dx = int(rng.integers(0, margin + 1)), int(rng.integers(0, margin + 1))
        images = [im[dy : dy + h - margin, dx : dx + w - margin] for im in images]
    if cfg.hflip and rng.random() < 0.5:
        images = [im[:, ::-1] for im in images]
    return [np.ascontiguousarray(im) for im in images]


def prepare_eval(images: list[np.ndarray], size: int = 0) -> list[np.ndarray]:
    """Val/test images: resized to size x size when ``size`` > 0, otherwise unchanged."""
    images = [resize(im, size) for im in images] if size else list(images)
    _check_same_shape(images)
    return images


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 (H, W) -> uint8 (side, side); area averaging when shrinking, bilinear when growing."""
    import cv2

    if image.shape == (side, side):
        return image
    shrink = side < min(image.shape)
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_to_stride(image: np.ndarray, stride: int) -> np.ndarray:
    """Centre-crop the last two axes down to multiples of ``stride`` (no invented pixels)."""
    h, w = image.shape[-2:]
    nh, nw = h - h % stride, w - w % stride
    if nh == 0 or nw == 0:
        from sonoedge.runtime.errors import InputError

        raise InputError(f"an image of {w}x{h} pixels is smaller than the model stride {stride}")
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[..., top : top + nh, left : left + nw]


def _affine(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    import cv2

    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, scale)
    # black outside the source, like the screen around an ultrasound image
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _check_same_shape(images: list[np.ndarray]) -> None:
    shapes = {im.shape for im in images}
    if len(shapes) != 1 or any(im.dtype != np.uint8 or im.ndim != 2 for im in images):
        from sonoedge.runtime.errors import InputError

        raise InputError(f"augmentation needs uint8 (H, W) images of one shape, got {sorted(map(str, shapes))}")
