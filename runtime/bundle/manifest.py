"""The bundle manifest (DESIGN.md, Contracts: Bundle), written by export and read by the runtime.

A bundle is a directory (or a .tar of one) holding ``manifest.json``, ``bundle.sha256`` and the
files they list. The dataclasses below ARE the schema (version 2): :class:`Manifest` and the parts
it holds (:class:`ModelInfo`, :class:`SizeRange`, :class:`Preprocess`, :class:`Postprocess`,
:class:`PrecisionEntry` and its :class:`FidelityEntry`, :class:`Reference`, :class:`SourceCheckpoint`,
:class:`Target`, :class:`CpuChoice`). Export builds one and writes it with :func:`write_manifest`; every reader gets one from
:func:`load_manifest` and reads attributes, never string keys. ``manifest.json`` keeps the JSON keys
of version 1 (``Manifest.to_dict``); fields with a ``None`` default are optional and left out when
absent. Free-form export diagnostics that the runtime never reads stay as JSON in ``extra``: at the
top level ``calibration`` and ``export`` (the resolved ExportConfig), in a precision entry its
``onnx``, ``simplified``, ``stable_instance_norm``, ``conversion``, ``calibration``,
``quantization``, ``excluded_nodes``, ``quantized_nodes`` and ``search`` (docs/results/export.md).

Integrity. ``bundle.sha256`` is in ``sha256sum`` format (``<hex>  <relative path>`` per line,
sorted) and lists every file of the bundle, ``manifest.json`` included, so ``sha256sum -c
bundle.sha256`` checks a bundle on a device with stock tools. :func:`load_manifest` checks it
before anything in the bundle is used: the manifest's bytes are read once, hashed, and only those
bytes are parsed; the files it lists must be exactly ``manifest.files`` plus ``manifest.json``;
every listed file must match; every path the manifest names must be one of them (relative, inside
the bundle, a plain file). A file in the folder that is not listed is never loaded (rule 6).

A precision entry's ``fidelity`` (the fidelity gate on real frames) is optional within schema 2:
bundles exported before the gate existed (the shipped default among them) have none and read as
"fidelity not checked"; an older sonoedge keeps the key in ``extra`` and ignores it. The same holds
for the top-level ``cpu_choice`` (the fastest passing precision on the CPU provider, measured at
export): absent reads as "not measured".

Schema 1 bundles (no ``bundle.sha256``: nothing covered the manifest) are refused; re-export them,
or upgrade one you trust in place with :func:`migrate_v1`.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.digest import sha256_file
from sonoedge.runtime.errors import BundleError
from sonoedge.runtime.precision import PRECISIONS
from sonoedge.runtime.region import REGION_MODES

# 2: bundle.sha256 covers manifest.json (schema 1 hashed every file but the manifest itself, so an
# edited manifest, e.g. ``degraded: true``, passed verification).
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
CHECKSUMS = "bundle.sha256"
PRECISION_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}
TASKS = ("enhance", "sr")
MIGRATE = "sonoedge.runtime.bundle.manifest.migrate_v1"  # named in the refusal of a schema-1 bundle
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")  # sha256sum: text ("  ") or binary (" *") mode


# -- the schema --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class SizeRange:
    """The input sizes (H, W) the model supports; min <= opt <= max in both dimensions."""

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What the model is and how it is called. Defaults are what readers assumed for absent keys."""

    name: str = ""
    generator: str = ""
    kwargs: dict[str, Any] | None = None  # the generator's constructor arguments (export diagnostics)
    task: str = "enhance"  # enhance | sr
    scale: int = 1  # output / input size; 1 unless task is sr
    channels: int = 1  # C of the (N, C, H, W) input
    stride: int  # H and W must be multiples of it (pre-processing reflect-pads)
    input_name: str = "input"
    output_name: str = "output"
    dynamic_axes: tuple[str, ...] = ()
    size_range: SizeRange | None = None

    @property
    def output_scale(self) -> int:
        """How much larger the output is than the input: ``scale`` for sr, else 1."""
        return self.scale if self.task == "sr" else 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preprocess:
    normalisation: str = "minus1_1"  # uint8 -> x / 127.5 - 1
    pad: str = "reflect"
    grey: bool = True
    region: str = "auto"  # auto | full (runtime.region.REGION_MODES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Postprocess:
    denormalisation: str = "minus1_1"
    crop: bool = True
    paste_back: bool = True


