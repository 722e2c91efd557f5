"""Degradation operators for 4x SR, and their estimation from the low-resolution input itself.

Liu et al. (seed 002, Sec. III-C) learn the HR -> LR degradation F because "the degradation is
unknown" for real ultrasound; ZSSR and KernelGAN estimate it as a kernel. Here a degradation is a
linear, shift-invariant 4x down-scaling: a separable kernel ``k`` applied to the HR image and sampled
at the centre of each 4 x 4 block (HR position 4i + 1.5, the pixel-centre convention of OpenCV and
PyTorch), so

    LR[i, j] = sum_{a, b} k[a] k[b] HR[4i + 2 - L/2 + a, 4j + 2 - L/2 + b]        (L = len(k), even)

one strided convolution (:func:`apply`). The known operators are this form exactly:

    bicubic-aa  anti-aliased bicubic (PyTorch's antialias=True, the operator this code assumed
                everywhere): Keys' cubic with a = -0.5 stretched 4x, 16 taps
    cubic       plain cubic interpolation at the block centres, no anti-aliasing (OpenCV INTER_CUBIC,
                many scanners' and screen grabbers' scaling): 4 taps, aliases
    area        4 x 4 box average (OpenCV INTER_AREA)
    gauss<s>    Gaussian of standard deviation s HR pixels, sampled at the block centres

:func:`estimate` picks the operator from the LR image alone (closed form, reasoning in its
docstring); back-projection, the LR sons of zero-shot training
and the ``bp-est`` baseline then use the same operator (ensemble.py, fathers.py).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

SCALE = 4
KEYS_A = -0.75  # the cubic of OpenCV and PyTorch (Keys 1981 with a = -0.75)


def _keys(t: np.ndarray, a: float = KEYS_A) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def _offsets(length: int) -> np.ndarray:
    """Distances of the ``length`` taps from the block centre: -(L-1)/2 ... (L-1)/2 (half-integers)."""
    return np.arange(length) - (length - 1) / 2.0


@dataclasses.dataclass(frozen=True)
class Operator:
    """A named separable 4x down-scaling kernel (module docstring)."""

    name: str
    taps: tuple[float, ...]

    @property
    def kernel(self) -> np.ndarray:
        return np.asarray(self.taps, dtype=np.float64)

    def describe(self) -> str:
        return f"{self.name} ({len(self.taps)} taps)"


def operator(name: str) -> Operator:
    """The operator called ``name``: bicubic-aa, cubic, area or gauss<sigma> (e.g. gauss1.5)."""
    if name == "bicubic-aa":
        k = _keys(_offsets(16) / SCALE, a=-0.5)  # PyTorch's anti-aliased bicubic uses PIL's a = -0.5
    elif name == "cubic":
        k = _keys(_offsets(4))
    elif name == "area":
        k = np.ones(4)
    elif name.startswith("gauss"):
        try:
            sigma = float(name[5:])
        except ValueError:
            sigma = -1.0
        if not 0.05 <= sigma <= 8:
            raise ValueError(f"degradation '{name}': gauss<sigma> needs a sigma in HR pixels from 0.05 to 8, "
                             f"e.g. gauss1.5")
        half = max(2, int(math.ceil(3 * sigma + 0.5)))
        k = np.exp(-0.5 * (_offsets(2 * half) / sigma) ** 2)
    else:
        raise ValueError(f"degradation '{name}' is unknown; use bicubic-aa, cubic, area, gauss<sigma> or estimate")
    k = k / k.sum()
    return Operator(name, tuple(float(v) for v in k))


def apply(op: Operator, hr: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H // 4, W // 4): the strided separable convolution of the module docstring;
    borders replicate the edge pixels."""
    k = torch.as_tensor(op.kernel, dtype=hr.dtype, device=hr.device)
    length = k.numel()
    n, c, h, w = hr.shape
    h4, w4 = (h // SCALE) * SCALE, (w // SCALE) * SCALE
    x = hr[..., :h4, :w4].reshape(n * c, 1, h4, w4)
    pad = length // 2 - 2
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, length), stride=(1, SCALE))
    x = F.conv2d(x, k.view(1, 1, length, 1), stride=(SCALE, 1))
    return x.reshape(n, c, h4 // SCALE, w4 // SCALE)


def speckle(x: torch.Tensor, std: float, rng: np.random.Generator) -> torch.Tensor:
    """``x`` in [-1, 1] with its intensity ([0, 1]) multiplied by unit-mean gamma noise of standard
    deviation ``std`` (``1 / std**2`` looks: the speckle model of :func:`degrade_for_eval`), not
    clipped; ``std <= 0`` returns ``x``. One gamma draw per element, from ``rng``."""
    if std <= 0:
        return x
    looks = 1.0 / std ** 2
    gain = torch.from_numpy(rng.gamma(looks, 1.0 / looks, tuple(x.shape)).astype(np.float32)).to(x.device)
    return (x + 1.0) * gain - 1.0


def apply_image(op: Operator, image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> uint8 (H // 4, W // 4) with :func:`apply`."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return np.clip(np.rint(apply(op, x)[0, 0].numpy()), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------- estimation

# the candidates of :func:`estimate`: the three named scalers and Gaussians from sharp to very blurred
MIN_ESTIMATE_SIDE = 64  # LR side below which no estimate is made (the 4x son would be under 16 pixels)
CANDIDATE_SIGMAS = (0.6, 0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5)


def candidates() -> list[Operator]:
    return [operator("cubic"), operator("area"), operator("bicubic-aa"),
            *(operator(f"gauss{s:g}") for s in CANDIDATE_SIGMAS)]


def band_profile(image: np.ndarray, bands: int = 8) -> np.ndarray:
    """log energy of the image's radial power spectrum in ``bands`` equal bands of 0 ... 0.5
    cycles/pixel (Hann-windowed, mean removed), lowest band first."""
    x = np.asarray(image, dtype=np.float64)
    x = x - x.mean()
    win = np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1]))
    power = np.abs(np.fft.fft2(x * win)) ** 2
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.fftfreq(x.shape[1])[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2)
    edges = np.linspace(0.0, 0.5, bands + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (radius >= max(lo, 1e-9)) & (radius < hi)
        out.append(np.log(power[sel].mean() + 1e-12))
    return np.array(out)


# The mean of band_profile(lr) - band_profile(D_k(lr)) (each less its mean) when k is the operator that
# made lr, over 6 realtrain/hc18 frames (training split) and every candidate. Ultrasound is not
# scale-free (the PSF sets a speckle size), so this cross-scale difference is not zero; it was the
# same for every candidate to within 0.1 in bands 2-6, so one vector calibrates them all. Reproduce:
# calibrate_offset(frames) below.
PROFILE_OFFSET = (2.613, 1.596, 0.608, -0.094, -0.537, -0.996, -1.533, -1.656)


def calibrate_offset(frames: list[np.ndarray]) -> np.ndarray:
    """PROFILE_OFFSET from HR training frames (uint8, sides multiples of 4)."""
    diffs = []
    for hr in frames:
        for op in candidates():
            lr = apply_image(op, hr)
            ref, son = band_profile(lr), band_profile(apply_image(op, lr))
            diffs.append((ref - ref.mean()) - (son - son.mean()))
    return np.mean(diffs, axis=0)


def noise_level(image: np.ndarray) -> float:
    """Standard deviation of white noise in ``image`` (grey levels), Immerkaer (1996): the mean
    absolute response to the Laplacian-difference mask, times sqrt(pi/2) / 6. Texture and aliasing
    count too, so it is an upper bound on a clean image."""
    import cv2

    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(np.asarray(image, dtype=np.float64), -1, mask)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6.0)


