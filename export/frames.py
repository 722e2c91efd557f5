"""Real ultrasound frames for the parity references and the INT8 calibration set.

    frames = collect_frames("recordings/", count=300, size=(256, 256))   # FrameSet
    frames.images          # list of uint8 (h, w), h <= 256, w <= 256, cropped to the imaging region
    frames.sha256          # hash of the pixels (goes into the manifest)

A source is a file of any kind ``sonoedge.runtime.readers`` reads (stills, video, DICOM, NRRD,
MetaImage), a folder of images, or a dataset folder: every readable file below it, recursively,
in natural order; several sources are joined with commas (``realus/clips,realus/hip_spj``). Frames are sampled evenly across files and within each file, so a 369-frame clip
does not crowd out ten stills. Each frame is cropped to its imaging region
(``sonoedge.runtime.region.detect_region``: no vendor UI, rulers or text), then to a centred window
of at most ``size`` pixels. Calibration tiles are then reflect-padded up to exactly ``size`` (one
shape for every batch, as TensorRT calibration wants); reference frames keep their cropped size, so
verify exercises the pad/crop path too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from sonoedge.runtime import readers
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.region import detect_region

MIN_REGION = 32  # px: an imaging region smaller than this on a side is not used


@dataclasses.dataclass
class FrameSet:
    images: list[np.ndarray]  # uint8 (h, w)
    sources: list[str]  # one entry per image: "file#frame"
    description: str

    @property
    def sha256(self) -> str:
        return hash_frames(self.images)

    def to_manifest(self) -> dict[str, object]:
        shapes = sorted({f"{im.shape[0]}x{im.shape[1]}" for im in self.images})
        files = sorted({s.rsplit("#", 1)[0] for s in self.sources})
        return {"frames": len(self.images), "sha256": self.sha256, "shapes": shapes, "files": len(files),
                "source": self.description}


def hash_frames(images: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.shape}{image.dtype}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def source_files(path: str | Path) -> list[Path]:
    """The readable files of ``path``: itself if a file, else every supported file below it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"frame source {path} does not exist; pass a folder, video, DICOM or image file")
    if path.is_file():
        return [path]
    known = (readers.IMAGE_EXTENSIONS + readers.DICOM_EXTENSIONS + readers.NRRD_EXTENSIONS
             + readers.METAIMAGE_EXTENSIONS + readers.VIDEO_EXTENSIONS)
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known]
    if not files:
        raise InputError(f"frame source {path} holds no readable ultrasound files ({' '.join(known)})")
    return sorted(files, key=lambda p: _natural_key(p.relative_to(path).as_posix()))


def split_sources(source: str | Path) -> list[Path]:
    """``"a,b"`` -> [a, b]; a single existing path (even one with a comma in its name) stays whole."""
    if isinstance(source, Path) or Path(source).exists() or "," not in str(source):
        return [Path(source)]
    return [Path(part.strip()) for part in str(source).split(",") if part.strip()]


def _natural_key(name: str) -> list[object]:
    """'f2' before 'f10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frame_count(path: Path) -> int | None:
    try:
        return readers.probe(path).frames
    except InputError:
        return None


def allocate_quotas(counts: list[int], want: int) -> list[int]:
    """Frames to take per file: as even as possible, a file never giving more than it has.

    Water-filling: files with few frames (stills) give all they have, the rest of ``want`` is
    shared equally by the longer files (clips), so 300 frames from ten stills and two clips are
    10 stills + 145 from each clip, not 25 per file.
    """
    quotas = [0] * len(counts)
    remaining, open_files = want, sorted(range(len(counts)), key=lambda i: counts[i])
    while open_files and remaining > 0:
        share = max(1, remaining // len(open_files))
        i = open_files[0]
        if counts[i] <= share:
            quotas[i] = counts[i]
            remaining -= counts[i]
            open_files.pop(0)
            continue
        for i in open_files:
            take = min(share, counts[i], remaining)
            quotas[i] = take
            remaining -= take
        break
    return quotas


def _evenly(n_total: int | None, quota: int) -> set[int] | None:
    if n_total is None or n_total <= quota:
        return None  # take every frame (up to the quota)
    return {int(i * n_total / quota) for i in range(quota)}


def crop_region(image: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The imaging region of ``image``, centre-cropped to at most ``size``; None when it is too small."""
    x0, y0, x1, y1 = detect_region(image).bbox
    region = image[y0:y1, x0:x1]
    if min(region.shape) < MIN_REGION:
        return None
    h, w = min(size[0], region.shape[0]), min(size[1], region.shape[1])
    top, left = (region.shape[0] - h) // 2, (region.shape[1] - w) // 2
    return np.ascontiguousarray(region[top:top + h, left:left + w])