FIDELITY_STATUSES = ("pass", "fail", "not checked")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FidelityEntry:
    """One precision's fidelity gate (runtime/bundle/gates.py) on real frames, run as deployed.

    ``status`` "not checked" (with its ``reason``) when export had no real frames; bundles made
    before the gate existed have no entry at all, which readers treat the same way."""

    status: str  # pass | fail | not checked
    degraded: bool = False  # failed, kept on purpose (--allow-degraded)
    failures: tuple[str, ...] = ()  # "<frame>: <measure> ..." one per failed measure
    gate: dict[str, float] = dataclasses.field(default_factory=dict)  # thresholds
    results: dict[str, float] = dataclasses.field(default_factory=dict)  # worst over the frames
    frames: tuple[str, ...] = ()  # "file#frame" of every frame measured
    source: str | None = None  # where they came from, as given to export
    per_frame: tuple[dict[str, Any], ...] = ()  # every frame's measures (free-form numbers and lists)
    reason: str | None = None  # why not checked

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrecisionEntry:
    """One precision's model file and its accuracy-gate outcome at export."""

    file: str  # bundle-relative ONNX file
    passed: bool = False
    failures: tuple[str, ...] = ()  # one sentence per failed gate metric
    gate: dict[str, float] = dataclasses.field(default_factory=dict)  # thresholds
    results: dict[str, float] = dataclasses.field(default_factory=dict)  # metrics vs the PyTorch reference
    degraded: bool = False  # failed its gate, kept on purpose (--allow-degraded)
    reference: str | None = None  # what it was compared with ("pytorch fp32")
    lpips_trunk: str | None = None  # which LPIPS trunk scored results.lpips
    fidelity: FidelityEntry | None = None  # the fidelity gate on real frames; None: made before it existed
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # export diagnostics, never read by the runtime

    @property
    def kept(self) -> bool:
        """The bundle serves it: passed its gate, or kept degraded on purpose."""
        return self.passed or self.degraded


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reference:
    """Reference frames and the PyTorch outputs for them (``sonoedge verify``)."""

    inputs: tuple[str, ...] = ()  # uint8 grey PNGs
    torch_outputs: tuple[str, ...] = ()  # (1, C, sH, sW) float32 .npy in [-1, 1], one per input
    outputs: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # per precision; {} = not stored
    source: str | None = None
    sources: tuple[str, ...] | None = None  # "file#frame" per input
    sha256: str | None = None  # of the input pixels


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceCheckpoint:
    sha256: str
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    name: str
    profiles: tuple[str, ...] = ()
    files: tuple[str, ...] | None = None  # the device profiles copied into the bundle


