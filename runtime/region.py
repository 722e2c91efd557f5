"""Find the imaging region of an ultrasound frame: the fan (sector) or rectangle that holds the
B-mode image, apart from the vendor UI, rulers and text around it on a black screen.

    region = detect_region(frame)        # frame: uint8 (H, W) grey or (H, W, 3|4) RGB
    region.mask                          # (H, W) bool, True inside the imaging region
    region.bbox                          # (x0, y0, x1, y1), end exclusive
    region.kind                          # "sector" | "rectangle" | "full"

The runtime enhances only ``mask`` and passes everything else through (DESIGN.md, Frames in the
runtime); :class:`RegionTracker` caches the region per stream so detection is not paid per frame.

Method (numpy/OpenCV only, deterministic; a few ms at 1080p: the search runs on a copy shrunk by
the integer factor round(longer side / :data:`WORK_SIDE`), OpenCV's fast block average, and the
result is drawn back at full size as a polygon or box):

1. Evidence, at working scale: a block is image when its mean is more than :data:`BLACK_LEVEL`
   above the screen's level (a low percentile: 0, or 16 for limited-range video), or when nearly
   all its pixels are above the screen's floor (anechoic fluid is dark, but rarely exactly as
   black as the screen). A noisy screen (frame grabbers, codec dither) gets its noise as the floor.
   Strongly coloured pixels of RGB input (colour UI, markers, colour bars) are not evidence.
2. A morphological opening with a kernel of :data:`TEXT_FRACTION` of the shorter side removes
   text, ruler ticks, thin UI lines and icons; a closing joins speckle into solid blobs.
3. The largest connected component is the image. Other large components join it when they lie in
   its column span: an anechoic band (the vitreous of an eye, a water bath) can cut it in two.
4. Its convex hull fills anechoic holes (cysts, vessels, fluid as black as the screen).
5. Kind. A hull that fills its bounding box (:data:`RECT_FILL`) is a rectangle (linear probe), and
   so is one whose sides do not move outwards with depth (an uneven skin line, dark deep corners).
   Its box is extended across a strip of sparse echoes (a water bath, an acoustic shadow) up to a
   transducer line or the frame edge, and its edges are snapped at full size past text and logos
   that the coarse search merged. A rectangle that reaches every frame edge is ``full`` (mask all
   True), as is a frame where nothing stands out from black. Otherwise it is a sector (convex or
   phased probe): the annular fan (centre from a circle fit to the bottom arc, two rays, inner and
   outer radius) when the fan explains the evidence, else the hull (a fan the frame cuts).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from sonoedge.runtime.errors import InputError

WORK_SIDE = 320  # px: the search runs at about this longer side (integer shrink factor), for speed
BLACK_LEVEL = 6  # grey levels: block means at most this above the screen level are screen (codec noise < ~3)
# a block with 90% of its pixels above the screen floor is image (dark fluid); noise leaves more at the floor
DARK_FLUID_DENSITY = 0.9
NOISY_SCREEN_SHARE = 0.3  # see _is_noisy_screen
NOISE_PERCENTILE = 99.5  # the floor of a noisy screen: this percentile of its pixels
TEXT_FRACTION = 0.022  # opening kernel, fraction of the shorter side: wider than text strokes and ticks
MIN_COMPONENT = 0.02  # a component below 2% of the frame is not image (icons, labels, logos)
RECT_FILL = 0.93  # hull area / bounding-box area at or above this: a rectangle
SIDE_SLOPE = 0.03  # each side moving outwards by 3% of the width between 25% and 85% depth: a fan
FULL_MARGIN = 0.02  # a rectangle within 2% of every edge is the full frame
SPARSE_ROWS = 0.5  # a strip is sparse echoes (extend across it) when this share of its rows has any echo
LINE_GAP = 0.05  # successive transducer lines within 5% of the frame height are one probe face
LINE_FILL = 0.6  # a row with echoes across this share of the rectangle width is a transducer line
EMPTY_FILL = 0.1  # a line (row or column) of the box with under 10% of pixels above black is empty
SOLID_FILL = 0.5  # ... and one with at least half above black is solid image
FRINGE_FILL = 0.15  # the top/bottom edge grows outwards over rows with at least this share of echoes
SNAP_KERNELS = 3  # edges snap within 3 kernel sides: closing bridges one kernel, text adds its height
TRANSITION = 10  # lines: the fading edge of an image between an empty line and solid image
SOLID_RUN = 3  # lines whose mean fill must be solid, inside an empty line, to snap an edge to it
SATURATION = 60  # max - min channel above this (0..255): a colour overlay, not B-mode
EDGE_BAND = 2.0  # working pixels: outline points this close to a fan edge estimate it (median)
FAN_MIN_COVER = 0.97  # the fitted fan must contain this share of the evidence of the hull
STALE_SHARE = 0.02  # new image evidence outside a cached region over 2% of the frame: re-detect
KINDS = ("sector", "rectangle", "full")
REGION_MODES = ("auto", "full")  # what a bundle's preprocess.region may say: detect the region, or the whole frame
REGION_CHOICES = ("bundle", *REGION_MODES)  # what a user may choose: "bundle" = as the bundle says


@dataclasses.dataclass(frozen=True)
class Region:
    """The imaging region of a frame of shape (H, W).

    ``mask`` (H, W) bool; ``bbox`` (x0, y0, x1, y1) with exclusive ends, the mask's bounding box;
    ``kind`` in :data:`KINDS`; ``area_fraction`` = mask pixels / (H * W), in (0, 1]; ``found`` is
    False for a frame with nothing but black (probe in the air, frozen blank screen), whose region
    is the whole frame until an image appears.
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    kind: str
    area_fraction: float
    found: bool = True  # False when nothing stood out from black and the whole frame was taken

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]