def speckle_level(image: np.ndarray) -> float:
    """Standard deviation of multiplicative (speckle-like) noise in ``image`` relative to the local
    intensity: Immerkaer's estimate (:func:`noise_level`) taken pixel by pixel on the
    Laplacian-difference response divided by the local 5 x 5 mean, the median over the pixels whose
    local mean is neither black nor saturated (the sector's outside and its text are left out).
    Unit-mean gamma noise of std 0.1 reads 0.082-0.121 on the 34 realtrain validation frames under the 5
    evaluation operators; the clean inputs read 0.006-0.075 (aliased cubic decimation the highest).
    Returns 0 when no pixel qualifies."""
    import cv2

    x = np.asarray(image, dtype=np.float64)
    if min(x.shape) < 3:
        return 0.0
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = np.abs(cv2.filter2D(x, -1, mask))[1:-1, 1:-1]
    local = cv2.blur(x, (5, 5))[1:-1, 1:-1]
    sel = (local > 20) & (local < 235)
    if not sel.any():
        return 0.0
    return float(np.sqrt(np.pi / 2) / 6.0 * np.median(response[sel] / local[sel]))


@dataclasses.dataclass
class Estimate:
    op: Operator
    scores: dict  # candidate name -> discrepancy (lower is better)
    noise: float = 0.0  # noise_level of the LR image, grey levels
    too_small: bool = False  # the input was below MIN_ESTIMATE_SIDE: the assumed bicubic-aa is used

    def describe(self) -> str:
        if self.too_small:
            return f"{self.op.name} (input under {MIN_ESTIMATE_SIDE} pixels on a side: too small to estimate, assumed)"
        ranked = sorted(self.scores.items(), key=lambda kv: kv[1])[:3]
        return (f"{self.op.name}, noise {self.noise:.1f} grey levels (cross-scale discrepancy "
                + ", ".join(f"{n} {s:.3f}" for n, s in ranked) + ")")


