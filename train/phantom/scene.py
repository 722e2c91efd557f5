"""B-mode phantom simulator: paired handheld / high-end images and clips from one tissue model.

numpy, scipy and OpenCV only (never torch): the README demo runs it in a base install.

Image formation (a convolution model, as in Bamber & Dickinson 1980 and Meunier & Bertrand 1995,
"Ultrasonic texture motion analysis: theory and simulation", IEEE TMI 14(2)):

1. Tissue. :class:`TissueModel` draws a scene per seed in physical coordinates (mm): smooth
   echogenicity variations, skin and fat layers, specular interfaces (fascia, capsule, diaphragm),
   anechoic cysts and vessels with posterior enhancement, bright calcifications that cast acoustic
   shadows, and point targets. ``organ`` presets (thyroid, carotid, breast, liver, kidney: the
   USenhance 2023 organs) change what is drawn.
2. Scatterers. A complex Gaussian texture fixed to the tissue (fully developed speckle: many
   sub-resolution scatterers per cell), scaled by the echogenicity. The two devices of a pair draw
   independent textures (independent speckle, as two real devices). In a clip the texture moves with
   the tissue, so speckle moves coherently with probe motion and breathing.
3. Acquisition on the device's beam grid (depth x scan line; polar for a convex probe), so shadows
   and enhancement follow the beams. Round-trip attenuation of the excess over the tissue average
   (which time-gain compensation removes), electronic noise added before TGC (so it grows with
   depth), near-field reverberation haze.
4. Point spread function, applied in the complex baseband: axial Gaussian pulse envelope from the
   centre frequency and bandwidth; lateral Gaussian beam whose width grows away from the focus
   (depth dependent), plus side lobes and an off-axis clutter plateau. The lateral part is applied
   row by row in the FFT domain, so a depth-dependent PSF costs two FFTs.
5. Envelope detection: the magnitude of the complex baseband signal is the envelope that IQ
   demodulation of the RF line gives.
6. Spatial compounding (high-end): frames steered by several angles, each with its own noise, are
   scan-converted and averaged.
7. Scan conversion to the output (H, W) raster with square pixels (``cv2.remap``; a convex sector is
   black outside the fan), log compression to the device's dynamic range and display gain, uint8.

The high-end device (console) images at a higher centre frequency with a narrow beam, 60 dB dynamic
range, 3-angle compounding, little noise and dense scan lines; the handheld at a lower frequency
with a broad beam, side lobes and clutter, more noise, 42 dB, near-field haze and half the scan
lines. A pair differs by a small smooth non-rigid misregistration (``misregistration_px``; 0 gives
aligned structure). Everything is deterministic per seed.

API: :func:`simulate_pair`, :func:`simulate_clip`, :func:`write_pairs`, :func:`write_clip`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from sonoedge.runtime.atomic import atomic_dir
from sonoedge.runtime.errors import InputError

C_MM_PER_US = 1.54  # speed of sound in soft tissue, 1540 m/s: the value scanners assume
GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian
# Time-bandwidth product of a Gaussian pulse (FWHM_t * FWHM_f), for the axial resolution.
GAUSS_TBP = GAUSS_FWHM**2 / (2.0 * math.pi)
# Mean of 20 log10 of a Rayleigh envelope with unit RMS: -gamma/2 nepers = -2.51 dB.
RAYLEIGH_MEAN_DB = -20.0 * (0.5772156649 / 2.0) / math.log(10.0)

GEOMETRIES = ("linear", "convex", "mixed")
LINEAR_ORGANS = ("thyroid", "carotid", "breast")
CONVEX_ORGANS = ("liver", "kidney")
ORGANS = LINEAR_ORGANS + CONVEX_ORGANS


@dataclasses.dataclass
class DeviceModel:
    """One scanner. Defaults: a high-end console (:meth:`high_end`); :meth:`handheld` for the other.

    Levels in dB are amplitudes relative to the RMS echo of average tissue (echogenicity 0 dB).
    """

    name: str = "high-end console"
    # Centre frequency: console linear probes image thyroid/carotid/breast at 8-14 MHz, convex
    # abdominal probes at 2-6 MHz (Szabo, Diagnostic Ultrasound Imaging, 2nd ed. 2014, ch. 7).
    f0_linear_mhz: float = 10.0
    f0_convex_mhz: float = 4.5
    fractional_bandwidth: float = 0.75  # -6 dB two-way bandwidth / f0; wideband console arrays
    f_number: float = 1.5  # lateral FWHM at the focus = wavelength * F-number
    focus_depth: float = 0.45  # transmit focus, fraction of the image depth
    # Rayleigh range of the beam as a fraction of the image depth: consoles use several transmit
    # focal zones and dynamic receive focusing, so the beam stays narrow over most of the depth.
    depth_of_field: float = 0.7
    sidelobe_db: float = -40.0  # first side-lobe pair, apodised console aperture
    clutter_db: float = -55.0  # broad off-axis clutter plateau (peak relative to the main lobe)
    clutter_width_mm: float = 3.0  # standard deviation of that plateau
    noise_db: float = -75.0  # electronic noise RMS before TGC (grows with depth after TGC)
    dynamic_range_db: float = 60.0  # issue 2: high-end 60 dB
    compounding_deg: tuple[float, ...] = (-10.0, 0.0, 10.0)  # steering angles averaged
    line_density: float = 1.0  # scan lines per output column
    axial_density: float = 2.0  # beam-grid samples per output row
    haze_db: float = -80.0  # near-field reverberation haze at the skin (none on a console)
    haze_depth_mm: float = 5.0  # decay length of the haze
    reverb_db: float = -80.0  # reverberation copies of the first interface (none)
    tissue_grey: float = 85.0  # display gain: grey level of average tissue

    @classmethod
    def high_end(cls) -> "DeviceModel":
        return cls()

    @classmethod
    def handheld(cls) -> "DeviceModel":
        """A handheld probe: lower frequency, fewer elements (broad beam, side lobes), small
        front-end (noise), 40-45 dB dynamic range, near-field reverberation, coarse line density."""
        return cls(
            name="handheld",
            f0_linear_mhz=6.0,  # handheld linear probes: 5-10 MHz, often run low for penetration
            f0_convex_mhz=3.0,
            fractional_bandwidth=0.55,
            f_number=2.5,  # small aperture: broad beam
            focus_depth=0.5,
            depth_of_field=0.35,  # single focal zone
            sidelobe_db=-18.0,  # few elements, little apodisation: high first side lobes
            clutter_db=-18.0,
            clutter_width_mm=6.0,
            noise_db=-48.0,
            dynamic_range_db=42.0,  # issue 2: handheld 40-45 dB
            compounding_deg=(0.0,),
            line_density=0.5,  # coarser sampling: half the scan lines
            axial_density=1.25,
            haze_db=-6.0,
            haze_depth_mm=5.0,
            reverb_db=-12.0,
            tissue_grey=95.0,
        )

    def f0(self, geometry: str) -> float:
        return self.f0_linear_mhz if geometry == "linear" else self.f0_convex_mhz


@dataclasses.dataclass
class TissueModel:
    """What a scene may contain. Sizes of lesions are fractions of the image depth."""

    attenuation_db_cm_mhz: float = 0.5  # average soft tissue (Szabo 2014, Table 4.2: 0.3-0.9)
    fluid_attenuation: float = 0.05  # fluid attenuates ~5% of tissue: posterior enhancement
    shadow_attenuation_db_cm_mhz: float = 20.0  # bone/calcification (Szabo 2014: bone ~20)
    texture_db: float = 2.5  # standard deviation of the smooth echogenicity variation
    texture_scale_mm: float = 5.0  # its correlation length
    cysts: tuple[int, int] = (1, 3)  # min, max count
    cyst_radius: tuple[float, float] = (0.04, 0.1)
    cyst_db: float = -40.0  # anechoic
    vessels: tuple[int, int] = (0, 2)
    vessel_wall_db: float = 8.0
    interfaces: tuple[int, int] = (1, 2)  # specular boundaries besides the fascia
    interface_db: float = 16.0  # peak of a specular echo at normal incidence
    specular_power: float = 4.0  # specular echo ~ cos(incidence)^power
    points: tuple[int, int] = (2, 5)
    point_db: float = 24.0
    striation_db: float = 4.0  # fibre texture of the muscle layer under the fat
    micro_db: float = 2.0  # parenchymal micro-structure (granular organ texture), standard deviation
    micro_scale: float = 0.012  # its cell size / image depth (0.5 mm at 40 mm, 1.3 mm at 110 mm)
    calcification_probability: float = 0.5  # a bright reflector with an acoustic shadow


@dataclasses.dataclass
class MotionModel:
    """Clip motion: a slow probe sweep and breathing (deeper tissue moves more)."""

    fps: float = 20.0
    probe_sweep_mm: float = 2.0  # peak lateral probe displacement
    probe_period_s: float = 8.0
    breathing_mm: float = 1.5  # peak axial displacement at the bottom of the image
    breathing_period_s: float = 4.0  # 15 breaths per minute


@dataclasses.dataclass
class PhantomConfig:
    """Everything :func:`simulate_pair` needs. ``size`` is (H, W) of the output images."""

    size: tuple[int, int] = (256, 256)
    geometry: str = "mixed"  # linear | convex | mixed (chosen per seed)
    misregistration_px: float = 2.0  # RMS of the smooth low-vs-high displacement, output pixels
    misregistration_scale: float = 0.4  # correlation length of that displacement / image depth
    linear_depth_mm: float = 40.0  # linear probe image depth (width follows the aspect ratio)
    convex_depth_mm: float = 110.0  # convex probe image depth below the probe face
    convex_radius_mm: float = 45.0  # convex probe radius of curvature (C5-2 class: 40-60 mm)
    convex_fov_deg: float = 55.0  # sector angle
    high: DeviceModel = dataclasses.field(default_factory=DeviceModel.high_end)
    low: DeviceModel = dataclasses.field(default_factory=DeviceModel.handheld)
    tissue: TissueModel = dataclasses.field(default_factory=TissueModel)
    motion: MotionModel = dataclasses.field(default_factory=MotionModel)

    def validate(self) -> "PhantomConfig":
        h, w = self.size
        if h < 32 or w < 32 or h > 4096 or w > 4096:
            raise InputError(f"phantom size {self.size} must be between 32 and 4096 pixels per side")
        if self.geometry not in GEOMETRIES:
            raise InputError(f"unknown phantom geometry '{self.geometry}'; choose one of {', '.join(GEOMETRIES)}")
        if self.misregistration_px < 0:
            raise InputError(f"misregistration must be >= 0 pixels, got {self.misregistration_px}")
        return self


# ---------------------------------------------------------------------------------------------
# Geometry: output raster <-> physical (x lateral, y depth) in mm <-> a device's beam grid.


@dataclasses.dataclass
class _Geometry:
    kind: str  # linear | convex
    height: int
    width: int
    pixel_mm: float
    depth_mm: float  # along the beam
    width_mm: float = 0.0  # linear aperture
    radius_mm: float = 0.0  # convex
    fov_rad: float = 0.0  # convex
    y_top: float = 0.0  # physical y of the top of the raster

    @classmethod
    def build(cls, kind: str, cfg: PhantomConfig) -> "_Geometry":
        h, w = cfg.size
        if kind == "linear":
            depth = cfg.linear_depth_mm
            return cls(kind, h, w, depth / h, depth, width_mm=depth * w / h)
        r, depth, half = cfg.convex_radius_mm, cfg.convex_depth_mm, math.radians(cfg.convex_fov_deg) / 2
        box_w = 2 * (r + depth) * math.sin(half)
        y_top = r * math.cos(half) - r
        box_h = depth - y_top
        pixel = max(box_w / w, box_h / h)
        return cls(kind, h, w, pixel, depth, radius_mm=r, fov_rad=2 * half, y_top=y_top)

    def raster_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical (x, y) of every output pixel centre, (H, W) float32 each."""
        xs = (np.arange(self.width, dtype=np.float32) + 0.5 - self.width / 2) * self.pixel_mm
        ys = (np.arange(self.height, dtype=np.float32) + 0.5) * self.pixel_mm + self.y_top
        return np.meshgrid(xs, ys)

    def lines(self, count: int, pad: int) -> tuple[np.ndarray, float]:
        """Scan-line coordinates (x in mm, or angle in rad), ``pad`` extra lines each side."""
        span = self.width_mm if self.kind == "linear" else self.fov_rad
        step = span / count
        return (np.arange(-pad, count + pad, dtype=np.float64) + 0.5 - count / 2) * step, step

    def beam_xy(self, t: np.ndarray, lines: np.ndarray, steer: float):
        """Physical (x, y) of beam-grid samples: t (Nt,) mm along the beam, lines (L,)."""
        if self.kind == "linear":
            x = lines[None, :] + t[:, None] * math.sin(steer)
            y = np.broadcast_to(t[:, None] * math.cos(steer), x.shape)
            return x, y
        r, alpha = self.radius_mm, lines[None, :] + steer
        x = r * np.sin(lines)[None, :] + t[:, None] * np.sin(alpha)
        y = r * np.cos(lines)[None, :] - r + t[:, None] * np.cos(alpha)
        return x, y

    def to_beam(self, x: np.ndarray, y: np.ndarray, steer: float):
        """Inverse of :meth:`beam_xy` in closed form: (t, line) of physical points."""
        if self.kind == "linear":
            t = y / math.cos(steer)
            return t, x - y * math.tan(steer)
        # Q = P + (0, R) = R (sin a, cos a) + t u(a + steer); Q x u = -R sin(steer) gives the line.
        qx, qy = x, y + self.radius_mm
        rho = np.hypot(qx, qy)
        beta = np.arctan2(qx, qy)
        alpha = beta + np.arcsin(np.clip(self.radius_mm * math.sin(steer) / np.maximum(rho, 1e-6), -1, 1))
        t = qx * np.sin(alpha) + qy * np.cos(alpha) - self.radius_mm * math.cos(steer)
        return t, alpha - steer

    def layer_coords(self, x: np.ndarray, y: np.ndarray):
        """(lateral, depth below the skin) in mm: layers follow the probe face (curved on convex)."""
        if self.kind == "linear":
            return x, y
        qy = y + self.radius_mm
        return self.radius_mm * np.arctan2(x, qy), np.hypot(x, qy) - self.radius_mm

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pixels inside the unsteered image (the whole raster for linear, the fan for convex)."""
        t, line = self.to_beam(x, y, 0.0)
        half = (self.width_mm if self.kind == "linear" else self.fov_rad) / 2
        return (t >= 0) & (t <= self.depth_mm) & (np.abs(line) <= half)

    def place(self, u: float, v: float) -> tuple[float, float]:
        """Physical point at lateral fraction u in [-1, 1] and depth fraction v in [0, 1]."""
        if self.kind == "linear":
            return u * self.width_mm / 2, v * self.depth_mm
        a = u * self.fov_rad / 2
        rr = self.radius_mm + v * self.depth_mm
        return rr * math.sin(a), rr * math.cos(a) - self.radius_mm


# ---------------------------------------------------------------------------------------------
# Smooth random fields (sums of random cosines: evaluable at any point, so warps and motion are
# exact) and the scatterer texture.


@dataclasses.dataclass
class _CosineField:
    kx: np.ndarray
    ky: np.ndarray
    phase: np.ndarray
    scale: float

    @classmethod
    def draw(cls, rng: np.random.Generator, length_mm: float, modes: int, rms: float,
             axial_length_mm: float | None = None) -> "_CosineField":
        """Unit-variance-times-``rms`` field with correlation length ``length_mm`` (lateral) and
        ``axial_length_mm`` (default: the same; shorter gives horizontal fibre-like streaks)."""
        kx = rng.normal(0.0, 1.0 / (2 * math.pi * length_mm), size=modes)
        ky = rng.normal(0.0, 1.0 / (2 * math.pi * (axial_length_mm or length_mm)), size=modes)
        return cls(kx, ky, rng.uniform(0, 2 * math.pi, modes), rms * math.sqrt(2.0 / modes))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.zeros(np.shape(x), dtype=np.float32)
        for kx, ky, ph in zip(self.kx, self.ky, self.phase):
            out += np.cos(2 * math.pi * (kx * x + ky * y) + ph).astype(np.float32)
        return out * np.float32(self.scale)


def _coarse(field: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, step: int = 4):
    """Evaluate a smooth field on every ``step``-th sample and interpolate back (it is smooth)."""
    if min(x.shape) < 4 * step:
        return field(x, y)
    small = field(np.ascontiguousarray(x[::step, ::step]), np.ascontiguousarray(y[::step, ::step]))
    full = cv2.resize(small, (small.shape[1] * step, small.shape[0] * step), interpolation=cv2.INTER_LINEAR)
    return full[: x.shape[0], : x.shape[1]]


class _Texture:
    """Complex Gaussian scatterer amplitudes fixed in tissue coordinates, unit mean power.

    Band-limited (a 0.7-cell Gaussian) so that interpolating it at arbitrary points neither
    aliases nor modulates its variance; cells are finer than any beam-grid sample.
    """

    def __init__(self, rng: np.random.Generator, bounds: tuple[float, float, float, float], spacing: float):
        x0, y0, x1, y1 = bounds
        self.x0, self.y0, self.spacing = x0, y0, spacing
        nx, ny = int(math.ceil((x1 - x0) / spacing)) + 2, int(math.ceil((y1 - y0) / spacing)) + 2
        if nx * ny > 40_000_000:
            raise InputError(f"phantom texture of {nx} x {ny} cells is too large; use a smaller size")
        noise = rng.standard_normal((ny, nx, 2), dtype=np.float32)
        sigma = 0.7
        kernel = cv2.getGaussianKernel(7, sigma).ravel()
        gain = float(np.sum(kernel**2))  # variance factor per axis of the separable blur
        self.field = cv2.GaussianBlur(noise, (7, 7), sigma) / np.float32(math.sqrt(2.0 * gain * gain))

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        mx = ((x - self.x0) / self.spacing).astype(np.float32)
        my = ((y - self.y0) / self.spacing).astype(np.float32)
        s = cv2.remap(self.field, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return s[..., 0] + 1j * s[..., 1]


# ---------------------------------------------------------------------------------------------
# The scene: tissue drawn per seed, evaluated at physical points.


@dataclasses.dataclass
class _Ellipse:
    x: float
    y: float
    rx: float
    ry: float
    angle: float
    db: float
    fluid: bool = False
    wall_db: float | None = None
    wall_mm: float = 0.0
    shadow: bool = False

    def radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radius: < 1 inside."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.x, y - self.y
        u, v = c * dx + s * dy, -s * dx + c * dy
        return np.sqrt((u / self.rx) ** 2 + (v / self.ry) ** 2)


@dataclasses.dataclass
class _Interface:
    """A specular boundary d = depth + amp sin(2 pi lateral / wavelength + phase) in layer coords."""

    depth: float
    amp: float
    wavelength: float
    phase: float
    db: float
    lateral_range: tuple[float, float] = (-1e9, 1e9)

    def offset(self, lateral: np.ndarray, d: np.ndarray) -> np.ndarray:
        return d - (self.depth + self.amp * np.sin(2 * math.pi * lateral / self.wavelength + self.phase))

    def slope(self, lateral: np.ndarray) -> np.ndarray:
        return self.amp * 2 * math.pi / self.wavelength * np.cos(2 * math.pi * lateral / self.wavelength + self.phase)


@dataclasses.dataclass
class _Scene:
    organ: str
    texture: _CosineField
    skin_mm: float
    fat: _Interface  # bottom of the subcutaneous fat (a specular fascia)
    fat_db: float
    interfaces: list[_Interface]
    blobs: list[_Ellipse]  # organ regions, nodules, cysts, vessels, calcifications (drawn in order)
    points: list[tuple[float, float]]
    muscle_mm: float  # thickness of the striated layer under the fat
    striation: _CosineField
    micro: _Texture  # parenchymal micro-structure (anatomy: shared by both devices, unlike speckle)


def _draw_scene(rng: np.random.Generator, geo: _Geometry, tm: TissueModel, organ: str) -> _Scene:
    depth = geo.depth_mm

    def count(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))

    def u_v(v_lo: float = 0.25, v_hi: float = 0.85, u_span: float = 0.75) -> tuple[float, float]:
        return geo.place(rng.uniform(-u_span, u_span), rng.uniform(v_lo, v_hi))

    skin = 0.02 * depth if geo.kind == "linear" else 0.012 * depth
    fat_depth = rng.uniform(0.08, 0.16) * depth * (1.6 if organ == "breast" else 1.0)
    lateral_span = geo.width_mm if geo.kind == "linear" else geo.fov_rad * geo.radius_mm
    fat = _Interface(fat_depth, rng.uniform(0.0, 0.03) * depth, rng.uniform(0.8, 2.0) * lateral_span,
                     rng.uniform(0, 2 * math.pi), tm.interface_db - 4)
    interfaces = []
    for _ in range(count(tm.interfaces)):
        interfaces.append(_Interface(rng.uniform(0.35, 0.9) * depth, rng.uniform(0.02, 0.08) * depth,
                                     rng.uniform(0.6, 1.5) * lateral_span, rng.uniform(0, 2 * math.pi),
                                     tm.interface_db + rng.uniform(-6, 0)))
    blobs: list[_Ellipse] = []
    if organ == "kidney":  # cortex (hypoechoic) around a bright sinus
        x, y = geo.place(rng.uniform(-0.2, 0.2), rng.uniform(0.5, 0.6))
        ang = rng.uniform(-0.4, 0.4)
        blobs.append(_Ellipse(x, y, 0.32 * depth, 0.18 * depth, ang, -5.0))
        blobs.append(_Ellipse(x, y, 0.17 * depth, 0.07 * depth, ang, 5.0))
    if organ == "thyroid":  # a solid hypoechoic nodule
        x, y = u_v(0.35, 0.7)
        r = rng.uniform(0.08, 0.14) * depth
        blobs.append(_Ellipse(x, y, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, math.pi), -10.0))
    n_vessels = count(tm.vessels) + (1 if organ == "carotid" else 0) + (2 if organ == "liver" else 0)
    for i in range(n_vessels):
        if organ == "carotid" and i == 0:  # long-axis common carotid artery across the image
            x, y = geo.place(0.0, rng.uniform(0.35, 0.55))
            rx, ry = 0.9 * lateral_span, rng.uniform(0.1, 0.14) * depth
            ang = rng.uniform(-0.08, 0.08)
        else:  # cross-section of a vessel
            x, y = u_v(0.3, 0.85)
            rx = rng.uniform(0.03, 0.07) * depth
            ry, ang = rx * rng.uniform(0.8, 1.0), rng.uniform(0, math.pi)
        blobs.append(_Ellipse(x, y, rx, ry, ang, tm.cyst_db, fluid=True, wall_db=tm.vessel_wall_db,
                              wall_mm=max(0.012 * depth, 0.4)))
    for _ in range(count(tm.cysts)):
        x, y = u_v(0.3, 0.85)
        r = rng.uniform(*tm.cyst_radius) * depth
        blobs.append(_Ellipse(x, y, r, r * rng.uniform(0.75, 1.0), rng.uniform(0, math.pi), tm.cyst_db, fluid=True))
    if rng.uniform() < tm.calcification_probability:
        x, y = u_v(0.3, 0.7)
        r = rng.uniform(0.015, 0.03) * depth
        blobs.append(_Ellipse(x, y, r * 2.0, r, rng.uniform(-0.3, 0.3), 18.0, shadow=True))
    points = [u_v(0.15, 0.9, 0.85) for _ in range(count(tm.points))]
    points = [p for p in points if not any(b.fluid and b.radius(*p) < 1.3 for b in blobs)]
    texture = _CosineField.draw(rng, tm.texture_scale_mm * depth / 40.0, 12, tm.texture_db)
    # a muscle (linear) or abdominal-wall (convex) layer under the fat: fibre-like striations
    muscle = rng.uniform(0.12, 0.25) * depth
    striation = _CosineField.draw(rng, 0.2 * depth, 16, tm.striation_db, axial_length_mm=0.015 * depth)
    # fine anatomical texture of the parenchyma, in tissue coordinates (both devices see it)
    reach = 0.3 * depth + 10.0
    half = (geo.width * geo.pixel_mm) / 2 + reach
    bounds = (-half, geo.y_top - reach, half, geo.y_top + geo.height * geo.pixel_mm + reach)
    micro = _Texture(rng, bounds, tm.micro_scale * depth)
    return _Scene(organ, texture, skin, fat, -7.0 if organ == "breast" else -4.0, interfaces, blobs, points,
                  muscle, striation, micro)


def _evaluate(scene: _Scene, geo: _Geometry, tm: TissueModel, x: np.ndarray, y: np.ndarray, steer: float,
              grid_mm: float):
    """Tissue at physical points (tissue coordinates): amplitude (linear, >= 0), excess
    attenuation (dB/cm/MHz over the tissue average) and the specular amplitude (dB-calibrated
    peak, before the PSF normalisation), all float32 like ``x``."""
    lateral, d = geo.layer_coords(x, y)
    db = _coarse(scene.texture, x, y)
    # real part of a unit-power complex field has variance 1/2
    db += np.float32(tm.micro_db * math.sqrt(2.0)) * scene.micro.sample(x, y).real.astype(np.float32)
    db += np.where(d < scene.skin_mm, 6.0, 0.0).astype(np.float32)
    fat_offset = scene.fat.offset(lateral, d)
    db += np.where((d >= scene.skin_mm) & (fat_offset < 0), scene.fat_db, 0.0).astype(np.float32)
    in_muscle = (fat_offset >= 0) & (fat_offset < scene.muscle_mm)
    if in_muscle.any():
        db += np.where(in_muscle, _coarse(scene.striation, lateral, d, step=2) - 2.0, 0.0).astype(np.float32)
    excess = np.zeros_like(db)
    fluid = np.zeros(db.shape, dtype=bool)
    alpha0 = tm.attenuation_db_cm_mhz
    for blob in scene.blobs:
        rad = blob.radius(x, y)
        inside = rad < 1.0
        if blob.fluid:
            fluid |= inside
            db = np.where(inside, blob.db, db)
            excess = np.where(inside, alpha0 * (tm.fluid_attenuation - 1.0), excess)
            if blob.wall_db is not None:
                ring = (rad >= 1.0) & (rad < 1.0 + blob.wall_mm / min(blob.rx, blob.ry))
                db = np.where(ring, blob.wall_db, db)
        elif blob.shadow:  # bright upper surface; the sound stops inside: shadow below
            db = np.where(inside, blob.db, db)
            core = blob.radius(x, y - 0.5 * blob.ry) < 0.6
            excess = np.where(core, tm.shadow_attenuation_db_cm_mhz - alpha0, excess)
        else:
            db = np.where(inside, db + blob.db, db)
    amplitude = np.power(10.0, db / 20.0, dtype=np.float32)
    band = max(0.15, 0.6 * grid_mm)  # thickness (sigma) of a specular echo layer
    spec = np.zeros_like(amplitude)
    for iface in [scene.fat, *scene.interfaces]:
        off = iface.offset(lateral, d)
        near = np.abs(off) < 4 * band
        if not near.any():
            continue
        incidence = np.arctan(iface.slope(lateral[near])) + steer
        gain = 10 ** (iface.db / 20) * np.abs(np.cos(incidence)) ** tm.specular_power
        spec[near] += (gain * np.exp(-0.5 * (off[near] / band) ** 2)).astype(np.float32)
    spec[fluid] = 0.0  # no tissue interface runs through a cyst or a vessel lumen
    return amplitude, excess, spec


# ---------------------------------------------------------------------------------------------
# Acquisition and image formation for one device.


@dataclasses.dataclass
class _Warp:
    """Frame coordinates -> tissue coordinates: misregistration + probe motion + breathing."""

    field_x: _CosineField | None = None
    field_y: _CosineField | None = None
    shift_x: float = 0.0
    breathing: float = 0.0  # axial displacement at the bottom of the image, mm
    depth_mm: float = 1.0

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt, yt = x + self.shift_x, y + self.breathing * np.clip(y / self.depth_mm, 0, None)
        if self.field_x is not None:
            xt = xt + _coarse(self.field_x, x, y)
            yt = yt + _coarse(self.field_y, x, y)
        return xt, yt

    def inverse_point(self, xt: float, yt: float) -> tuple[float, float]:
        """Frame position of a tissue point (fixed-point iterations; displacements are small)."""
        x, y = xt, yt
        for _ in range(4):
            fx, fy = self(np.array([[x]]), np.array([[y]]))
            x, y = x - (float(fx[0, 0]) - xt), y - (float(fy[0, 0]) - yt)
        return x, y


@dataclasses.dataclass
class _Beam:
    """A device's beam on one geometry: grid, PSF and scan-conversion maps (cached per frame set)."""

    geo: _Geometry
    dev: DeviceModel
    f0: float
    t: np.ndarray  # (Nt,) mm, padded
    lines: np.ndarray  # (L,) padded
    line_step: float
    pad_t: int
    pad_l: int
    n_t: int
    n_l: int
    sigma_t: float  # axial PSF sigma, mm
    h_lat: np.ndarray  # (Nt, L) lateral transfer, unit power per row
    h_ax: np.ndarray  # (Nt,) axial transfer, unit power
    spec_gain: np.ndarray  # (Nt,) response of the PSF to a unit specular band

    @classmethod
    def build(cls, geo: _Geometry, dev: DeviceModel, band_mm: Callable[[float], float]) -> "_Beam":
        f0 = dev.f0(geo.kind)
        lam = C_MM_PER_US / f0
        # steered beams travel depth / cos(steer) to reach the bottom of the image
        beam_depth = geo.depth_mm / math.cos(max(abs(math.radians(a)) for a in dev.compounding_deg))
        n_t = int(round(dev.axial_density * beam_depth / geo.pixel_mm))
        n_l = max(8, int(round(dev.line_density * (geo.width_mm if geo.kind == "linear"
                                                   else geo.fov_rad * (geo.radius_mm + geo.depth_mm / 2)) / geo.pixel_mm)))
        dt = beam_depth / n_t
        # Axial: two-way pulse with Gaussian spectrum, FWHM bandwidth B f0 -> depth FWHM c TBP / (2 B f0).
        sigma_t = C_MM_PER_US * GAUSS_TBP / (2 * dev.fractional_bandwidth * f0) / GAUSS_FWHM
        pad_t = int(math.ceil(4 * sigma_t / dt)) + 4
        t = (np.arange(-pad_t, n_t + pad_t) + 0.5) * dt
        # Lateral: Gaussian beam, FWHM lambda F# at the focus, growing with distance from it.
        w0 = lam * dev.f_number
        zf, zr = dev.focus_depth * geo.depth_mm, dev.depth_of_field * geo.depth_mm
        fwhm = w0 * np.sqrt(1 + ((t - zf) / zr) ** 2)
        sigma_x = fwhm / GAUSS_FWHM
        reach = max(float(2 * fwhm.max() + 4 * sigma_x.max()), 3 * dev.clutter_width_mm if dev.clutter_db > -50 else 0.0)
        _, step = geo.lines(n_l, 0)
        min_spacing = step if geo.kind == "linear" else step * geo.radius_mm
        pad_l = int(math.ceil(reach / min_spacing)) + 2
        lines, step = geo.lines(n_l, pad_l)
        spacing = np.full_like(t, step) if geo.kind == "linear" else step * (geo.radius_mm + np.maximum(t, 0.0))
        n_lp = len(lines)
        k = np.fft.fftfreq(n_lp)[None, :] / spacing[:, None]  # cycles per mm at each depth
        sig = sigma_x[:, None]
        side = 10 ** (dev.sidelobe_db / 20)
        clutter = 10 ** (dev.clutter_db / 20)
        sc = dev.clutter_width_mm
        # FT of g(x) + s (g(x - d) + g(x + d)) + c g_wide(x), g(x) = exp(-x^2 / 2 sigma^2)
        h = sig * np.exp(-2 * math.pi**2 * sig**2 * k**2) * (1 + 2 * side * np.cos(2 * math.pi * k * 2 * fwhm[:, None]))
        h = h + clutter * sc * np.exp(-2 * math.pi**2 * sc**2 * k**2)
        h_lat = h / np.sqrt(np.mean(h**2, axis=1, keepdims=True))
        kz = np.fft.fftfreq(len(t), d=dt)
        h_ax = np.exp(-2 * math.pi**2 * sigma_t**2 * kz**2)
        h_ax = h_ax / np.sqrt(np.mean(h_ax**2))
        # A specular layer is coherent along the beam rows: its lateral gain is h_lat at k = 0;
        # its axial gain is that of the band profile through the axial filter.
        band = band_mm(dt)
        n = np.arange(len(t)) - len(t) // 2
        profile = np.exp(-0.5 * (n * dt / band) ** 2)
        axial_peak = float(np.abs(np.fft.ifft(np.fft.fft(np.fft.ifftshift(profile)) * h_ax)).max())
        spec_gain = h_lat[:, 0] * axial_peak
        return cls(geo, dev, f0, t, lines, step, pad_t, pad_l, n_t, n_l, sigma_t,
                   h_lat.astype(np.float32), h_ax.astype(np.float32), spec_gain.astype(np.float32))

    def lateral_psf(self, dx: np.ndarray, row: int) -> np.ndarray:
        """Lateral PSF (peak 1 for the main lobe) at offset dx mm, for point targets."""
        fwhm = self.dev.f_number * C_MM_PER_US / self.f0 * math.sqrt(
            1 + ((self.t[row] - self.dev.focus_depth * self.geo.depth_mm) / (self.dev.depth_of_field * self.geo.depth_mm)) ** 2)
        sig = fwhm / GAUSS_FWHM
        g = lambda v: np.exp(-0.5 * (v / sig) ** 2)  # noqa: E731
        side = 10 ** (self.dev.sidelobe_db / 20)
        clutter = 10 ** (self.dev.clutter_db / 20)
        return g(dx) + side * (g(dx - 2 * fwhm) + g(dx + 2 * fwhm)) + clutter * np.exp(-0.5 * (dx / self.dev.clutter_width_mm) ** 2)

    def spacing_at(self, row: int) -> float:
        return self.line_step if self.geo.kind == "linear" else self.line_step * (self.geo.radius_mm + max(self.t[row], 0.0))


