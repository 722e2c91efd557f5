"""How far a set of images is from real recordings, and whether a translation kept the phantom's truth.

    report = realism_report(real, {"phantom": ph, "cyclegan": cg}, extractor)   # name -> uint8 (H, W) images
    report.markdown()                    # FID, KID +- SE, histogram distance, speckle statistics per set
    structure_check(phantom_dir, translated)   # cysts still dark, nothing moved, nothing painted outside

Every statistic is computed inside the imaging region (``sonoedge.runtime.region.detect_region``),
so the black screen around a sector does not count as "texture":

- histogram distance: the Wasserstein-1 (earth mover's) distance between the grey-level
  distributions of the set and of the real frames, pooled over each set's region pixels, in grey
  levels (0 = same distribution).
- speckle statistics (per image, then the set's median): the speckle SNR, median of local
  mean / local standard deviation in 7 x 7 windows of echogenic tissue (local mean > 20), and the
  speckle grain size, the full width at half maximum in pixels of the autocorrelation of the
  high-passed image along rows (lateral) and columns (axial) (Wagner et al. 1983, speckle cell size).
- FID and KID from ``train/fid.py`` with the trunk named.

The structure check re-simulates each phantom pair from its seed (``phantom.json``) to get the
ground-truth regions (``train/phantom`` info): for every scene with a cyst, the cyst contrast
(20 log10 of background over cyst mean) before and after translation, a cyst counted as lost when
its contrast falls under :data:`CYST_VISIBLE_DB`; the shift of structure (peak of the cross-correlation
of the Gaussian-smoothed images inside the sector); the correlation of the smoothed images; and the share
of pixels outside the sector that the translation painted (grey > :data:`PAINTED_LEVEL` where the phantom,
resized like the output, is not: the sector's edge pixels that a resize blends count only if changed).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sonoedge.runtime.errors import InputError

CYST_VISIBLE_DB = 3.0  # dB: a cyst darker than its surroundings by less than this is taken as gone
PAINTED_LEVEL = 20  # grey level: outside the sector the phantom is black (0); above this is painted tissue
SNR_WINDOW = 7
ECHOGENIC = 20.0  # local mean above which a window is tissue, not black screen or anechoic fluid
SMOOTH_SIGMA = 2.0  # px: structure, not speckle, for the shift and correlation
MAX_SHIFT = 12  # px: the largest structure shift searched for


# ----------------------------------------------------------------------------- statistics of one image

def region_of(image: np.ndarray) -> np.ndarray:
    from sonoedge.runtime.region import detect_region

    return detect_region(image).mask


def speckle_snr(image: np.ndarray, mask: np.ndarray) -> float:
    """Median local mean / local sd over 7 x 7 windows of echogenic tissue inside ``mask``."""
    import cv2

    x = image.astype(np.float32)
    mean = cv2.blur(x, (SNR_WINDOW, SNR_WINDOW))
    sd = np.sqrt(np.maximum(cv2.blur(x * x, (SNR_WINDOW, SNR_WINDOW)) - mean * mean, 0))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((SNR_WINDOW, SNR_WINDOW), np.uint8)).astype(bool)
    use = inner & (mean > ECHOGENIC) & (sd > 0)
    return float(np.median(mean[use] / sd[use])) if use.any() else math.nan


def grain_size(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(axial, lateral) FWHM in px of the autocorrelation of the high-passed region (nan if too small)."""
    import cv2

    ys, xs = np.nonzero(mask)
    if len(ys) < 64:
        return math.nan, math.nan
    x = image.astype(np.float32)
    resid = (x - cv2.GaussianBlur(x, (0, 0), 4.0)) * mask
    crop = resid[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    f = np.fft.rfft2(crop, s=(2 * crop.shape[0], 2 * crop.shape[1]))  # zero-padded: linear, not circular
    ac = np.fft.irfft2(np.abs(f) ** 2)
    if ac[0, 0] <= 0:
        return math.nan, math.nan
    ac = ac / ac[0, 0]
    return _fwhm(ac[:, 0]), _fwhm(ac[0, :])


def _fwhm(profile: np.ndarray) -> float:
    """2 x the lag where a one-sided autocorrelation first falls to 0.5 (linear interpolation)."""
    below = np.nonzero(profile < 0.5)[0]
    if len(below) == 0:
        return math.nan
    k = int(below[0])
    lag = k - 1 + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k])
    return float(2 * lag)


