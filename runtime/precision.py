"""The precisions a model runs at, written once for every stage (export, bundle, backends, CLI).

fp32 is the reference; fp16 and int8 are lower precisions whose accuracy against the PyTorch
reference is a gate (:mod:`sonoedge.runtime.bundle.gates`). A precision is never lowered or raised
silently (STYLE.md rule 6): unknown names are refused with the list.
"""
from __future__ import annotations

from sonoedge.runtime.errors import InputError

PRECISIONS = ("fp32", "fp16", "int8")  # widest first: the order bundles, plans and tables use
AUTO = "auto"  # the device profile's default: its first preferred precision the bundle kept


def check_precision(name: str, allow_auto: bool = False) -> str:
    """``name`` when it is a known precision, else InputError naming the valid ones."""
    valid = (*PRECISIONS, AUTO) if allow_auto else PRECISIONS
    if name not in valid:
        raise InputError(f"unknown precision '{name}'; choose one of {', '.join(valid)}")
    return name
