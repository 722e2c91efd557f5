"""The bundle manifest (DESIGN.md, Contracts: Bundle), written by export and read by the runtime.

A bundle is a directory (or a .tar of one) holding ``manifest.json`` and the files it lists.
Schema (version 1), keys in ``manifest.json``:

    schema_version      1
    created             ISO 8601 UTC time of export
    model               {name, generator, task: "enhance"|"sr", scale, channels, stride,
                         input_name, output_name, dynamic_axes: [..],
                         size_range: {min: [H, W], opt: [H, W], max: [H, W]}}
    preprocess          {normalisation: "minus1_1", pad: "reflect", grey: true, region: "auto"|"full"}
    postprocess         {denormalisation: "minus1_1", crop: true, paste_back: true}
    precisions          {fp32|fp16|int8: {file, passed, degraded, gate: {thresholds},
                         results: {metric: value}, ... extra (calibration, excluded_nodes)}}
    reference           {inputs: [relative .png paths], outputs: {precision: [relative .npy paths]},
                         torch_outputs: [relative .npy paths]}
    files               {relative path: sha256 hex} for every file except manifest.json
    source_checkpoint   {sha256, name}
    tools               {package: version}
    target              {name, profiles: [profile names]}
    engine_plan         relative path of the TensorRT build plan (JSON)

Additive keys written by ``sonoedge export`` (export/bundle.py; readers must not require them):

    precisions.<p>      also: failures [sentences], reference "pytorch fp32", lpips_trunk (which LPIPS
                        trunk scored ``results.lpips``; "random ..." = not comparable to published LPIPS),
                        fp32: onnx {opset, nodes, op_types}, simplified, stable_instance_norm;
                        fp16: conversion {fp32_ops, fp32_nodes, casts};
                        int8: calibration {...}, quantization {format, activations, weights, op_types,
                        outputs_quantized}, excluded_nodes [node names kept in float], quantized_nodes,
                        search {passed, metrics, trace, most_sensitive}
    reference           also: source, sources ["file#frame"], sha256 (of the input pixels);
                        ``outputs`` is {} (only the PyTorch outputs are stored)
    calibration         {method, frames, sha256, shapes, files, source, tile_size, bundle_tiles,
                         ranges: "calibration/ort_ranges.json", tiles: "calibration/tiles.npz"} or null
    target.files        the device profiles copied into the bundle (devices/<name>.toml)
    model.kwargs        the generator's constructor arguments
    export              the resolved ExportConfig

Loading checks every hash before anything runs and refuses a bundle that fails (rule 6).
"""
from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sonoedge.runtime.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PRECISION_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except the manifest, keyed by POSIX relative path."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> Path:
    """Fill ``files`` with fresh hashes and write ``manifest.json`` atomically."""
    root = Path(root)
    manifest = dict(manifest, schema_version=SCHEMA_VERSION, files=hash_files(root))
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(root / MANIFEST)
    return root / MANIFEST


def open_bundle(path: str | Path) -> Path:
    """A bundle directory for ``path``; a .tar is unpacked to a temporary directory first."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.is_file() and tarfile.is_tarfile(path):
        out = Path(tempfile.mkdtemp(prefix="sonoedge-bundle-"))
        with tarfile.open(path) as tar:
            tar.extractall(out, filter="data")
        dirs = [p for p in out.iterdir() if p.is_dir()]
        return dirs[0] if not (out / MANIFEST).exists() and len(dirs) == 1 else out
    raise BundleError(f"bundle {path} does not exist (expected a directory or a .tar of one)")


def load_manifest(path: str | Path, verify_hashes: bool = True) -> tuple[Path, dict[str, Any]]:
    """(bundle directory, manifest) after checking schema and, by default, every file's sha256."""
    root = open_bundle(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"bundle {root} has no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{mpath}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
    for key in ("model", "precisions", "files"):
        if key not in manifest:
            raise BundleError(f"{mpath}: missing required key '{key}'")
    if verify_hashes:
        verify_files(root, manifest)
    return root, manifest


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Raise BundleError naming the first file that is missing or whose sha256 differs."""
    for rel, expected in manifest["files"].items():
        target = root / rel
        if not target.is_file():
            raise BundleError(f"bundle {root}: file {rel} listed in the manifest is missing")
        actual = sha256_file(target)
        if actual != expected:
            raise BundleError(
                f"bundle {root}: file {rel} does not match its manifest sha256 "
                f"(expected {expected[:12]}..., found {actual[:12]}...); the bundle was modified or corrupted"
            )


def model_file(root: Path, manifest: dict[str, Any], precision: str) -> Path:
    """Path of the ONNX file for ``precision``, refusing precisions the bundle does not hold."""
    entry = manifest["precisions"].get(precision)
    if entry is None:
        have = ", ".join(sorted(manifest["precisions"])) or "none"
        raise BundleError(f"bundle {root} has no {precision} model (it has: {have})")
    if not entry.get("passed", False) and not entry.get("degraded", False):
        raise BundleError(f"bundle {root}: the {precision} model failed its accuracy gate and was not kept")
    return root / entry["file"]
