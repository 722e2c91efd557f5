"""TensorRT build logic: version dispatch, profile shapes, DLA, trtexec lines, the engine plan and the
calibration batches run everywhere. The builder itself is exercised against a fake ``tensorrt``
module object (dispatch only; that is NOT a TensorRT test); the real one is marked ``tensorrt``."""
from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from sonoedge.devices.profiles import load_profile
from sonoedge.runtime.backends.tensorrt.build import (
    BuildSpec,
    build_mode,
    build_serialized,
    parse_version,
    profile_shapes,
    trtexec_command,
)
from sonoedge.runtime.backends.tensorrt.calibrator import CalibrationBatches, load_tiles
from sonoedge.runtime.bundle.engine import build_spec, engine_plan
from sonoedge.runtime.bundle.manifest import Manifest
from sonoedge.runtime.errors import BundleError, InputError, SonoedgeError

MANIFEST = Manifest.from_dict({
    "model": {"stride": 8, "channels": 1, "input_name": "input"},
    "precisions": {"fp32": {"file": "model.onnx"}, "fp16": {"file": "model.fp16.onnx"}, "int8": {"file": "model.int8.qdq.onnx"}},
    "files": {}})


@pytest.mark.parametrize("version, legacy, mode", [
    ("8.5.2", False, "builder_flags"), ("8.6.1.6", False, "builder_flags"), ("10.0.1", False, "builder_flags"),
    ("10.1.0", False, "strongly_typed"), ("10.3.0.30", False, "strongly_typed"), ("10.13", True, "builder_flags"),
    ("11.0.0", False, "strongly_typed"), ("11.4.1", False, "strongly_typed"),
])
def test_version_dispatch(version, legacy, mode):
    assert build_mode(version, legacy) == mode


def test_version_errors():
    with pytest.raises(InputError, match="TensorRT 11 removed"):
        build_mode("11.0", legacy=True)
    with pytest.raises(InputError, match="too old"):
        build_mode("8.4.3")
    with pytest.raises(InputError, match="version"):
        parse_version("latest")
    assert parse_version("10.3.0.30") == (10, 3, 0)


def test_profile_shapes_are_stride_aligned():
    shapes = profile_shapes({"min": [60, 60], "opt": [500, 384], "max": [1000, 1000]}, channels=1, stride=8)
    assert shapes == {"min": (1, 1, 64, 64), "opt": (1, 1, 504, 384), "max": (1, 1, 1000, 1000)}
    with pytest.raises(InputError, match="min <= opt"):
        profile_shapes({"min": [64, 64], "opt": [32, 32], "max": [128, 128]}, 1, 8)


def test_build_specs_per_path_and_device():
    xavier, nano, thor = (load_profile(n) for n in ("jetson-xavier-nx", "jetson-orin-nano-8gb", "jetson-agx-thor"))
    legacy = build_spec(MANIFEST, xavier, "int8", "8.5.2", dla_core=0)
    assert legacy.mode == "builder_flags" and legacy.onnx == "model.onnx"
    assert legacy.flags == ("INT8", "FP16", "GPU_FALLBACK") and legacy.calibrator == "entropy2" and legacy.dla_core == 0
    assert legacy.shapes["max"] == (1, 1, 768, 768) and legacy.workspace_mb == 1024
    gpu_only = build_spec(MANIFEST, xavier, "int8", "8.5.2")
    assert gpu_only.dla_core is None and gpu_only.flags == ("INT8", "FP16")  # DLA is opt-in
    with pytest.raises(InputError, match="fp16 or int8"):
        build_spec(MANIFEST, xavier, "fp32", "8.5.2", dla_core=0)  # DLA has no fp32
    with pytest.raises(InputError, match="builder-flag"):
        build_spec(MANIFEST, load_profile("jetson-orin-nx-16gb"), "fp16", "10.3", dla_core=1)
    typed = build_spec(MANIFEST, nano, "int8", "10.3")
    assert typed.mode == "strongly_typed" and typed.onnx == "model.int8.qdq.onnx" and typed.flags == ()
    assert typed.calibrator is None and typed.dla_core is None
    assert build_spec(MANIFEST, thor, "fp16", "11.0").onnx == "model.fp16.onnx"
    with pytest.raises(InputError, match="no DLA"):
        build_spec(MANIFEST, nano, "fp16", "8.6", dla_core=0)
    with pytest.raises(InputError, match="out of range"):
        build_spec(MANIFEST, xavier, "fp16", "8.6", dla_core=2)
    with pytest.raises(BundleError, match="no int8 model"):
        build_spec(dataclasses.replace(MANIFEST, precisions={"fp32": MANIFEST.precisions["fp32"]}), nano, "int8", "10.3")


def test_trtexec_lines_for_both_generations():
    xavier, thor = load_profile("jetson-xavier-nx"), load_profile("jetson-agx-thor")
    line = trtexec_command(build_spec(MANIFEST, xavier, "int8", "8.6", dla_core=0), 10)
    for part in ("--onnx=model.onnx", "--int8", "--fp16", "--calib=", "--useDLACore=0", "--allowGPUFallback",
                 "--minShapes=input:1x1x64x64", "--maxShapes=input:1x1x768x768", "--memPoolSize=workspace:1024"):
        assert part in line, part
    ten = trtexec_command(build_spec(MANIFEST, thor, "fp16", "10.13"), 10)
    assert "--stronglyTyped" in ten and "--fp16" not in ten and "--onnx=model.fp16.onnx" in ten
    eleven = trtexec_command(build_spec(MANIFEST, thor, "int8", "11.0"), 11)
    assert "--stronglyTyped" not in eleven and "--int8" not in eleven and "model.int8.qdq.onnx" in eleven
    with pytest.raises(InputError, match="TensorRT 11"):
        trtexec_command(build_spec(MANIFEST, xavier, "fp16", "8.6"), 11)


