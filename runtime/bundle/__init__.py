"""The bundle contract (DESIGN.md, Contracts: Bundle): manifest, gates, verify, model loading,
engine plans and builds. A bundle is read through :func:`.manifest.load_manifest`, which checks its
integrity before anything in it is used.
"""
from __future__ import annotations

from pathlib import Path


def default_bundle_path() -> Path:
    """The embedded default bundle shipped inside the package (``runtime/default_bundle/``).

    Raises BundleError when this install has none (a checkout before the default was exported).
    """
    from sonoedge.runtime.bundle.manifest import MANIFEST
    from sonoedge.runtime.errors import BundleError

    path = Path(__file__).resolve().parent.parent / "default_bundle"
    if not (path / MANIFEST).is_file():
        raise BundleError(f"no embedded default bundle at {path}; pass --bundle PATH (a bundle made by `sonoedge export`)")
    return path
