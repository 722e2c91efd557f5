"""Handheld-like degradation of real high-end frames: paired real-anatomy training data.

A console frame (log-compressed, 8-bit) is turned back into an echo amplitude map, imaged again
through a handheld device model and log-compressed to a handheld's display. The device model is the
phantom simulator's (``train/phantom``, :class:`~sonoedge.train.phantom.DeviceModel.handheld`) in
image-pixel units, its parameters drawn per frame from :class:`DegradeConfig` ranges:

1. Amplitude: grey g of a console showing ``source_dynamic_range_db`` (60 dB) is the amplitude
   10^((g / 255 - 1) * DR / 20) (the inverse of the display of ``acquisition._display``).
2. Scatterers: the amplitude times a unit complex phasor of random phase per pixel, so the handheld
   PSF forms a new speckle pattern (two devices draw independent speckle, as in the phantom).
3. PSF in the complex baseband (Bamber & Dickinson 1980; the simulator's ``_Beam``): a lateral
   Gaussian whose width grows away from the focus (depth dependent, blended between three widths),
   one side-lobe pair at +-2 FWHM, a broad off-axis clutter plateau, and an axial Gaussian.
4. Electronic noise added before time-gain compensation (so it grows with depth after it) and
   near-field reverberation haze decaying from the top of the imaging region.
5. Envelope detection, coarser lateral sampling (fewer scan lines: area-down, linear-up).
6. Log compression to the handheld's narrower dynamic range (38-50 dB: weak echoes fall to black),
   with the display gain set so that the median tissue grey matches the console's times a random
   factor; black outside the imaging region, which is found with ``runtime.region.detect_region``.

The target of a pair is the console frame itself; both images can share one random display gain
(``gain_range``), so the data spans the wide gain settings real scans come with while the pair keeps
one echogenicity map (what the low-pass consistency loss asks of the generator).

    low = degrade_frame(console_uint8, DegradeConfig(), np.random.default_rng(7))[0]
    write_degraded(src, out, DegradeConfig(), seed=0)          # DIR/low, DIR/high, DIR/degrade.json

numpy and OpenCV only (no torch), like the simulator.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.errors import InputError

GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian
FORMAT = "sonoedge-degrade"


@dataclasses.dataclass
class DegradeConfig:
    """Ranges (lo, hi) of the per-frame handheld device parameters, in image pixels and dB.

    Pixel sizes of console frames are 0.05-0.3 mm; the handheld beam (F-number 2.5 at 3-6 MHz,
    FWHM 0.6-1.3 mm at the focus; ``DeviceModel.handheld``) spans 2-8 such pixels.
    """

    source_dynamic_range_db: float = 60.0  # the console's display (DeviceModel.high_end: 60 dB)
    lateral_fwhm_px: tuple[float, float] = (2.5, 6.0)  # handheld beam at its focus
    defocus: tuple[float, float] = (1.5, 2.5)  # FWHM growth factor at the top/bottom (single focal zone)
    axial_fwhm_px: tuple[float, float] = (1.5, 3.0)  # narrower bandwidth -> longer pulse
    sidelobe_db: tuple[float, float] = (-26.0, -18.0)  # DeviceModel.handheld: -18 dB
    clutter_db: tuple[float, float] = (-30.0, -20.0)  # off-axis clutter plateau
    clutter_width_px: tuple[float, float] = (10.0, 25.0)
    noise_db: tuple[float, float] = (-54.0, -42.0)  # electronic noise RMS at the top, re tissue
    tgc_db: tuple[float, float] = (6.0, 18.0)  # how much the noise grows to the bottom (TGC gain)
    haze_db: tuple[float, float] = (-14.0, -6.0)  # near-field reverberation haze, re tissue
    haze_depth: tuple[float, float] = (0.04, 0.1)  # its decay length / region height
    line_density: tuple[float, float] = (0.4, 0.7)  # scan lines per column (handheld: 0.5)
    dynamic_range_db: tuple[float, float] = (38.0, 50.0)  # handheld display (DeviceModel.handheld: 42)
    tissue_gain: tuple[float, float] = (0.85, 1.2)  # low's median tissue grey / high's
    gain_range: tuple[float, float] = (1.0, 1.0)  # display gain applied to both images of a pair (1 = none)

    def validate(self) -> "DegradeConfig":
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise InputError(f"degrade.{f.name} must be a range [lo, hi] with lo <= hi, got {list(value)}")
        if self.lateral_fwhm_px[0] <= 0 or self.axial_fwhm_px[0] <= 0:
            raise InputError("degrade.lateral_fwhm_px and degrade.axial_fwhm_px must be > 0")
        if not (0 < self.line_density[0] and self.line_density[1] <= 1):
            raise InputError(f"degrade.line_density must lie within (0, 1], got {list(self.line_density)}")
        if self.dynamic_range_db[0] <= 0 or self.gain_range[0] <= 0 or self.source_dynamic_range_db <= 0:
            raise InputError("degrade.dynamic_range_db, degrade.gain_range and degrade.source_dynamic_range_db must be > 0")
        return self


def draw_parameters(cfg: DegradeConfig, rng: np.random.Generator) -> dict[str, float]:
    """One device: a value drawn uniformly from each range of ``cfg``."""
    return {f.name: float(rng.uniform(*getattr(cfg, f.name))) for f in dataclasses.fields(cfg)
            if isinstance(getattr(cfg, f.name), tuple)}


def _lateral(field: np.ndarray, sigma: float, side: float, clutter: float, clutter_sigma: float) -> np.ndarray:
    """Row-wise lateral PSF of one width on a complex field: main lobe + side-lobe pair at +-2 FWHM
    + clutter plateau (the simulator's ``_Beam`` lateral transfer, in the image domain)."""
    import cv2

    def blur(x: np.ndarray, s: float) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 1), sigmaX=max(s, 0.3), sigmaY=0, borderType=cv2.BORDER_REFLECT)

    re, im = np.ascontiguousarray(field.real), np.ascontiguousarray(field.imag)
    main_re, main_im = blur(re, sigma), blur(im, sigma)
    shift = int(round(2 * GAUSS_FWHM * sigma))
    out_re = main_re + side * (_shift(main_re, shift) + _shift(main_re, -shift))
    out_im = main_im + side * (_shift(main_im, shift) + _shift(main_im, -shift))
    out_re += clutter * blur(re, clutter_sigma) * (clutter_sigma / max(sigma, 0.3))
    out_im += clutter * blur(im, clutter_sigma) * (clutter_sigma / max(sigma, 0.3))
    return out_re + 1j * out_im


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved ``k`` columns right (left for k < 0), zeros shifted in (no wrap-around)."""
    out = np.zeros_like(x)
    if k > 0:
        out[:, k:] = x[:, :-k]
    elif k < 0:
        out[:, :k] = x[:, -k:]
    else:
        out[:] = x
    return out


def degrade_frame(high: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """(low uint8 (H, W), the drawn parameters) for one console frame ``high`` (uint8 (H, W)).

    ``mask``: the imaging region (bool (H, W)); found with ``detect_region`` when None. Outside it
    the low image is black, as a handheld's screen around its sector."""
    import cv2

    if high.dtype != np.uint8 or high.ndim != 2:
        raise InputError(f"degrade needs a uint8 grey (H, W) frame, got {high.dtype} {high.shape}")
    if mask is None:
        from sonoedge.runtime.region import detect_region

        mask = detect_region(high).mask
    p = draw_parameters(cfg, rng)
    h, w = high.shape
    rows = np.nonzero(mask.any(axis=1))[0]
    top, bottom = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, h)
    depth = np.clip((np.arange(h, dtype=np.float32) - top) / max(bottom - top, 1), 0.0, 1.0)[:, None]
    # 1. amplitude relative to the console's top grey; 2. random phase scatterers
    dr_src = cfg.source_dynamic_range_db
    amp = np.power(10.0, (high.astype(np.float32) / 255.0 - 1.0) * dr_src / 20.0).astype(np.float32)
    amp[~mask] = 0.0
    tissue = float(np.median(amp[mask & (high > 0)])) if (mask & (high > 0)).any() else 1e-3
    phase = rng.uniform(0, 2 * np.pi, size=amp.shape).astype(np.float32)
    field = amp * (np.cos(phase) + 1j * np.sin(phase))
    # 3. depth-dependent lateral PSF: three widths blended by depth (focus at mid depth)
    sigma0 = p["lateral_fwhm_px"] / GAUSS_FWHM
    side, clutter = 10 ** (p["sidelobe_db"] / 20), 10 ** (p["clutter_db"] / 20)
    csig = p["clutter_width_px"]
    near = _lateral(field, sigma0 * p["defocus"], side, clutter, csig)
    focus = _lateral(field, sigma0, side, clutter, csig)
    far = _lateral(field, sigma0 * p["defocus"], side, clutter, csig)
    wn = np.clip(1.0 - 2.0 * depth, 0.0, 1.0)  # 1 at the top, 0 at mid depth
    wf = np.clip(2.0 * depth - 1.0, 0.0, 1.0)
    lat = near * wn + far * wf + focus * (1.0 - wn - wf)
    sig_ax = p["axial_fwhm_px"] / GAUSS_FWHM
    lat_re = cv2.GaussianBlur(np.ascontiguousarray(lat.real, dtype=np.float32), (1, 0), sigmaX=0.1, sigmaY=sig_ax)
    lat_im = cv2.GaussianBlur(np.ascontiguousarray(lat.imag, dtype=np.float32), (1, 0), sigmaX=0.1, sigmaY=sig_ax)
    # 4. electronic noise growing with depth (TGC), near-field haze (both re the tissue level)
    noise = tissue * 10 ** (p["noise_db"] / 20) * np.power(10.0, p["tgc_db"] * depth / 20.0)
    haze = tissue * 10 ** (p["haze_db"] / 20) * np.exp(-depth / max(p["haze_depth"], 1e-3))
    scale = (noise + haze).astype(np.float32) * np.float32(math.sqrt(0.5))
    lat_re += scale * rng.standard_normal(amp.shape, dtype=np.float32)
    lat_im += scale * rng.standard_normal(amp.shape, dtype=np.float32)
    env = np.sqrt(lat_re**2 + lat_im**2)
    # 5. coarser lateral sampling: fewer scan lines
    lines = max(8, int(round(w * p["line_density"])))
    env = cv2.resize(cv2.resize(env, (lines, h), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    # 6. log compression to the handheld's dynamic range, median tissue grey matched to the console's
    dr = p["dynamic_range_db"]
    db = 20.0 * np.log10(np.maximum(env, 1e-9))
    inside = mask & (high > 0)
    target = float(np.median(high[inside])) * p["tissue_gain"] if inside.any() else 80.0
    ref = float(np.median(db[inside])) if inside.any() else float(np.median(db))
    top_db = ref + dr * (1.0 - min(target, 250.0) / 255.0)
    grey = 255.0 * (db - (top_db - dr)) / dr
    grey[~mask] = 0.0
    low = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return low, p


def apply_gain(image: np.ndarray, gain: float, mask: np.ndarray) -> np.ndarray:
    """Display gain: grey levels times ``gain`` inside ``mask``, clipped (both images of a pair)."""
    out = image.astype(np.float32)
    out[mask] *= gain
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def tiles(shape: tuple[int, int], mask: np.ndarray, side: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` top-left corners of side x side tiles, each at least half inside ``mask``
    (random; the best of 20 draws when none qualifies)."""
    h, w = shape
    if side > h or side > w:
        raise InputError(f"a tile of {side} px does not fit a {w}x{h} frame; lower --tile")
    out = []
    for _ in range(count):
        best, best_fill = (0, 0), -1.0
        for _ in range(20):
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            fill = float(mask[y:y + side, x:x + side].mean())
            if fill > best_fill:
                best, best_fill = (y, x), fill
            if fill >= 0.5:
                break
        out.append(best)
    return out


def write_degraded(src: str | Path, out: str | Path, cfg: DegradeConfig | None = None, seed: int = 0,
                   tile: int = 0, tiles_per_frame: int = 1, scale: float = 1.0, progress: bool = True,
                   overwrite: bool = False) -> dict[str, Any]:
    """Degrade every image under ``src`` into ``out``/low (handheld-like) and ``out``/high (the
    console frame), same relative names as PNG (the paired layout ``train/datasets.py`` reads), plus
    ``out``/degrade.json (the config, seed and each frame's drawn parameters).

    ``scale`` resizes the frames first (area); ``tile`` > 0 writes ``tiles_per_frame`` random
    tile x tile crops per frame (name_tNN.png) instead of whole frames. The draws of frame i depend
    only on (seed, i)."""
    import cv2
    from tqdm import tqdm

    from sonoedge.runtime.atomic import atomic_path
    from sonoedge.runtime.readers import read_image
    from sonoedge.runtime.region import detect_region
    from sonoedge.train.datasets import list_images

    cfg = (cfg or DegradeConfig()).validate()
    src, out = Path(src), Path(out)
    names = list_images(src)
    _prepare_out(out, overwrite)
    if scale <= 0 or scale > 1:
        raise InputError(f"--scale must be within (0, 1], got {scale}")
    records = []
    for i, name in enumerate(tqdm(names, desc="degrade", unit="frame", disable=not progress)):
        rng = np.random.default_rng([int(seed), i])
        frame = read_image(src / name)
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if scale != 1.0:
            frame = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        mask = detect_region(frame).mask
        low, params = degrade_frame(frame, cfg, rng, mask)
        gain = float(rng.uniform(*cfg.gain_range))
        if gain != 1.0:
            low, high = apply_gain(low, gain, mask), apply_gain(frame, gain, mask)
        else:
            high = frame
        params["gain"] = gain
        stem = name.rsplit(".", 1)[0]
        crops = [(0, 0, None)] if not tile else [(y, x, tile) for y, x in tiles(frame.shape, mask, tile, tiles_per_frame, rng)]
        for k, (y, x, side) in enumerate(crops):
            rel = f"{stem}.png" if side is None else f"{stem}_t{k:02d}.png"
            for folder, image in (("low", low), ("high", high)):
                crop = image if side is None else image[y:y + side, x:x + side]
                path = out / folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    if not cv2.imwrite(str(tmp), np.ascontiguousarray(crop)):
                        raise InputError(f"could not write {path}")
            records.append({"name": rel, "source": name, "crop": None if side is None else [y, x, side], **params})
    meta = {"format": FORMAT, "version": 1, "source": src.name, "seed": int(seed), "scale": scale, "tile": tile,
            "config": dataclasses.asdict(cfg), "count": len(records), "pairs": records}
    with atomic_path(out / "degrade.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _prepare_out(out: Path, overwrite: bool) -> None:
    """``out`` must be new or empty, or (with ``overwrite``) an earlier degrade output, which is
    removed; never a folder holding other files."""
    import shutil

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} is not empty; choose a new folder or pass --overwrite to replace an earlier degrade output")
        marker = out / "degrade.json"
        try:
            ours = json.loads(marker.read_text()).get("format") == FORMAT
        except (OSError, ValueError):
            ours = False
        extra = [p.name for p in out.iterdir() if p.name not in ("low", "high", "degrade.json")]
        if not ours or extra:
            raise InputError(f"{out} holds files that `sonoedge data degrade` did not write; it only replaces its own output")
        for name in ("low", "high"):
            shutil.rmtree(out / name, ignore_errors=True)
        marker.unlink()
    out.mkdir(parents=True, exist_ok=True)