def test_engine_plan_covers_every_profile_and_precision():
    profiles = [load_profile("jetson-xavier-nx"), load_profile("jetson-orin-nx-16gb"), load_profile("cpu")]
    plan = engine_plan(MANIFEST, profiles, ["fp32", "fp16", "int8"])
    assert set(plan["profiles"]) == {"jetson-xavier-nx", "jetson-orin-nx-16gb"}
    builds = plan["profiles"]["jetson-orin-nx-16gb"]["builds"]["int8"]
    assert builds["trt10_legacy"]["mode"] == "builder_flags" and builds["trt10_legacy"]["dla_core"] is None
    assert builds["trt10_legacy_dla"]["dla_core"] == 0 and "--useDLACore=0" in builds["trt10_legacy_dla"]["trtexec"]
    assert "trt10_legacy_dla" not in plan["profiles"]["jetson-orin-nx-16gb"]["builds"]["fp32"]
    assert builds["trt11"]["mode"] == "strongly_typed" and builds["trt11"]["trtexec"].startswith("trtexec ")


def test_calibration_batches(tmp_path):
    tiles = [np.full((16, 24), i * 10, np.uint8) for i in range(5)]
    batches = CalibrationBatches(tiles, batch_size=2)
    got = list(batches)
    assert len(batches) == 2 and len(got) == 2  # the partial last batch is dropped
    assert got[0].shape == (2, 1, 16, 24) and got[0].dtype == np.float32 and got[0].flags.c_contiguous
    assert got[1][0, 0, 0, 0] == pytest.approx(20 / 127.5 - 1)
    assert batches.nbytes == 2 * 16 * 24 * 4
    with pytest.raises(InputError, match="one shape"):
        CalibrationBatches([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)])
    with pytest.raises(InputError, match="cannot fill"):
        CalibrationBatches(tiles, batch_size=8)
    np.savez_compressed(tmp_path / "t.npz", tiles=np.stack(tiles))
    assert len(load_tiles(tmp_path / "t.npz")) == 5
    np.savez_compressed(tmp_path / "bad.npz", tiles=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(BundleError, match="uint8"):
        load_tiles(tmp_path / "bad.npz")


def _fake_tensorrt(version: str, parse_ok: bool = True):
    """A stand-in module object recording calls; it checks sonoedge's dispatch, not TensorRT."""
    calls: list[tuple] = []

    class Config:
        def __init__(self):
            self.flags = []
        def set_memory_pool_limit(self, pool, size): calls.append(("workspace", size))
        def add_optimization_profile(self, p): calls.append(("profile", p.shapes))
        def set_flag(self, flag): self.flags.append(flag); calls.append(("flag", flag))
        def set_calibration_profile(self, p): calls.append(("calibration_profile",))
        def create_timing_cache(self, blob): return types.SimpleNamespace(serialize=lambda: b"TC")
        def set_timing_cache(self, cache, ignore_mismatch): calls.append(("timing_cache",))

    class Profile:
        def set_shape(self, name, lo, opt, hi): self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger): pass
        def create_network(self, flags): calls.append(("network_flags", flags)); return object()
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
        BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU_FALLBACK"),
        DeviceType=types.SimpleNamespace(DLA="DLA"))
    return trt, calls


def test_builder_dispatch_with_a_fake_module(tmp_path):
    nano, xavier = load_profile("jetson-orin-nano-8gb"), load_profile("jetson-xavier-nx")
    trt, calls = _fake_tensorrt("10.3.0")
    spec = build_spec(MANIFEST, nano, "int8", trt.__version__)
    assert build_serialized(spec, tmp_path, timing_cache=tmp_path / "tc", progress=lambda s: None, trt=trt) == b"PLAN"
    assert ("network_flags", 1 << 5) in calls and not [c for c in calls if c[0] == "flag"]
    assert (tmp_path / "tc").read_bytes() == b"TC"
    trt, calls = _fake_tensorrt("8.6.1")
    spec = build_spec(MANIFEST, xavier, "int8", trt.__version__)
    with pytest.raises(InputError, match="calibrator"):
        build_serialized(spec, tmp_path, progress=lambda s: None, trt=trt)
    assert build_serialized(spec, tmp_path, calibrator=object(), progress=lambda s: None, trt=trt) == b"PLAN"
    assert ("network_flags", 1) in calls and ("flag", "INT8") in calls and ("calibration_profile",) in calls
    trt11, _ = _fake_tensorrt("11.0.0")
    with pytest.raises(SonoedgeError, match="other"):
        build_serialized(spec, tmp_path, calibrator=object(), progress=lambda s: None, trt=trt11)
    bad, _ = _fake_tensorrt("10.3.0", parse_ok=False)
    with pytest.raises(BundleError, match="unsupported op"):
        build_serialized(build_spec(MANIFEST, nano, "fp16", "10.3.0"), tmp_path, progress=lambda s: None, trt=bad)


@pytest.mark.tensorrt
def test_real_tensorrt_builds_a_tiny_onnx(tmp_path):
    trt = pytest.importorskip("tensorrt", reason="tensorrt is not installable here (needs an NVIDIA GPU and JetPack/wheels)")
    pytest.importorskip("onnx", reason="the test writes its ONNX with the onnx package")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Tanh", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "model.onnx"))
    spec = BuildSpec("fp32", build_mode(trt.__version__), "model.onnx", "input",
                     {"min": (1, 1, 8, 8), "opt": (1, 1, 16, 16), "max": (1, 1, 32, 32)}, 256, (), None, None, "x86-cuda")
    assert len(build_serialized(spec, tmp_path, progress=lambda s: None)) > 0