@dataclasses.dataclass(frozen=True, kw_only=True)
class CpuChoice:
    """Which precision ran fastest on ONNX Runtime's CPU provider at export, and where that was measured.

    Optional within schema 2 (bundles without it, the shipped default among them, read as "not
    measured"; an older sonoedge keeps the key in ``extra`` and ignores it). Only precisions that
    passed their accuracy gate (and the fidelity gate where it was run) are candidates; the runtime's
    ``auto`` precision on the CPU provider uses ``precision`` when the machine matches loosely
    (runtime/bundle/cpu_choice.py).
    """

    precision: str  # the fastest candidate
    cpu_ms: dict[str, float]  # median process CPU ms per frame of every precision measured
    wall_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # median wall ms per frame
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # precision: why it was no candidate
    int8_layout: str | None = None  # how the INT8 model is laid out (integer kernels or not)
    cpu: str = ""  # CPU model name
    cores: int = 0  # physical cores the process could use
    arch: str = ""  # platform.machine(): x86_64, aarch64, ...
    onnxruntime: str = ""  # ONNX Runtime version
    threads: int = 1  # intra-op threads of the timed sessions
    frames: int = 0  # reference frames timed per round
    rounds: int = 0  # interleaved rounds
    input: str = ""  # the timed input shape, e.g. 1x1x256x256
    load: float | None = None  # 1-minute load average at the start
    measured: str = ""  # ISO 8601 UTC time


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    """manifest.json. ``files`` is filled by :func:`write_manifest` (every file but the manifest)."""

    created: str | None = None  # ISO 8601 UTC time of export
    model: ModelInfo
    preprocess: Preprocess = Preprocess()
    postprocess: Postprocess = Postprocess()
    precisions: dict[str, PrecisionEntry]  # fp32 | fp16 | int8, widest first
    reference: Reference | None = None
    source_checkpoint: SourceCheckpoint | None = None
    tools: dict[str, str] | None = None  # package: version
    target: Target | None = None
    engine_plan: str | None = None  # the TensorRT build plan (JSON)
    cpu_choice: CpuChoice | None = None  # the fastest passing precision on the CPU provider; None: not measured
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # calibration, export: diagnostics
    schema_version: int = SCHEMA_VERSION
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # relative path: sha256 hex

    def kept_precisions(self) -> list[str]:
        return [name for name, entry in self.precisions.items() if entry.kept]

    def referenced_paths(self) -> dict[str, str]:
        """{field: bundle-relative path} for every file the manifest points at."""
        out = {f"precisions.{p}.file": e.file for p, e in self.precisions.items()}
        if self.reference is not None:
            out.update({f"reference.inputs[{i}]": p for i, p in enumerate(self.reference.inputs)})
            out.update({f"reference.torch_outputs[{i}]": p for i, p in enumerate(self.reference.torch_outputs)})
            for precision, paths in self.reference.outputs.items():
                out.update({f"reference.outputs.{precision}[{i}]": p for i, p in enumerate(paths)})
        if self.target is not None and self.target.files is not None:
            out.update({f"target.files[{i}]": p for i, p in enumerate(self.target.files)})
        if self.engine_plan is not None:
            out["engine_plan"] = self.engine_plan
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of manifest.json (the keys of schema 1; optional fields left out when None)."""
        return _jsonable(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> "Manifest":
        """Parse and validate; BundleError naming ``where`` and the field for anything malformed."""
        try:
            return _manifest(data)
        except _Bad as bad:
            raise BundleError(f"{where} field {bad.field} {bad.problem}; re-export the bundle with `sonoedge export`") from None


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name == "extra":
                out.update(_jsonable(item))
            elif not (item is None and f.default is None):
                out[f.name] = _jsonable(item)
        return out
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- parsing: JSON -> dataclasses, every field checked -------------------------------------------
class _Bad(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(field, f"must be an object, not {_show(value)}")
    return value


def _fields(data: Any, field: str, cls: type, parse: dict[str, Callable[[Any, str], Any]]) -> Any:
    """``cls(**parsed)`` from the JSON object ``data``; unknown keys and missing required ones refused."""
    obj = _obj(data, field)
    unknown = sorted(set(obj) - set(parse))
    if unknown:
        raise _Bad(f"{field}.{unknown[0]}", "is not part of the schema")
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for name in sorted(required - set(obj)):
        raise _Bad(f"{field}.{name}", "is missing")
    return cls(**{k: parse[k](v, f"{field}.{k}") for k, v in obj.items()})


def _int(minimum: int = 0) -> Callable[[Any, str], int]:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Bad(field, f"must be an integer >= {minimum}, not {_show(value)}")
        return value
    return check


def _str(choices: tuple[str, ...] = ()) -> Callable[[Any, str], str]:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or (choices and value not in choices):
            want = f"one of {', '.join(choices)}" if choices else "a string"
            raise _Bad(field, f"must be {want}, not {_show(value)}")
        return value
    return check


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(field, f"must be true or false, not {_show(value)}")
    return value


def _optional(parse: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, field: None if value is None else parse(value, field)


def _list(parse: Callable[[Any, str], Any]) -> Callable[[Any, str], tuple]:
    def check(value: Any, field: str) -> tuple:
        if not isinstance(value, list):
            raise _Bad(field, f"must be a list, not {_show(value)}")
        return tuple(parse(v, f"{field}[{i}]") for i, v in enumerate(value))
    return check


def _numbers(value: Any, field: str) -> dict[str, float]:
    obj = _obj(value, field)
    for key, number in obj.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _Bad(f"{field}.{key}", f"must be a number, not {_show(number)}")
    return dict(obj)


def _any(value: Any, field: str) -> Any:
    return value


def _hex64(value: Any, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise _Bad(field, f"must be a sha256 (64 lower-case hex digits), not {_show(value)}")
    return value


def check_relative_path(value: Any) -> str | None:
    """Why ``value`` is not a plain bundle-relative POSIX path, or None when it is."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        return "must be a relative path, not an absolute one"
    if ".." in value.split("/") or value == ".":
        return "must stay inside the bundle (no '..')"
    if any(c in value for c in "\\\n\r\0") or str(PurePosixPath(value)) != value or value.startswith("./"):
        return "must be a plain POSIX path (no backslash, control character, '.' or empty part)"
    return None


