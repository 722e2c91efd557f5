"""Package discovery for the folder-to-namespace mapping of DESIGN.md.

``train/`` installs as ``sonoedge.train``, ``runtime/`` as ``sonoedge.runtime`` and so on;
setuptools' automatic discovery cannot see through that mapping, so the packages are listed here.
"""
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOTS = {"sonoedge": "sonoedge", "sonoedge.train": "train", "sonoedge.export": "export",
         "sonoedge.runtime": "runtime", "sonoedge.devices": "devices"}


def find_packages() -> list[str]:
    packages = []
    for name, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            packages.append(".".join((name, *rel)))
    return packages


# --- optional native extensions: cpp_bridge's shared-memory channel for shm://, and the per-frame kernels ---
BRIDGE_HELP = ("the shm:// source and sink will not work; everything else does. Install a C++17 "
               "compiler and pybind11, then reinstall (pip install -e .); see cpp_bridge/README.md")


def bridge_extensions() -> list:
    """``sonoedge.runtime._bridge`` from cpp_bridge/ when pybind11 is importable at build time."""
    try:
        from pybind11.setup_helpers import Pybind11Extension
    except ImportError:
        print(f"sonoedge: pybind11 is not installed, so the native bridge is not built: {BRIDGE_HELP}",
              file=sys.stderr)
        return []
    sources = ["cpp_bridge/src/channel.cpp", "cpp_bridge/src/ring.cpp", "cpp_bridge/python/bridge_py.cpp"]
    return [Pybind11Extension(
        "sonoedge.runtime._bridge", sources, include_dirs=["cpp_bridge/include"], cxx_std=17,
        depends=["cpp_bridge/include/sonoedge/bridge.h", "cpp_bridge/src/layout.hpp", "cpp_bridge/src/channel.hpp"],
        extra_compile_args=["-pthread"], extra_link_args=["-pthread"],
        libraries=["rt"] if sys.platform.startswith("linux") else []),
        # the enhancer's per-frame normalise/denormalise in one pass each (runtime/stream/enhancer.py
        # falls back to numpy without it); -O3 so the inner loops vectorise, no -ffast-math (bit-exact)
        Pybind11Extension(
            "sonoedge.runtime._kernels", ["cpp_bridge/src/frame_math.cpp", "cpp_bridge/python/kernels_py.cpp"],
            cxx_std=17, depends=["cpp_bridge/src/frame_math.hpp"], extra_compile_args=["-O3"])]


class OptionalBuildExt(build_ext):
    """Build the native bridge if possible; a failure is a message, never a failed install."""

    failed = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all, or (editable) nothing built to copy
            self._skip(exc)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # a compiler error: report it, keep the pure-Python package
            self._skip(exc)

    def _skip(self, exc: Exception) -> None:
        if not self.failed:  # one message, not one per later step that misses the extension
            print(f"sonoedge: building the native bridge failed ({exc}): {BRIDGE_HELP}", file=sys.stderr)
        self.failed = True


setup(packages=find_packages(), ext_modules=bridge_extensions(), cmdclass={"build_ext": OptionalBuildExt})
