"""The simulator's API: :func:`simulate_pair` and :func:`simulate_clip`, images in memory.

One seed spawns five random streams (scene, low texture, high texture, misregistration, noise), so
the high image of a seed does not depend on the misregistration.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.train.phantom.acquisition import _Device, _Warp
from sonoedge.train.phantom.config import CONVEX_ORGANS, LINEAR_ORGANS, PhantomConfig
from sonoedge.train.phantom.scene import _CosineField, _draw_scene, _Geometry, _plain_tissue, _Scene


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n)]


def _setup(seed: int, cfg: PhantomConfig, motion_mm: float):
    cfg.validate()
    # SeedSequence children do not depend on their count: streams 0-4 are those of earlier versions
    scene_rng, low_rng, high_rng, warp_rng, noise_rng, extra_rng, display_rng = _streams(seed, 7)
    kind = cfg.geometry
    if kind == "mixed":
        kind = "linear" if scene_rng.uniform() < 0.5 else "convex"
    organs = LINEAR_ORGANS if kind == "linear" else CONVEX_ORGANS
    organ = organs[int(scene_rng.integers(len(organs)))]
    geo = _Geometry.build(kind, cfg)
    scene = _draw_scene(scene_rng, geo, cfg.tissue, organ, extra_rng)
    mis_mm = cfg.misregistration_px * geo.pixel_mm
    # texture margin independent of the misregistration, so the high image does not depend on it
    margin = motion_mm + 0.05 * geo.depth_mm + 2.0
    high = _Device(geo, cfg.high, cfg.tissue, high_rng, margin)
    low = _Device(geo, cfg.low, cfg.tissue, low_rng, margin)
    if cfg.display_variation:
        _vary_display(display_rng, cfg, high, low)
    mis = _Warp(depth_mm=geo.depth_mm)
    if mis_mm > 0:
        length = cfg.misregistration_scale * geo.depth_mm
        # per-component RMS mis_mm / sqrt(2): the displacement magnitude has RMS mis_mm
        mis.field_x = _CosineField.draw(warp_rng, length, 6, mis_mm / math.sqrt(2))
        mis.field_y = _CosineField.draw(warp_rng, length, 6, mis_mm / math.sqrt(2))
    return geo, scene, high, low, mis, noise_rng


def _vary_display(rng: np.random.Generator, cfg: PhantomConfig, high: _Device, low: _Device) -> None:
    """PhantomConfig.display_variation: one draw of gain, TGC ramp and dynamic ranges for the pair
    (display only: the beams, cached per device, are untouched)."""
    grey = float(rng.uniform(*cfg.display_grey))
    ratio, tgc = float(rng.uniform(*cfg.display_low_ratio)), float(rng.uniform(*cfg.tgc_db))
    high.dev = dataclasses.replace(high.dev, tissue_grey=grey, dynamic_range_db=float(rng.uniform(*cfg.high_dynamic_range_db)))
    low.dev = dataclasses.replace(low.dev, tissue_grey=min(grey * ratio, 200.0),
                                  dynamic_range_db=float(rng.uniform(*cfg.low_dynamic_range_db)))
    high.tgc_db = low.tgc_db = tgc


def _info(seed: int, geo: _Geometry, scene: _Scene, cfg: PhantomConfig) -> dict[str, Any]:
    """Metadata and ground-truth regions in high-image pixel coordinates (for tests and metrics)."""
    xo, yo = geo.raster_xy()
    inside = geo.inside(xo, yo)
    cysts = [b for b in scene.blobs if b.fluid and b.wall_db is None]
    regions: dict[str, np.ndarray] = {}
    if cysts:
        big = max(cysts, key=lambda b: b.rx * b.ry)
        rad = big.radius(xo, yo)
        regions["cyst"] = (rad < 0.7) & inside
        regions["cyst_background"] = (rad > 1.4) & (rad < 2.0) & inside & _plain_tissue(scene, geo, xo, yo)
    regions["sector"] = inside
    _, d = geo.layer_coords(xo, yo)
    # homogeneous tissue for speckle statistics: plain tissue in the middle of the depth range
    regions["speckle"] = inside & _plain_tissue(scene, geo, xo, yo) & (d > 0.25 * geo.depth_mm) & (d < 0.75 * geo.depth_mm)
    points = []
    for px, py in scene.points:
        col = (px / geo.pixel_mm) + geo.width / 2 - 0.5
        row = (py - geo.y_top) / geo.pixel_mm - 0.5
        points.append((float(row), float(col)))
    return {"seed": int(seed), "geometry": geo.kind, "organ": scene.organ, "pixel_mm": geo.pixel_mm,
            "depth_mm": geo.depth_mm, "regions": regions, "points_px": points}


def simulate_pair(seed: int, cfg: PhantomConfig | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(low, high, info): handheld and high-end uint8 (H, W) images of one scene.

    ``info``: seed, geometry, organ, pixel_mm, depth_mm, ``regions`` (bool (H, W) masks in the
    high image: ``cyst``, ``cyst_background`` when the scene has a cyst; ``sector``; ``speckle``,
    plain tissue at mid depth) and
    ``points_px`` ((row, col) of point targets in the high image).
    """
    cfg = cfg or PhantomConfig()
    geo, scene, high, low, mis, noise_rng = _setup(seed, cfg, 0.0)
    high_img = high.frame(scene, _Warp(depth_mm=geo.depth_mm), noise_rng)
    low_img = low.frame(scene, mis, noise_rng)
    return low_img, high_img, _info(seed, geo, scene, cfg)


def simulate_clip(seed: int, cfg: PhantomConfig | None = None, frames: int = 40,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(low_frames, high_frames): uint8 (N, H, W) clips of one scene with probe motion and breathing
    (``cfg.motion``); speckle moves with the tissue, noise is new in every frame."""
    from tqdm import tqdm

    cfg = cfg or PhantomConfig()
    if frames < 1:
        raise InputError(f"a clip needs at least 1 frame, got {frames}")
    mo = cfg.motion
    geo, scene, high, low, mis, noise_rng = _setup(seed, cfg, mo.probe_sweep_mm + mo.breathing_mm)
    lows, highs = [], []
    for i in tqdm(range(frames), desc="phantom clip", unit="frame", disable=not progress):
        t = i / mo.fps
        shift = mo.probe_sweep_mm * math.sin(2 * math.pi * t / mo.probe_period_s)
        breath = mo.breathing_mm * 0.5 * (1 - math.cos(2 * math.pi * t / mo.breathing_period_s))
        motion = _Warp(shift_x=shift, breathing=breath, depth_mm=geo.depth_mm)
        both = dataclasses.replace(mis, shift_x=shift, breathing=breath)
        highs.append(high.frame(scene, motion, noise_rng))
        lows.append(low.frame(scene, both, noise_rng))
    return np.stack(lows), np.stack(highs)
