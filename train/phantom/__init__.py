"""B-mode phantom simulator (a package from here on; the code is still in one module)."""
from sonoedge.train.phantom.scene import (C_MM_PER_US, CONVEX_ORGANS, GAUSS_FWHM, GAUSS_TBP, GEOMETRIES,
                                          LINEAR_ORGANS, ORGANS, RAYLEIGH_MEAN_DB, DeviceModel, MotionModel,
                                          PhantomConfig, TissueModel, default_workers, simulate_clip,
                                          simulate_pair, write_clip, write_pairs)

__all__ = ["C_MM_PER_US", "CONVEX_ORGANS", "GAUSS_FWHM", "GAUSS_TBP", "GEOMETRIES", "LINEAR_ORGANS", "ORGANS",
           "RAYLEIGH_MEAN_DB", "DeviceModel", "MotionModel", "PhantomConfig", "TissueModel", "default_workers",
           "simulate_clip", "simulate_pair", "write_clip", "write_pairs"]
