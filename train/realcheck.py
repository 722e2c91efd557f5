"""Quick fidelity checks of an enhancer on held-out real frames, no reference needed: what training
watches while it runs and what the ablation table reports (docs/results/training.md).

Per frame (uint8 grey input ``x``, output ``y`` of the same shape, imaging-region ``mask``):

- ``erased``: fraction of bright input pixels (x >= 100) that come out black (y < 10); a model
  that keeps anatomy scores ~0 (the old default: 0.25-0.67 on real sources).
- ``lowpass_corr``: Pearson correlation of the input's and output's echogenicity maps at a
  speckle-removed scale (means over 8 x 8 blocks wholly inside the region); >= 0.9 asked.
- ``blobs``: dark blobs invented in tissue: connected regions of >= 30 pixels, at least 3 px across
  both ways (a blob, not the one-pixel seam at a region edge), where the output is black (< 15)
  and the input is tissue (>= 40), both smoothed alike (sigma 3 px), inside the eroded region.
- ``skull_kept`` (HC18 frames with an expert outline): the skull's contrast against its
  surroundings in the output over that in the input; >= 0.8 asked. The outline is drawn on the
  skull's outer edge and the bone lies within ~12 px of it (800 x 540 frames), so the skull is the
  90th percentile of the pixels within 12 px of the outline and its surroundings the median of the
  pixels 20-35 px from it (brain inside, fluid or tissue outside), on images smoothed at sigma 2 px.

The project's full fidelity measures live in ``runtime/fidelity.py``; these four are the brief,
cheap versions a training run can afford every few minutes. numpy/OpenCV only.

    check = check_frame(x, y, mask, outline=None)   # dict of the four (skull_kept None without outline)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

BRIGHT, BLACK = 100, 10
BLOCK = 8
BLOB_MIN_PX, BLOB_DARK, BLOB_TISSUE = 30, 15.0, 40.0


def erased_fraction(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    bright = (x >= BRIGHT) & mask
    return float(((y < BLACK) & bright).sum() / max(int(bright.sum()), 1))


def block_means(image: np.ndarray, mask: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(means of block x block tiles, which tiles lie wholly inside ``mask``)."""
    h, w = image.shape[0] // block * block, image.shape[1] // block * block
    tiles = image[:h, :w].astype(np.float32).reshape(h // block, block, w // block, block)
    inside = mask[:h, :w].reshape(h // block, block, w // block, block).all(axis=(1, 3))
    return tiles.mean(axis=(1, 3)), inside


def lowpass_corr(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    a, inside = block_means(x, mask)
    b, _ = block_means(y, mask)
    a, b = a[inside], b[inside]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def invented_blobs(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> int:
    import cv2

    inner = cv2.erode(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    xs = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 3)
    ys = cv2.GaussianBlur(y.astype(np.float32), (0, 0), 3)
    candidate = ((ys < BLOB_DARK) & (xs >= BLOB_TISSUE) & inner).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    return int(sum(1 for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= BLOB_MIN_PX
                   and min(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) >= 3))


def outline_bands(outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the skull band within 12 px of the outline, the surroundings 20-35 px from it) of an expert
    outline image (non-zero on the drawn ellipse)."""
    import cv2

    line = (outline > 0).astype(np.uint8)
    dist = cv2.distanceTransform((1 - line).astype(np.uint8), cv2.DIST_L2, 5)
    return dist <= 12, (dist >= 20) & (dist <= 35)


def skull_contrast(image: np.ndarray, outline: np.ndarray) -> float:
    """At the structure's scale: both images smoothed (Gaussian, sigma 2 px) first, so a model that
    removes speckle peaks along the bone is not counted as erasing the bone."""
    import cv2

    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 2)
    band, around = outline_bands(outline)
    return float(np.percentile(smooth[band], 90) - np.median(smooth[around]))


def skull_kept(x: np.ndarray, y: np.ndarray, outline: np.ndarray) -> float:
    cx = skull_contrast(x, outline)
    return skull_contrast(y, outline) / cx if cx > 1e-6 else float("nan")


def check_frame(x: np.ndarray, y: np.ndarray, mask: np.ndarray, outline: np.ndarray | None = None) -> dict[str, float]:
    y = y.astype(np.float32)
    return {"erased": erased_fraction(x, y, mask), "lowpass_corr": lowpass_corr(x, y, mask),
            "blobs": invented_blobs(x, y, mask),
            "skull_kept": skull_kept(x, y, outline) if outline is not None else None}


def hc18_outline(frame_path: str | Path, annotations: str | Path) -> np.ndarray | None:
    """The expert outline of an HC18 frame (``NNN_HC.png`` -> ``NNN_HC_Annotation.png``), or None."""
    import cv2

    path = Path(annotations) / (Path(frame_path).stem + "_Annotation.png")
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None


# --------------------------------------------------------------------------- held-out real frames

# Held-out real sources (../shared/data/realus; none of it is trained on). hip_spj and the clips
# calibrate the shipped INT8 model, so its figures there are on calibration frames (the fp32 and
# PyTorch ones are not affected by calibration).
SOURCES = ("hc18", "handheld", "clips", "hip_spj")
CLIP_FRAMES = 8  # frames taken evenly from each mp4 clip


def real_frames(realus: str | Path, sources: tuple[str, ...] = SOURCES, hip_every: int = 5) -> list[tuple[str, str, np.ndarray]]:
    """(source, name, uint8 grey frame) of the held-out realus frames, in a fixed order."""
    from sonoedge.runtime.readers import iter_frames, read_image

    root = Path(realus)
    out: list[tuple[str, str, np.ndarray]] = []
    if "hc18" in sources:
        for p in sorted((root / "hc18").glob("*.png")):
            out.append(("hc18", p.name, read_image(p)))
    if "handheld" in sources:
        for p in sorted((root / "itkpocus_handheld").iterdir()):
            if p.suffix.lower() in (".png", ".jpg", ".dcm", ".nrrd"):
                out.append(("handheld", p.name, _first_frame(read_image, iter_frames, p)))
    if "clips" in sources:
        for p in sorted((root / "clips" / "plus_toolkit" / "frames_png").glob("*.png")):
            out.append(("clips", p.name, read_image(p)))
        for p in sorted((root / "clips" / "itkpocus").glob("*.mp4")):
            frames = list(iter_frames(p))
            for i in np.linspace(0, len(frames) - 1, CLIP_FRAMES).astype(int):
                out.append(("clips", f"{p.stem}#{i}", frames[i]))
    if "hip_spj" in sources:
        for p in sorted((root / "hip_spj").rglob("*.png"))[::hip_every]:
            out.append(("hip_spj", f"{p.parent.name}/{p.name}", read_image(p)))
    return out


def _first_frame(read_image, iter_frames, path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except Exception:  # a multi-frame file: its first frame
        return next(iter(iter_frames(path)))


def enhance_as_deployed(frame: np.ndarray, model, stride: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(output uint8, region mask): the runtime's path (region detection, crop to its box,
    [-1, 1], reflect-pad to the stride, model, crop, paste back inside the region) with ``model``
    a callable float32 (1, 1, H, W) -> (1, 1, H, W)."""
    from sonoedge.runtime.frames import denormalise, normalise, pad_to_stride
    from sonoedge.runtime.region import detect_region

    region = detect_region(frame)
    x0, y0, x1, y1 = region.bbox
    sub = np.ascontiguousarray(frame[y0:y1, x0:x1])
    padded, (h, w) = pad_to_stride(normalise(sub), stride)
    out = denormalise(np.asarray(model(padded))[..., :h, :w])
    result = frame.copy()
    inside = region.mask[y0:y1, x0:x1]
    result[y0:y1, x0:x1][inside] = out[inside]
    return result, region.mask


def check_sources(model, realus: str | Path, annotations: str | Path | None = None,
                  sources: tuple[str, ...] = SOURCES, progress: bool = True) -> list[dict]:
    """One record per held-out frame: source, name and :func:`check_frame`'s measures."""
    from tqdm import tqdm

    records = []
    for source, name, frame in tqdm(real_frames(realus, sources), desc="real frames", disable=not progress, leave=False):
        out, mask = enhance_as_deployed(frame, model)
        outline = hc18_outline(name, annotations) if (source == "hc18" and annotations) else None
        records.append({"source": source, "name": name, **check_frame(frame, out, mask, outline)})
    return records


def summarise(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per source: frames, max erased, min and median low-pass correlation, total blobs, min and
    median skull kept (HC18)."""
    out = {}
    for source in dict.fromkeys(r["source"] for r in records):
        rs = [r for r in records if r["source"] == source]
        corr = np.array([r["lowpass_corr"] for r in rs], dtype=float)
        row = {"frames": len(rs), "erased_max": max(r["erased"] for r in rs),
               "lowpass_corr_min": float(np.nanmin(corr)), "lowpass_corr_median": float(np.nanmedian(corr)),
               "blobs": int(sum(r["blobs"] for r in rs))}
        skull = np.array([r["skull_kept"] for r in rs if r["skull_kept"] is not None], dtype=float)
        if skull.size:
            row.update(skull_kept_min=float(np.nanmin(skull)), skull_kept_median=float(np.nanmedian(skull)))
        out[source] = row
    return out


def degraded_pair_quality(model, realus: str | Path, seed: int = 99) -> dict[str, dict[str, float]]:
    """Paired quality on held-out console frames: each realus/hc18 frame degraded by
    ``train/degrade.py`` (seed ``seed``; these frames are never trained on), enhanced as deployed,
    scored against the console frame: mean SSIM and PSNR of the degraded input and of the output."""
    from sonoedge.runtime.metrics import psnr, ssim
    from sonoedge.runtime.region import detect_region
    from sonoedge.train.degrade import DegradeConfig, degrade_frame

    scores: dict[str, list[tuple[float, float]]] = {"input": [], "enhanced": []}
    for i, (_, _, high) in enumerate(real_frames(realus, ("hc18",))):
        low, _ = degrade_frame(high, DegradeConfig(), np.random.default_rng([seed, i]), detect_region(high).mask)
        out, _ = enhance_as_deployed(low, model)
        scores["input"].append((ssim(low, high), psnr(low, high)))
        scores["enhanced"].append((ssim(out, high), psnr(out, high)))
    return {k: {"ssim": float(np.mean([s for s, _ in v])), "psnr": float(np.mean([p for _, p in v])), "frames": len(v)}
            for k, v in scores.items()}
