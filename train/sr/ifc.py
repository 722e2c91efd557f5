"""Information fidelity criterion (Sheikh, Bovik and de Veciana, IEEE TIP 14(12), 2005), numpy only.

The reference is decomposed into oriented subbands (a steerable pyramid); in each subband k the
coefficients are grouped into non-overlapping M x M blocks, vectors c_i. The reference is a Gaussian
scale mixture c_i = s_i u_i with u ~ N(0, C_U) (Sec. III-A of the paper); the test image's
coefficients are d_i = g_i c_i + v_i with v_i ~ N(0, sigma_v,i^2 I) (the distortion channel, Sec.
III-B), g_i and sigma_v,i^2 estimated per block by least squares. With lambda_j the eigenvalues of C_U
and s_i^2 = c_i^T C_U^-1 c_i / M^2 (maximum likelihood), the information of subband k is the
paper's sum_i sum_j 1/2 log2(1 + g_i^2 s_i^2 lambda_j / sigma_v,i^2). The number reported here
follows the authors' public ``ifcvec`` release (LIVE, 2005), which is what SR papers (Liu et al.
Table II included) report: log2 without the 1/2, 8 oriented subbands of a 4-scale, 6-orientation
steerable pyramid, M = 3, 1e-10 added to sigma_v^2, and the sum divided by the number of pixels.

Differences, so values compare within one table made with this function, not with published MATLAB
numbers: the pyramid is built in the frequency domain (Simoncelli and Freeman's construction:
raised-cosine radial bands one octave wide, cos^5 angular bands) instead of the 'sp5' spatial
filters; the 8 subbands are the 0 and 90 degree bands of each scale; g and sigma_v^2 come from the
same non-overlapping M x M blocks as the GSM vectors instead of a sliding window. Higher is better;
identical images give a large finite value.
"""
from __future__ import annotations

import math

import numpy as np

M = 3              # block size of the GSM vectors (Sheikh et al. 2005; ifcvec)
SCALES = 4         # pyramid scales (ifcvec: buildSpyr(..., 4, 'sp5Filters'))
ORIENTATIONS = 6   # oriented bands per scale (steerable, order 5: 'sp5')
USED = (0, 3)      # orientations kept per scale: 2 x 4 = 8 subbands, as ifcvec's 8
EPS = 1e-10        # added to sigma_v^2 (ifcvec) and floor of the reference variance


def _polar(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """log2 radius (Nyquist = 0) and angle of the fftshifted frequency grid of an (h, w) image."""
    yy = (np.arange(h) - h // 2) / (h / 2)
    xx = (np.arange(w) - w // 2) / (w / 2)
    x, y = np.meshgrid(xx, yy)
    rad = np.sqrt(x * x + y * y)
    rad[h // 2, w // 2] = rad[h // 2, max(w // 2 - 1, 0)] or 1.0 / max(h, w)  # avoid log(0) at DC
    return np.log2(rad), np.arctan2(y, x)


def _hi_lo(log_rad: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Raised-cosine split one octave wide ending at ``edge``: hi^2 + lo^2 = 1."""
    t = np.clip(log_rad - (edge - 1.0), 0.0, 1.0)
    return np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)


def steerable_bands(image: np.ndarray, scales: int = SCALES, orientations: int = ORIENTATIONS) -> list[np.ndarray]:
    """Real oriented subbands of a float (H, W) image, finest scale first: ``scales * orientations`` arrays,
    each scale half the size of the previous one."""
    order = orientations - 1
    const = (2 ** (2 * order)) * math.factorial(order) ** 2 / (orientations * math.factorial(2 * order))
    dft = np.fft.fftshift(np.fft.fft2(np.asarray(image, dtype=np.float64)))
    log_rad, angle = _polar(*dft.shape)
    _, lo0 = _hi_lo(log_rad, 0.0)
    lodft = dft * lo0
    bands = []
    for _ in range(scales):
        log_rad, angle = _polar(*lodft.shape)
        himask, lomask = _hi_lo(log_rad, -1.0)
        for b in range(orientations):
            anglemask = np.sqrt(const) * np.cos(angle - np.pi * b / orientations) ** order
            band = lodft * himask * anglemask * (-1j) ** order
            bands.append(np.real(np.fft.ifft2(np.fft.ifftshift(band))))
        lodft = lodft * lomask
        h, w = lodft.shape
        nh, nw = (h + 1) // 2, (w + 1) // 2
        top, left = h // 2 - nh // 2, w // 2 - nw // 2
        lodft = lodft[top:top + nh, left:left + nw] / 4.0  # half-size grid, same Nyquist-relative content
    return bands


def _blocks(band: np.ndarray, m: int) -> np.ndarray:
    """(H, W) -> (n_blocks, m*m) non-overlapping m x m blocks (the remainder is dropped)."""
    h, w = (band.shape[0] // m) * m, (band.shape[1] // m) * m
    b = band[:h, :w].reshape(h // m, m, w // m, m).transpose(0, 2, 1, 3)
    return b.reshape(-1, m * m)


def subband_ifc(ref: np.ndarray, dist: np.ndarray, m: int = M) -> float:
    """Information (bits) of one subband pair (same shape): sum over blocks i and eigenvalues j."""
    c, d = _blocks(ref, m), _blocks(dist, m)
    if len(c) < m * m:
        return 0.0
    # distortion channel d = g c + v per block (least squares, Sec. III-B)
    cm, dm = c.mean(axis=1, keepdims=True), d.mean(axis=1, keepdims=True)
    var_c = ((c - cm) ** 2).mean(axis=1)
    cov = ((c - cm) * (d - dm)).mean(axis=1)
    var_d = ((d - dm) ** 2).mean(axis=1)
    g = np.where(var_c > EPS, cov / np.maximum(var_c, EPS), 0.0)
    sv2 = np.where(var_c > EPS, var_d - g * cov, var_d)
    neg = g < 0  # a negative gain carries no information: all of d is noise
    sv2 = np.where(neg, var_d, sv2)
    g = np.where(neg, 0.0, g)
    sv2 = np.maximum(sv2, 0.0)
    # GSM of the reference: C_U from the block vectors, s_i^2 by maximum likelihood
    cu = c.T @ c / len(c)
    lam, vecs = np.linalg.eigh(cu)
    lam = np.maximum(lam, 0.0)
    cu_inv = np.linalg.pinv(cu)
    s2 = np.einsum("ij,jk,ik->i", c, cu_inv, c) / (m * m)
    snr = (g * g * s2 / (sv2 + EPS))[:, None] * lam[None, :]
    return float(np.log2(1.0 + snr).sum())


def ifc(reference: np.ndarray, test: np.ndarray) -> float:
    """IFC of ``test`` against ``reference``, both grey (H, W) of the same shape (uint8 or float, same
    scale); >= 0, higher is better."""
    ref = np.asarray(reference, dtype=np.float64)
    dist = np.asarray(test, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != dist.shape:
        raise ValueError(f"IFC needs two grey images of one shape, got {ref.shape} and {dist.shape}")
    if min(ref.shape) < 4 * 2 ** SCALES:
        raise ValueError(f"IFC needs images of at least {4 * 2 ** SCALES} pixels a side, got {ref.shape}")
    total = 0.0
    ref_bands, dist_bands = steerable_bands(ref), steerable_bands(dist)
    for index, (rb, db) in enumerate(zip(ref_bands, dist_bands)):
        if index % ORIENTATIONS in USED:
            total += subband_ifc(rb, db)
    if not np.isfinite(total):
        raise FloatingPointError("IFC came out NaN or Inf")
    return total / ref.size
