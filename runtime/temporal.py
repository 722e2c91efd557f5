"""Temporal stability of an enhanced clip: how much the output flickers (numpy + OpenCV only).

    e = warping_error(inputs, outputs)         # {"warping_error", "coverage", "frames"}; grey levels
    v = short_term_std(outputs)                # mean per-pixel std over 3 consecutive frames
    report = temporal_report(inputs, {"default": outs, "steadied": steady_outs})

Warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, Eq. 9): the optical
flow is computed on the INPUT clip (so every method is judged against the same motion), the
previous OUTPUT frame is warped to the current one, and the mean absolute difference is taken over
the pixels where the flow is reliable. Flow: OpenCV DIS (Kroeger et al., ECCV 2016), "medium" preset,
on inputs blurred by a Gaussian of sigma 1 px (speckle and electronic noise are new in every frame
and carry no motion). Reliability: the forward-backward check of Sundaram et al. (ECCV 2010) as used
by Ruder et al. 2016: |w + w_back(x + w)|^2 < 0.01 (|w|^2 + |w_back|^2) + 0.5, and x + w inside the
frame. Images are uint8 grey (T, H, W); errors are in grey levels (0-255).

Short-term variance, flow-free: the per-pixel standard deviation over a sliding window of ``window``
consecutive frames, averaged over pixels and windows. It also counts real motion, so it is only
comparable between outputs of the same input clip (compare with the input's own value).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

from sonoedge.runtime.errors import InputError

FLOW_BLUR_SIGMA = 1.0  # px; noise is independent per frame, motion is not
FB_ALPHA, FB_BETA = 0.01, 0.5  # forward-backward consistency thresholds (Sundaram et al. 2010; Ruder et al. 2016)


def _check_clip(frames: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    clip = np.asarray(frames)
    if clip.ndim != 3 or clip.dtype != np.uint8 or clip.shape[0] < 2:
        raise InputError(f"{name} must be a uint8 grey clip (T >= 2, H, W), got {clip.dtype} {clip.shape}")
    return clip


def _dis() -> "cv2.DISOpticalFlow":
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _smooth(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), FLOW_BLUR_SIGMA)


def flow(src: np.ndarray, dst: np.ndarray, dis: "cv2.DISOpticalFlow | None" = None) -> np.ndarray:
    """(H, W, 2) float32 flow w with src(x) ~ dst(x + w(x)) (x, y order), from uint8 grey images."""
    dis = dis or _dis()
    return dis.calc(_smooth(src), _smooth(dst), None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``image`` sampled at x + w(x) (bilinear, border replicated): the image moved onto the flow's source."""
    gx, gy = _grid(*image.shape[:2])
    return cv2.remap(image, gx + w[..., 0], gy + w[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliable(w: np.ndarray, w_back: np.ndarray) -> np.ndarray:
    """bool (H, W): forward-backward consistent and landing inside the frame (module doc)."""
    h, wd = w.shape[:2]
    gx, gy = _grid(h, wd)
    back = warp(w_back, w)
    err = np.sum((w + back) ** 2, axis=2)
    bound = FB_ALPHA * (np.sum(w ** 2, axis=2) + np.sum(back ** 2, axis=2)) + FB_BETA
    x, y = gx + w[..., 0], gy + w[..., 1]
    inside = (x >= 0) & (x <= wd - 1) & (y >= 0) & (y <= h - 1)
    return (err < bound) & inside


def input_flows(inputs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For t = 1..T-1: (flow t -> t-1, reliability mask), computed once per input clip."""
    clip = _check_clip(inputs, "input clip")
    dis = _dis()
    out = []
    for t in range(1, len(clip)):
        w = flow(clip[t], clip[t - 1], dis)
        w_back = flow(clip[t - 1], clip[t], dis)
        out.append((w, reliable(w, w_back)))
    return out


def warping_error(inputs: np.ndarray, outputs: np.ndarray, flows: list | None = None,
                  region: np.ndarray | None = None) -> dict[str, float]:
    """Mean over frames of the masked mean |O_t - warp(O_{t-1})| (grey levels); ``region`` (bool H x W)
    restricts it further (e.g. the imaging sector). ``coverage``: the fraction of pixels scored."""
    ins, outs = _check_clip(inputs, "input clip"), _check_clip(outputs, "output clip")
    if ins.shape != outs.shape:
        raise InputError(f"output clip {outs.shape} must match the input clip {ins.shape} (frames, height, width)")
    flows = flows if flows is not None else input_flows(ins)
    errors, cover = [], []
    for t, (w, mask) in enumerate(flows, start=1):
        if region is not None:
            mask = mask & region
        if not mask.any():
            continue
        prev = warp(outs[t - 1].astype(np.float32), w)
        errors.append(float(np.abs(outs[t].astype(np.float32) - prev)[mask].mean()))
        cover.append(float(mask.mean()))
    if not errors:
        raise InputError("no pixel of the clip has a reliable flow; the warping error cannot be computed")
    return {"warping_error": float(np.mean(errors)), "coverage": float(np.mean(cover)), "frames": float(len(errors) + 1)}


def short_term_std(frames: np.ndarray, window: int = 3, region: np.ndarray | None = None) -> float:
    """Mean per-pixel standard deviation over every ``window`` consecutive frames (grey levels)."""
    clip = _check_clip(frames, "clip").astype(np.float32)
    if not 2 <= window <= len(clip):
        raise InputError(f"short-term window must be between 2 and the clip length {len(clip)}, got {window}")
    values = []
    for t in range(len(clip) - window + 1):
        std = clip[t:t + window].std(axis=0)
        values.append(float(std[region].mean() if region is not None else std.mean()))
    return float(np.mean(values))


def temporal_report(inputs: np.ndarray, outputs: Mapping[str, np.ndarray], region: np.ndarray | None = None,
                    window: int = 3) -> dict[str, dict[str, float]]:
    """{name: {warping_error, coverage, short_term_std}} for the input ("input") and every output clip,
    with the flow computed once on the input."""
    flows = input_flows(inputs)
    report = {}
    for name, clip in {"input": inputs, **outputs}.items():
        row = warping_error(inputs, clip, flows, region)
        row["short_term_std"] = short_term_std(clip, window, region)
        report[name] = row
    return report