def image_stats(image: np.ndarray) -> dict[str, Any]:
    mask = region_of(image)
    axial, lateral = grain_size(image, mask)
    return {"mask": mask, "snr": speckle_snr(image, mask), "grain_axial": axial, "grain_lateral": lateral,
            "mean": float(image[mask].mean()) if mask.any() else math.nan}


def histogram(images: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """Normalised 256-bin grey-level histogram of the region pixels of a set."""
    counts = np.zeros(256)
    for im, m in zip(images, masks):
        counts += np.bincount(im[m].ravel(), minlength=256)
    if counts.sum() == 0:
        raise InputError("no imaging-region pixels in the set; cannot compute its histogram")
    return counts / counts.sum()


def wasserstein_1(p: np.ndarray, q: np.ndarray) -> float:
    """Earth mover's distance between two 256-bin grey-level histograms, in grey levels."""
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum())


# ----------------------------------------------------------------------------- the report

@dataclasses.dataclass
class RealismReport:
    real_name: str
    n_real: int
    rows: list[dict[str, Any]]
    trunk: str

    def markdown(self) -> str:
        lines = [f"Reference: {self.real_name} (n = {self.n_real}). Inception trunk: {self.trunk}.", "",
                 "| Set | n | FID ↓ | KID ↓ (jackknife SE) | KID subsets mean (sd) | histogram W1 ↓ (grey levels) "
                 "| speckle SNR | grain axial (px) | grain lateral (px) | mean grey |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            if r["set"] == self.real_name:
                fid = kid = sub = w1 = "–"
            else:
                fid, kid = f"{r['fid']:.2f}", f"{r['kid']:.4f} ({r['kid_se']:.4f})"
                sub, w1 = f"{r['kid_subset_mean']:.4f} ({r['kid_subset_sd']:.4f})", f"{r['hist_w1']:.1f}"
            lines.append(f"| {r['set']} | {r['n']} | {fid} | {kid} | {sub} | {w1} | {r['snr']:.2f} | "
                         f"{r['grain_axial']:.2f} | {r['grain_lateral']:.2f} | {r['mean']:.1f} |")
        lines += ["", "FID/KID: pool features of Inception-v3 at 299 x 299 (train/fid.py); KID = unbiased squared MMD, "
                  "cubic polynomial kernel, on the full sets, with its delete-one jackknife standard error. Statistics "
                  "inside the imaging region detected on each image (train/realism.py)."]
        if "random" in self.trunk:
            lines.append("The Inception trunk is RANDOM (uncalibrated): FID/KID rank these sets against each other here "
                         "and compare with no published value.")
        return "\n".join(lines) + "\n"

    def csv_text(self) -> str:
        keys = ["set", "n", "fid", "kid", "kid_se", "kid_subset_mean", "kid_subset_sd", "hist_w1", "snr",
                "grain_axial", "grain_lateral", "mean"]
        out = [",".join(keys + ["trunk"])]
        for r in self.rows:
            out.append(",".join(str(r.get(k, "")) for k in keys) + f",\"{self.trunk}\"")
        return "\n".join(out) + "\n"


def _set_summary(images: list[np.ndarray]) -> tuple[dict[str, Any], np.ndarray]:
    stats = [image_stats(im) for im in images]
    summary = {k: float(np.nanmedian([s[k] for s in stats])) for k in ("snr", "grain_axial", "grain_lateral", "mean")}
    return summary, histogram(images, [s["mask"] for s in stats])


def realism_report(real: Mapping[str, np.ndarray], sets: Mapping[str, Mapping[str, np.ndarray]], extractor,
                   real_name: str = "real", progress: bool = False) -> RealismReport:
    """FID, KID, histogram distance and speckle statistics of each set against ``real`` (name -> uint8 (H, W))."""
    from sonoedge.train.fid import compare_features, image_features

    if len(real) < 3:
        raise InputError(f"the real set has {len(real)} images; KID with a standard error needs at least 3")
    real_images = [real[k] for k in sorted(real)]
    real_summary, real_hist = _set_summary(real_images)
    real_feats = image_features(extractor, real_images, progress=progress)
    rows = [{"set": real_name, "n": len(real_images), **real_summary}]
    for name, images in sets.items():
        ims = [images[k] for k in sorted(images)]
        if len(ims) < 3:
            raise InputError(f"set '{name}' has {len(ims)} images; KID with a standard error needs at least 3")
        summary, hist = _set_summary(ims)
        scores = compare_features(image_features(extractor, ims, progress=progress), real_feats)
        rows.append({"set": name, "n": len(ims), **{k: v for k, v in scores.items() if k not in ("n_a", "n_b")},
                     "hist_w1": wasserstein_1(hist, real_hist), **summary})
    return RealismReport(real_name, len(real_images), rows, extractor.trunk_description)


# ----------------------------------------------------------------------------- keeping the surround

def phantom_folder_of(content: str | Path) -> Path | None:
    """The phantom folder (with ``phantom.json``) that ``content`` is or is a sub-folder/file of, else None."""
    path = Path(content)
    for folder in (path, path.parent, path.parent.parent):
        if folder.is_dir() and (folder / "phantom.json").is_file():
            return folder
    return None


def sector_masks(content: str | Path, named: list[tuple[str, np.ndarray]]) -> tuple[list[np.ndarray], str]:
    """The imaging region of each (stem, image): the phantom's own sector when ``content`` lies in a
    folder from ``sonoedge data phantom`` that knows every stem (re-simulated from phantom.json, resized
    nearest to the image), else the region detected on the image (runtime/region.py). Returns the masks
    and a word naming the source ("phantom sector" or "detected region")."""
    folder = phantom_folder_of(content)
    if folder is not None:
        truth = _phantom_truth(folder)
        if all(stem in truth for stem, _ in named):
            return [_resize_to(truth[stem]["regions"]["sector"].astype(np.uint8), im.shape, True).astype(bool)
                    for stem, im in named], "phantom sector"
    return [region_of(im) for _, im in named], "detected region"


def keep_outside(inputs: list[np.ndarray], outputs: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
    """Each output inside its mask, the input exactly outside: a translator may change the image, never
    the screen around it ("first, do no harm": the surround must not be painted with tissue)."""
    out = []
    for x, y, m in zip(inputs, outputs, masks):
        if x.shape != y.shape or m.shape != x.shape:
            raise InputError(f"input {x.shape}, output {y.shape} and mask {m.shape} differ in shape")
        out.append(np.where(m, y, x).astype(np.uint8))
    return out


# ----------------------------------------------------------------------------- structure check

def _phantom_truth(phantom_dir: Path) -> dict[str, dict[str, Any]]:
    """Stem of each high image -> its info regions, re-simulated from phantom.json's seeds and config."""
    from sonoedge.runtime.config import from_dict
    from sonoedge.train.phantom import PhantomConfig, simulate_pair

    meta_path = phantom_dir / "phantom.json"
    if not meta_path.is_file():
        raise InputError(f"{phantom_dir} has no phantom.json; the structure check needs a folder from 'sonoedge data phantom'")
    meta = json.loads(meta_path.read_text())
    cfg = from_dict(PhantomConfig, meta["config"], where=str(meta_path))
    out = {}
    for record in meta["pairs"]:
        _, high, info = simulate_pair(record["seed"], cfg)
        out[Path(record["name"]).stem] = {"high": high, "regions": info["regions"]}
    return out


def _resize_to(x: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    import cv2

    if x.shape == shape:
        return x
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(x.astype(np.uint8), (shape[1], shape[0]), interpolation=flag)


def cyst_contrast_db(image: np.ndarray, cyst: np.ndarray, background: np.ndarray) -> float:
    """20 log10(mean background / mean cyst), grey levels + 1 (a black cyst is finite)."""
    return float(20 * np.log10((image[background].mean() + 1) / (image[cyst].mean() + 1)))


def structure_shift(a: np.ndarray, b: np.ndarray, mask: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """Length in px of the displacement that best aligns ``b`` with ``a``: the peak of the cross-correlation
    of the mean-removed images inside ``mask`` (|shift| <= max_shift), refined by a parabola per axis."""
    a0 = np.where(mask, a - a[mask].mean(), 0.0)
    b0 = np.where(mask, b - b[mask].mean(), 0.0)
    h, w = a.shape
    fa, fb = np.fft.rfft2(a0, s=(2 * h, 2 * w)), np.fft.rfft2(b0, s=(2 * h, 2 * w))
    xc = np.fft.fftshift(np.fft.irfft2(np.conj(fa) * fb, s=(2 * h, 2 * w)))
    cy, cx = h, w  # zero shift after fftshift
    win = xc[cy - max_shift:cy + max_shift + 1, cx - max_shift:cx + max_shift + 1]
    py, px = np.unravel_index(int(np.argmax(win)), win.shape)

    def refine(m1: float, m0: float, p1: float) -> float:
        denom = m1 - 2 * m0 + p1
        return 0.0 if denom == 0 else 0.5 * (m1 - p1) / denom

    dy = py - max_shift + (refine(win[py - 1, px], win[py, px], win[py + 1, px]) if 0 < py < win.shape[0] - 1 else 0.0)
    dx = px - max_shift + (refine(win[py, px - 1], win[py, px], win[py, px + 1]) if 0 < px < win.shape[1] - 1 else 0.0)
    return float(math.hypot(dx, dy))


def structure_check(phantom_dir: str | Path, translated: Mapping[str, np.ndarray], source: str = "high") -> dict[str, Any]:
    """Per image and summary: cyst contrast before/after, cysts lost, structure shift and correlation,
    painted share outside the sector, for ``translated`` (stem -> uint8 image) of the phantom's ``source`` images."""
    import cv2

    truth = _phantom_truth(Path(phantom_dir))
    missing = sorted(set(translated) - set(truth))
    if missing:
        raise InputError(f"{len(missing)} translated image(s) are not in {phantom_dir}/phantom.json (first: {missing[0]})")
    per_image = []
    for stem in sorted(translated):
        out = translated[stem]
        ref = _resize_to(truth[stem]["high"] if source == "high" else truth[stem]["high"], out.shape, False)
        regions = {k: _resize_to(v.astype(np.uint8), out.shape, True).astype(bool) for k, v in truth[stem]["regions"].items()}
        sector = regions["sector"]
        a = cv2.GaussianBlur(ref.astype(np.float32), (0, 0), SMOOTH_SIGMA)
        b = cv2.GaussianBlur(out.astype(np.float32), (0, 0), SMOOTH_SIGMA)
        corr = float(np.corrcoef(a[sector], b[sector])[0, 1])
        row = {"name": stem, "shift_px": structure_shift(a, b, sector), "structure_corr": corr,
               "painted_outside": float(((out > PAINTED_LEVEL) & (ref <= PAINTED_LEVEL))[~sector].mean())
               if (~sector).any() else 0.0}
        if "cyst" in regions and regions["cyst"].any() and regions["cyst_background"].any():
            row["cyst_db_before"] = cyst_contrast_db(ref, regions["cyst"], regions["cyst_background"])
            row["cyst_db_after"] = cyst_contrast_db(out, regions["cyst"], regions["cyst_background"])
        per_image.append(row)
    cysts = [r for r in per_image if "cyst_db_before" in r]
    visible = [r for r in cysts if r["cyst_db_before"] >= CYST_VISIBLE_DB]
    summary = {
        "images": len(per_image),
        "shift_px_median": float(np.median([r["shift_px"] for r in per_image])),
        "shift_px_max": float(np.max([r["shift_px"] for r in per_image])),
        "structure_corr_median": float(np.median([r["structure_corr"] for r in per_image])),
        "painted_outside_max": float(np.max([r["painted_outside"] for r in per_image])),
        "cysts": len(cysts),
        "cysts_visible_before": len(visible),
        "cysts_lost": sum(1 for r in visible if r["cyst_db_after"] < CYST_VISIBLE_DB),
        "cyst_db_before_median": float(np.median([r["cyst_db_before"] for r in cysts])) if cysts else math.nan,
        "cyst_db_after_median": float(np.median([r["cyst_db_after"] for r in cysts])) if cysts else math.nan,
    }
    return {"summary": summary, "images": per_image}