def _path(value: Any, field: str) -> str:
    problem = check_relative_path(value)
    if problem:
        raise _Bad(field, f"{problem}, not {_show(value)}")
    return value


def _hw(value: Any, field: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise _Bad(field, f"must be [H, W], not {_show(value)}")
    h, w = (_int(1)(v, f"{field}[{i}]") for i, v in enumerate(value))
    return h, w


def _size_range(value: Any, field: str) -> SizeRange:
    rng = _fields(value, field, SizeRange, {"min": _hw, "opt": _hw, "max": _hw})
    for i, dim in enumerate(("H", "W")):
        if not rng.min[i] <= rng.opt[i] <= rng.max[i]:
            raise _Bad(field, f"must have min <= opt <= max ({dim}: {rng.min[i]}, {rng.opt[i]}, {rng.max[i]})")
    return rng


def _model(value: Any, field: str) -> ModelInfo:
    return _fields(value, field, ModelInfo, {
        "name": _str(), "generator": _str(), "kwargs": _optional(_obj), "task": _str(TASKS),
        "scale": _int(1), "channels": _int(1), "stride": _int(1), "input_name": _str(), "output_name": _str(),
        "dynamic_axes": _list(_str()), "size_range": _optional(_size_range)})


def _frame_measures(value: Any, field: str) -> dict[str, Any]:
    obj = _obj(value, field)
    if not isinstance(obj.get("frame"), str):
        raise _Bad(f"{field}.frame", "must name the frame (a string)")
    return dict(obj)


def _fidelity(value: Any, field: str) -> FidelityEntry:
    return _fields(value, field, FidelityEntry, {
        "status": _str(FIDELITY_STATUSES), "degraded": _bool, "failures": _list(_str()), "gate": _numbers,
        "results": _numbers, "frames": _list(_str()), "source": _optional(_str()),
        "per_frame": _list(_frame_measures), "reason": _optional(_str())})


ENTRY_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "file": _path, "passed": _bool, "failures": _list(_str()), "gate": _numbers, "results": _numbers,
    "degraded": _bool, "reference": _optional(_str()), "lpips_trunk": _optional(_str()),
    "fidelity": _optional(_fidelity)}


def _entry(value: Any, field: str) -> PrecisionEntry:
    obj = _obj(value, field)
    if "file" not in obj:
        raise _Bad(f"{field}.file", "is missing")
    typed = {k: ENTRY_KEYS[k](v, f"{field}.{k}") for k, v in obj.items() if k in ENTRY_KEYS}
    return PrecisionEntry(**typed, extra={k: v for k, v in obj.items() if k not in ENTRY_KEYS})


