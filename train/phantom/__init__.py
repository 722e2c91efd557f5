"""B-mode phantom simulator: paired handheld / high-end images and clips from one tissue model.

numpy, OpenCV and tqdm only (never torch or scipy): the README demo runs it in a base install.

Image formation is a convolution model, as in Bamber & Dickinson 1980 and Meunier & Bertrand 1995,
"Ultrasonic texture motion analysis: theory and simulation", IEEE TMI 14(2). One file per job:

- ``config.py``: what is simulated: :class:`DeviceModel` (a high-end console and a handheld),
  :class:`TissueModel`, :class:`MotionModel` and :class:`PhantomConfig`, which holds them.
- ``scene.py``: the tissue, drawn per seed in physical coordinates (mm): echogenicity, layers,
  specular interfaces, cysts, vessels, calcifications with shadows and point targets of one organ
  (thyroid, carotid, breast, liver, kidney: the USenhance 2023 organs).
- ``acquisition.py``: one device images a scene: speckle from a scatterer texture fixed to the
  tissue, attenuation, noise and haze on the beam grid, a depth-dependent PSF in the complex
  baseband, envelope detection, spatial compounding, scan conversion and log compression.
- ``simulate.py``: the API, :func:`simulate_pair` and :func:`simulate_clip` (arrays in memory).
- ``writers.py``: :func:`write_pairs` and :func:`write_clip` (PNG pairs and mp4 clips on disk).

The high-end device (console) images at a higher centre frequency with a narrow beam, 60 dB dynamic
range, 3-angle compounding, little noise and dense scan lines; the handheld at a lower frequency
with a broad beam, side lobes and clutter, more noise, 42 dB, near-field haze and half the scan
lines. The two devices draw independent speckle. A pair differs by a small smooth non-rigid
misregistration (``misregistration_px``; 0 gives aligned structure). Everything is deterministic
per seed.
"""
from sonoedge.train.phantom.acquisition import C_MM_PER_US, GAUSS_FWHM, GAUSS_TBP, RAYLEIGH_MEAN_DB
from sonoedge.train.phantom.config import (
                                           CONVEX_ORGANS,
                                           GEOMETRIES,
                                           LINEAR_ORGANS,
                                           ORGANS,
                                           DeviceModel,
                                           MotionModel,
                                           PhantomConfig,
                                           TissueModel,
)
from sonoedge.train.phantom.simulate import simulate_clip, simulate_pair
from sonoedge.train.phantom.writers import default_workers, write_clip, write_pairs

__all__ = ["C_MM_PER_US", "CONVEX_ORGANS", "GAUSS_FWHM", "GAUSS_TBP", "GEOMETRIES", "LINEAR_ORGANS", "ORGANS",
           "RAYLEIGH_MEAN_DB", "DeviceModel", "MotionModel", "PhantomConfig", "TissueModel", "default_workers",
           "simulate_clip", "simulate_pair", "write_clip", "write_pairs"]
