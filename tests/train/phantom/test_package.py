"""The train/phantom package: light to import, and the public names of the former single module."""
from __future__ import annotations

import subprocess
import sys


def test_phantom_does_not_import_torch():
    code = "import sys, sonoedge.train.phantom, sonoedge.train.demo, sonoedge.commands.data_phantom; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_of_the_former_module_are_importable_from_the_package():
    from sonoedge.train import phantom

    names = ("C_MM_PER_US", "CONVEX_ORGANS", "GAUSS_FWHM", "GAUSS_TBP", "GEOMETRIES", "LINEAR_ORGANS", "ORGANS",
             "RAYLEIGH_MEAN_DB", "DeviceModel", "MotionModel", "PhantomConfig", "TissueModel", "default_workers",
             "simulate_clip", "simulate_pair", "write_clip", "write_pairs")
    assert [name for name in names if not hasattr(phantom, name)] == []