def _precisions(value: Any, field: str) -> dict[str, PrecisionEntry]:
    obj = _obj(value, field)
    for name in obj:
        if name not in PRECISIONS:
            raise _Bad(f"{field}.{name}", f"is not a precision (known: {', '.join(PRECISIONS)})")
    return {name: _entry(entry, f"{field}.{name}") for name, entry in obj.items()}


def _reference(value: Any, field: str) -> Reference:
    def outputs(v: Any, f: str) -> dict[str, tuple[str, ...]]:
        return {p: _list(_path)(paths, f"{f}.{p}") for p, paths in _precisions_keys(_obj(v, f), f).items()}

    return _fields(value, field, Reference, {
        "inputs": _list(_path), "torch_outputs": _list(_path), "outputs": outputs,
        "source": _optional(_str()), "sources": _optional(_list(_str())), "sha256": _optional(_str())})


def _precisions_keys(obj: dict[str, Any], field: str) -> dict[str, Any]:
    for name in obj:
        if name not in PRECISIONS:
            raise _Bad(f"{field}.{name}", f"is not a precision (known: {', '.join(PRECISIONS)})")
    return obj


def _files(value: Any, field: str) -> dict[str, str]:
    obj = _obj(value, field)
    for rel, digest in obj.items():
        _path(rel, f"{field} key")
        if rel in (MANIFEST, CHECKSUMS):
            raise _Bad(f"{field}.{rel}", f"must not list {rel} itself")
        _hex64(digest, f"{field}.{rel}")
    return dict(obj)


def _strings(value: Any, field: str) -> dict[str, str]:
    obj = _obj(value, field)
    for key, item in obj.items():
        _str()(item, f"{field}.{key}")
    return dict(obj)


MANIFEST_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "schema_version": _int(1), "created": _optional(_str()), "model": _model,
    "preprocess": lambda v, f: _fields(v, f, Preprocess, {"normalisation": _str(("minus1_1",)), "pad": _str(("reflect",)),
                                                          "grey": _bool, "region": _str(REGION_MODES)}),
    "postprocess": lambda v, f: _fields(v, f, Postprocess, {"denormalisation": _str(("minus1_1",)), "crop": _bool,
                                                            "paste_back": _bool}),
    "precisions": _precisions, "reference": _optional(_reference),
    "source_checkpoint": _optional(lambda v, f: _fields(v, f, SourceCheckpoint, {"sha256": _str(), "name": _str()})),
    "tools": _optional(_strings),
    "target": _optional(lambda v, f: _fields(v, f, Target, {"name": _str(), "profiles": _list(_str()),
                                                            "files": _optional(_list(_path))})),
    "engine_plan": _optional(_path), "files": _files, "cpu_choice": _optional(lambda v, f: _cpu_choice(v, f)),
}


def _cpu_choice(value: Any, field: str) -> CpuChoice:
    def numbers(v: Any, f: str) -> dict[str, float]:
        return _numbers(_precisions_keys(_obj(v, f), f), f)

    def reasons(v: Any, f: str) -> dict[str, str]:
        return _strings(_precisions_keys(_obj(v, f), f), f)

    def load(v: Any, f: str) -> float | None:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _Bad(f, f"must be a number, not {_show(v)}")
        return v

    choice = _fields(value, field, CpuChoice, {
        "precision": _str(PRECISIONS), "cpu_ms": numbers, "wall_ms": numbers, "excluded": reasons,
        "int8_layout": _optional(_str()), "cpu": _str(), "cores": _int(0), "arch": _str(), "onnxruntime": _str(),
        "threads": _int(1), "frames": _int(0), "rounds": _int(0), "input": _str(), "load": load, "measured": _str()})
    if choice.precision not in choice.cpu_ms:
        raise _Bad(f"{field}.precision", f"names {choice.precision}, which cpu_ms does not list")
    return choice


