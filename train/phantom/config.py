"""Configuration of the phantom simulator: the two devices, the tissue, clip motion, the image.

One dataclass per component (:class:`DeviceModel`, :class:`TissueModel`, :class:`MotionModel`) and
:class:`PhantomConfig`, which holds them; `sonoedge data phantom --config` fills it from TOML.
"""
from __future__ import annotations

import dataclasses

from sonoedge.runtime.errors import InputError

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
    dynamic_range_db: float = 60.0  # dB of echo amplitude mapped to 0-255: consoles show 60 dB
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
            dynamic_range_db=42.0,  # handheld scanners show 40-45 dB: weak echoes fall to black
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
    # What real scans have and the scenes above lack (drawn from their own random stream, so the
    # scenes of a seed are unchanged when off): a long bright boundary (diaphragm, fascia: a thick
    # band up to +18 dB), a bone/rib reflector whose shadow reaches the bottom, a large anechoic
    # region (bladder, amniotic fluid: a dark background with posterior enhancement) holding
    # isolated point targets.
    extras: bool = False
    boundary_db: tuple[float, float] = (10.0, 18.0)
    bone_probability: float = 0.5
    dark_probability: float = 0.5


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
    # Per-seed display settings shared by both devices of a pair (a user's gain, TGC and dynamic
    # range knobs): tissue grey of the high image in display_grey, the low's that times
    # display_low_ratio, a depth ramp of tgc_db (top to bottom, both images) and dynamic ranges in
    # high_dynamic_range_db / low_dynamic_range_db. Off: the devices' own settings.
    display_variation: bool = False
    display_grey: tuple[float, float] = (35.0, 130.0)
    display_low_ratio: tuple[float, float] = (0.85, 1.2)
    tgc_db: tuple[float, float] = (-10.0, 10.0)
    high_dynamic_range_db: tuple[float, float] = (50.0, 70.0)
    low_dynamic_range_db: tuple[float, float] = (36.0, 50.0)

    def validate(self) -> "PhantomConfig":
        h, w = self.size
        if h < 32 or w < 32 or h > 4096 or w > 4096:
            raise InputError(f"phantom size {self.size} must be between 32 and 4096 pixels per side")
        if self.geometry not in GEOMETRIES:
            raise InputError(f"unknown phantom geometry '{self.geometry}'; choose one of {', '.join(GEOMETRIES)}")
        if self.misregistration_px < 0:
            raise InputError(f"misregistration must be >= 0 pixels, got {self.misregistration_px}")
        return self
