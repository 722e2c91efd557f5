"""Fidelity of an enhanced frame to its input, with no reference: did the model keep the anatomy?

An enhancer must not erase a boundary or invent a cyst ("first, do no harm"). The image metrics of
the papers (PSNR, SSIM, LNCC) need a registered high-quality image that real scans do not have, and
the no-reference contrast measures (CNR, gCNR) are blind to sign: a bright echo turned into a black
hole *gains* gCNR. These measures compare the enhanced frame with the frame it came from, inside
the imaging region (``runtime/region.py``), at scales set by the frame's own speckle:

    report = measure(source, enhanced)        # uint8 (H, W) each; source = the input (or a reference)
    report.lowpass_corr, report.lowpass_bias  # echogenicity map: Pearson r, mean difference (grey levels)
    report.erased, report.invented            # lists of Structure (kind, box, area, contrasts)
    report.bright_kept, report.anechoic_kept  # signed contrast kept, output / source (negative: inverted)
    report.bright_to_black                    # share of bright (>= 100) source pixels that came out black (< 10)
    overlay(source, enhanced, report)         # BGR picture: source | enhanced, erased and invented outlined

With a reference image (a better acquisition of the same tissue), ``measure(reference, output)``
gives the same measures of the output against it; ``measure(reference, input)`` is the baseline.

Scales (all from the frame, none from a pixel size the frame does not carry):

- The speckle cell ``cell`` (pixels) is the geometric mean of the lateral and axial full widths at
  half maximum of the autocorrelation of the source's high-passed pixels in the middle of the
  region (the classic speckle-size estimate, Wagner et al., IEEE Trans. Sonics Ultrason. 30(3),
  1983, Section IV). On the realus files it is 3.5-14 px (lateral 6-26, axial 2-8), so it is clipped to
  [:data:`CELL_MIN`, :data:`CELL_MAX`] and can be given when known.
- The *low-pass echogenicity map* is a Gaussian of sigma :data:`LOWPASS_CELLS` = 1.5 cells,
  normalised inside the region (the black surround does not darken the border). A Gaussian of
  sigma s averages about 4 pi s^2 / cell^2 = 28 independent speckle cells, cutting the speckle's
  spread about five-fold, while a structure of a few cells (a vessel, the skull) stays visible in it.
- *Structures* are found in a difference of Gaussians of the source, fine (sigma :data:`FINE_CELLS`
  = 0.5 cell: pixel noise gone, a one-cell boundary kept) minus background (sigma
  :data:`BACKGROUND_CELLS` = 3 cells: a structure up to about 3 cells across keeps its full contrast).
  This signed local contrast is linear, so output/source contrast of a structure is the gain the
  model applied to it: 1 kept, 0.8 for a gain of 0.8, 0 erased, negative inverted.

Thresholds are in grey levels of the log-compressed 8-bit image (about 4-6 levels per dB on a 40-60
dB display dynamic range); each is argued where it is defined. Whether a frame *fails* is the
business of the fidelity gate (``runtime/bundle/gates.py``); this module only measures and lists.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.metrics import signed_contrast

CELL_MIN, CELL_MAX = 3.0, 16.0  # px: the speckle cell is clipped to this (realus: 3.5-14 px)
HIGHPASS = 12.0  # px: sigma of the Gaussian subtracted before the speckle estimate (tissue structure)
WORK_CELL = 4.0  # px per speckle cell the maps are computed at (see measure)
LOWPASS_CELLS = 1.5  # sigma of the low-pass echogenicity map, in speckle cells (about 28 cells averaged)
FINE_CELLS = 0.5  # sigma of the fine map: pixel noise smoothed, a one-cell boundary kept
BACKGROUND_CELLS = 3.0  # sigma of the local background of a structure: structures up to ~3 cells keep full contrast
# A structure: a local contrast of 30 grey levels (about 6 dB) or more, over at least 4 cell areas
# (a line one cell wide and four long, or a disc about 2.3 cells across). Speckle alone rarely
# reaches it: a fine-scale speckle peak is ~1 cell across and its DoG spread ~10 levels on realus.
STRUCTURE_CONTRAST = 30.0
MIN_AREA_CELLS = 4.0
# Erased: a source structure whose signed contrast in the output is below a quarter of the source's
# (a gain of 0.25, -12 dB, or inverted). Mild smoothing keeps > 0.8, gains of 0.7-1.4 keep 0.7-1.4.
ERASED_KEPT = 0.25
BRIGHT_LEVEL, BLACK_LEVEL = 100, 10  # "bright anatomy came out black": source >= 100, output < 10
# Invented dark: the output is below DARK_RATIO of the source's echogenicity there, by at least
# DARK_MARGIN levels, where the source's fine map is not itself dark (>= SOURCE_NOT_DARK of its
# echogenicity): a hole where the source shows tissue. A gain of 0.7 gives 0.7 * fine >= 0.42, above 0.35.
DARK_RATIO = 0.35
DARK_MARGIN = 20.0
SOURCE_NOT_DARK = 0.6
# Invented bright: a structure of the output (local contrast >= STRUCTURE_CONTRAST) where the
# source's local contrast is under half that: any gain up to 2 leaves such a place below threshold.
OUTLINE_BAND = 0.15  # skull search band: radii 0.85-1.15 of the expert ellipse (skull thickness + annotation slack)
OUTLINE_RAYS = 180  # rays, one per 2 degrees, for the skull fit
OUTLINE_MIN_RAYS = 0.5  # a skull fit needs a bright peak on at least half the rays
# a ray's brightest sample is a boundary when it is 10 levels (about 2 dB) above the ray's median:
# a third of STRUCTURE_CONTRAST, because the expert outline says where to look (realus hc18: the
# source's skull fits on 10 of 10 frames with this, 9 of 10 with 15)
OUTLINE_PEAK = 10.0


@dataclasses.dataclass(frozen=True)
class Structure:
    """One erased or invented structure. ``kind``: bright | anechoic (erased) or dark | bright
    (invented); ``bbox`` (x0, y0, x1, y1) exclusive ends; ``area`` px; contrasts are the mean local
    (DoG) contrast over it in the source and the output, grey levels; ``kept`` = output / source."""

    kind: str
    bbox: tuple[int, int, int, int]
    area: int
    source_contrast: float
    output_contrast: float
    kept: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bbox": list(self.bbox), "area": self.area,
                "source_contrast": round(self.source_contrast, 2), "output_contrast": round(self.output_contrast, 2),
                "kept": round(self.kept, 3)}


@dataclasses.dataclass
class FidelityReport:
    """The measures of one frame (see the module docstring). ``erased_mask`` / ``invented_mask``
    (H, W) bool are for pictures and are not serialised."""

    cell: float
    region_area: int
    lowpass_corr: float
    lowpass_bias: float
    bright_to_black: float
    bright_kept: float | None  # None: the source has no bright structure
    anechoic_kept: float | None  # None: the source has no anechoic structure
    bright_structures: int
    anechoic_structures: int
    erased: list[Structure]
    invented: list[Structure]
    erased_mask: np.ndarray = dataclasses.field(repr=False)
    invented_mask: np.ndarray = dataclasses.field(repr=False)

    @property
    def erased_area(self) -> int:
        return int(sum(s.area for s in self.erased))

    @property
    def invented_area(self) -> int:
        return int(sum(s.area for s in self.invented))

    def to_dict(self, structures: bool = True) -> dict[str, Any]:
        out = {"cell_px": round(self.cell, 2), "region_px": self.region_area,
               "lowpass_corr": round(self.lowpass_corr, 4), "lowpass_bias": round(self.lowpass_bias, 2),
               "bright_to_black": round(self.bright_to_black, 4),
               "bright_kept": None if self.bright_kept is None else round(self.bright_kept, 3),
               "anechoic_kept": None if self.anechoic_kept is None else round(self.anechoic_kept, 3),
               "bright_structures": self.bright_structures, "anechoic_structures": self.anechoic_structures,
               "erased": len(self.erased), "erased_px": self.erased_area,
               "invented": len(self.invented), "invented_px": self.invented_area}
        if structures:
            out["erased_list"] = [s.to_dict() for s in self.erased]
            out["invented_list"] = [s.to_dict() for s in self.invented]
        return out


def _plane(name: str, image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2 or min(array.shape) < 16:
        raise InputError(f"fidelity needs the {name} as a uint8 grey (H, W) image of at least 16 x 16, "
                         f"got {array.dtype} {array.shape}")
    return array


def speckle_cell(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Speckle cell size in px of a uint8 (H, W) image: sqrt(lateral x axial) autocorrelation FWHM
    of its high-passed middle half (of the mask's box), clipped to [CELL_MIN, CELL_MAX]."""
    plane = _plane("image", image).astype(np.float64)
    y0, x0, y1, x1 = 0, 0, plane.shape[0], plane.shape[1]
    if mask is not None and mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = y1 - y0, x1 - x0
    patch = plane[y0 + h // 4: y0 + 3 * h // 4, x0 + w // 4: x0 + 3 * w // 4]
    if min(patch.shape) < 8:
        return CELL_MIN
    # structure larger than speckle is removed first, so it does not widen the estimate
    patch = patch - cv2.GaussianBlur(patch, (0, 0), HIGHPASS)
    patch -= patch.mean()
    power = np.abs(np.fft.rfft2(patch)) ** 2
    auto = np.fft.irfft2(power, s=patch.shape)
    if auto[0, 0] <= 0:
        return CELL_MIN  # a flat patch: no speckle to measure
    auto /= auto[0, 0]

    def fwhm(profile: np.ndarray) -> float:
        below = np.flatnonzero(profile < 0.5)
        if below.size == 0:
            return 2.0 * len(profile)
        i = int(below[0])  # linear interpolation between i - 1 and i
        return 2.0 * (i - 1 + (profile[i - 1] - 0.5) / max(profile[i - 1] - profile[i], 1e-12))

    lateral = fwhm(auto[0, : patch.shape[1] // 2])
    axial = fwhm(auto[: patch.shape[0] // 2, 0])
    return float(np.clip(math.sqrt(max(lateral, 0.0) * max(axial, 0.0)), CELL_MIN, CELL_MAX))


def _blur(values: np.ndarray, weight: np.ndarray, norm: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian of ``values`` inside the mask ``weight`` (float 0/1), normalised by the blurred mask
    ``norm`` (normalised convolution: the surround outside the region does not pull the border down)."""
    blurred = cv2.GaussianBlur(values * weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return blurred / norm


@dataclasses.dataclass
class _Maps:
    fine: np.ndarray  # float32 (H, W): sigma FINE_CELLS cells
    lowpass: np.ndarray  # sigma LOWPASS_CELLS cells: the echogenicity map
    background: np.ndarray  # sigma BACKGROUND_CELLS cells

    @property
    def contrast(self) -> np.ndarray:  # signed local contrast (DoG), grey levels
        return self.fine - self.background


def _maps(image: np.ndarray, mask: np.ndarray, cell: float) -> _Maps:
    weight = mask.astype(np.float32)
    values = image.astype(np.float32)
    out = []
    for cells in (FINE_CELLS, LOWPASS_CELLS, BACKGROUND_CELLS):
        sigma = max(0.5, cells * cell)
        norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), 1e-6)
        out.append(_blur(values, weight, norm, sigma))
    return _Maps(*out)


def _components(candidates: np.ndarray, min_area: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components (8-neighbour) of a bool map: (count, labels, stats) of those of at
    least ``min_area`` px, relabelled 1..count."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)
    keep = keep[keep > 0]
    lookup = np.zeros(count, np.int32)
    lookup[keep] = np.arange(1, keep.size + 1)
    return int(keep.size), lookup[labels], stats[keep]


def _per_component(labels: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each component 1..count (float64 (count,))."""
    flat = labels.ravel()
    sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=count + 1)
    areas = np.bincount(flat, minlength=count + 1)
    return sums[1:] / np.maximum(areas[1:], 1)


def _bbox(stat: np.ndarray) -> tuple[int, int, int, int]:
    x, y = int(stat[cv2.CC_STAT_LEFT]), int(stat[cv2.CC_STAT_TOP])
    return x, y, x + int(stat[cv2.CC_STAT_WIDTH]), y + int(stat[cv2.CC_STAT_HEIGHT])


def _structures(sign: float, src: _Maps, out: _Maps, mask: np.ndarray, min_area: float, kind: str):
    """Source structures of one polarity (+1 bright, -1 anechoic): (count, kept over all of them,
    erased list, erased mask). Kept over all = sum of output contrast / sum of source contrast."""
    contrast_src = sign * src.contrast
    count, labels, stats = _components((contrast_src >= STRUCTURE_CONTRAST) & mask, min_area)
    if count == 0:
        return 0, None, [], np.zeros(mask.shape, bool)
    c_src = sign * _per_component(labels, count, contrast_src)  # signed, source polarity
    c_out = sign * _per_component(labels, count, sign * out.contrast)
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    kept_all = float((areas * c_out).sum() / (areas * c_src).sum())
    kept = c_out / c_src
    erased = np.flatnonzero(kept < ERASED_KEPT)
    found = [Structure(kind, _bbox(stats[i]), int(areas[i]), float(c_src[i]), float(c_out[i]), float(kept[i]))
             for i in erased]
    lookup = np.zeros(count + 1, bool)
    lookup[erased + 1] = True
    return count, kept_all, found, lookup[labels]


def _invented(src: _Maps, out: _Maps, mask: np.ndarray, min_area: float) -> tuple[list[Structure], np.ndarray]:
    """Dark holes and bright blobs of the output where the source shows plain tissue."""
    dark = ((out.fine <= DARK_RATIO * src.lowpass) & (src.lowpass - out.fine >= DARK_MARGIN)
            & (src.fine >= SOURCE_NOT_DARK * src.lowpass))
    bright = (out.contrast >= STRUCTURE_CONTRAST) & (src.contrast < STRUCTURE_CONTRAST / 2)
    found: list[Structure] = []
    union = np.zeros(mask.shape, bool)
    for kind, candidates in (("dark", dark & mask), ("bright", bright & mask)):
        count, labels, stats = _components(candidates, min_area)
        if count == 0:
            continue
        c_src = _per_component(labels, count, src.contrast)
        c_out = _per_component(labels, count, out.contrast)
        for i in range(count):
            kept = c_out[i] / c_src[i] if abs(c_src[i]) > 1e-6 else math.inf
            found.append(Structure(kind, _bbox(stats[i]), int(stats[i, cv2.CC_STAT_AREA]), float(c_src[i]),
                                   float(c_out[i]), float(kept) if math.isfinite(kept) else 0.0))
        union |= labels > 0
    return found, union


def measure(source: np.ndarray, output: np.ndarray, mask: np.ndarray | None = None,
            cell: float | None = None) -> FidelityReport:
    """The fidelity of ``output`` to ``source`` (uint8 (H, W) each, same shape) inside ``mask``
    ((H, W) bool; default: the source's imaging region, ``region.detect_region``). ``cell``: the
    speckle cell in px (default: measured on the source, :func:`speckle_cell`)."""
    src_img, out_img = _plane("source", source), _plane("output", output)
    if src_img.shape != out_img.shape:
        raise InputError(f"the output ({out_img.shape}) must have the source's shape ({src_img.shape}); "
                         "compare an enhanced frame with the frame it came from")
    if mask is None:
        from sonoedge.runtime.region import detect_region

        mask = detect_region(src_img).mask
    mask = np.asarray(mask, bool)
    if mask.shape != src_img.shape or mask.sum() < 64:
        raise InputError(f"the region mask must be (H, W) = {src_img.shape} with at least 64 pixels, "
                         f"got {mask.shape} with {int(mask.sum())}")
    cell = speckle_cell(src_img, mask) if cell is None else float(np.clip(cell, 1.0, 4 * CELL_MAX))
    bright = src_img[mask] >= BRIGHT_LEVEL
    to_black = float((out_img[mask][bright] < BLACK_LEVEL).mean()) if bright.any() else 0.0
    # the maps need about WORK_CELL px per speckle cell, no more: larger cells are measured on a
    # copy shrunk by an integer factor (block mean), which keeps a one-cell boundary and cuts the
    # cost of the wide Gaussians (a 2083 x 1455 frame: ~9 s at full size, < 1 s shrunk)
    factor = max(1, int(cell // WORK_CELL))
    s_img, o_img, s_mask = (_shrink(x, factor) for x in (src_img, out_img, mask))
    s_cell = cell / factor
    src, out = _maps(s_img, s_mask, s_cell), _maps(o_img, s_mask, s_cell)
    min_area = MIN_AREA_CELLS * s_cell * s_cell
    a, b = src.lowpass[s_mask].astype(np.float64), out.lowpass[s_mask].astype(np.float64)
    corr = _pearson(a, b)
    n_bright, bright_kept, erased_b, mask_b = _structures(+1.0, src, out, s_mask, min_area, "bright")
    n_dark, dark_kept, erased_d, mask_d = _structures(-1.0, src, out, s_mask, min_area, "anechoic")
    invented, invented_mask = _invented(src, out, s_mask, min_area)
    size = (src_img.shape[1], src_img.shape[0])
    return FidelityReport(cell, int(mask.sum()), corr, float((b - a).mean()), to_black, bright_kept, dark_kept,
                          n_bright, n_dark, [_grow(x, factor) for x in erased_b + erased_d],
                          [_grow(x, factor) for x in invented], _expand(mask_b | mask_d, size, mask),
                          _expand(invented_mask, size, mask))


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean by an integer factor (uint8 stays uint8; a bool mask keeps blocks at least half in)."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if image.dtype == bool:
        share = cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return share >= 0.5
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _expand(small: np.ndarray, size: tuple[int, int], mask: np.ndarray) -> np.ndarray:
    """A shrunk bool map back to full size (nearest), inside ``mask``."""
    if small.shape == mask.shape:
        return small
    w, h = small.shape[1], small.shape[0]
    full = np.zeros(mask.shape, np.uint8)
    fy, fx = mask.shape[0] // h if h else 1, mask.shape[1] // w if w else 1
    grown = cv2.resize(small.astype(np.uint8), (w * fx, h * fy), interpolation=cv2.INTER_NEAREST)
    full[: grown.shape[0], : grown.shape[1]] = grown
    return full.astype(bool) & mask


def _grow(s: Structure, factor: int) -> Structure:
    """A structure found on the shrunk copy in full-size pixels."""
    if factor == 1:
        return s
    return dataclasses.replace(s, bbox=tuple(v * factor for v in s.bbox), area=s.area * factor * factor)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two samples; 1.0 when both are constant and equal, 0.0 when only one is flat."""
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return 1.0 if sa < 1e-9 and sb < 1e-9 and abs(a.mean() - b.mean()) < 1e-6 else 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


# -- measurements on an outline (the fetal skull of HC18, or any closed boundary an expert drew) --------

@dataclasses.dataclass(frozen=True)
class OutlineReport:
    """Contrast kept along an expert's closed outline and the perimeter of an ellipse fitted to the
    bright boundary near it, in the source and the output. Perimeters in mm (px x ``pixel_mm``);
    None where no ellipse could be fitted (fewer than half the rays found a bright peak)."""

    contrast_source: float  # grey levels: mean of the boundary pixels - mean of the rest of the band
    contrast_output: float
    perimeter_expert: float  # the expert outline's own ellipse
    perimeter_source: float | None
    perimeter_output: float | None

    @property
    def contrast_kept(self) -> float:
        """Signed output / source contrast along the outline (1 = kept, negative = inverted)."""
        return self.contrast_output / self.contrast_source if abs(self.contrast_source) > 1e-9 else 0.0

    @property
    def perimeter_diff(self) -> float | None:
        if self.perimeter_source is None or self.perimeter_output is None:
            return None
        return self.perimeter_output - self.perimeter_source

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 2) -> float | None:
            return None if x is None else round(float(x), n)

        return {"contrast_source": r(self.contrast_source), "contrast_output": r(self.contrast_output),
                "contrast_kept": r(self.contrast_kept, 3), "perimeter_expert_mm": r(self.perimeter_expert),
                "perimeter_source_mm": r(self.perimeter_source), "perimeter_output_mm": r(self.perimeter_output),
                "perimeter_diff_mm": r(self.perimeter_diff)}


def ellipse_perimeter(semi_a: float, semi_b: float) -> float:
    """Ramanujan's first approximation of an ellipse's perimeter, pi [3(a+b) - sqrt((3a+b)(a+3b))]
    (Ramanujan 1914; error below 0.04 % for the axis ratios of fetal heads). HC18 defines the head
    circumference as this perimeter of the ellipse fitted to the skull (van den Heuvel et al. 2018)."""
    a, b = abs(semi_a), abs(semi_b)
    return math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))


def _ellipse_of(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """cv2.fitEllipse of (N, 2) points: ((cx, cy), (full axis 1, full axis 2), angle in degrees)."""
    return cv2.fitEllipse(points.astype(np.float32).reshape(-1, 1, 2))


def outline_measures(source: np.ndarray, output: np.ndarray, outline: np.ndarray, pixel_mm: float,
                     cell: float | None = None) -> OutlineReport:
    """Skull (or any bright closed boundary) kept: ``outline`` (H, W) bool/uint8 is the expert's
    drawn ellipse. Rays from its centre sample the fine maps (sigma FINE_CELLS cells) between
    (1 - OUTLINE_BAND) and (1 + OUTLINE_BAND) of the ellipse's radius; on each ray the source's
    brightest sample is the boundary. Contrast = mean(boundary samples) - mean(other band samples),
    the same sample positions in source and output (signed, ``metrics.signed_contrast``). The
    perimeter is that of an ellipse fitted to each image's own brightest samples per ray."""
    src_img, out_img = _plane("source", source), _plane("output", output)
    drawn = np.asarray(outline) > 0
    if drawn.shape != src_img.shape or src_img.shape != out_img.shape:
        raise InputError(f"outline {drawn.shape}, source {src_img.shape} and output {out_img.shape} must have one shape")
    if drawn.sum() < 5:
        raise InputError("the outline has fewer than 5 pixels; an ellipse needs at least 5")
    if not (pixel_mm > 0 and math.isfinite(pixel_mm)):
        raise InputError(f"pixel size must be a positive number of mm, got {pixel_mm}")
    ys, xs = np.nonzero(drawn)
    (cx, cy), (d1, d2), angle = _ellipse_of(np.column_stack([xs, ys]))
    expert = ellipse_perimeter(d1 / 2, d2 / 2) * pixel_mm
    cell = speckle_cell(src_img) if cell is None else cell
    sigma = max(0.5, FINE_CELLS * cell)
    src_fine = cv2.GaussianBlur(src_img.astype(np.float32), (0, 0), sigma)
    out_fine = cv2.GaussianBlur(out_img.astype(np.float32), (0, 0), sigma)
    # sample positions: OUTLINE_RAYS rays x one sample per pixel of radius across the band
    t = np.linspace(0, 2 * np.pi, OUTLINE_RAYS, endpoint=False)
    th = math.radians(angle)
    ex, ey = d1 / 2 * np.cos(t), d2 / 2 * np.sin(t)
    px, py = ex * math.cos(th) - ey * math.sin(th), ex * math.sin(th) + ey * math.cos(th)
    steps = max(8, int(2 * OUTLINE_BAND * max(d1, d2) / 2))
    scale = np.linspace(1 - OUTLINE_BAND, 1 + OUTLINE_BAND, steps)
    map_x = (cx + px[:, None] * scale[None, :]).astype(np.float32)  # (rays, steps)
    map_y = (cy + py[:, None] * scale[None, :]).astype(np.float32)

    def sample(fine: np.ndarray) -> np.ndarray:
        return cv2.remap(fine, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)

    s, o = sample(src_fine), sample(out_fine)
    inside = np.isfinite(s) & np.isfinite(o)
    rays = inside.all(axis=1)
    if rays.sum() < OUTLINE_MIN_RAYS * OUTLINE_RAYS:
        raise InputError("the outline's band leaves the frame on more than half its rays; cannot measure it")
    s, o = s[rays], o[rays]
    peak = np.zeros(s.shape, bool)
    peak[np.arange(s.shape[0]), np.argmax(s, axis=1)] = True
    c_src = signed_contrast(s, peak, ~peak)
    c_out = signed_contrast(o, peak, ~peak)
    mx, my = map_x[rays], map_y[rays]

    def perimeter(samples: np.ndarray) -> float | None:
        best = np.argmax(samples, axis=1)
        strength = samples.max(axis=1) - np.median(samples, axis=1)
        ok = strength >= OUTLINE_PEAK  # a ray whose brightest sample stands out: a boundary
        if ok.sum() < OUTLINE_MIN_RAYS * OUTLINE_RAYS:
            return None
        idx = np.flatnonzero(ok)
        pts = np.column_stack([mx[idx, best[idx]], my[idx, best[idx]]])
        _, (a1, a2), _ = _ellipse_of(pts)
        return ellipse_perimeter(a1 / 2, a2 / 2) * pixel_mm

    return OutlineReport(c_src, c_out, expert, perimeter(s), perimeter(o))


# -- pictures -------------------------------------------------------------------------------------

ERASED_BGR = (255, 0, 255)  # magenta: a source structure the output lost or inverted
INVENTED_BGR = (255, 255, 0)  # cyan: a structure the output made up


def overlay(source: np.ndarray, output: np.ndarray, report: FidelityReport, max_side: int = 1600) -> np.ndarray:
    """uint8 (H', 2W' + gap, 3) BGR picture: source | output, each with the erased structures
    outlined in magenta and the invented ones in cyan, with a caption line. Shrunk so the longer
    side is at most ``max_side`` (outlines drawn after shrinking, so they stay visible)."""
    h, w = source.shape
    gap = 8
    factor = min(1.0, max_side / float(2 * w + gap))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))

    def small(a: np.ndarray, interp: int) -> np.ndarray:
        return a if factor == 1.0 else cv2.resize(a, size, interpolation=interp)

    panels = []
    er = small(report.erased_mask.astype(np.uint8), cv2.INTER_NEAREST)
    inv = small(report.invented_mask.astype(np.uint8), cv2.INTER_NEAREST)
    for image in (source, output):
        bgr = cv2.cvtColor(small(image, cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
        for m, colour in ((er, ERASED_BGR), (inv, INVENTED_BGR)):
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(bgr, contours, -1, colour, 2)
        panels.append(bgr)
    spacer = np.zeros((panels[0].shape[0], gap, 3), np.uint8)
    picture = np.hstack([panels[0], spacer, panels[1]])
    caption = (f"erased {len(report.erased)} (magenta)  invented {len(report.invented)} (cyan)  "
               f"low-pass r {report.lowpass_corr:.3f}  bright->black {100 * report.bright_to_black:.1f}%")
    band = np.zeros((24, picture.shape[1], 3), np.uint8)
    cv2.putText(band, caption, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, picture])


__all__ = ["FidelityReport", "OutlineReport", "Structure", "ellipse_perimeter", "measure", "outline_measures",
           "overlay", "speckle_cell"]