def _filter(field: np.ndarray, beam: _Beam) -> np.ndarray:
    """Depth-dependent PSF: lateral transfer row by row, then the axial transfer (FFT domain)."""
    spec = np.fft.fft(field, axis=1)
    spec *= beam.h_lat
    lat = np.fft.ifft(spec, axis=1)
    spec = np.fft.fft(lat, axis=0)
    spec *= beam.h_ax[:, None]
    return np.fft.ifft(spec, axis=0)


def _acquire(beam: _Beam, scene: _Scene, tm: TissueModel, texture: _Texture, warp: _Warp, steer: float,
             rng: np.random.Generator) -> np.ndarray:
    """Envelope on the (unpadded) beam grid, (n_t, n_l) float32, unit RMS for 0 dB tissue."""
    dev, geo = beam.dev, beam.geo
    x, y = beam.geo.beam_xy(beam.t, beam.lines, steer)
    x, y = x.astype(np.float32), np.ascontiguousarray(y, dtype=np.float32)
    xt, yt = warp(x, y)
    dt = float(beam.t[1] - beam.t[0])
    amplitude, excess, spec = _evaluate(scene, geo, tm, xt, yt, steer, dt)
    # Round-trip attenuation in excess of the tissue average; TGC removes the average.
    loss_db = 2 * beam.f0 * np.cumsum(np.maximum(excess, -tm.attenuation_db_cm_mhz), axis=0) * (dt / 10.0)
    transmission = np.power(10.0, -loss_db / 20.0).astype(np.float32)
    scatterers = texture.sample(xt, yt)
    # specular echoes are mostly coherent, mottled by the rough interface (the scatterer term)
    specular = spec / np.maximum(beam.spec_gain[:, None], 1e-6) * (0.7 + 0.5 * scatterers)
    field = (amplitude * scatterers + specular) * transmission
    tgc = np.power(10.0, 2 * beam.f0 * tm.attenuation_db_cm_mhz * np.maximum(beam.t, 0) / 10.0 / 20.0)[:, None]
    shape = field.shape
    field += (10 ** (dev.noise_db / 20) * tgc) * _complex_noise(rng, shape)
    if dev.haze_db > -60:
        haze = 10 ** (dev.haze_db / 20) * np.exp(-np.maximum(beam.t, 0) / dev.haze_depth_mm)[:, None]
        first = scene.fat.depth
        for order in (2, 3, 4):  # reverberation copies of the fascia echo
            haze = haze + 10 ** (dev.reverb_db / 20) * 0.6 ** (order - 2) * np.exp(
                -0.5 * ((beam.t - order * first) / (0.4 * first)) ** 2)[:, None]
        field += haze * _complex_noise(rng, shape)
    iq = _filter(field.astype(np.complex64), beam)
    _add_points(iq, beam, scene, tm, warp, steer, transmission)
    envelope = np.abs(iq[beam.pad_t: beam.pad_t + beam.n_t, beam.pad_l: beam.pad_l + beam.n_l])
    return envelope.astype(np.float32)


