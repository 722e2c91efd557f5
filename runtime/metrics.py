"""Image-quality metrics of the papers and of the accuracy gates. numpy + OpenCV only, never torch.

Full-reference metrics compare an image with a reference of the same shape:

- :func:`ssim` structural similarity, Gaussian 11 x 11 window (sigma 1.5), K1 0.01, K2 0.03, as
  Wang et al., "Image quality assessment: from error visibility to structural similarity", IEEE TIP
  13(4), 2004, Section III-C; used by Athreya et al. 2024 (journal, Evaluation Metrics, "SSI").
- :func:`psnr` peak signal-to-noise ratio, 10 log10(MAX^2 / MSE) (Athreya et al., Evaluation Metrics).
- :func:`lncc` local normalised cross-correlation (Athreya et al., Evaluation Metrics; the USenhance
  2023 challenge metric), mean over pixels of the NCC in a square window around each pixel.
- :func:`abs_error_stats` max, 99th percentile and mean absolute error (export accuracy gates).

No-reference ultrasound measures compare two regions of one image:

- :func:`cnr` contrast-to-noise ratio |mu_roi - mu_bg| / sqrt(var_roi + var_bg).
- :func:`gcnr` generalised CNR, 1 - overlap of the two regions' intensity histograms
  (Rodriguez-Molares et al., IEEE TUFFC 67(4), 2020, Eq. 5). 0 = indistinguishable, 1 = separable.
- :func:`signed_contrast` mu_roi - mu_bg with its sign: a bright echo turned black goes from
  positive to negative, which CNR and gCNR (both symmetric) cannot show: they *rise* when a bright
  echo becomes a black hole of the same separation. ``runtime/fidelity.py`` reports it kept.
- :func:`speckle_snr` mean / std inside a region (1.91 for fully developed speckle in the envelope,
  Burckhardt 1978; lower after log compression).

Inputs are (H, W) arrays, uint8 (range 0..255) or float (any range; pass ``data_range``, e.g. 2.0
for model tensors in [-1, 1] or 1.0 for [0, 1]). Everything is computed in float64. A metric that
cannot be computed (shape mismatch, NaN/Inf, empty region, image smaller than the window) raises
:class:`~sonoedge.runtime.errors.InputError`; it never returns a value that could pass a gate.
The one documented exception: :func:`psnr` of identical images is ``+inf`` (MSE = 0); callers decide
what that means for them.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from sonoedge.runtime.errors import InputError

# Wang et al. 2004, Section III-C: Gaussian weighting, sigma = 1.5 samples, 11 x 11 window,
# K1 = 0.01, K2 = 0.03.
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# The Gaussian is truncated at radius int(3.5 * sigma + 0.5) = 5 -> 11 x 11 taps, normalised over
# the taps (scipy's gaussian_filter with truncate=3.5, which scikit-image uses: the implementations
# agree to rounding). Borders reflect as d c b a | a b c d (OpenCV BORDER_REFLECT, scipy "reflect").
SSIM_WINDOW = 11
_SSIM_KERNEL = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)

# LNCC window: 9 x 9 pixels, the local window of VoxelMorph's NCC (Balakrishnan et al., IEEE TMI
# 2019), which is the local NCC most US registration/enhancement work (RegGAN, USenhance entries)
# reports. The journal paper does not state its window; 9 px spans about one to two speckle cells
# at the USenhance image sizes, small enough to be "local", large enough for a stable correlation.
LNCC_WINDOW = 9

# Variance below this (in data_range^2 units) counts as a flat window for LNCC.
_FLAT_VARIANCE = 1e-10


def _as_plane(name: str, image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2:
        raise InputError(f"{name} must be a grey (H, W) image, got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"{name} is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{name} has non-numeric dtype {array.dtype}")
    plane = array.astype(np.float64)
    if not np.isfinite(plane).all():
        raise InputError(f"{name} contains NaN or Inf; the metric cannot be computed")
    return plane


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pa, pb = _as_plane("image a", a), _as_plane("image b", b)
    if pa.shape != pb.shape:
        raise InputError(f"images differ in shape: {pa.shape} vs {pb.shape}; compare images of the same size")
    return pa, pb


def _check_range(data_range: float) -> float:
    if not (math.isfinite(data_range) and data_range > 0):
        raise InputError(f"data_range must be a positive number, got {data_range}")
    return float(data_range)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB of (H, W) ``a`` against ``b``; +inf when they are identical (MSE = 0)."""
    pa, pb = _pair(a, b)
    data_range = _check_range(data_range)
    mse = float(np.mean((pa - pb) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two (H, W) images, Gaussian-weighted as Wang et al. 2004, in [-1, 1].

    Local statistics use population (not sample) covariance. Borders of half a window (5 px) are
    excluded from the mean, as the 'valid' windows of the original. Images must be >= 11 x 11.
    """
    pa, pb = _pair(a, b)
    data_range = _check_range(data_range)
    if min(pa.shape) < SSIM_WINDOW:
        raise InputError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {pa.shape}")

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, _SSIM_KERNEL, _SSIM_KERNEL, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(pa), blur(pb)
    var_a = blur(pa * pa) - mu_a * mu_a
    var_b = blur(pb * pb) - mu_b * mu_b
    cov = blur(pa * pb) - mu_a * mu_b
    c1 = (SSIM_K1 * data_range) ** 2  # Wang et al. 2004, Eq. 7
    c2 = (SSIM_K2 * data_range) ** 2  # Wang et al. 2004, Eq. 9
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    pad = (SSIM_WINDOW - 1) // 2
    return float(np.mean((num / den)[pad:-pad, pad:-pad]))


def lncc(a: np.ndarray, b: np.ndarray, window: int = LNCC_WINDOW) -> float:
    """Local normalised cross-correlation of two (H, W) images, in [-1, 1] (1 = locally identical
    up to gain and offset).

    For every pixel, NCC = cov(a, b) / sqrt(var(a) var(b)) over the ``window`` x ``window``
    neighbourhood (box window, reflect at the borders); the result is the mean over pixels. A window
    that is flat in both images (e.g. black outside a sector) has no structure to compare and is
    left out of the mean; a window flat in only one image counts as 0 (no correlation). If every
    window is flat in both images the metric is undefined and this raises.
    """
    pa, pb = _pair(a, b)
    if window < 2 or window > min(pa.shape):
        raise InputError(f"LNCC window {window} must be between 2 and the smaller image side {min(pa.shape)}")
    scale = max(np.ptp(pa), np.ptp(pb), 1.0)  # normalise so the flat threshold is scale-free
    pa, pb = pa / scale, pb / scale

    def box(x: np.ndarray) -> np.ndarray:  # mean over the window, anchored as scipy's uniform_filter
        return cv2.boxFilter(x, cv2.CV_64F, (window, window), normalize=True, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = box(pa), box(pb)
    var_a = np.maximum(box(pa * pa) - mu_a * mu_a, 0.0)
    var_b = np.maximum(box(pb * pb) - mu_b * mu_b, 0.0)
    cov = box(pa * pb) - mu_a * mu_b
    flat_a, flat_b = var_a < _FLAT_VARIANCE, var_b < _FLAT_VARIANCE
    both_flat = flat_a & flat_b
    if both_flat.all():
        raise InputError("LNCC is undefined: both images are flat (constant) in every window")
    valid = ~(flat_a | flat_b)
    ncc = np.zeros_like(cov)
    ncc[valid] = cov[valid] / np.sqrt(var_a[valid] * var_b[valid])
    return float(np.clip(ncc[~both_flat], -1.0, 1.0).mean())


def abs_error_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Absolute error |a - b| of two same-shape arrays: {"max", "p99", "mean"} in the inputs' units.

    Accepts any shape (the gates compare (N, C, H, W) tensors too), but shapes must match.
    """
    pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if pa.shape != pb.shape:
        raise InputError(f"arrays differ in shape: {pa.shape} vs {pb.shape}")
    if pa.size == 0:
        raise InputError("cannot compute errors of empty arrays")
    if not (np.isfinite(pa).all() and np.isfinite(pb).all()):
        raise InputError("an array contains NaN or Inf; the error cannot be computed")
    err = np.abs(pa - pb)
    return {"max": float(err.max()), "p99": float(np.percentile(err, 99)), "mean": float(err.mean())}


def _region(image: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    plane = _as_plane("image", image)
    m = np.asarray(mask)
    if m.shape != plane.shape:
        raise InputError(f"{name} mask has shape {m.shape} but the image is {plane.shape}")
    m = m.astype(bool)
    if not m.any():
        raise InputError(f"{name} mask is empty; give it at least one pixel (better: hundreds)")
    return plane[m]


def cnr(image: np.ndarray, roi_mask: np.ndarray, bg_mask: np.ndarray) -> float:
    """Contrast-to-noise ratio |mu_roi - mu_bg| / sqrt(var_roi + var_bg), >= 0, unitless."""
    roi, bg = _region(image, roi_mask, "roi"), _region(image, bg_mask, "background")
    noise = math.sqrt(float(roi.var() + bg.var()))
    if noise == 0.0:
        raise InputError("CNR is undefined: both regions are constant (zero variance)")
    return abs(float(roi.mean() - bg.mean())) / noise


def gcnr(image: np.ndarray, roi_mask: np.ndarray, bg_mask: np.ndarray, bins: int = 256) -> float:
    """Generalised CNR = 1 - sum_k min(p_roi(k), p_bg(k)), in [0, 1] (Rodriguez-Molares 2020, Eq. 5).

    uint8 images use one bin per grey level; float images ``bins`` equal bins over the joint range
    of the two regions (the estimate depends on the binning; keep it fixed within a comparison).
    """
    roi, bg = _region(image, roi_mask, "roi"), _region(image, bg_mask, "background")
    if np.asarray(image).dtype == np.uint8:
        edges = np.arange(257) - 0.5
    else:
        lo, hi = min(roi.min(), bg.min()), max(roi.max(), bg.max())
        if lo == hi:
            return 0.0  # one single value in both regions: identical distributions, no contrast
        edges = np.linspace(lo, hi, bins + 1)
    p_roi = np.histogram(roi, bins=edges)[0] / roi.size
    p_bg = np.histogram(bg, bins=edges)[0] / bg.size
    return float(1.0 - np.minimum(p_roi, p_bg).sum())


def signed_contrast(image: np.ndarray, roi_mask: np.ndarray, bg_mask: np.ndarray) -> float:
    """Signed contrast mu_roi - mu_bg in the image's units: > 0 the region is brighter than its
    background, < 0 darker. Compare it between an image and its enhanced version: the ratio is the
    contrast kept, and a sign change is an inversion that CNR and gCNR report as a gain."""
    roi, bg = _region(image, roi_mask, "roi"), _region(image, bg_mask, "background")
    return float(roi.mean() - bg.mean())


def speckle_snr(image: np.ndarray, mask: np.ndarray) -> float:
    """Speckle SNR mean / std inside ``mask`` (a homogeneous speckle region), > 0, unitless."""
    region = _region(image, mask, "speckle region")
    std = float(region.std())
    if std == 0.0:
        raise InputError("speckle SNR is undefined: the region is constant (zero standard deviation)")
    return float(region.mean()) / std
