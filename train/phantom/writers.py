"""Phantom data sets on disk: :func:`write_pairs` (PNG pairs) and :func:`write_clip` (mp4 clips).

Each folder is written atomically with ``phantom.json`` (the resolved config and the seeds) beside
the images. A folder that is not empty is refused; with ``overwrite`` an earlier phantom output
(every file in it one the writer wrote) is replaced, never a folder holding anything else.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.atomic import atomic_dir
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.outputs import MARKER, check_whole_folder, marked_foreign
from sonoedge.train.phantom.config import PhantomConfig
from sonoedge.train.phantom.simulate import simulate_clip, simulate_pair


def _pair_job(args: tuple[int, PhantomConfig]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    seed, cfg = args
    low, high, info = simulate_pair(seed, cfg)
    info.pop("regions")
    return low, high, info


_LAYOUT = ("phantom.json", "low.mp4", "high.mp4", "low/", "high/")  # what the writers put in a folder
_MARK = "sonoedge data phantom"


def _foreign(out: Path) -> list[Path]:
    """Files in ``out`` the phantom writers did not write (an output from before the marker:
    anything outside the phantom layout)."""
    if (out / MARKER).is_file() or not (out / "phantom.json").is_file():
        return marked_foreign(out)
    return [p for p in sorted(out.rglob("*")) if not p.is_dir()
            and not any(p.relative_to(out).as_posix().startswith(name) for name in _LAYOUT)]


def _prepare_out(out: Path, overwrite: bool) -> None:
    check_whole_folder(out, overwrite=overwrite, foreign=_foreign)


def write_pairs(out: str | Path, n: int, cfg: PhantomConfig | None = None, seed: int = 0, workers: int = 1,
                progress: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Write ``n`` pairs: ``out/low/<organ>_<i>.png``, ``out/high/<organ>_<i>.png`` (matching names)
    and ``out/phantom.json`` (config, seeds, organs). Pair i uses seed ``seed * 1_000_003 + i``.
    The folder is written atomically: a failure leaves no half-written set. Returns the json."""
    cfg = (cfg or PhantomConfig()).validate()
    if n < 1:
        raise InputError(f"--pairs must be at least 1, got {n}")
    out = Path(out)
    _prepare_out(out, overwrite)
    seeds = [seed * 1_000_003 + i for i in range(n)]
    start = time.perf_counter()
    jobs = [(s, cfg) for s in seeds]
    with atomic_dir(out, replace=overwrite, mark=_MARK) as tmp:
        _public(tmp)
        (tmp / "low").mkdir()
        (tmp / "high").mkdir()
        records = []
        for i, (low, high, info) in enumerate(_map(_pair_job, jobs, workers, progress, "phantom pairs")):
            name = f"{info['organ']}_{i:04d}.png"
            _write_png(tmp / "low" / name, low)
            _write_png(tmp / "high" / name, high)
            records.append({"name": name, **info})
        meta = {"kind": "pairs", "count": n, "seed": seed, "config": dataclasses.asdict(cfg), "pairs": records,
                "seconds": round(time.perf_counter() - start, 3)}
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=1))
    return meta


def _map(fn, jobs, workers: int, progress: bool, desc: str):
    from tqdm import tqdm

    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        results = map(fn, jobs)
        pool = None
    else:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    try:
        yield from tqdm(results, total=len(jobs), desc=desc, disable=not progress, unit="pair")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _public(folder: Path) -> None:
    """mkdtemp makes 0700 folders; a dataset folder gets the usual permissions (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise InputError(f"could not write {path}")


def write_clip(out: str | Path, frames: int = 40, fps: float | None = None, cfg: PhantomConfig | None = None,
               seed: int = 0, png: bool = False, progress: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Write ``out/low.mp4`` and ``out/high.mp4`` (mp4v, grey) of one scene, plus ``out/phantom.json``
    and, with ``png``, every frame as ``out/low/frame_0000.png`` / ``out/high/...``. Atomic."""
    cfg = cfg or PhantomConfig()
    if fps is not None:
        if fps <= 0:
            raise InputError(f"--fps must be positive, got {fps}")
        cfg = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, fps=float(fps)))
    cfg.validate()
    out = Path(out)
    _prepare_out(out, overwrite)
    start = time.perf_counter()
    low, high = simulate_clip(seed, cfg, frames, progress=progress)
    with atomic_dir(out, replace=overwrite, mark=_MARK) as tmp:
        _public(tmp)
        for name, clip in (("low", low), ("high", high)):
            _write_video(tmp / f"{name}.mp4", clip, cfg.motion.fps)
            if png:
                (tmp / name).mkdir()
                for i, frame in enumerate(clip):
                    _write_png(tmp / name / f"frame_{i:04d}.png", frame)
        meta = {"kind": "clip", "frames": frames, "fps": cfg.motion.fps, "seed": seed, "config": dataclasses.asdict(cfg),
                "seconds": round(time.perf_counter() - start, 3)}
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=1))
    return meta


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    h, w = frames.shape[1:]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h), isColor=False)
    if not writer.isOpened():
        raise InputError(f"OpenCV cannot write an mp4v video to {path} (no video encoder in this OpenCV build)")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError(f"writing {path} produced no data")


def default_workers() -> int:
    """Worker processes for :func:`write_pairs`: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