def full_region(shape: tuple[int, int], found: bool = True) -> Region:
    """The whole frame as the region (kind ``full``)."""
    h, w = shape
    return Region(np.ones((h, w), bool), (0, 0, w, h), "full", 1.0, found)


def detect_region(image: np.ndarray) -> Region:
    """The imaging region of one frame: uint8 (H, W) grey or (H, W, 3|4) RGB -> :class:`Region`."""
    import cv2

    _check_image(image)
    h, w = image.shape[:2]
    factor = max(1, round(max(h, w) / WORK_SIDE))  # an integer shrink: OpenCV's fast block average
    work = _Work.build(image, factor, cv2)
    selected = _image_components(work.evidence, cv2)
    if selected is None:
        return full_region((h, w), found=False)  # nothing stands out from black: take the frame whole
    kind, polygon, extended = _shape_of(selected, work, cv2)
    if kind == "full":
        return full_region((h, w))
    polygon_full = _to_full(polygon, factor, (h, w), work.evidence.shape)
    mask = np.zeros((h, w), np.uint8)
    if kind == "rectangle":
        band = int(np.ceil(SNAP_KERNELS * _kernel_side(work.evidence.shape) * factor))
        x0, y0, x1, y1 = _refine_box(work.above, polygon_full, band, extended)
        mask[y0:y1, x0:x1] = 1
    else:
        cv2.fillPoly(mask, [polygon_full.reshape(-1, 1, 2)], 1)
    return _region_from_mask(mask.view(bool), kind)


