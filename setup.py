"""Package discovery for the folder-to-namespace mapping of DESIGN.md.

``train/`` installs as ``sonoedge.train``, ``runtime/`` as ``sonoedge.runtime`` and so on;
setuptools' automatic discovery cannot see through that mapping, so the packages are listed here.
"""
from pathlib import Path

from setuptools import setup

ROOTS = {"sonoedge": "sonoedge", "sonoedge.train": "train", "sonoedge.export": "export",
         "sonoedge.runtime": "runtime", "sonoedge.devices": "devices"}


def find_packages() -> list[str]:
    packages = []
    for name, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            packages.append(".".join((name, *rel)))
    return packages


setup(packages=find_packages())
