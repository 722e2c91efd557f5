"""FID and KID between two sets of images (no pairs needed), on an Inception-v3 trunk loaded offline.

    extractor = build_inception(trunk=None)                 # file, $SONOEDGE_INCEPTION_TRUNK or torch cache
    fa, fb = image_features(extractor, images_a), image_features(extractor, images_b)   # (N, 2048)
    result = compare_features(fa, fb)                        # {"fid", "kid", "kid_se", ...}

FID (Heusel et al. 2017; Menini 2020 Eq. 4.3; Grimwood et al. 2022 Eq. 1):
``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of the 2048-d pool features.

KID (Binkowski et al. 2018, "Demystifying MMD GANs", Sec. 3): the squared MMD with the cubic
polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, by its unbiased U-statistic. Our sets are small
(tens of images), so KID is reported with a standard error: the delete-one jackknife of the
two-sample U-statistic on the full sets. The subset estimate of Binkowski et al. (mean and sd of
the unbiased estimate over random subsets, as torchmetrics reports it) is given beside it.

The trunk is torchvision's Inception-v3 (``inception_v3_google-0cc3c7bd.pth``), resolved like the
LPIPS trunk (``sonoedge.train.trunks``): its FID is close to, not identical with, the TensorFlow
FID Inception of pytorch-fid. A random trunk (``trunk="random"``) is labelled in
``extractor.trunk_description`` and in every table: its numbers rank sets but compare with nothing
published. Grey images are repeated to 3 channels and resized to 299 x 299 (bilinear).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.train.trunks import RANDOM, TRUNKS, describe, load_state, resolve

INCEPTION_SIZE = 299  # Inception-v3 input side (Szegedy et al. 2016)
KID_SUBSETS = 100  # Binkowski et al. 2018 / torchmetrics default number of subsets
KID_SUBSET_SIZE = 1000  # torchmetrics default; capped at the smaller set


# ----------------------------------------------------------------------------- the trunk

def build_inception(trunk: str | None = None, seed: int = 0):
    """A frozen Inception-v3 returning (N, 2048) pool features for (N, 1|3, H, W) in [-1, 1].

    ``trunk``: a weights file, ``"random"`` (seeded, labelled) or None to search
    $SONOEDGE_INCEPTION_TRUNK and the torch hub cache. Has ``trunk_description``.
    """
    import torch
    import torchvision

    spec = TRUNKS["inception"]
    where = resolve(spec, trunk)
    with torch.random.fork_rng(devices=[]):  # building draws from torch's RNG; leave the caller's alone
        torch.manual_seed(seed)
        # transform_input=False: the input is already in [-1, 1], the range the Google weights expect
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
        if where == RANDOM:
            # He initialisation (fan-in, ReLU) keeps activations O(1) through the ~90 conv layers: in eval mode
            # the untrained batch norms are identities, and torchvision's own random init makes them explode
            for m in net.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    if where != RANDOM:
        try:
            net.load_state_dict(load_state(where, spec), strict=True)
        except RuntimeError as exc:
            raise InputError(f"inception trunk file {where} does not fit torchvision Inception-v3: "
                             f"{str(exc).splitlines()[0]}") from exc
    net.fc = torch.nn.Identity()  # pool3 features (2048-d), the FID layer
    net.AuxLogits = None
    net.aux_logits = False
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.trunk_description = describe(where, seed)
    return net


def image_features(extractor, images: Iterable[np.ndarray], batch: int = 8, progress: bool = False) -> np.ndarray:
    """(N, 2048) float64 features of uint8 (H, W) grey images (any sizes)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from sonoedge.runtime.frames import normalise

    images = list(images)
    if not images:
        raise InputError("no images to compute FID/KID features from")
    out = []
    for start in tqdm(range(0, len(images), batch), desc="inception", unit="batch", disable=not progress):
        xs = []
        for im in images[start:start + batch]:
            im = np.asarray(im)
            if im.ndim != 2 or im.dtype != np.uint8:
                raise InputError(f"FID/KID take uint8 (H, W) grey images, got {im.dtype} {im.shape}")
            x = torch.from_numpy(normalise(im))  # (1, 1, H, W) in [-1, 1]
            xs.append(F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False))
        x = torch.cat(xs).repeat(1, 3, 1, 1)
        with torch.no_grad():
            out.append(extractor(x).double().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- the distances

def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features, N >= 2 (covariance with N - 1)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"FID needs at least 2 feature vectors per set, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)) (Heusel et al. 2017; Menini Eq. 4.3)."""
    from scipy import linalg

    diff = mu_a - mu_b
    with warnings.catch_warnings():  # fewer images than dimensions: singular, as always for small sets
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product (fewer images than dimensions): regularise
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)  # numerical error leaves a tiny imaginary part
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
    if not math.isfinite(value):
        raise InputError("FID came out NaN or Inf; the metric cannot be computed")
    return max(value, 0.0)


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3, Binkowski et al. 2018 Sec. 3 (d: feature dimension)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased squared MMD from kernel matrices (Gretton et al. 2012, Eq. 3; the KID estimator)."""
    n, m = len(kxx), len(kyy)
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float(sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * kxy.sum() / (n * m))


def kid_jackknife(fa: np.ndarray, fb: np.ndarray) -> tuple[float, float]:
    """(KID on the full sets, its delete-one jackknife standard error); each set needs >= 3 images."""
    n, m = len(fa), len(fb)
    if n < 3 or m < 3:
        raise InputError(f"KID with a standard error needs at least 3 images per set, got {n} and {m}")
    kxx, kyy, kxy = polynomial_kernel(fa, fa), polynomial_kernel(fb, fb), polynomial_kernel(fa, fb)
    value = mmd2_unbiased(kxx, kyy, kxy)
    sxx, syy, sxy = kxx.sum() - np.trace(kxx), kyy.sum() - np.trace(kyy), kxy.sum()
    yy = syy / (m * (m - 1))
    xx = sxx / (n * (n - 1))
    # leave out x_i: its row and column leave Sxx (off-diagonal) and its row leaves Sxy
    rx = kxx.sum(1) - np.diag(kxx)
    loo_x = (sxx - 2 * rx) / ((n - 1) * (n - 2)) + yy - 2.0 * (sxy - kxy.sum(1)) / ((n - 1) * m)
    ry = kyy.sum(1) - np.diag(kyy)
    loo_y = xx + (syy - 2 * ry) / ((m - 1) * (m - 2)) - 2.0 * (sxy - kxy.sum(0)) / (n * (m - 1))
    var = (n - 1) / n * np.sum((loo_x - loo_x.mean()) ** 2) + (m - 1) / m * np.sum((loo_y - loo_y.mean()) ** 2)
    return value, float(math.sqrt(var))


def kid_subsets(fa: np.ndarray, fb: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                seed: int = 0) -> tuple[float, float]:
    """(mean, sd) of the unbiased estimate over random subsets (Binkowski et al. 2018; torchmetrics)."""
    size = min(subset_size, len(fa), len(fb))
    if size < 2:
        raise InputError("KID needs at least 2 images per set")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = fa[rng.choice(len(fa), size, replace=False)]
        b = fb[rng.choice(len(fb), size, replace=False)]
        values.append(mmd2_unbiased(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)))
    return float(np.mean(values)), float(np.std(values))


def compare_features(fa: np.ndarray, fb: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """FID, KID (full sets) with its jackknife SE, and the subset KID mean and sd, of two feature sets."""
    kid, kid_se = kid_jackknife(fa, fb)
    sub_mean, sub_sd = kid_subsets(fa, fb, seed=seed)
    return {"n_a": len(fa), "n_b": len(fb), "fid": frechet_distance(*gaussian_stats(fa), *gaussian_stats(fb)),
            "kid": kid, "kid_se": kid_se, "kid_subset_mean": sub_mean, "kid_subset_sd": sub_sd}
