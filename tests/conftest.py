"""Shared fixtures, for every test folder.

Real recordings live in ../shared/data/realus beside the checkout (never in git);
tests that need them take the ``realus`` fixture and skip with a message when it is absent.
Set SONOEDGE_REALUS to point elsewhere."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime.bundle.manifest import (
    CHECKSUMS,
    MANIFEST,
    Manifest,
    ModelInfo,
    PrecisionEntry,
    Reference,
    SizeRange,
    SourceCheckpoint,
    Target,
    checksum_text,
    write_manifest,
)
from sonoedge.runtime.digest import sha256_file

REPO = Path(__file__).resolve().parents[1]


def realus_path() -> Path:
    env = os.environ.get("SONOEDGE_REALUS")
    return Path(env) if env else REPO.parent / "shared" / "data" / "realus"


@pytest.fixture(scope="session")
def realus() -> Path:
    path = realus_path()
    if not path.is_dir():
        pytest.skip(f"real ultrasound data not found at {path} (set SONOEDGE_REALUS to its folder)")
    return path


# -- tiny but real bundles ------------------------------------------------------------------------
# For the runtime, command and bridge tests.
#
# The runtime never imports onnx; tests may (the ``[export]`` extra). ``make_bundle`` writes a small
# fully convolutional generator as a real ONNX graph (seeded weights, dynamic H/W, stride 4:
# two stride-2 convs down, two stride-2 transposed convs up, a residual and tanh) with a schema-v1
# manifest, reference inputs and reference outputs computed by an independent numpy implementation
# of the same network (so a runtime backend is checked against something that is not itself).
#
# Variants: ``nan`` (the output goes through Log of a negative number: every pixel NaN),
# ``sr`` (4x: a nearest 4x upsample and a conv, task "sr", scale 4).
#

STRIDE = 4


def _weights(seed: int, variant: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {}
    if variant == "sr":
        w["c1"] = rng.normal(0, 0.05, (4, 1, 3, 3)).astype(np.float32)
        w["c1b"] = np.zeros(4, np.float32)
        w["c2"] = rng.normal(0, 0.1, (1, 4, 3, 3)).astype(np.float32)
        w["c2b"] = np.zeros(1, np.float32)
        return w
    w["d1"] = rng.normal(0, 0.2, (8, 1, 3, 3)).astype(np.float32)
    w["d1b"] = rng.normal(0, 0.01, 8).astype(np.float32)
    w["d2"] = rng.normal(0, 0.1, (8, 8, 3, 3)).astype(np.float32)
    w["d2b"] = rng.normal(0, 0.01, 8).astype(np.float32)
    w["u1"] = rng.normal(0, 0.1, (8, 8, 2, 2)).astype(np.float32)  # ConvTranspose: (Cin, Cout, k, k)
    w["u1b"] = np.zeros(8, np.float32)
    w["u2"] = rng.normal(0, 0.1, (8, 1, 2, 2)).astype(np.float32)
    w["u2b"] = np.zeros(1, np.float32)
    return w


def build_onnx(path: Path, variant: str = "enhance", seed: int = 0) -> dict[str, np.ndarray]:
    """Write the ONNX model; returns its weights for the numpy reference."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _weights(seed, variant)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = []
    if variant == "sr":
        inits.append(numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), "scales"))
        nodes += [
            helper.make_node("Resize", ["input", "", "scales"], ["up"], mode="nearest"),
            helper.make_node("Conv", ["up", "c1", "c1b"], ["h1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("Conv", ["r1", "c2", "c2b"], ["h2"], pads=[1, 1, 1, 1]),
            helper.make_node("Add", ["h2", "up"], ["s"]),
            helper.make_node("Tanh", ["s"], ["output"]),
        ]
    else:
        nodes += [
            helper.make_node("Conv", ["input", "d1", "d1b"], ["h1"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("Conv", ["r1", "d2", "d2b"], ["h2"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["h2"], ["r2"]),
            helper.make_node("ConvTranspose", ["r2", "u1", "u1b"], ["h3"], strides=[2, 2]),
            helper.make_node("Relu", ["h3"], ["r3"]),
            helper.make_node("ConvTranspose", ["r3", "u2", "u2b"], ["h4"], strides=[2, 2]),
            helper.make_node("Add", ["h4", "input"], ["s"]),
            helper.make_node("Tanh", ["s"], ["t"] if variant == "nan" else ["output"]),
        ]
        if variant == "nan":
            inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
            nodes += [helper.make_node("Sub", ["t", "two"], ["neg"]),  # tanh - 2 < 0 everywhere
                      helper.make_node("Log", ["neg"], ["output"])]     # log of a negative: NaN
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "out_height", "out_width"])
    graph = helper.make_graph(nodes, f"tiny_{variant}", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sonoedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 1) -> np.ndarray:
    """Plain numpy NCHW conv (N=1), cross-correlation like ONNX Conv."""
    x = np.pad(x[0], ((0, 0), (pad, pad), (pad, pad)))
    cout, cin, k, _ = w.shape
    h = (x.shape[1] - k) // stride + 1
    wd = (x.shape[2] - k) // stride + 1
    out = np.zeros((cout, h, wd), np.float64)
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * h:stride, j:j + stride * wd:stride]  # (cin, h, w)
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return (out + b[:, None, None])[None].astype(np.float32)


def _convT2(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ConvTranspose kernel 2 stride 2 (no overlap): each input pixel paints a 2x2 block."""
    _, cin, h, wd = x.shape
    cout = w.shape[1]
    out = np.zeros((cout, 2 * h, 2 * wd), np.float64)
    for i in range(2):
        for j in range(2):
            out[:, i::2, j::2] = np.einsum("co,chw->ohw", w[:, :, i, j], x[0])
    return (out + b[:, None, None])[None].astype(np.float32)


def reference_forward(x: np.ndarray, w: dict[str, np.ndarray], variant: str = "enhance") -> np.ndarray:
    """The numpy reference of :func:`build_onnx`: (1, 1, H, W) in [-1, 1] -> (1, 1, sH, sW)."""
    if variant == "sr":
        up = x.repeat(4, axis=2).repeat(4, axis=3)
        h = np.maximum(_conv(up, w["c1"], w["c1b"]), 0)
        return np.tanh(_conv(h, w["c2"], w["c2b"]) + up)
    h = np.maximum(_conv(x, w["d1"], w["d1b"], stride=2), 0)
    h = np.maximum(_conv(h, w["d2"], w["d2b"], stride=2), 0)
    h = np.maximum(_convT2(h, w["u1"], w["u1b"]), 0)
    y = np.tanh(_convT2(h, w["u2"], w["u2b"]) + x)
    if variant == "nan":
        with np.errstate(invalid="ignore"):
            y = np.log(y - 2.0)
    return y


def _reference_frame(h: int, w: int, seed: int) -> np.ndarray:
    """A sector-like synthetic B-mode frame with speckle and a bright overlay text."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy + h * 0.2, xx - w / 2)
    ang = np.arctan2(xx - w / 2, yy + h * 0.2)
    sector = (r > h * 0.25) & (r < h * 1.1) & (np.abs(ang) < 0.6)
    speckle = rng.rayleigh(50, (h, w))
    img[sector] = np.clip(speckle[sector] + 30, 0, 255).astype(np.uint8)
    cv2.putText(img, "12cm", (2, h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 255, 1)
    return img


def make_bundle(root: Path, variant: str = "enhance", seed: int = 0, n_reference: int = 2) -> Path:
    """Write a complete bundle (the current schema, through the typed writer) into ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    w = build_onnx(root / "model.onnx", variant, seed)
    scale = 4 if variant == "sr" else 1
    ref = root / "reference"
    ref.mkdir(exist_ok=True)
    inputs, outputs = [], []
    for i in range(n_reference):
        img = _reference_frame(64 + 8 * i, 96, seed + i)
        cv2.imwrite(str(ref / f"input_{i}.png"), img)
        x = (img.astype(np.float32) / 127.5 - 1.0)[None, None]
        y = reference_forward(x, w, variant)
        np.save(ref / f"torch_{i}.npy", y.astype(np.float32))
        inputs.append(f"reference/input_{i}.png")
        outputs.append(f"reference/torch_{i}.npy")
    manifest = Manifest(
        created="2026-01-01T00:00:00Z",
        model=ModelInfo(name=f"tiny-{variant}", generator="tiny", task="sr" if variant == "sr" else "enhance",
                        scale=scale, channels=1, stride=STRIDE, input_name="input", output_name="output",
                        dynamic_axes=("height", "width"),
                        size_range=SizeRange(min=(16, 16), opt=(256, 256), max=(2048, 2048))),
        precisions={"fp32": PrecisionEntry(file="model.onnx", passed=True, degraded=False,
                                           gate={"psnr_min": 40.0, "max_abs": 0.02, "p99_abs": 0.01})},
        reference=Reference(inputs=tuple(inputs), torch_outputs=tuple(outputs)),
        source_checkpoint=SourceCheckpoint(sha256="0" * 64, name="tiny.pt"),
        tools={"onnx": "test"},
        target=Target(name="generic"),
    )
    write_manifest(root, manifest)
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture(scope="session")
def nan_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundles") / "nan", variant="nan")


@pytest.fixture(scope="session")
def sr_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundles") / "sr", variant="sr", n_reference=1)


@pytest.fixture(scope="session")
def tiny_weights() -> dict[str, np.ndarray]:
    return _weights(0, "enhance")


@pytest.fixture(scope="session")
def bundle_factory():
    """``make_bundle(root, variant="enhance", seed=0, n_reference=2)`` for tests that need their own."""
    return make_bundle


@pytest.fixture(scope="session")
def numpy_reference():
    """``reference_forward(x, weights, variant)``: the independent numpy forward of the tiny model."""
    return reference_forward


def pytest_terminal_summary(terminalreporter):
    """Say in every run what the TensorRT API tier checked (versions loaded, uses per version)."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", ()):
            if name == "api_tier" and report.when == "call":
                terminalreporter.write_line(f"TensorRT API tier: {value}")


def rehash_bundle(root: Path, edit=None) -> Path:
    """Apply ``edit(data)`` to ``root``'s manifest.json (the parsed JSON, edited in place), re-hash
    the files it lists and write bundle.sha256, so the bundle passes its integrity check whatever
    the edit (a hash-valid bad bundle). Returns ``root``."""
    data = json.loads((root / MANIFEST).read_text())
    if edit is not None:
        edit(data)
    data["files"] = {rel: sha256_file(root / rel) for rel in data["files"]}
    raw = (json.dumps(data, indent=2) + "\n").encode()
    (root / MANIFEST).write_bytes(raw)
    (root / CHECKSUMS).write_text(checksum_text({**data["files"], MANIFEST: hashlib.sha256(raw).hexdigest()}))
    return root


@pytest.fixture(scope="session")
def rehash():
    """``rehash_bundle(root, edit=None)``: rewrite a bundle's manifest and make its hashes pass."""
    return rehash_bundle