def _manifest(data: Any) -> Manifest:
    obj = _obj(data, "(top level)")
    for key in ("model", "precisions", "files"):
        if key not in obj:
            raise _Bad(key, "is missing")
    typed = {k: MANIFEST_KEYS[k](v, k) for k, v in obj.items() if k in MANIFEST_KEYS}
    return Manifest(**typed, extra={k: v for k, v in obj.items() if k not in MANIFEST_KEYS})


# -- hashing and writing -----------------------------------------------------------------------
def hash_files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except manifest.json and bundle.sha256, by POSIX relative path."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in (MANIFEST, CHECKSUMS)
    }


def checksum_text(digests: dict[str, str]) -> str:
    """bundle.sha256: ``<hex>  <path>`` per file, sorted by path (what ``sha256sum -c`` reads)."""
    return "".join(f"{digests[rel]}  {rel}\n" for rel in sorted(digests))


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_manifest(root: str | Path, manifest: Manifest) -> Manifest:
    """Hash every file, write manifest.json, then bundle.sha256 over all of it (each atomically).

    Returns the manifest as written (``files`` filled, ``schema_version`` current). Refuses a
    manifest that names a path outside its files, so every bundle written can be read back.
    """
    root = Path(root)
    written = dataclasses.replace(manifest, schema_version=SCHEMA_VERSION, files=hash_files(root))
    raw = (json.dumps(written.to_dict(), indent=2) + "\n").encode()
    parsed = Manifest.from_dict(json.loads(raw), where=f"bundle {root}: {MANIFEST}")
    _check_references(root, parsed)
    _write_bytes(root / MANIFEST, raw)
    _write_bytes(root / CHECKSUMS, checksum_text({**parsed.files, MANIFEST: hashlib.sha256(raw).hexdigest()}).encode())
    return parsed


