"""The registries of the training side (STYLE.md rule 2). Light: importing this imports no torch.

Entries register themselves where they are defined; ``load_all()`` imports those modules so a
lookup by name sees every entry (the CLI and export call it before ``create``).

    GENERATORS     name -> nn.Module class; class attributes ``stride`` (H, W multiple) and
                   ``scale`` (1 for enhancement, 4 for SR); constructed with keyword arguments
    DISCRIMINATORS name -> nn.Module class
    PRESETS        name -> preset object (a resolved config plus the trainer that runs it)
"""
from __future__ import annotations

import importlib

from sonoedge.runtime.registry import Registry

GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
PRESETS = Registry("preset")

# modules that register entries; a module not written yet is skipped, an error inside one is not
_MODULES = (
    "sonoedge.train.generators",
    "sonoedge.train.students",
    "sonoedge.train.discriminators",
    "sonoedge.train.presets",
    "sonoedge.train.sr.networks",
    "sonoedge.train.sr.presets",
    "sonoedge.train.sr.blind",
    "sonoedge.train.nst.transform_net",
    "sonoedge.train.nst.presets",
)


def load_all() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise
