"""Fixtures of the runtime tests: a stand-in ``tensorrt`` module object for the build dispatch."""
from __future__ import annotations

import types

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
