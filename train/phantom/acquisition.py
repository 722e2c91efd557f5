"""Acquisition and image formation: what one device makes of a scene.

1. Scatterers. A complex Gaussian texture fixed to the tissue (fully developed speckle: many
   sub-resolution scatterers per cell), scaled by the echogenicity. The two devices of a pair draw
   independent textures (independent speckle, as two real devices). In a clip the texture moves with
   the tissue (:class:`_Warp`), so speckle moves coherently with probe motion and breathing.
2. Acquisition on the device's beam grid (depth x scan line; polar for a convex probe), so shadows
   and enhancement follow the beams. Round-trip attenuation of the excess over the tissue average
   (which time-gain compensation removes), electronic noise added before TGC (so it grows with
   depth), near-field reverberation haze.
3. Point spread function (:class:`_Beam`), applied in the complex baseband: axial Gaussian pulse
   envelope from the centre frequency and bandwidth; lateral Gaussian beam whose width grows away
   from the focus (depth dependent), plus side lobes and an off-axis clutter plateau. The lateral
   part is applied row by row in the FFT domain, so a depth-dependent PSF costs two FFTs.
4. Envelope detection: the magnitude of the complex baseband signal is the envelope that IQ
   demodulation of the RF line gives.
5. Spatial compounding (high-end): frames steered by several angles, each with its own noise, are
   scan-converted and averaged (:class:`_Device`).
6. Scan conversion to the output (H, W) raster with square pixels (``cv2.remap``; a convex sector is
   black outside the fan), log compression to the device's dynamic range and display gain, uint8.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import cv2
import numpy as np

from sonoedge.train.phantom.config import DeviceModel, TissueModel
from sonoedge.train.phantom.scene import _coarse, _CosineField, _evaluate, _Geometry, _Scene, _Texture

C_MM_PER_US = 1.54  # speed of sound in soft tissue, 1540 m/s: the value scanners assume
GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian
# Time-bandwidth product of a Gaussian pulse (FWHM_t * FWHM_f), for the axial resolution.
GAUSS_TBP = GAUSS_FWHM**2 / (2.0 * math.pi)
# Mean of 20 log10 of a Rayleigh envelope with unit RMS: -gamma/2 nepers = -2.51 dB.
RAYLEIGH_MEAN_DB = -20.0 * (0.5772156649 / 2.0) / math.log(10.0)


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
    """Depth-dependent PSF: lateral transfer row by row, then the axial transfer (FFT domain).
    complex64 throughout, the four transforms in two buffers (``field`` is overwritten)."""
    spec = np.fft.fft(field, axis=1, out=field)
    spec *= beam.h_lat
    lat = np.fft.ifft(spec, axis=1, out=np.empty_like(spec))
    spec = np.fft.fft(lat, axis=0, out=spec)
    spec *= beam.h_ax[:, None]
    return np.fft.ifft(spec, axis=0, out=lat)


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
    """complex64 (shape) with unit power: real part from the first half of the draws, imaginary from
    the second. Written into one complex64 array (the values of ``parts[0] + 1j * parts[1]``
    without its two temporaries)."""
    parts = rng.standard_normal((2, *shape), dtype=np.float32)
    parts *= np.float32(math.sqrt(0.5))
    out = np.empty(shape, np.complex64)
    out.real, out.imag = parts[0], parts[1]
    return out


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
        self.tgc_db = 0.0  # display TGC ramp in dB (set per seed by simulate._setup)

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
        if self.tgc_db:  # a display TGC ramp, top to bottom of the raster (PhantomConfig.display_variation)
            ramp = (np.arange(db.shape[0], dtype=np.float32) / max(db.shape[0] - 1, 1) - 0.5) * self.tgc_db
            db = db + ramp[:, None]
        grey = 255.0 * (db - (top - dr)) / dr
        grey = np.where(self.inside, grey, 0.0)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
