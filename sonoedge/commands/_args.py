"""Argument groups shared by commands, built from the library's config dataclasses.

A config dataclass is the single source of every default (STYLE.md rule 1): an option's default,
its ``(default: ...)`` in ``--help`` and its type come from the field, so a default is written once,
in the library, and the command line cannot drift from it.

    add_config_arguments(parser, ExportConfig, {"calib_frames": "calibration frames"})
    cfg = config_from_args(ExportConfig, args)
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Sequence

from sonoedge.runtime.frames import GREY_METHODS
from sonoedge.runtime.precision import AUTO, PRECISIONS
from sonoedge.runtime.region import REGION_CHOICES

# option metadata lives on the parser's namespace under this name: which fields a parser set
_FIELDS = "_config_fields"


def csv_list(text: str) -> tuple[str, ...]:
    """'fp32, fp16' -> ('fp32', 'fp16')."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def size(text: str) -> tuple[int, int]:
    """'256' or '256x320' -> (H, W), at least 16 x 16."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' must look like 256 or 256x320") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size '{text}' must be at least 16x16")
    return h, w


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"config field '{field.name}' has no default")


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if value == "":
        return "''"
    return "none" if value is None else str(value)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, helps: dict[str, str],
                         types: dict[str, Callable[[str], Any]] | None = None,
                         choices: dict[str, Sequence[str]] | None = None,
                         flags: dict[str, str] | None = None) -> None:
    """One ``--field-name`` option per entry of ``helps``, default and type from ``cls``'s field.

    A bool field that defaults to False is a switch; one that defaults to True is turned off by
    ``--no-field-name``. ``types`` converts text for fields whose type is not str/int/float
    (tuples); ``flags`` renames an option (e.g. ``{"output": "-o/--output"}``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types, choices, flags = types or {}, choices or {}, flags or {}
    for name, text in helps.items():
        default = _default(fields[name])
        names = flags.get(name, "--" + name.replace("_", "-")).split("/")
        if isinstance(default, bool):
            if default:
                parser.add_argument("--no-" + name.replace("_", "-"), dest=name, action="store_false", help=text)
            else:
                parser.add_argument(*names, dest=name, action="store_true", help=text)
            continue
        kind = types.get(name) or (type(default) if isinstance(default, (int, float, str)) else str)
        parser.add_argument(*names, dest=name, type=kind, default=default, choices=choices.get(name),
                            help=f"{text} (default: {_shown(default)})")
    parser.set_defaults(**{_FIELDS + "_" + cls.__name__: tuple(helps)})


def config_from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """``cls`` from the options :func:`add_config_arguments` added, plus ``extra`` fields."""
    names = getattr(args, _FIELDS + "_" + cls.__name__, ())
    return cls(**{name: getattr(args, name) for name in names}, **extra)


def add_model_arguments(parser: argparse.ArgumentParser, guard: bool = True) -> None:
    """The model options of enhance, bench and fidelity: an :class:`EnhancerConfig` subset; ``guard``
    adds ``--guard on|off`` (the structure guard; a command that measures the model's own output,
    such as fidelity, runs it off and has no such option)."""
    from sonoedge.runtime.stream.enhancer import EnhancerConfig

    add_config_arguments(parser, EnhancerConfig, {
        "bundle": "bundle directory or .tar ('' = the embedded default bundle)",
        "precision": "model precision (auto: the device profile's first preferred one the bundle holds, as build-engine)",
        "backend": "auto | onnxruntime | tensorrt",
        "region": "imaging region: detect it (auto), the whole frame (full), or as the bundle says (bundle)",
        "threads": "onnxruntime intra-op threads (0 = auto: one per physical core; 1 can do better on a machine busy with other jobs)",
        "grey": "colour to grey: fast (OpenCV cvtColor) or exact (the float32 BT.601 reference, bit for bit)",
        "opencv_threads": "OpenCV's worker threads for the per-frame image work, process-wide (1: none beside the "
                          "calling thread, so they never compete with onnxruntime's; 0 = leave OpenCV's setting, by default one per core)",
        "steady": "steady the output: motion-gated blending with the previous frame, strength in [0, 1) (0 = off; 0.7 is the tested setting, with tau 20)",
    }, choices={"precision": (AUTO, *PRECISIONS), "region": REGION_CHOICES, "grey": GREY_METHODS})
    if not guard:
        return
    parser.add_argument("--guard", choices=("on", "off"), default="on",
                        help="structure guard: a frame whose output erased or invented structure (compared with "
                             "its input at low resolution) goes out unenhanced, flagged (default: on; thresholds "
                             "in [enhancer.guard] of the daemon's config)")


def enhancer_config(args: argparse.Namespace) -> Any:
    """The :class:`EnhancerConfig` of the options :func:`add_model_arguments` added."""
    from sonoedge.runtime.stream.enhancer import EnhancerConfig
    from sonoedge.runtime.stream.guard import GuardConfig

    return config_from_args(EnhancerConfig, args, guard=GuardConfig(enabled=getattr(args, "guard", "on") == "on"))