def _complex_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    parts = rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(math.sqrt(0.5))
    return parts[0] + 1j * parts[1]


def _add_points(iq: np.ndarray, beam: _Beam, scene: _Scene, tm: TissueModel, warp: _Warp, steer: float,
                transmission: np.ndarray) -> None:
    """Point targets rendered with the analytic PSF (linearity: the echo of a delta is the PSF)."""
    dt = float(beam.t[1] - beam.t[0])
    amp = 10 ** (tm.point_db / 20)
    for px, py in scene.points:
        fx, fy = warp.inverse_point(px, py)
        t_p, line_p = beam.geo.to_beam(np.array(fx), np.array(fy), steer)
        row = int(round(float(t_p) / dt - 0.5)) + beam.pad_t
        col = (float(line_p) - beam.lines[0]) / beam.line_step
        if not (0 <= row < len(beam.t) and 0 <= col < len(beam.lines)):
            continue
        rows = np.arange(max(0, row - int(4 * beam.sigma_t / dt) - 1), min(len(beam.t), row + int(4 * beam.sigma_t / dt) + 2))
        axial = np.exp(-0.5 * ((beam.t[rows] - float(t_p)) / beam.sigma_t) ** 2)
        dx = (np.arange(len(beam.lines)) - col) * beam.spacing_at(row)
        lateral = beam.lateral_psf(dx, row)
        iq[rows[:, None], np.arange(len(beam.lines))[None, :]] += (
            amp * transmission[row, int(col)] * axial[:, None] * lateral[None, :]).astype(np.complex64)


