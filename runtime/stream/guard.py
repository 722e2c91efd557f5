"""The structure guard: a cheap per-frame check that the model did not erase or invent anatomy.

    guard = StructureGuard(GuardConfig())
    verdict = guard.check(grey, enhanced, mask)   # uint8 input crop, uint8 model output, region mask
    if verdict.tripped:                            # the enhancer passes the input frame through, flagged
        guard.record(verdict, frame_id)            # counted per reason, logged at most every log_every_s

"First, do no harm": an enhancer that turns a bright reflector (a diaphragm, a skull) into a black
hole, or paints a black blob over tissue, is worse than none, and a live display must not show it.
The full fidelity measures (``runtime/fidelity.py``) judge a model on real frames before it ships;
this guard judges every live frame, so it must cost next to nothing (under 5 % of inference at
512 x 512, measured in docs/benchmarks/runtime.md). It compares input and output echogenicity at
low resolution, where speckle is averaged away and only the map of tissue and dark areas is left:

1. both images (the imaging region's bounding box) are area-averaged to cells of ``cell_px`` x
   ``cell_px`` pixels (OpenCV's block average; ``cell_px * scale`` on an SR output), then smoothed
   by a 3 x 3 box, so one cell's value is the mean echo over about 3 ``cell_px`` (24 px by default)
   and a speckle grain never counts;
2. only cells whose whole 3 x 3 neighbourhood lies inside the imaging region are judged (the model's
   output outside the mask is never shown, and the black surround would read as "dark");
3. a cell is *tissue* in the input when its echo is at least ``tissue_level`` and at least
   ``tissue_contrast`` of the mean over the ``context_cells`` x ``context_cells`` cells around it:
   a darker structure of its surroundings (a cyst or vessel that clutter and haze fill in a
   handheld frame) is not tissue, so an enhancer may turn it black; *near black* is at most
   ``black_level``. Flagged cells count only inside blobs at least ``hole_cells`` wide every way
   (a morphological opening): a hole counts, a thin streak (side-lobe smear that an enhancer
   removes from an anechoic band) does not;
4. the frame trips, with one reason (the first that holds, in this order):

   - ``dark_over_tissue``: more than ``max_dark_share`` of the judged cells are tissue in the input
     and near black in the output: a bright structure erased into a black hole, or a cyst-like
     dark blob painted over tissue;
   - ``bright_over_dark``: more than ``max_bright_share`` of the cells are near black in the input
     and at least ``tissue_level`` in the output: echoes invented in an anechoic area;
   - ``decorrelated``: the Pearson correlation of the two low-resolution maps is below
     ``min_correlation`` (an inversion gives -1; a model whose output no longer follows the
     input's echogenicity, or a flat output, gives about 0). Not judged when the input map itself
     is nearly flat (std below ``min_input_std`` grey levels: a blank frame, a uniform phantom),
     where a correlation measures noise.

Thresholds (defaults of :class:`GuardConfig`) come from a measurement reproduced by
``python tools/guard_thresholds.py``: 136 frames of ../shared/data/realus (every still; about 20
frames spread over each clip; none trained or calibrated the default), each cropped to its imaging
region as the runtime crops it and compared with transforms a faithful enhancer may apply, with
deliberately broken ones and with the embedded default's output; and 120 simulated phantom frames
(60 clips, seeds 2000-2059) compared with their high-end frame, i.e. what a perfect enhancer would
show. Share = fraction of the judged cells; "trips" counts frames at the defaults below:

    output compared with the input     correlation min / median   dark_over_tissue max  trips
    identity, median 5, Gaussian s=3   0.996 / 0.999 at least     0                     0
    CLAHE (clip 2, 8 x 8 tiles)        0.880 / 0.964              0                     0
    gamma 0.6 / gamma 1.6              0.966 / 0.984, 0.948 / 0.984  0, 0               0
    contrast x1.5 / brightness -30     0.992 / 0.996, 0.904 / 0.981  0, 0               0
    phantom: the high-end frame        0.729 / 0.921              0                     0 of 120
    gamma 2.2 (dim tissue -> black)    0.846 / 0.951              0.358                 107
    black disc, 1/6 of the short side  0.199 / 0.915              0.078                 110
    inverted (255 - x)                 -1.000 / -1.000            (bright_over_dark 0.54) 136
    embedded default model (2026-11)   0.103 / 0.751              0.043                 72

and frames tripped when one setting changes (the rest at the defaults):

    setting                          default model  gamma 1.6  brightness -30  black disc  perfect (phantom)
    defaults                         72             0          0               110         0
    tissue_level 20 / 30 / 50        76 / 72 / 72   88 / 8 / 0 115 / 89 / 0    120/117/104 0
    tissue_contrast 0 / 0.9          72 / 70        0          0               113 / 107   6 / 0
    hole_cells 1 / 2                 76 / 74        0          0               125 / 118   5 / 5
    context_cells 7 / 9              71 / 72        0          0               113 / 112   4 / 4
    tissue_contrast 0 and hole 1     77             0          0               125         32

So ``tissue_level`` 40 is the lowest level at which no legitimate gain or contrast change trips
(``black_level`` 10: the fidelity measures' "black" is < 10); ``tissue_contrast`` 0.8 over 13
cells (104 px) and ``hole_cells`` 3 are what it takes for a perfect enhancer never to trip on the
phantom pairs (without them it trips on 32 of 120 frames: every clutter-filled cyst it clears),
at the cost of 15 of the 125 black discs (those over dim or mixed tissue). 0.5 % of the judged
cells is about 20 cells, one hole of 35 x 35 px, in a 512 x 512 region. ``min_correlation`` 0.5
lies well below every legitimate output measured (0.729 at least) and well above an inversion
(-1). The black holes the current default paints over bright reflectors (the skull, bone surfaces,
fascia, phantom targets) trip the guard on most real frames: that is the guard doing its job, not
a false alarm (the trips per file are in docs/results/runtime.md). What it cannot see: holes under
about 3 cells (24 px) across, and dim tissue (cell mean under 40) turned black.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.errors import InputError

log = logging.getLogger("sonoedge.runtime.stream.guard")

REASONS = ("dark_over_tissue", "bright_over_dark", "decorrelated")  # in the order they are tested
SMOOTH = 3  # cells: the box that smooths both low-resolution maps (and the region erosion that goes with it)


@dataclasses.dataclass
class GuardConfig:
    """The structure guard of :mod:`.guard`; the reasons for each default are in its docstring."""

    enabled: bool = True  # check every enhanced frame; off = frames are never checked
    cell_px: int = 8  # side of a low-resolution cell in input pixels (1/8: 64 x 64 cells at 512 x 512)
    tissue_level: float = 40.0  # grey level: a cell's mean echo at or above this is tissue ...
    tissue_contrast: float = 0.8  # ... when also at least this share of the mean over context_cells around it
    context_cells: int = 13  # side of the surroundings a cell's echo is compared with (13 cells: 104 px)
    hole_cells: int = 3  # a hole or blob counts only where it is at least this many cells wide every way
    black_level: float = 10.0  # grey level: a cell's mean echo at or below this is near black
    max_dark_share: float = 0.005  # judged cells tissue in, near black out, above this share: trips
    max_bright_share: float = 0.005  # judged cells near black in, tissue out, above this share: trips
    min_correlation: float = 0.5  # low-resolution echogenicity correlation below this: trips
    min_input_std: float = 2.0  # grey levels: input maps flatter than this are not judged by correlation
    min_cells: int = 16  # fewer judged cells than this (a tiny region): the frame is not judged
    log_every_s: float = 10.0  # at most one log line per this many seconds, with the count since the last


def check_guard_config(cfg: GuardConfig, where: str = "enhancer.guard") -> None:
    """InputError naming the key unless every value of ``cfg`` is in its range."""
    for name, low, high in (("cell_px", 1, 256), ("tissue_level", 0, 255), ("black_level", 0, 255),
                            ("tissue_contrast", 0, 1), ("context_cells", 1, 255), ("hole_cells", 1, 15),
                            ("max_dark_share", 0, 1), ("max_bright_share", 0, 1), ("min_correlation", -1, 1),
                            ("min_input_std", 0, 255), ("min_cells", 1, 1 << 20), ("log_every_s", 0, 86400)):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and low <= value <= high):
            raise InputError(f"{where}.{name} = {value!r} must be a number from {low:g} to {high:g}")
    for name in ("cell_px", "context_cells", "hole_cells", "min_cells"):
        value = getattr(cfg, name)
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where}.{name} = {value!r} must be a whole number")
    if cfg.black_level >= cfg.tissue_level:
        raise InputError(f"{where}.black_level ({cfg.black_level:g}) must be below {where}.tissue_level "
                         f"({cfg.tissue_level:g}): a cell cannot be both near black and tissue")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the guard saw on one frame. ``reason`` is "" when it passed (or was not judged)."""

    reason: str
    dark_share: float  # judged cells: tissue in the input, near black in the output
    bright_share: float  # judged cells: near black in the input, tissue in the output
    correlation: float  # of the two low-resolution maps; nan when not judged
    cells: int  # cells judged (0: the region was too small to judge)

    @property
    def tripped(self) -> bool:
        return bool(self.reason)

    def describe(self) -> str:
        """One sentence for the frame's passthrough reason and the log."""
        what = {"dark_over_tissue": f"{100 * self.dark_share:.1f} % of the region's cells went from tissue to black",
                "bright_over_dark": f"{100 * self.bright_share:.1f} % of the region's cells went from black to tissue",
                "decorrelated": f"low-resolution echogenicity correlation {self.correlation:.2f}"}
        return f"structure guard ({self.reason}): {what.get(self.reason, 'passed')}"


