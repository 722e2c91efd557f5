"""TensorRT build logic: version dispatch, profile shapes, DLA, trtexec lines, the engine plan and the
calibration batches run everywhere. The builder itself is exercised against a fake ``tensorrt``
module object (dispatch only; that is NOT a TensorRT test); the real one is marked ``tensorrt``."""
from __future__ import annotations

import dataclasses

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

NO_TRT = ("tensorrt does not import here: it needs libnvinfer and an NVIDIA GPU "
          "(the bindings alone are checked by tests/runtime/backends/tensorrt/test_api_tier.py)")
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
    assert legacy.flags == ("INT8", "FP16") and legacy.calibrator == "entropy2" and legacy.dla_core == 0
    assert legacy.shapes["max"] == legacy.shapes["min"] == (1, 1, 384, 384) and legacy.workspace_mb == 1024  # DLA: static
    fallback = build_spec(MANIFEST, xavier, "int8", "8.5.2", dla_core=0, allow_gpu_fallback=True)
    assert fallback.flags == ("INT8", "FP16", "GPU_FALLBACK") and fallback.allow_gpu_fallback
    gpu_only = build_spec(MANIFEST, xavier, "int8", "8.5.2")
    assert gpu_only.dla_core is None and gpu_only.flags == ("INT8", "FP16")  # DLA is opt-in
    assert gpu_only.shapes["max"] == (1, 1, 768, 768) and not gpu_only.allow_gpu_fallback
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
    line = trtexec_command(build_spec(MANIFEST, xavier, "int8", "8.6", dla_core=0, allow_gpu_fallback=True), 10)
    for part in ("--onnx=model.onnx", "--int8", "--fp16", "--calib=", "--useDLACore=0", "--allowGPUFallback",
                 "--minShapes=input:1x1x384x384", "--maxShapes=input:1x1x384x384", "--memPoolSize=workspace:1024"):
        assert part in line, part
    assert "--allowGPUFallback" not in trtexec_command(build_spec(MANIFEST, xavier, "int8", "8.6", dla_core=0), 10)
    assert "--maxShapes=input:1x1x768x768" in trtexec_command(build_spec(MANIFEST, xavier, "int8", "8.6"), 10)
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


class _Calibrator:
    """What make_entropy_calibrator returns, as far as the builder looks: a batch shape and its bytes."""

    def __init__(self, shape=(1, 1, 256, 256), nbytes=None):
        self.shape, self.nbytes = shape, 4 * int(np.prod(shape)) if nbytes is None else nbytes


def test_builder_dispatch_with_a_fake_module(tmp_path, fake_tensorrt):
    nano, xavier = load_profile("jetson-orin-nano-8gb"), load_profile("jetson-xavier-nx")
    trt, calls = fake_tensorrt("10.3.0")
    spec = build_spec(MANIFEST, nano, "int8", trt.__version__)
    result = build_serialized(spec, tmp_path, timing_cache=tmp_path / "tc", progress=lambda s: None, trt=trt)
    assert result.plan == b"PLAN" and result.dla is None
    assert ("network_flags", 1 << 5) in calls and not [c for c in calls if c[0] in ("flag", "clear_flag")]
    assert (tmp_path / "tc").read_bytes() == b"TC"
    trt, calls = fake_tensorrt("8.6.1")
    spec = build_spec(MANIFEST, xavier, "int8", trt.__version__)
    with pytest.raises(InputError, match="calibrator"):
        build_serialized(spec, tmp_path, progress=lambda s: None, trt=trt)
    assert build_serialized(spec, tmp_path, calibrator=_Calibrator(), progress=lambda s: None, trt=trt).plan == b"PLAN"
    assert ("network_flags", 1) in calls and ("flag", "INT8") in calls
    trt11, _ = fake_tensorrt("11.0.0")
    with pytest.raises(SonoedgeError, match="other"):
        build_serialized(spec, tmp_path, calibrator=_Calibrator(), progress=lambda s: None, trt=trt11)
    bad, _ = fake_tensorrt("10.3.0", parse_ok=False)
    with pytest.raises(BundleError, match="unsupported op"):
        build_serialized(build_spec(MANIFEST, nano, "fp16", "10.3.0"), tmp_path, progress=lambda s: None, trt=bad)


