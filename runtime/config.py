"""Typed configuration, STYLE.md rule 1.

One dataclass per component, defaults from the paper it implements; loaded from TOML with
``key.sub=value`` command-line overrides; saved resolved beside every artefact.

    cfg = load_config(TrainConfig, "run.toml", ["optim.lr_g=1e-4", "data.root='phantom'"])
    save_config(cfg, run_dir / "config.toml")   # or to_dict(cfg) into a checkpoint
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sonoedge.runtime.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

C = TypeVar("C")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (nested) as plain JSON/TOML-able values."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error naming the key."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type hint ``hint`` (TOML gives lists for tuples, ints for floats).

    A bool is never an int or a float here (``port = true`` is a mistake, not port 1); lists and
    tuples have their items checked, fixed-length tuples their length; tables must be tables.
    """
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return from_dict(hint, value, where)
        if isinstance(value, hint):
            return value
        raise InputError(f"{where}: expected a table, got {_show(value)}")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        args = tuple(a for a in args if a is not type(None))
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {_show(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(value) != len(args):
            raise InputError(f"{where}: expected {len(args)} values, got {len(value)}: {_show(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))) if args else tuple(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {_show(value)}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a table, got {_show(value)}")
        return {k: _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()} if args else dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise InputError(f"{where}: expected {hint.__name__}, got {_show(value)}")
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise InputError(f"{where}: expected {hint.__name__}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=3`` -> (["a", "b"], 3); the value is parsed as TOML, bare words as strings."""
    if "=" not in text:
        raise InputError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def merge(base: dict[str, Any], path: list[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"override {'.'.join(path)}: '{part}' is not a table")
    node[path[-1]] = value


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] = (),
                base: C | None = None) -> C:
    """Defaults of ``cls`` (or ``base``), then the TOML file, then the overrides, in that order."""
    data = to_dict(base) if base is not None else to_dict(cls())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file {path} does not exist")
        try:
            file_data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"config file {path} is not valid TOML: {exc}") from None
        _deep_update(data, file_data)
    for text in overrides:
        merge(data, *parse_override(text))
    return from_dict(cls, data, where=cls.__name__)


def _deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_update(dst[key], value)
        else:
            dst[key] = value


def dumps_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for resolved configs (tables, scalars, lists of scalars).

    Whatever it writes ``tomllib`` reads back equal (None values are left out: TOML has no null):
    strings and keys are escaped as TOML 1.0 basic strings, so quotes, backslashes, control
    characters and any unicode survive; a value TOML cannot hold (a lone surrogate, an integer
    beyond 64 bits) is a TypeError naming it, never a file that cannot be read back."""
    lines: list[str] = []
    _write_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _write_table(data: dict[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"\n[{'.'.join(_toml_key(k) for k in prefix)}]")
    for key, value in scalars.items():
        if value is None:
            continue  # TOML has no null: absent means default
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _write_table(value, [*prefix, key], lines)


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters (U+0000-U+001F, U+007F) escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise TypeError(f"cannot write the lone surrogate U+{code:04X} in {text!r} to TOML")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise TypeError(f"cannot write the integer {value} to TOML (beyond 64 bits)")
        return repr(value)
    if isinstance(value, float):
        return repr(value)  # inf, -inf, nan, 1e+300 and -0.0 are TOML floats as Python writes them
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def save_config(cfg: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    path.write_text(dumps_toml(data))
    return path
