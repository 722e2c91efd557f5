"""Find the imaging region of an ultrasound frame: the fan (sector) or rectangle that holds the
B-mode image, apart from the vendor UI, rulers and text around it on a black screen.

    region = detect_region(frame)        # frame: uint8 (H, W) grey or (H, W, 3|4) RGB
    region.mask                          # (H, W) bool, True inside the imaging region
    region.bbox                          # (x0, y0, x1, y1), end exclusive
    region.kind                          # "sector" | "rectangle" | "full"

The runtime enhances only ``mask`` and passes everything else through (DESIGN.md, Frames in the
runtime); :class:`RegionTracker` caches the region per stream so detection is not paid per frame.

Method (numpy/OpenCV, deterministic, a few ms at 1080p because the search runs on a copy whose
longer side is :data:`WORK_SIDE` pixels and the result is drawn back at full size as a polygon):

1. Evidence: a pixel is image when its 3x3 local mean is above :data:`BLACK_LEVEL` (the screen
   around the image is black; speckle rarely is). Strongly coloured pixels of RGB input (colour
   UI, markers, colour bars) are not evidence.
2. A morphological opening with a kernel of about :data:`TEXT_FRACTION` of the shorter side removes
   text, ruler ticks, thin UI lines and icons; a closing then joins speckle into solid blobs.
3. The largest connected component is the image. Other large components join it when they lie in
   its column span (an anechoic band, such as the vitreous of an eye, can cut the image in two).
4. Its convex hull fills anechoic holes (cysts, vessels, fluid that is as black as the screen).
5. Kind: a hull whose width grows with depth (top narrower than bottom by more than
   :data:`SECTOR_TAPER`) is a sector; the sector mask is the fan (apex, two rays, inner and outer
   radius) fitted to the hull when the fit agrees with it, else the hull. Otherwise a rectangle (mask:
   its bounding box). A rectangle that reaches every frame edge is ``full`` (mask all True), as is
   a frame with no black screen around the image at all.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import InputError

WORK_SIDE = 320  # px: longer side of the copy the search runs on (speed; masks are drawn at full size)
BLACK_LEVEL = 6  # grey level: local means at or below this are screen black (JPEG/H.264 noise reaches ~3)
TEXT_FRACTION = 0.02  # opening kernel ~2% of the shorter side: wider than text strokes and ruler ticks
MIN_COMPONENT = 0.02  # a component below 2% of the frame is not image (icons, labels, logos)
SECTOR_TAPER = 0.85  # top width / bottom width below this: the sides converge, a sector
FULL_MARGIN = 0.02  # a rectangle within 2% of every edge is the full frame
SATURATION = 60  # max - min channel above this (0..255): a colour overlay, not B-mode
KINDS = ("sector", "rectangle", "full")


@dataclasses.dataclass(frozen=True)
class Region:
    """The imaging region of a frame of shape (H, W).

    ``mask`` (H, W) bool; ``bbox`` (x0, y0, x1, y1) with exclusive ends, the mask's bounding box;
    ``kind`` in :data:`KINDS`; ``area_fraction`` = mask pixels / (H * W), in (0, 1].
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    kind: str
    area_fraction: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]


def full_region(shape: tuple[int, int]) -> Region:
    """The whole frame as the region (kind ``full``)."""
    h, w = shape
    return Region(np.ones((h, w), bool), (0, 0, w, h), "full", 1.0)


def detect_region(image: np.ndarray) -> Region:
    """The imaging region of one frame: uint8 (H, W) grey or (H, W, 3|4) RGB -> :class:`Region`."""
    import cv2

    grey, colour = _split_colour(image)
    h, w = grey.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    small_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(grey, small_size, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    evidence = _evidence(small, colour, small_size, cv2)
    points = _image_points(evidence, cv2)
    if points is None:
        return full_region((h, w))  # nothing stands out from black: treat the frame as all image
    hull = cv2.convexHull(points)  # (K, 1, 2) int32 in working coordinates
    kind, polygon = _classify(hull, evidence.shape, cv2)
    if kind == "full":
        return full_region((h, w))
    polygon_full = np.round((polygon.astype(np.float64) + 0.5) / scale - 0.5).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [polygon_full.reshape(-1, 1, 2)], 1)
    return _region_from_mask(mask.astype(bool), kind)