def _scan_maps(beam: _Beam, steer: float, xo: np.ndarray, yo: np.ndarray):
    """cv2.remap maps from the output raster into the unpadded beam grid, and their validity."""
    t, line = beam.geo.to_beam(xo, yo, steer)
    dt = float(beam.t[1] - beam.t[0])
    row = t / dt - 0.5
    col = (line - beam.lines[beam.pad_l]) / beam.line_step
    valid = (row >= -0.5) & (row <= beam.n_t - 0.5) & (col >= -0.5) & (col <= beam.n_l - 0.5)
    return row.astype(np.float32), col.astype(np.float32), valid


@functools.lru_cache(maxsize=8)
def _optics(geo_fields: tuple, dev_fields: tuple):
    """Beam, raster and scan-conversion maps of a device on a geometry: the same for every scene,
    so cached (the arrays are read-only by convention)."""
    geo, dev = _Geometry(*geo_fields), DeviceModel(*dev_fields)
    beam = _Beam.build(geo, dev, lambda grid: max(0.15, 0.6 * grid))
    xo, yo = geo.raster_xy()
    inside = geo.inside(xo, yo)
    maps = []
    for steer_deg in dev.compounding_deg:
        steer = math.radians(steer_deg)
        row, col, valid = _scan_maps(beam, steer, xo, yo)
        maps.append((steer, row, col, (valid & inside).astype(np.float32)))
    weight = sum(m[3] for m in maps)
    return beam, xo, yo, inside, maps, np.where(weight > 0, weight, 1.0).astype(np.float32)


