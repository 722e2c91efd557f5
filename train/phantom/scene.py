"""The tissue of a phantom scene: drawn per seed in physical coordinates (mm), evaluated at any point.

:class:`_Geometry` maps between the output raster, physical (x lateral, y depth) coordinates and a
probe's beam grid. :func:`_draw_scene` draws the scene of one organ: smooth echogenicity variations,
skin and fat layers, specular interfaces (fascia, capsule, diaphragm), anechoic cysts and vessels
with posterior enhancement, bright calcifications that cast acoustic shadows, and point targets.
``organ`` presets (thyroid, carotid, breast, liver, kidney: the USenhance 2023 organs) change what is
drawn. :func:`_evaluate` gives the tissue's amplitude, excess attenuation and specular echo at any
physical points; :func:`_plain_tissue` marks ordinary tissue (ground truth for speckle metrics).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import cv2
import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.train.phantom.config import PhantomConfig, TissueModel

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
        """float32 (shape of x): the sum of the modes cos(2 pi (kx x + ky y) + phase), each evaluated
        in float32 (the draws rounded to float32) in two reused buffers. Until 2026-11 the modes
        were evaluated in float64 and rounded afterwards: float32 takes 19 % less CPU per image and
        changes the images on 2.9e-5 of their pixels, by at most 2 grey levels (12 pairs at 256, 3 at
        512 and an 8-frame clip, all seeds' outputs compared; docs/benchmarks/phantom.md): phase
        errors of at most 1e-5 rad against fields of several dB or tenths of a millimetre."""
        shape = np.shape(x)
        out = np.zeros(shape, dtype=np.float32)
        arg, tmp = np.empty(shape, np.float32), np.empty(shape, np.float32)
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        two_pi = np.float32(2 * math.pi)
        for kx, ky, ph in zip(self.kx, self.ky, self.phase):
            np.multiply(np.float32(kx), x, out=arg)
            np.multiply(np.float32(ky), y, out=tmp)
            arg += tmp
            arg *= two_pi
            arg += np.float32(ph)
            np.cos(arg, out=arg)
            out += arg
        out *= np.float32(self.scale)
        return out


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
        self.field = cv2.GaussianBlur(noise, (7, 7), sigma)
        self.field /= np.float32(math.sqrt(2.0 * gain * gain))

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


def _draw_scene(rng: np.random.Generator, geo: _Geometry, tm: TissueModel, organ: str,
                extra_rng: np.random.Generator | None = None) -> _Scene:
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
    if tm.extras:
        _draw_extras(extra_rng if extra_rng is not None else rng, geo, tm, blobs, points)
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


def _draw_extras(rng: np.random.Generator, geo: _Geometry, tm: TissueModel, blobs: list[_Ellipse],
                 points: list[tuple[float, float]]) -> None:
    """TissueModel.extras: a long bright boundary, maybe a bone shadow, maybe a large anechoic
    region with isolated point targets (appended to ``blobs`` and ``points``)."""
    depth = geo.depth_mm
    lateral_span = geo.width_mm if geo.kind == "linear" else geo.fov_rad * (geo.radius_mm + 0.5 * depth)
    # diaphragm / fascia: a thin, long, slightly tilted bright band across most of the image
    x, y = geo.place(rng.uniform(-0.2, 0.2), rng.uniform(0.25, 0.85))
    blobs.append(_Ellipse(x, y, rng.uniform(0.5, 1.0) * lateral_span, rng.uniform(0.008, 0.025) * depth,
                          rng.uniform(-0.25, 0.25), float(rng.uniform(*tm.boundary_db))))
    if rng.uniform() < tm.bone_probability:  # rib / bone: bright curved top, shadow to the bottom
        x, y = geo.place(rng.uniform(-0.6, 0.6), rng.uniform(0.15, 0.5))
        r = rng.uniform(0.04, 0.09) * depth
        blobs.append(_Ellipse(x, y, r * rng.uniform(1.5, 2.5), r * 0.6, rng.uniform(-0.3, 0.3), 20.0, shadow=True))
    if rng.uniform() < tm.dark_probability:  # large anechoic region with point targets inside
        x, y = geo.place(rng.uniform(-0.4, 0.4), rng.uniform(0.35, 0.65))
        r = rng.uniform(0.2, 0.4) * depth
        big = _Ellipse(x, y, r * rng.uniform(1.0, 1.6), r, rng.uniform(-0.5, 0.5), tm.cyst_db, fluid=True)
        blobs.append(big)
        c, s = math.cos(big.angle), math.sin(big.angle)
        for _ in range(int(rng.integers(1, 5))):
            rad, ang = 0.6 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
            u, v = rad * big.rx * math.cos(ang), rad * big.ry * math.sin(ang)
            points.append((big.x + c * u - s * v, big.y + s * u + c * v))


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


def _plain_tissue(scene: _Scene, geo: _Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pixels of ordinary tissue: below the fat, away from every blob and interface."""
    lateral, d = geo.layer_coords(x, y)
    ok = scene.fat.offset(lateral, d) > scene.muscle_mm + 1.0
    for blob in scene.blobs:
        ok &= blob.radius(x, y) > 1.15 + (blob.wall_mm / min(blob.rx, blob.ry) if blob.wall_db else 0)
    for iface in scene.interfaces:
        ok &= np.abs(iface.offset(lateral, d)) > 1.0
    return ok