def test_calibration_profile_is_the_calibrators_shape(tmp_path, fake_tensorrt):
    """TensorRT calibrates at the calibration profile's OPT; the calibrator's buffer holds exactly that."""
    xavier = load_profile("jetson-xavier-nx")  # opt 384x384, calibration tiles 256x256
    trt, calls = fake_tensorrt("8.6.1")
    spec = build_spec(MANIFEST, xavier, "int8", trt.__version__)
    build_serialized(spec, tmp_path, calibrator=_Calibrator((1, 1, 256, 256)), progress=lambda s: None, trt=trt)
    (calib,) = [c[1] for c in calls if c[0] == "calibration_profile"]
    assert calib == ("input", (1, 1, 256, 256), (1, 1, 256, 256), (1, 1, 256, 256))
    (main,) = [c[1] for c in calls if c[0] == "profile"]
    assert main[2] == (1, 1, 384, 384)  # the inference profile keeps the device's range
    with pytest.raises(SonoedgeError, match="buffer"):
        build_serialized(spec, tmp_path, calibrator=_Calibrator((1, 1, 256, 256), nbytes=4 * 128 * 128),
                         progress=lambda s: None, trt=trt)
    with pytest.raises(InputError, match="do not match"):
        build_serialized(spec, tmp_path, calibrator=_Calibrator((1, 3, 256, 256)), progress=lambda s: None, trt=trt)


@pytest.mark.parametrize("version, mode", [("8.6.1", "builder_flags"), ("10.3.0", "strongly_typed"), ("11.0.0", "strongly_typed")])
def test_fp32_builds_clear_tf32(tmp_path, version, mode, fake_tensorrt):
    spec = build_spec(MANIFEST, load_profile("x86-cuda"), "fp32", version)
    assert spec.mode == mode and spec.clear_flags == ("TF32",)
    assert "--noTF32" in trtexec_command(spec, 11 if version.startswith("11") else 10)
    trt, calls = fake_tensorrt(version)
    build_serialized(spec, tmp_path, progress=lambda s: None, trt=trt)
    assert ("clear_flag", "TF32") in calls
    fp16 = build_spec(MANIFEST, load_profile("x86-cuda"), "fp16", version)
    assert fp16.clear_flags == () and "--noTF32" not in trtexec_command(fp16, 11 if version.startswith("11") else 10)


def test_dla_reports_placement_and_fails_without_fallback(tmp_path, fake_tensorrt):
    xavier = load_profile("jetson-xavier-nx")
    layers = {"conv1": True, "resize_up": False, "conv2": True}
    trt, calls = fake_tensorrt("8.5.2", dla_layers=layers)
    strict = build_spec(MANIFEST, xavier, "fp16", trt.__version__, dla_core=1)
    with pytest.raises(SonoedgeError, match=r"DLA cannot run 1 layer.*resize_up.*--allow-gpu-fallback"):
        build_serialized(strict, tmp_path, progress=lambda s: None, trt=trt)
    lines = []
    loose = build_spec(MANIFEST, xavier, "fp16", trt.__version__, dla_core=1, allow_gpu_fallback=True)
    result = build_serialized(loose, tmp_path, progress=lines.append, trt=trt)
    assert result.dla == {"core": 1, "on_dla": ["conv1 (CONVOLUTION)", "conv2 (CONVOLUTION)"],
                          "gpu_fallback": ["resize_up (CONVOLUTION)"]}
    assert ("flag", "GPU_FALLBACK") in calls and any("2 layer(s) on DLA, 1 on the GPU" in line for line in lines)
    trt, _ = fake_tensorrt("8.5.2", dla_layers={"conv1": True})
    assert build_serialized(strict, tmp_path, progress=lambda s: None, trt=trt).dla["gpu_fallback"] == []


@pytest.mark.tensorrt
def test_real_tensorrt_builds_a_tiny_onnx(tmp_path):
    trt = pytest.importorskip("tensorrt", reason=NO_TRT)
    pytest.importorskip("onnx", reason="the test writes its ONNX with the onnx package")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Tanh", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "model.onnx"))
    spec = BuildSpec("fp32", build_mode(trt.__version__), "model.onnx", "input",
                     {"min": (1, 1, 8, 8), "opt": (1, 1, 16, 16), "max": (1, 1, 32, 32)}, 256, (), None, None, "x86-cuda")
    assert len(build_serialized(spec, tmp_path, progress=lambda s: None).plan) > 0