class _Device:
    """Renders one device's frames of one scene: beam, texture, scan conversion, display."""

    def __init__(self, geo: _Geometry, dev: DeviceModel, tm: TissueModel, rng: np.random.Generator, margin_mm: float):
        self.geo, self.dev, self.tm = geo, dev, tm
        self.beam, self.xo, self.yo, self.inside, self.maps, self.weight = _optics(
            dataclasses.astuple(geo), dataclasses.astuple(dev))
        dt = float(self.beam.t[1] - self.beam.t[0])
        spacing = min(dt, self.beam.line_step * (geo.radius_mm if geo.kind == "convex" else 1.0))
        steer_max = max(abs(math.radians(s)) for s in dev.compounding_deg)
        # the texture covers every sample of every steered frame; the lateral PSF padding beyond
        # reads it reflected, which only feeds PSF tails that are cropped away
        reach = geo.depth_mm * math.tan(steer_max) + margin_mm + 3.0
        x_half = geo.width * geo.pixel_mm / 2 + reach
        bounds = (-x_half, geo.y_top - margin_mm - 3.0, x_half, geo.y_top + geo.height * geo.pixel_mm + reach)
        self.texture = _Texture(rng, bounds, spacing / 1.2)

    def frame(self, scene: _Scene, warp: _Warp, rng: np.random.Generator) -> np.ndarray:
        """uint8 (H, W) image of ``scene`` seen through ``warp``."""
        total = np.zeros(self.xo.shape, dtype=np.float32)
        sigma = max(0.5 * self.dev.axial_density * 0.5, 0.3)
        for steer, row, col, valid in self.maps:
            env = _acquire(self.beam, scene, self.tm, self.texture, warp, steer, rng)
            env = cv2.GaussianBlur(env, (1, 0), sigmaX=0.1, sigmaY=sigma)  # display anti-alias, axial
            total += cv2.remap(env, col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) * valid
        return self._display(total / self.weight)

    def _display(self, envelope: np.ndarray) -> np.ndarray:
        """Log compression to the dynamic range, tissue at ``tissue_grey``; black outside the image."""
        dr = self.dev.dynamic_range_db
        top = dr + RAYLEIGH_MEAN_DB - self.dev.tissue_grey * dr / 255.0
        db = 20.0 * np.log10(np.maximum(envelope, 1e-8))
        grey = 255.0 * (db - (top - dr)) / dr
        grey = np.where(self.inside, grey, 0.0)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Public API.


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n)]