def _split_colour(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(grey uint8 (H, W), colour saturation uint8 (H, W) or None) of a grey or RGB(A) frame."""
    from .frames import to_grey

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"region detection needs a uint8 image, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3]
        saturation = rgb.max(axis=2) - rgb.min(axis=2)
        return to_grey(image), saturation
    if image.ndim == 2 or image.ndim == 3 and image.shape[2] == 1:
        grey = to_grey(image)
        if min(grey.shape) < 1:
            raise InputError(f"region detection needs a non-empty image, got shape {image.shape}")
        return grey, None
    raise InputError(f"region detection needs an (H, W) or (H, W, 3) image, got shape {image.shape}")


def _evidence(small: np.ndarray, saturation: np.ndarray | None, size: tuple[int, int], cv2) -> np.ndarray:
    """uint8 (h, w) 0/1 mask of pixels that look like image at working scale."""
    mean = cv2.blur(small, (3, 3))
    evidence = (mean > BLACK_LEVEL).astype(np.uint8)
    if saturation is not None:
        sat = cv2.resize(saturation, size, interpolation=cv2.INTER_AREA) if saturation.shape[::-1] != size else saturation
        evidence[sat > SATURATION] = 0
    return evidence


def _image_points(evidence: np.ndarray, cv2) -> np.ndarray | None:
    """(N, 1, 2) int32 points of the image components at working scale, or None when none is found."""
    h, w = evidence.shape
    k = max(3, int(round(TEXT_FRACTION * min(h, w))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    opened = cv2.morphologyEx(evidence, cv2.MORPH_OPEN, kernel)
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    if areas.max() < MIN_COMPONENT * h * w:
        return None
    x0 = stats[main, cv2.CC_STAT_LEFT]
    x1 = x0 + stats[main, cv2.CC_STAT_WIDTH]
    slack = max(2, int(0.02 * w))
    keep = [main]
    for label in range(1, count):
        if label == main or stats[label, cv2.CC_STAT_AREA] < MIN_COMPONENT * h * w:
            continue
        left = stats[label, cv2.CC_STAT_LEFT]
        right = left + stats[label, cv2.CC_STAT_WIDTH]
        if left >= x0 - slack and right <= x1 + slack:
            keep.append(label)
    selected = np.isin(labels, keep).astype(np.uint8)
    contours, _ = cv2.findContours(selected, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return np.concatenate(contours, axis=0)


def _classify(hull: np.ndarray, shape: tuple[int, int], cv2) -> tuple[str, np.ndarray]:
    """(kind, polygon (K, 2) int32 at working scale) for a convex hull."""
    h, w = shape
    pts = hull.reshape(-1, 2)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0) + 1
    hull_mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(hull_mask, pts, 1)
    top, bottom = _width_at(hull_mask, y0, y1, 0.1), _width_at(hull_mask, y0, y1, 0.9)
    margin_x, margin_y = FULL_MARGIN * w, FULL_MARGIN * h
    if top < SECTOR_TAPER * bottom:
        return "sector", pts
    if x0 <= margin_x and y0 <= margin_y and x1 >= w - margin_x and y1 >= h - margin_y:
        return "full", pts
    box = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.int32)
    return "rectangle", box


def _width_at(mask: np.ndarray, y0: int, y1: int, fraction: float) -> int:
    row = int(y0 + fraction * (y1 - 1 - y0))
    return int(mask[row].sum())


def _region_from_mask(mask: np.ndarray, kind: str) -> Region:
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return full_region((h, w))
    bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Region(mask, bbox, kind, float(mask.mean()))


class RegionTracker:
    """Caches the region of one stream; re-detects when the frame shape changes, every
    ``every`` frames (0 = never on a schedule), or after :meth:`invalidate`.

        tracker = RegionTracker(every=300)
        for frame in frames:
            region = tracker.region_for(frame)
    """

    def __init__(self, every: int = 0):
        if every < 0:
            raise ValueError("every must be >= 0 (0 disables periodic re-detection)")
        self.every = every
        self._region: Region | None = None
        self._shape: tuple[int, ...] | None = None
        self._since = 0
        self.detections = 0  # how many times detection ran (for tests and health reports)

    def invalidate(self) -> None:
        """Re-detect on the next frame (e.g. the operator changed depth or probe)."""
        self._region = None

    def region_for(self, frame: np.ndarray) -> Region:
        """The region for ``frame`` (uint8 (H, W) or (H, W, 3)), detected or cached."""
        stale = (
            self._region is None
            or self._shape != frame.shape[:2]
            or (self.every > 0 and self._since >= self.every)
        )
        if stale:
            self._region = detect_region(frame)
            self._shape = frame.shape[:2]
            self._since = 0
            self.detections += 1
        self._since += 1
        return self._region  # type: ignore[return-value]