# -- opening and checking ----------------------------------------------------------------------
def open_bundle(path: str | Path, into: str | Path | None = None) -> Path:
    """A bundle directory for ``path``; a .tar is unpacked first.

    A .tar is unpacked into ``into``, an empty directory the caller owns and removes when it is
    done with the bundle (the daemon removes it with the model it loaded); without ``into``, into a
    new temporary directory removed when the process exits. Tar members must be plain files or
    folders inside the archive: an absolute path, a '..' or a link (symbolic or hard) refuses the
    whole archive before anything is unpacked; an archive that cannot be read is refused too.
    """
    path = Path(path)
    if path.is_dir():
        return path
    try:
        is_tar = path.is_file() and tarfile.is_tarfile(path)
    except OSError as exc:
        raise BundleError(f"bundle {path} cannot be read ({exc.strerror or exc})") from None
    if not is_tar:
        raise BundleError(f"bundle {path} does not exist (expected a directory or a .tar of one)")
    if into is None:
        out = Path(tempfile.mkdtemp(prefix="sonoedge-bundle-"))
        atexit.register(shutil.rmtree, out, True)
    else:
        out = Path(into)
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                _check_member(path, member)
            tar.extractall(out, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BundleError(f"bundle {path}: the archive cannot be unpacked ({type(exc).__name__}: {exc})") from None
    dirs = [p for p in out.iterdir() if p.is_dir()]
    return dirs[0] if not (out / MANIFEST).exists() and len(dirs) == 1 else out


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    if not (member.isfile() or member.isdir()):
        raise BundleError(f"bundle {archive}: tar member {member.name!r} is a link or special file; "
                          "a bundle holds plain files only")
    name = member.name.rstrip("/")
    if name in ("", "."):
        return
    problem = check_relative_path(name[2:] if name.startswith("./") else name)
    if problem:
        raise BundleError(f"bundle {archive}: tar member {member.name!r} {problem}")


def load_manifest(path: str | Path, verify_hashes: bool = True,
                  into: str | Path | None = None) -> tuple[Path, Manifest]:
    """(bundle directory, manifest) once bundle.sha256 vouches for manifest.json and every file.

    ``verify_hashes=False`` skips re-hashing the listed files (never the manifest's own check);
    ``into``: where a .tar is unpacked (:func:`open_bundle`).
    """
    root = open_bundle(path, into)
    sums = read_checksums(root)
    raw = _read_manifest_bytes(root)
    _compare(root, MANIFEST, sums[MANIFEST], hashlib.sha256(raw).hexdigest(), CHECKSUMS)
    manifest = parse_manifest(root, raw)
    _check_listing(root, manifest, sums)
    _check_references(root, manifest)
    if verify_hashes:
        verify_files(root, manifest.files)
    return root, manifest


def _read_manifest_bytes(root: Path) -> bytes:
    mpath = root / MANIFEST
    if not mpath.is_file() or mpath.is_symlink():
        raise BundleError(f"bundle {root} has no {MANIFEST} (a plain file); pass a bundle made by `sonoedge export`")
    return mpath.read_bytes()


def read_checksums(root: Path) -> dict[str, str]:
    """{relative path: sha256} from bundle.sha256; refuses a missing file or a malformed line."""
    path = root / CHECKSUMS
    if not path.is_file() or path.is_symlink():
        _refuse_without_checksums(root)
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None or check_relative_path(match.group(2)) or match.group(2) in sums:
            raise BundleError(f"bundle {root}: {CHECKSUMS} line {number} is not '<sha256>  <relative path>' "
                              "of a file listed once; the bundle was modified or corrupted")
        sums[match.group(2)] = match.group(1)
    if MANIFEST not in sums:
        raise BundleError(f"bundle {root}: {CHECKSUMS} does not list {MANIFEST}; the bundle was modified or corrupted")
    return sums


def _refuse_without_checksums(root: Path) -> None:
    """No bundle.sha256: a schema-1 bundle, one from a newer sonoedge, or a damaged one (the manifest
    is only peeked at to word the refusal; nothing in it is used)."""
    try:
        version = json.loads((root / MANIFEST).read_bytes()).get("schema_version")
    except (OSError, ValueError, AttributeError):
        version = None
    if version == 1:
        raise BundleError(_v1_refusal(root))
    if isinstance(version, int) and version != SCHEMA_VERSION:
        raise BundleError(_version_refusal(root, version))
    raise BundleError(f"bundle {root} has no {CHECKSUMS}, so its manifest cannot be checked; "
                      "the bundle was modified or corrupted, re-export it with `sonoedge export`")


def _v1_refusal(root: Path) -> str:
    return (f"bundle {root} is a schema-1 bundle, whose manifest.json no hash covers; re-export it with "
            f"`sonoedge export`, or upgrade a copy you trust in place with {MIGRATE}('{root}')")


def _version_refusal(root: Path, version: Any) -> str:
    return (f"bundle {root}: {MANIFEST} schema_version {version} is not supported by this sonoedge "
            f"(reads {SCHEMA_VERSION}); re-export it with `sonoedge export`")


def parse_manifest(root: Path, raw: bytes) -> Manifest:
    """The Manifest in ``raw`` (manifest.json's bytes, already checked against bundle.sha256)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {root}: {MANIFEST} is not valid JSON ({exc})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version == 1:
        raise BundleError(_v1_refusal(root))
    if version != SCHEMA_VERSION:
        raise BundleError(_version_refusal(root, json.dumps(version)))
    return Manifest.from_dict(data, where=f"bundle {root}: {MANIFEST}")


def _compare(root: Path, rel: str, expected: str, actual: str, against: str) -> None:
    if actual != expected:
        raise BundleError(f"bundle {root}: {rel} does not match {against} (expected {expected[:12]}..., "
                          f"found {actual[:12]}...); the bundle was modified or corrupted")


def _check_listing(root: Path, manifest: Manifest, sums: dict[str, str]) -> None:
    """bundle.sha256 lists exactly manifest.json and the manifest's files, with the same digests."""
    listed = {rel: digest for rel, digest in sums.items() if rel != MANIFEST}
    for rel in sorted(set(listed) ^ set(manifest.files)):
        where, other = (CHECKSUMS, MANIFEST) if rel in listed else (MANIFEST, CHECKSUMS)
        raise BundleError(f"bundle {root}: {where} lists {rel}, which {other} does not; "
                          "the bundle was modified or corrupted")
    for rel, digest in listed.items():
        _compare(root, f"the sha256 of {rel} in {MANIFEST}", digest, manifest.files[rel], CHECKSUMS)


def _check_references(root: Path, manifest: Manifest) -> None:
    """Every path the manifest names is one of its hashed files (nothing unlisted is loaded)."""
    for field, rel in manifest.referenced_paths().items():
        if rel not in manifest.files:
            raise BundleError(f"bundle {root}: {MANIFEST} field {field} names {rel}, which is not among its "
                              "hashed files; the bundle was modified or corrupted")


def verify_files(root: Path, files: dict[str, str]) -> None:
    """Raise BundleError naming the first file that is missing, a link, outside root, or whose sha256 differs."""
    base = root.resolve()
    for rel, expected in files.items():
        target = root / rel
        if target.is_symlink() or not target.is_file() or not target.resolve().is_relative_to(base):
            raise BundleError(f"bundle {root}: file {rel} listed in the manifest is missing or not a plain file "
                              "inside the bundle")
        actual = sha256_file(target)
        if actual != expected:
            raise BundleError(
                f"bundle {root}: file {rel} does not match its manifest sha256 "
                f"(expected {expected[:12]}..., found {actual[:12]}...); the bundle was modified or corrupted"
            )


def bundle_file(root: Path, manifest: Manifest, rel: str) -> Path:
    """``root / rel`` when the manifest lists ``rel`` (so its hash was checked), else BundleError."""
    if rel not in manifest.files:
        raise BundleError(f"bundle {root}: {rel} is not among the files {MANIFEST} lists, so it is not loaded")
    return root / rel


def model_file(root: Path, manifest: Manifest, precision: str) -> Path:
    """Path of the ONNX file for ``precision``, refusing precisions the bundle does not hold."""
    entry = manifest.precisions.get(precision)
    if entry is None:
        have = ", ".join(sorted(manifest.precisions)) or "none"
        raise BundleError(f"bundle {root} has no {precision} model (it has: {have})")
    if not entry.kept:
        raise BundleError(f"bundle {root}: the {precision} model failed its accuracy gate and was not kept")
    return bundle_file(root, manifest, entry.file)


# -- schema 1 -> 2 -----------------------------------------------------------------------------
def migrate_v1(bundle_dir: str | Path) -> Manifest:
    """Upgrade a schema-1 bundle directory in place: schema_version 2 and a bundle.sha256.

    Only the version number in manifest.json changes (every other key and value, and their order,
    stays). The files are checked against the v1 manifest first, but nothing covered a v1 manifest
    itself: run this only on a bundle you trust, since it vouches for the manifest as it is.
    """
    root = Path(bundle_dir)
    data = json.loads(_read_manifest_bytes(root))
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise BundleError(f"bundle {root}: {MANIFEST} schema_version is {json.dumps(version)}, not 1; nothing to migrate")
    data["schema_version"] = SCHEMA_VERSION
    manifest = Manifest.from_dict(data, where=f"bundle {root}: {MANIFEST}")
    _check_references(root, manifest)
    verify_files(root, manifest.files)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST, CHECKSUMS}
    if present != set(manifest.files):
        raise BundleError(f"bundle {root}: its folder holds files {MANIFEST} does not list; remove them or re-export")
    raw = (json.dumps(data, indent=2) + "\n").encode()
    _write_bytes(root / MANIFEST, raw)
    _write_bytes(root / CHECKSUMS, checksum_text({**manifest.files, MANIFEST: hashlib.sha256(raw).hexdigest()}).encode())
    return manifest
