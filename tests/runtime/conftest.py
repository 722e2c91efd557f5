"""Fixtures of the runtime tests: a stand-in ``tensorrt`` module object for the build dispatch, and
deliberately broken models for the structure guard."""
from __future__ import annotations

import types
from pathlib import Path

import cv2
import numpy as np
import pytest


def _fake_tensorrt(version: str, parse_ok: bool = True, dla_layers: dict[str, bool] | None = None):
    """A stand-in module object recording calls; it checks sonoedge's dispatch, not TensorRT.

    ``dla_layers``: layer name -> whether DLA can run it (the network's layers)."""
    calls: list[tuple] = []
    layers = dla_layers or {"conv1": True}

    class Config:
        def __init__(self):
            self.flags = []
        def set_memory_pool_limit(self, pool, size): calls.append(("workspace", size))
        def add_optimization_profile(self, p): calls.append(("profile", p.shapes))
        def set_flag(self, flag): self.flags.append(flag); calls.append(("flag", flag))
        def clear_flag(self, flag): calls.append(("clear_flag", flag))
        def set_calibration_profile(self, p): calls.append(("calibration_profile", p.shapes)); return True
        def can_run_on_DLA(self, layer): return layers[layer.name]
        def create_timing_cache(self, blob): return types.SimpleNamespace(serialize=lambda: b"TC")
        def set_timing_cache(self, cache, ignore_mismatch): calls.append(("timing_cache",))

    class Profile:
        def set_shape(self, name, lo, opt, hi): self.shapes = (name, lo, opt, hi)

    class Network:
        num_layers = len(layers)
        def get_layer(self, i):
            return types.SimpleNamespace(name=list(layers)[i], type=types.SimpleNamespace(name="CONVOLUTION"))

    class Builder:
        def __init__(self, logger): pass
        def create_network(self, flags): calls.append(("network_flags", flags)); return Network()
        def create_builder_config(self): return Config()
        def create_optimization_profile(self): return Profile()
        def build_serialized_network(self, network, config): return b"PLAN"

    class Parser:
        num_errors = 0 if parse_ok else 1
        def __init__(self, network, logger): pass
        def parse_from_file(self, path): calls.append(("parse", path)); return parse_ok
        def get_error(self, i): return "unsupported op"

    trt = types.SimpleNamespace(
        __version__=version, Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=Builder, OnnxParser=Parser,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU_FALLBACK", TF32="TF32"),
        DeviceType=types.SimpleNamespace(DLA="DLA"))
    return trt, calls



@pytest.fixture
def fake_tensorrt():
    """``fake_tensorrt(version, parse_ok=True, dla_layers=None) -> (module, calls)``."""
    return _fake_tensorrt


# -- deliberately broken models, for the structure guard ---------------------------------------
# Real ONNX graphs with dynamic H/W, each with a numpy twin for the bundle's reference outputs:
# ``identity`` (output = input: a faithful model that changes nothing), ``invert`` (output =
# -input: bright echoes black, anechoic areas bright) and ``disc`` (the input with a black disc of
# radius 1/4 of the shorter side painted at the centre of the model input: a "cyst" invented over
# whatever tissue lies there).

def _broken_graph(kind: str):
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    if kind == "identity":
        nodes.append(helper.make_node("Identity", ["input"], ["output"]))
    elif kind == "invert":
        nodes.append(helper.make_node("Neg", ["input"], ["output"]))
    elif kind == "disc":
        for name, value, dtype in (("i2", [2], np.int64), ("i3", [3], np.int64), ("zero", 0, np.int64),
                                   ("one", 1, np.int64), ("half", 0.5, np.float32), ("quarter", 0.25, np.float32),
                                   ("black", -1.0, np.float32), ("ax1", [1], np.int64)):
            inits.append(numpy_helper.from_array(np.array(value, dtype), name))
        nodes += [
            helper.make_node("Shape", ["input"], ["shape"]),
            helper.make_node("Gather", ["shape", "i2"], ["h1"]), helper.make_node("Gather", ["shape", "i3"], ["w1"]),
            helper.make_node("Squeeze", ["h1"], ["h"]), helper.make_node("Squeeze", ["w1"], ["w"]),
            helper.make_node("Range", ["zero", "h", "one"], ["yi"]), helper.make_node("Range", ["zero", "w", "one"], ["xi"]),
            helper.make_node("Cast", ["yi"], ["yf"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["xi"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["yf", "ax1"], ["y"]),  # (H, 1)
            helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["hf", "half"], ["cy"]), helper.make_node("Mul", ["wf", "half"], ["cx"]),
            helper.make_node("Min", ["hf", "wf"], ["side"]), helper.make_node("Mul", ["side", "quarter"], ["r"]),
            helper.make_node("Sub", ["y", "cy"], ["dy"]), helper.make_node("Sub", ["x", "cx"], ["dx"]),
            helper.make_node("Mul", ["dy", "dy"], ["dy2"]), helper.make_node("Mul", ["dx", "dx"], ["dx2"]),
            helper.make_node("Add", ["dy2", "dx2"], ["d2"]), helper.make_node("Mul", ["r", "r"], ["r2"]),
            helper.make_node("Less", ["d2", "r2"], ["inside"]),  # (H, W) bool
            helper.make_node("Where", ["inside", "black", "input"], ["output"]),
        ]
    else:
        raise ValueError(kind)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "height", "width"])
    graph = helper.make_graph(nodes, f"broken_{kind}", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sonoedge-tests")
    model.ir_version = 8
    return model


def broken_forward(x: np.ndarray, kind: str) -> np.ndarray:
    """The numpy twin of :func:`_broken_graph`: (1, 1, H, W) float32 in [-1, 1] -> the same shape."""
    if kind == "identity":
        return x.copy()
    if kind == "invert":
        return -x
    h, w = x.shape[-2:]
    hf, wf = np.float32(h), np.float32(w)
    y = np.arange(h, dtype=np.float32)[:, None] - hf * np.float32(0.5)
    xs = np.arange(w, dtype=np.float32) - wf * np.float32(0.5)
    r = min(hf, wf) * np.float32(0.25)
    inside = (y * y + xs * xs) < r * r
    return np.where(inside, np.float32(-1.0), x).astype(np.float32)


@pytest.fixture(scope="session")
def broken_bundle(tmp_path_factory, bundle_factory, rehash):
    """``broken_bundle(kind)`` -> a hash-valid bundle (the tiny bundle's manifest, this model) for
    kind identity | invert | disc, built once per session."""
    import onnx

    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            root = bundle_factory(tmp_path_factory.mktemp("broken") / kind)
            onnx.save(_broken_graph(kind), str(root / "model.onnx"))
            for i in range(2):
                img = cv2.imread(str(root / "reference" / f"input_{i}.png"), cv2.IMREAD_GRAYSCALE)
                x = (img.astype(np.float32) / np.float32(127.5) - np.float32(1.0))[None, None]
                np.save(root / "reference" / f"torch_{i}.npy", broken_forward(x, kind))
            rehash(root, lambda data: data["model"].update(name=f"broken-{kind}", generator=f"broken-{kind}"))
            made[kind] = root
        return made[kind]

    return make