def _setup(seed: int, cfg: PhantomConfig, motion_mm: float):
    cfg.validate()
    scene_rng, low_rng, high_rng, warp_rng, noise_rng = _streams(seed, 5)
    kind = cfg.geometry
    if kind == "mixed":
        kind = "linear" if scene_rng.uniform() < 0.5 else "convex"
    organs = LINEAR_ORGANS if kind == "linear" else CONVEX_ORGANS
    organ = organs[int(scene_rng.integers(len(organs)))]
    geo = _Geometry.build(kind, cfg)
    scene = _draw_scene(scene_rng, geo, cfg.tissue, organ)
    mis_mm = cfg.misregistration_px * geo.pixel_mm
    # texture margin independent of the misregistration, so the high image does not depend on it
    margin = motion_mm + 0.05 * geo.depth_mm + 2.0
    high = _Device(geo, cfg.high, cfg.tissue, high_rng, margin)
    low = _Device(geo, cfg.low, cfg.tissue, low_rng, margin)
    mis = _Warp(depth_mm=geo.depth_mm)
    if mis_mm > 0:
        length = cfg.misregistration_scale * geo.depth_mm
        # per-component RMS mis_mm / sqrt(2): the displacement magnitude has RMS mis_mm
        mis.field_x = _CosineField.draw(warp_rng, length, 6, mis_mm / math.sqrt(2))
        mis.field_y = _CosineField.draw(warp_rng, length, 6, mis_mm / math.sqrt(2))
    return geo, scene, high, low, mis, noise_rng


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


