"""sonoedge.runtime: what runs on the device. numpy, OpenCV and one inference engine; never torch.

It also holds the conventions every stage shares (the frame contract in ``frames``, the bundle
manifest in ``manifest``, registries, typed config, errors), so train and export import them from
here and the device needs nothing heavier.
"""


def default_bundle_path():
    """The embedded default bundle shipped inside the package (``runtime/default_bundle/``).

    Raises BundleError when this install has none (a checkout before the default was exported).
    """
    from pathlib import Path

    from .errors import BundleError
    from .manifest import MANIFEST

    path = Path(__file__).resolve().parent / "default_bundle"
    if not (path / MANIFEST).is_file():
        raise BundleError(f"no embedded default bundle at {path}; pass --bundle PATH (a bundle made by `sonoedge export`)")
    return path