def _to_full(polygon: np.ndarray, factor: int, shape: tuple[int, int], work_shape: tuple[int, int]) -> np.ndarray:
    """Working-scale vertices (K, 2) -> full-size vertices: block centres, with the first and last
    working row/column pinned to the frame edges (the shrink drops up to factor - 1 pixels there)."""
    h, w = shape
    hs, ws = work_shape
    x = polygon[:, 0].astype(np.float64) * factor + (factor - 1) / 2
    y = polygon[:, 1].astype(np.float64) * factor + (factor - 1) / 2
    # vertices outside the frame (a fan's corners beyond the edge) keep their direction
    x = np.where(polygon[:, 0] == 0, 0, np.where(polygon[:, 0] == ws - 1, w - 1, x))
    y = np.where(polygon[:, 1] == 0, 0, np.where(polygon[:, 1] == hs - 1, h - 1, y))
    return np.column_stack([np.round(x), np.round(y)]).astype(np.int32)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"region detection needs a uint8 image, got {getattr(image, 'dtype', type(image))}")
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise InputError(f"region detection needs an (H, W) or (H, W, 3) image, got shape {image.shape}")


@dataclasses.dataclass
class _Work:
    """Working-scale maps: ``evidence`` (h, w) uint8 0/1 and ``echo`` (h, w) bool (a block with any
    pixel above the screen floor); ``above`` is the full-size map of pixels above that floor."""

    evidence: np.ndarray
    echo: np.ndarray
    above: np.ndarray  # (H, W) uint8 0/255 at full size: pixel above the screen floor

    @classmethod
    def build(cls, image: np.ndarray, factor: int, cv2) -> "_Work":
        h, w = image.shape[:2]
        hs, ws = max(1, h // factor), max(1, w // factor)

        def small(array: np.ndarray) -> np.ndarray:  # block mean over factor x factor pixels
            if factor == 1:
                return array
            return cv2.resize(array[: hs * factor, : ws * factor], (ws, hs), interpolation=cv2.INTER_AREA)

        saturation = None
        if image.ndim == 3 and image.shape[2] >= 3:
            rgb = np.ascontiguousarray(image[:, :, :3])
            # detection only: OpenCV's BT.601 grey (the weights of frames.to_grey, faster rounding)
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            sample = rgb[: hs * factor : factor, : ws * factor : factor]  # one pixel per block is enough
            r, g, b = sample[:, :, 0], sample[:, :, 1], sample[:, :, 2]
            saturation = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        else:
            grey = np.ascontiguousarray(image.reshape(h, w))
        work_grey = small(grey)
        # shrinking averaged blocks of pixels already; blurring again would merge lines of text
        # into blocks that survive the opening. At full size a 3x3 mean smooths the speckle.
        mean = work_grey if factor > 1 else cv2.blur(work_grey, (3, 3))
        # the screen's level: 0, or 16 for limited-range video; a low percentile ignores codec ringing
        flat = mean.ravel()
        screen = int(np.partition(flat, flat.size // 100)[flat.size // 100])
        bright = mean > screen + BLACK_LEVEL

        def above_floor(floor: float) -> tuple[np.ndarray, np.ndarray]:  # full-size 0/255, working share 0..255
            above = cv2.compare(grey, floor, cv2.CMP_GT)
            return above, (small(above) if factor > 1 else cv2.blur(above, (3, 3)))

        above, density = above_floor(float(cv2.minMaxLoc(grey)[0]))
        fluid = (density >= DARK_FLUID_DENSITY * 255) & ~bright
        if _is_noisy_screen(fluid):
            # the screen is not one flat level (a frame grabber's noise, codec dither): its noise,
            # not its minimum, is the floor. Its top percentile over the dark surround:
            surround = grey[: hs * factor : factor, : ws * factor : factor][~bright]
            above, density = above_floor(float(np.percentile(surround, NOISE_PERCENTILE)))
            fluid = (density >= DARK_FLUID_DENSITY * 255) & ~bright
        evidence = (bright | fluid).astype(np.uint8)
        if saturation is not None:
            evidence[saturation > SATURATION] = 0
        return cls(evidence, density > 0, above)


def _is_noisy_screen(fluid: np.ndarray) -> bool:
    """Dark-but-not-black evidence over a third of the frame touching all four edges is a noisy
    screen around the image, not anechoic fluid (fluid lies inside the image)."""
    if fluid.mean() < NOISY_SCREEN_SHARE:
        return False
    return bool(fluid[0].any() and fluid[-1].any() and fluid[:, 0].any() and fluid[:, -1].any())


def _kernel_side(shape: tuple[int, int]) -> int:
    """Odd side of the opening/closing kernel at working scale (see TEXT_FRACTION)."""
    return max(3, int(round(TEXT_FRACTION * min(shape))) | 1)


def _image_components(evidence: np.ndarray, cv2) -> np.ndarray | None:
    """uint8 (h, w) 0/1 mask of the image's components at working scale (holes filled), or None."""
    h, w = evidence.shape
    k = _kernel_side((h, w))
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
    lookup = np.zeros(count, np.uint8)
    lookup[keep] = 1
    return lookup[labels]


def _shape_of(selected: np.ndarray, work: _Work, cv2) -> tuple[str, np.ndarray, tuple[bool, bool]]:
    """(kind, polygon (K, 2) int32 at working scale, (top, bottom) edges moved across sparse
    echoes) of the selected components; a rectangle's polygon is its four corners."""
    h, w = selected.shape
    contours, _ = cv2.findContours(selected, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours, axis=0)).reshape(-1, 2)
    x0, y0 = hull.min(axis=0)
    x1, y1 = hull.max(axis=0) + 1
    hull_mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hull_mask, hull, 1)
    fill = hull_mask.sum() / float((x1 - x0) * (y1 - y0))
    if fill < RECT_FILL:
        fan = _fit_fan(selected, hull_mask, cv2)
        if fan is not None:
            return "sector", fan, (False, False)
    if _sides_diverge(hull_mask, int(x0), int(x1), int(y0), int(y1)):
        return "sector", hull, (False, False)  # a fan the frame cuts (no arc to fit): its hull
    # parallel sides (a linear probe), perhaps with an uneven surface or dark deep corners: the box
    top, bottom = _extend_rectangle(work.echo, int(x0), int(x1), int(y0), int(y1))
    extended = (top != y0, bottom != y1)
    y0, y1 = top, bottom
    mx, my = FULL_MARGIN * w, FULL_MARGIN * h
    if x0 <= mx and y0 <= my and x1 >= w - mx and y1 >= h - my:
        return "full", hull, extended
    return "rectangle", np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.int32), extended