def estimate(lr: np.ndarray) -> Estimate:
    """The degradation that made ``lr`` (uint8 (h, w)), from ``lr`` alone.

    Cross-scale consistency (Michaeli & Irani 2013; KernelGAN, Bell-Kligler et al. 2019, the ZSSR
    answer cited by Liu et al.): the right kernel k is the one whose down-scaling of the LR image
    looks like the LR image looks to its HR original, i.e. D_k(lr) has the same spectral shape
    relative to its own sampling rate as lr has. With a scale-free image spectrum P(f) ~ f^-alpha,
    lr's spectrum is P(f/4)|K(f/4)|^2 (plus aliasing) and D_k(lr)'s is P(f/16)|K(f/16)|^2|K(f/4)|^2:
    the same up to a constant when k is right for the first octaves that a blur shapes. Here both
    band profiles (band_profile) are compared after removing their mean, over the upper bands, and
    the candidate with the least squared difference wins. Closed form, no training; kernels outside
    the candidate list get the nearest one.
    """
    if min(lr.shape) < MIN_ESTIMATE_SIDE:  # its 4x down-scaling would hold too few pixels for a spectrum
        return Estimate(operator("bicubic-aa"), {}, noise_level(lr) if min(lr.shape) >= 3 else 0.0, too_small=True)
    ref = band_profile(lr)
    x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None, None]
    scores = {}
    for op in candidates():
        son = apply(op, x)[0, 0].numpy()
        prof = band_profile(son)
        d = (ref - ref.mean()) - (prof - prof.mean()) - np.asarray(PROFILE_OFFSET)
        scores[op.name] = float(np.mean(d[2:] ** 2))
    best = min(scores, key=scores.get)
    return Estimate(operator(best), scores, noise_level(lr))


# ------------------------------------------------------------------------------ the evaluation set

# Standard deviation of the multiplicative speckle-like noise of the evaluation set: unit-mean gamma
# (the intensity law of fully developed speckle averaged over L looks; L = 1 / STD^2 = 100 looks).
SPECKLE_STD = 0.1
EVAL_BASES = ("bicubic-aa", "cubic", "area", "gauss1.5", "gauss2.5")
EVAL_DEGRADATIONS = tuple(d for base in EVAL_BASES for d in (base, base + "+speckle"))


def degrade_for_eval(hr: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """uint8 (H, W), H and W multiples of 4 -> uint8 (H/4, W/4) by the evaluation degradation ``name``.

    Made with other code than :func:`apply` where a library has the operator, so that the estimate is
    not checked against its own implementation: OpenCV INTER_CUBIC (plain cubic decimation) and
    INTER_AREA; Gaussian blur (OpenCV, sigma in HR pixels) then OpenCV bilinear decimation (the
    block centre is half-way between two pixels); bicubic-aa is PyTorch's anti-aliased bicubic
    (resize.py). ``+speckle`` multiplies the LR image by unit-mean gamma noise (SPECKLE_STD), seeded.
    """
    import cv2

    from sonoedge.train.sr.resize import resize_image

    base, _, noise = name.partition("+")
    if name not in EVAL_DEGRADATIONS:
        raise ValueError(f"evaluation degradation '{name}' is unknown; choose from {', '.join(EVAL_DEGRADATIONS)}")
    h, w = hr.shape
    size = (w // SCALE, h // SCALE)
    if base == "bicubic-aa":
        lr = resize_image(hr, 1.0 / SCALE)
    elif base == "cubic":
        lr = cv2.resize(hr, size, interpolation=cv2.INTER_CUBIC)
    elif base == "area":
        lr = cv2.resize(hr, size, interpolation=cv2.INTER_AREA)
    else:
        sigma = float(base[5:])
        blurred = cv2.GaussianBlur(hr.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                                   borderType=cv2.BORDER_REPLICATE)
        lr = np.clip(np.rint(cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)), 0, 255).astype(np.uint8)
    if noise:
        looks = 1.0 / SPECKLE_STD ** 2
        rng = np.random.default_rng(seed)
        lr = np.clip(np.rint(lr * rng.gamma(looks, 1.0 / looks, lr.shape)), 0, 255).astype(np.uint8)
    return lr