PASSED = Verdict("", 0.0, 0.0, math.nan, 0)


class StructureGuard:
    """Checks enhanced frames (:meth:`check`) and keeps the per-reason trip counts (:meth:`record`).

    Thread-safe: the counts and the log throttle are under a lock; :meth:`check` keeps only a cache
    of the low-resolution region mask (the region is cached per stream, so its mask object repeats).
    """

    def __init__(self, cfg: GuardConfig | None = None):
        self.cfg = cfg or GuardConfig()
        check_guard_config(self.cfg)
        self.lock = threading.Lock()
        self.tripped: collections.Counter[str] = collections.Counter({reason: 0 for reason in REASONS})
        self.checked = 0
        self._unlogged = 0  # trips since the last log line
        self._last_log = -math.inf
        self._mask_cache: tuple[object, tuple[int, ...], tuple[np.ndarray, np.ndarray, int]] | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def configure(self, cfg: GuardConfig) -> None:
        """New thresholds (a SIGHUP reload); the counts go on."""
        check_guard_config(cfg)
        self.cfg = cfg

    def counts(self) -> dict[str, Any]:
        """{"checked": frames checked, "tripped": {reason: frames}} since start."""
        with self.lock:
            return {"checked": self.checked, "tripped": dict(self.tripped)}

    # -- the check ---------------------------------------------------------------------------
    def input_cells(self, grey: np.ndarray) -> np.ndarray | None:
        """The input's low-resolution map (float32 (rows, cols)) for :meth:`check`'s ``cells_in``:
        the enhancer makes it in ``prepare``, while the crop it just padded is still in the cache
        (about 4x cheaper than reading it again after inference). None for a region too small."""
        cell = int(self.cfg.cell_px)
        rows, cols = grey.shape[0] // cell, grey.shape[1] // cell
        if rows < SMOOTH or cols < SMOOTH:
            return None
        return _cells(grey, rows, cols, cell)

    def check(self, grey: np.ndarray, output: np.ndarray, mask: np.ndarray | None = None, scale: int = 1,
              cells_in: np.ndarray | None = None) -> Verdict:
        """Judge one frame: ``grey`` uint8 (h, w) the model's input crop, ``output`` uint8
        (scale*h, scale*w) the model's de-normalised output, ``mask`` uint8/bool (h, w) the
        imaging region inside the crop (None: all of it); ``cells_in``: :meth:`input_cells` of
        ``grey`` when already made."""
        cfg = self.cfg
        cell = int(cfg.cell_px)
        h, w = grey.shape
        rows, cols = h // cell, w // cell
        with self.lock:
            self.checked += 1
        if rows < SMOOTH or cols < SMOOTH:
            return PASSED
        judged, judged_u8, n = self._judged_cells(mask, rows, cols, cell)
        if n < cfg.min_cells:
            return dataclasses.replace(PASSED, cells=n)
        a = cells_in if cells_in is not None and cells_in.shape == (rows, cols) else _cells(grey, rows, cols, cell)
        b = _cells(output, rows, cols, cell * scale)  # float32 (rows, cols), smoothed cell means
        # the output's darkest and brightest judged cell decide, in one call, whether any cell can be
        # near black or tissue in it (usually neither on a faithful output): the flag maps below are
        # then all false and are not built. The thresholds as float32, as numpy compares them with b
        black, tissue = float(np.float32(cfg.black_level)), float(np.float32(cfg.tissue_level))
        b_min, b_max = cv2.minMaxLoc(b, judged_u8)[:2]
        dark_share = bright_share = 0.0
        if b_min <= black:
            dark = (a >= cfg.tissue_level) & (b <= cfg.black_level) & judged  # candidates
            if dark.any():
                # tissue: echo at tissue level AND not a darker structure of its surroundings (a cyst or
                # vessel that clutter and haze fill in the input, which an enhancer may rightly make black)
                side = int(cfg.context_cells)
                dark &= a >= cfg.tissue_contrast * cv2.blur(a, (side, side), borderType=cv2.BORDER_REFLECT)
            dark_share = self._blobs(dark) / n
        if b_max >= tissue:
            bright = (a <= cfg.black_level) & (b >= cfg.tissue_level) & judged
            bright_share = self._blobs(bright) / n
        corr = _correlation(a, b, judged_u8, cfg.min_input_std)
        if dark_share > cfg.max_dark_share:
            reason = "dark_over_tissue"
        elif bright_share > cfg.max_bright_share:
            reason = "bright_over_dark"
        elif corr < cfg.min_correlation:  # nan (not judged) compares False
            reason = "decorrelated"
        else:
            reason = ""
        return Verdict(reason, dark_share, bright_share, corr, n)

    def _blobs(self, flags: np.ndarray) -> float:
        """Cells of ``flags`` (bool (rows, cols)) inside blobs at least ``hole_cells`` wide every way
        (a morphological opening): thin streaks, such as side-lobe smear an enhancer removes from an
        anechoic band, do not count; holes and blobs do."""
        if not flags.any():
            return 0.0
        k = int(self.cfg.hole_cells)
        flags = flags.view(np.uint8)
        if k > 1:
            flags = cv2.morphologyEx(flags, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
        return float(np.count_nonzero(flags))

    def _judged_cells(self, mask: np.ndarray | None, rows: int, cols: int, cell: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(bool (rows, cols), the same as uint8 0/1, their count): cells whose 3 x 3 neighbourhood
        lies wholly inside the region; cached per mask object (the enhancer hands the same mask
        while the stream's region holds)."""
        key = (rows, cols, cell)
        cached = self._mask_cache
        if cached is not None and cached[0] is mask and cached[1] == key:
            return cached[2]
        if mask is None:
            inside = np.ones((rows, cols), np.uint8)
        else:
            share = cv2.resize(np.asarray(mask[: rows * cell, : cols * cell], np.float32), (cols, rows),
                               interpolation=cv2.INTER_AREA)
            inside = (share >= 1.0 - 1e-6).astype(np.uint8)  # cells wholly inside the region
        # the smoothing reads each cell's neighbours: only cells whose neighbours are inside count;
        # the frame's border is not the region's border (cells there are judged on what they have)
        judged_u8 = cv2.erode(inside, np.ones((SMOOTH, SMOOTH), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
        found = (judged_u8.astype(bool), judged_u8, int(np.count_nonzero(judged_u8)))
        self._mask_cache = (mask, key, found)
        return found

    # -- counting and the throttled log ---------------------------------------------------------
    def record(self, verdict: Verdict, frame_id: int | None = None) -> None:
        """Count a tripped frame under its reason and log it, at most once every ``log_every_s``
        seconds with the number of trips since the previous line (a model that fails on every frame
        of a 30 fps probe must not flood the journal; the counters count every frame)."""
        now = time.monotonic()
        with self.lock:
            self.tripped[verdict.reason] += 1
            self._unlogged += 1
            if now - self._last_log < self.cfg.log_every_s:
                return
            self._last_log, since, self._unlogged = now, self._unlogged, 0
            totals = dict(self.tripped)
        log.warning("structure guard tripped; frame passed through unenhanced",
                    extra={"event": "guard_tripped", "reason": verdict.reason, "detail": verdict.describe(),
                           "frame_id": frame_id, "tripped_since_last_line": since, "tripped_total": totals})


def _cells(image: np.ndarray, rows: int, cols: int, cell: int) -> np.ndarray:
    """float32 (rows, cols): the block means of uint8 ``image`` over ``cell`` x ``cell`` blocks,
    box-smoothed 3 x 3. OpenCV's area resize with an integer factor is the block average; for a
    power-of-two cell it runs as successive halvings (its SIMD path: 4x faster at 512 x 512 than one
    8x area resize, 57 vs 253 us here; each halving rounds to uint8, at most 1 grey level in all)."""
    small = image[: rows * cell, : cols * cell]
    if cell & (cell - 1) == 0:
        while small.shape[0] > rows:
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    else:
        small = cv2.resize(small, (cols, rows), interpolation=cv2.INTER_AREA)
    return cv2.blur(small.astype(np.float32), (SMOOTH, SMOOTH), borderType=cv2.BORDER_REFLECT)


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray, min_std: float) -> float:
    """Pearson correlation of float32 maps ``a`` and ``b`` over the cells where uint8 ``mask`` is
    set; nan when ``a`` is flatter there than ``min_std`` (not judged); 0 when ``b`` is flat and ``a``
    is not (a flat output kept none of the input's map). Masked ``cv2.meanStdDev`` and one masked
    mean of the product (double sums): four calls, no copies of the judged cells."""
    (ma,), (sa,) = cv2.meanStdDev(a, mask=mask)
    if sa[0] < max(min_std, 1e-6):
        return math.nan
    (mb,), (sb,) = cv2.meanStdDev(b, mask=mask)
    if sb[0] < 1e-6:
        return 0.0
    mab = cv2.mean(cv2.multiply(a, b), mask=mask)[0]
    return float(min(1.0, max(-1.0, (mab - ma[0] * mb[0]) / (sa[0] * sb[0]))))


__all__ = ["GuardConfig", "PASSED", "REASONS", "StructureGuard", "Verdict", "check_guard_config"]