def _refine_box(above: np.ndarray, corners: np.ndarray, band: int, extended: tuple[bool, bool]) -> tuple[int, int, int, int]:
    """Snap a rectangle found at working scale to the image edges at full size: (x0, y0, x1, y1).

    Within ``band`` pixels of each edge, the edge moves inwards past a run of empty lines that
    has solid image on its inner side (text or a ruler merged by the coarse search), else outwards
    over lines with echoes (detail lost to the downscale). Edges moved across sparse echoes only grow.
    """
    h, w = above.shape
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0) + 1
    x0, x1 = max(0, int(x0)), min(w, int(x1))
    y0, y1 = max(0, int(y0)), min(h, int(y1))

    def rows(a: int, b: int) -> np.ndarray:  # share of each row a..b-1 above black, within the box's columns
        return _mean_along(above[a:b, x0:x1], 1)

    def cols(a: int, b: int) -> np.ndarray:
        return _mean_along(above[y0:y1, a:b], 0)

    y0 = _snap(rows, y0, band, +1, h, FRINGE_FILL, cut=not extended[0])
    y1 = _snap(rows, y1 - 1, band, -1, h, FRINGE_FILL, cut=not extended[1]) + 1
    x0 = _snap(cols, x0, band, +1, w, SOLID_FILL)  # the sides of a linear image are sharp
    x1 = _snap(cols, x1 - 1, band, -1, w, SOLID_FILL) + 1
    return x0, y0, x1, y1