def _plain_tissue(scene: _Scene, geo: _Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pixels of ordinary tissue: below the fat, away from every blob and interface."""
    lateral, d = geo.layer_coords(x, y)
    ok = scene.fat.offset(lateral, d) > scene.muscle_mm + 1.0
    for blob in scene.blobs:
        ok &= blob.radius(x, y) > 1.15 + (blob.wall_mm / min(blob.rx, blob.ry) if blob.wall_db else 0)
    for iface in scene.interfaces:
        ok &= np.abs(iface.offset(lateral, d)) > 1.0
    return ok


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


def _pair_job(args: tuple[int, PhantomConfig]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    seed, cfg = args
    low, high, info = simulate_pair(seed, cfg)
    info.pop("regions")
    return low, high, info


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "phantom.json").is_file())):
        raise InputError(f"{out} exists and is not a phantom output folder; choose a new or empty --out")


def write_pairs(out: str | Path, n: int, cfg: PhantomConfig | None = None, seed: int = 0, workers: int = 1,
                progress: bool = False) -> dict[str, Any]:
    """Write ``n`` pairs: ``out/low/<organ>_<i>.png``, ``out/high/<organ>_<i>.png`` (matching names)
    and ``out/phantom.json`` (config, seeds, organs). Pair i uses seed ``seed * 1_000_003 + i``.
    The folder is written atomically: a failure leaves no half-written set. Returns the json."""
    cfg = (cfg or PhantomConfig()).validate()
    if n < 1:
        raise InputError(f"--pairs must be at least 1, got {n}")
    out = Path(out)
    _prepare_out(out)
    seeds = [seed * 1_000_003 + i for i in range(n)]
    start = time.perf_counter()
    jobs = [(s, cfg) for s in seeds]
    with atomic_dir(out) as tmp:
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
               seed: int = 0, png: bool = False, progress: bool = False) -> dict[str, Any]:
    """Write ``out/low.mp4`` and ``out/high.mp4`` (mp4v, grey) of one scene, plus ``out/phantom.json``
    and, with ``png``, every frame as ``out/low/frame_0000.png`` / ``out/high/...``. Atomic."""
    cfg = cfg or PhantomConfig()
    if fps is not None:
        if fps <= 0:
            raise InputError(f"--fps must be positive, got {fps}")
        cfg = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, fps=float(fps)))
    cfg.validate()
    out = Path(out)
    _prepare_out(out)
    start = time.perf_counter()
    low, high = simulate_clip(seed, cfg, frames, progress=progress)
    with atomic_dir(out) as tmp:
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