def pad_to_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reflect-pad (bottom/right) a uint8 (h, w) up to exactly ``size``."""
    ph, pw = size[0] - image.shape[0], size[1] - image.shape[1]
    if ph < 0 or pw < 0:
        raise InputError(f"image {image.shape} is larger than {size}")
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect") if ph or pw else image


def collect_frames(source: str | Path, count: int, size: tuple[int, int], skip_first: int = 0) -> FrameSet:
    """Up to ``count`` region crops (<= ``size``) sampled evenly from ``source`` (see module doc).

    ``skip_first`` drops that many sampled frames first (to keep reference and calibration frames
    apart when both come from one source). Raises InputError when no usable frame is found.
    """
    if count < 1:
        raise InputError(f"frame count must be >= 1, got {count}")
    parts = split_sources(source)
    files = [f for part in parts for f in source_files(part)]
    want = count + skip_first
    counts = [_frame_count(f) for f in files]
    quotas = allocate_quotas([c if c is not None else want for c in counts], want)
    picked: list[tuple[np.ndarray, str]] = []
    for file, n_total, quota in zip(files, counts, quotas):
        keep = _evenly(n_total, quota)
        taken = 0
        for index, frame in enumerate(readers.iter_frames(file)):
            if taken >= quota:
                break
            if keep is not None and index not in keep:
                continue
            crop = crop_region(frame, size)
            if crop is not None:
                picked.append((crop, f"{file.name}#{index}"))
                taken += 1
    # interleave files so a prefix of the list covers every file, then cut
    picked = _interleave(picked)[skip_first:skip_first + count]
    if not picked:
        raise InputError(f"frame source {source} gave no frame with an imaging region of at least {MIN_REGION} px")
    names = " + ".join(p.name for p in parts)
    return FrameSet([p[0] for p in picked], [p[1] for p in picked], f"{names} ({len(files)} file(s))")


def frames_from_images(images: Iterable[tuple[np.ndarray, str]], count: int, size: tuple[int, int],
                       description: str, skip_first: int = 0) -> FrameSet:
    """Like :func:`collect_frames` for in-memory uint8 (H, W) images with a name each."""
    picked = []
    for image, name in images:
        crop = crop_region(image, size)
        if crop is not None:
            picked.append((crop, name))
    picked = picked[skip_first:skip_first + count]
    if not picked:
        raise InputError(f"{description} gave no frame with an imaging region of at least {MIN_REGION} px")
    return FrameSet([p[0] for p in picked], [p[1] for p in picked], description)


def phantom_frames(count: int, size: tuple[int, int], skip_first: int = 0) -> FrameSet:
    """Handheld-device frames of the B-mode phantom simulator (seeds 0..), used when no real
    recordings are given; the manifest says so (``source``)."""
    from sonoedge.train.phantom import simulate_pair

    total = count + skip_first
    images = ((simulate_pair(seed)[0], f"phantom#{seed}") for seed in range(total))
    return frames_from_images(images, count, size, "phantom simulator (handheld)", skip_first)


def _interleave(items: list[tuple[np.ndarray, str]]) -> list[tuple[np.ndarray, str]]:
    by_file: dict[str, list[tuple[np.ndarray, str]]] = {}
    for item in items:
        by_file.setdefault(item[1].rsplit("#", 1)[0], []).append(item)
    out = []
    lists = list(by_file.values())
    for i in range(max((len(v) for v in lists), default=0)):
        out.extend(v[i] for v in lists if i < len(v))
    return out


def calibration_tiles(frames: FrameSet, size: tuple[int, int], stride: int) -> list[np.ndarray]:
    """Every frame reflect-padded to ``size`` rounded up to the stride: one shape for all batches."""
    target = (-(-size[0] // stride) * stride, -(-size[1] // stride) * stride)
    return [pad_to_size(image, target) for image in frames.images]