def _mean_along(block: np.ndarray, axis: int) -> np.ndarray:
    """Mean of a 0/255 uint8 block along ``axis`` (1: per row, 0: per column), in 0..1."""
    import cv2

    if block.size == 0:
        return np.zeros(block.shape[0] if axis == 1 else block.shape[1], np.float32)
    # cv2.reduce's dim is the axis collapsed to one: 1 gives a column of row means
    reduced = cv2.reduce(np.ascontiguousarray(block), axis, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    return reduced.ravel() / 255.0


def _snap(profile, edge: int, band: int, inward: int, size: int, grow_fill: float, cut: bool = True) -> int:
    """The refined index of one edge line; ``profile(a, b)`` is the fill of lines a..b-1.

    Inwards: walking in from the coarse edge to the first solid line, with no solid line on the
    way (only text, ticks or logos), the edge moves to just inside the last empty line before it,
    when solid image starts within TRANSITION lines of that empty line. Outwards otherwise: the edge
    grows over the lines that the downscale lost while their fill stays at ``grow_fill`` or more
    (top and bottom: a fading edge or the sparse speckle of a shadow; sides: solid lines).
    """
    lo, hi = max(0, edge - band), min(size, edge + band + 1)
    fill = profile(lo, hi)
    at = edge - lo  # index of the coarse edge in ``fill``
    inside = np.arange(at, len(fill)) if inward > 0 else np.arange(at, -1, -1)
    solid = fill >= SOLID_FILL
    first_solid = next((i for i, j in enumerate(inside) if solid[j]), None)
    if cut and first_solid is not None and first_solid > 0:
        empty = [i for i in range(first_solid) if fill[inside[i]] < EMPTY_FILL]
        run = inside[first_solid : first_solid + SOLID_RUN]
        if empty and first_solid - empty[-1] <= TRANSITION and len(run) == SOLID_RUN and fill[run].mean() >= SOLID_FILL:
            return lo + int(inside[empty[-1] + 1])
    new = at
    for j in np.arange(at - inward, -1 if inward > 0 else len(fill), -inward):
        if fill[j] < grow_fill:
            break
        new = j
    return lo + int(new)


def _sides_diverge(hull_mask: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> bool:
    """True when both side edges move outwards with depth (a fan), measured between 25% and 85%
    of the depth so that a slanted top or a rounded bottom does not count."""
    upper, lower = (int(y0 + f * (y1 - 1 - y0)) for f in (0.25, 0.85))
    (left_u, right_u), (left_l, right_l) = (_row_extent(hull_mask[row]) for row in (upper, lower))
    step = SIDE_SLOPE * (x1 - x0)
    return left_u - left_l > step and right_l - right_u > step


def _row_extent(row: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero(row)
    return (int(cols[0]), int(cols[-1])) if cols.size else (0, 0)


def _extend_rectangle(echo: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> tuple[int, int]:
    """Move the top and bottom edges across strips of sparse echoes (see the module docstring)."""
    columns = echo[:, x0:x1]
    row_fill = columns.mean(axis=1)  # share of the rectangle width with any echo, per row
    return _extend_edge(row_fill, y0, -1), _extend_edge(row_fill, y1 - 1, +1) + 1


def _extend_edge(row_fill: np.ndarray, edge: int, step: int) -> int:
    """The new edge row: the farthest transducer line (or frame edge) reachable from ``edge``
    across strips of sparse echoes; ``edge`` itself when the strip beyond it is screen black."""
    stop = len(row_fill) if step > 0 else -1
    rows = np.arange(edge + step, stop, step)
    lines = rows[row_fill[rows] >= LINE_FILL]
    current = edge
    close = max(3, int(LINE_GAP * len(row_fill)))  # rows: lines this close belong together (probe face, lens)
    for line in lines:
        if current != edge and abs(int(line) - current) <= close or _sparse(row_fill[_between(current, int(line), step)]):
            current = int(line)
        else:
            break
    rest = row_fill[_between(current, stop, step)]
    if rest.size and _sparse(rest) and _reaches_edge(rest, step):
        current = stop - step
    return current


def _between(a: int, b: int, step: int) -> slice:
    """Rows strictly between a and b, in either direction."""
    return slice(a + 1, b) if step > 0 else slice(b + 1, a)


def _sparse(strip: np.ndarray) -> bool:
    """A strip of rows (per-row echo fill) is sparse echoes, not screen black; empty strips are."""
    return strip.size == 0 or (strip > 0).mean() >= SPARSE_ROWS


def _reaches_edge(strip: np.ndarray, step: int) -> bool:
    """True when echoes continue to the frame edge (no empty run at the far end of the strip)."""
    far = strip[-max(2, strip.size // 4):] if step > 0 else strip[: max(2, strip.size // 4)]
    return bool((far > 0).any())


def _fit_fan(selected: np.ndarray, hull_mask: np.ndarray, cv2) -> np.ndarray | None:
    """Polygon (K, 2) int32 of the annular fan fitted to the hull's bottom arc, or None when the
    fit does not explain the evidence (a sector cropped by the frame, an odd shape)."""
    h, w = selected.shape
    filled = _fill_holes(selected, cv2)
    cols = np.flatnonzero(filled.any(axis=0))
    x0, x1 = cols[0], cols[-1] + 1
    centre_cols = np.arange(int(x0 + 0.2 * (x1 - x0)), int(x0 + 0.8 * (x1 - x0)))
    bottoms = h - 1 - np.argmax(filled[::-1, centre_cols], axis=0)
    if centre_cols.size < 8 or (bottoms >= h - 1).mean() > 0.2:
        return None  # the outer arc is cut by the frame
    circle = _fit_circle(centre_cols.astype(np.float64), bottoms.astype(np.float64))
    if circle is None:
        return None
    cx, cy, r_outer = circle
    if cy > bottoms.min() or r_outer > 4 * max(h, w):
        return None  # not a fan opening downwards from a centre above its bottom
    # the extremes of radius and angle lie on the outline: its points are enough (and few)
    outline, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    xs, ys = np.concatenate(outline).reshape(-1, 2).T.astype(np.float64)
    radius = np.hypot(xs - cx, ys - cy)
    angle = np.arctan2(xs - cx, ys - cy)  # 0 straight down, positive to the right
    on_border = (xs <= 0) | (xs >= w - 1) | (ys <= 0) | (ys >= h - 1)
    r_inner, r_outer, a_left, a_right = _fan_edges(radius, angle, on_border, r_outer)
    polygon = _fan_polygon(cx, cy, r_inner, r_outer, a_left, a_right)
    fan_mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(fan_mask, [polygon.reshape(-1, 1, 2)], 1)
    covered = (fan_mask & filled).sum() / max(1, filled.sum())
    if covered < FAN_MIN_COVER or fan_mask.sum() > 1.05 * hull_mask.sum():
        return None
    return polygon


def _fan_edges(radius: np.ndarray, angle: np.ndarray, on_border: np.ndarray, r_fit: float) -> tuple[float, float, float, float]:
    """(r_inner, r_outer, a_left, a_right) of a fan from its outline points (working scale).

    Each edge is the median of the outline points within EDGE_BAND pixels of the extreme, which
    cancels the staircase of a slanted edge at working scale; an extreme on the frame border
    (the frame cuts the fan there) is kept as it is."""
    r_min, r_max = float(radius.min()), max(r_fit, float(radius.max()))
    a_min, a_max = float(angle.min()), float(angle.max())
    tolerance = EDGE_BAND / np.maximum(radius, 1.0)  # EDGE_BAND pixels as an angle at each radius
    sides = (radius > r_min + EDGE_BAND) & (radius < r_max - EDGE_BAND)
    arcs = (angle > a_min + tolerance) & (angle < a_max - tolerance)

    def edge(extreme: float, near: np.ndarray, values: np.ndarray) -> float:
        if near.sum() < 5 or on_border[near].any():
            return extreme
        return float(np.median(values[near]))

    a_left = edge(a_min, sides & (angle < a_min + tolerance), angle)
    a_right = edge(a_max, sides & (angle > a_max - tolerance), angle)
    r_inner = edge(r_min, arcs & (radius < r_min + EDGE_BAND), radius)
    r_outer = edge(r_max, arcs & (radius > r_max - EDGE_BAND), radius)
    return max(0.0, r_inner), r_outer, a_left, a_right


def _fill_holes(mask: np.ndarray, cv2) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares circle (Kasa fit) through points: (cx, cy, r), or None when degenerate."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = solution[0] / 2, solution[1] / 2
    r2 = solution[2] + cx * cx + cy * cy
    if not np.isfinite(r2) or r2 <= 0:
        return None
    return float(cx), float(cy), float(np.sqrt(r2))


def _fan_polygon(cx: float, cy: float, r0: float, r1: float, a0: float, a1: float, steps: int = 64) -> np.ndarray:
    """(2 * steps, 2) int32 outline of the annular sector r0..r1, a0..a1 (angle 0 = down)."""
    angles = np.linspace(a0, a1, steps)
    outer = np.column_stack([cx + r1 * np.sin(angles), cy + r1 * np.cos(angles)])
    inner = np.column_stack([cx + r0 * np.sin(angles[::-1]), cy + r0 * np.cos(angles[::-1])])
    return np.round(np.vstack([outer, inner])).astype(np.int32)


def _region_from_mask(mask: np.ndarray, kind: str) -> Region:
    """Region of a bool (H, W) mask (OpenCV counts, fast at full size)."""
    import cv2

    h, w = mask.shape
    as_uint8 = mask.view(np.uint8)
    area = cv2.countNonZero(as_uint8)
    if area == 0:
        return full_region((h, w))
    x, y, bw, bh = cv2.boundingRect(as_uint8)
    return Region(mask, (x, y, x + bw, y + bh), kind, area / float(h * w))


class RegionTracker:
    """Caches the region of one stream so detection is not paid per frame.

    It re-detects when the frame shape changes, every ``every`` frames (0: never on a schedule),
    after :meth:`invalidate`, and when a cheap check every ``check_every`` frames (0: off) sees
    image evidence outside the cached region that was not there at detection (the operator changed
    depth or probe, or the first frames were blank), or the cached region was not ``found``.

        tracker = RegionTracker()
        for frame in frames:
            region = tracker.region_for(frame)
    """

    def __init__(self, every: int = 0, check_every: int = 10):
        if every < 0 or check_every < 0:
            raise ValueError("every and check_every must be >= 0 (0 disables them)")
        self.every = every
        self.check_every = check_every
        self._region: Region | None = None
        self._shape: tuple[int, ...] | None = None
        self._since = 0
        self._baseline = 0.0  # share of the frame with image evidence outside the region at detection
        self._inside: np.ndarray | None = None  # the region at working scale, dilated
        self.detections = 0  # how many times detection ran (for tests and health reports)

    @property
    def region(self) -> Region | None:
        """The cached region (None before the first frame or after :meth:`invalidate`)."""
        return self._region

    def invalidate(self) -> None:
        """Re-detect on the next frame (e.g. the operator changed depth or probe)."""
        self._region = None

    def region_for(self, frame: np.ndarray) -> Region:
        """The region for ``frame`` (uint8 (H, W) or (H, W, 3)), detected or cached."""
        stale = (
            self._region is None
            or self._shape != frame.shape[:2]
            or (self.every > 0 and self._since >= self.every)
            or (self.check_every > 0 and self._since % self.check_every == 0 and self._outgrown(frame))
        )
        if stale:
            self._region = detect_region(frame)
            self._shape = frame.shape[:2]
            self._since = 0
            self._inside = working_inside(self._region) if self.check_every else None
            self._baseline = outside_evidence(frame, self._region, self._inside) if self.check_every else 0.0
            self.detections += 1
        self._since += 1
        return self._region  # type: ignore[return-value]

    def _outgrown(self, frame: np.ndarray) -> bool:
        region = self._region
        assert region is not None
        if not region.found:
            return True
        return outside_evidence(frame, region, self._inside) > self._baseline + STALE_SHARE


def outside_evidence(frame: np.ndarray, region: Region, inside: np.ndarray | None = None) -> float:
    """Share of the frame (0..1) with image evidence (text and ticks opened away) outside
    ``region`` dilated by one kernel; about a millisecond at 1080p. ``inside`` is that dilated
    mask at working scale from :func:`working_inside` (computed here when None)."""
    import cv2

    _check_image(frame)
    if region.kind == "full" and region.found:
        return 0.0
    h, w = frame.shape[:2]
    factor = max(1, round(max(h, w) / WORK_SIDE))
    hs, ws = max(1, h // factor), max(1, w // factor)
    grey = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey[: hs * factor, : ws * factor], (ws, hs), interpolation=cv2.INTER_AREA) if factor > 1 else grey
    flat = small.ravel()
    screen = int(np.partition(flat, flat.size // 100)[flat.size // 100])
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (_kernel_side((hs, ws)),) * 2)
    bright = cv2.morphologyEx((small > screen + BLACK_LEVEL).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    if inside is None:
        inside = working_inside(region)
    return float(np.count_nonzero(bright > inside)) / bright.size


def working_inside(region: Region) -> np.ndarray:
    """uint8 (h, w) 0/1: ``region.mask`` at working scale, dilated by one kernel (edge tolerance)."""
    import cv2

    h, w = region.mask.shape
    factor = max(1, round(max(h, w) / WORK_SIDE))
    hs, ws = max(1, h // factor), max(1, w // factor)
    sample = np.ascontiguousarray(region.mask[factor // 2 :: factor, factor // 2 :: factor][:hs, :ws]).view(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (_kernel_side((hs, ws)),) * 2)
    return cv2.dilate(sample, kernel)


def bench_region(frame, repeats: int) -> str:
    """One line: detection ms (median, p90 over ``repeats``) and a cached RegionTracker lookup."""
    import time

    import numpy as np

    detect_region(frame)  # warm up (imports, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detect_region(frame)
        times.append(time.perf_counter() - start)
    tracker = RegionTracker()  # defaults: cached, staleness check every 10 frames
    tracker.region_for(frame)
    start = time.perf_counter()
    for _ in range(repeats):
        tracker.region_for(frame)
    per_frame = (time.perf_counter() - start) / repeats
    ms = np.array(times) * 1000
    return (f"bench:    detect_region {np.median(ms):.2f} ms median, {np.percentile(ms, 90):.2f} ms p90 "
            f"({repeats} runs, {frame.shape[1]}x{frame.shape[0]}); RegionTracker per frame {per_frame * 1e3:.3f} ms "
            f"on average with its check every {tracker.check_every} frames ({np.median(ms) / 1000 / per_frame:.0f}x less)")


def write_overlay(path: str | os.PathLike, frame: np.ndarray, region: Region) -> None:
    """Atomically write ``frame`` (uint8 (H, W)) with the region outline (red) and bbox (green)."""
    import cv2

    from sonoedge.runtime.atomic import atomic_path

    canvas = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(frame.shape) / 400))
    x0, y0, x1, y1 = region.bbox
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (0, 200, 0), thickness)
    contours, _ = cv2.findContours(region.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, (0, 0, 255), thickness)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), canvas):
            raise InputError(f"could not write the overlay {path}; check the folder is writable.")
