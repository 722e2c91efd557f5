"""Export end to end: ONNX parity, fp16, calibrated int8 with the layer search, gates, the bundle,
verify (and refusal of a tampered bundle), for both generator families at two input sizes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.export.bundle import ExportConfig, export_bundle
from sonoedge.runtime.bundle import gates
from sonoedge.runtime.bundle.manifest import PRECISION_FILES, load_manifest
from sonoedge.runtime.bundle.verify import verify_bundle
from sonoedge.runtime.errors import BundleError, GateError, InputError, UnknownNameError


def _cfg(frames, size, **over):
    base = dict(target="jetson-orin-nano-8gb", precisions=("fp32", "fp16", "int8"), frames=frames and str(frames),
                calib_frames=12, search_frames=4, reference_frames=2, reference_size=size, calib_size=(64, 64),
                bundle_calib_tiles=4, lpips=False, calib_bins=256,  # 256 bins: fast entropy search in tests
                fidelity_frames="none")  # these tiny models are not faithful; the fidelity gate has its own tests
    base.update(over)
    return ExportConfig(**base)


def _quiet(line: str) -> None:
    pass


@pytest.mark.parametrize("family", ["resnet", "unet"])
@pytest.mark.parametrize("size", [(48, 64), (72, 56)])
def test_export_parity_and_gates_on_real_frames(tmp_path, tiny_checkpoints, realus, family, size):
    out = tmp_path / "bundle"
    cfg = _cfg(realus / "hc18", size, calib=str(realus / "hip_spj"))
    manifest = export_bundle(tiny_checkpoints[family], out, cfg, _quiet)
    precisions = manifest.precisions
    assert set(precisions) == {"fp32", "fp16", "int8"}
    for name, entry in precisions.items():
        assert entry.passed, (name, entry.failures)
        assert entry.file == PRECISION_FILES[name] and (out / entry.file).is_file()
        assert {"max_abs", "p99_abs", "psnr", "ssim"} <= set(entry.results)
    assert precisions["fp32"].results["max_abs"] <= 1e-4
    assert precisions["fp16"].results["psnr"] >= 45
    calib = precisions["int8"].extra["calibration"]
    assert calib["frames"] >= 8 and len(calib["sha256"]) == 64 and calib["method"] == "entropy"
    assert isinstance(precisions["int8"].extra["excluded_nodes"], list)
    # reference frames: real crops no larger than asked, torch outputs beside them
    ref = np.load(out / manifest.reference.torch_outputs[0])
    assert ref.ndim == 4 and ref.shape[2] <= size[0] and ref.shape[3] <= size[1]
    assert manifest.model.generator == family and manifest.target.profiles == ("jetson-orin-nano-8gb",)
    assert load_manifest(out)[1] == manifest  # what export returns is what the runtime reads
    assert (out / "devices" / "jetson-orin-nano-8gb.toml").is_file()
    plan = json.loads((out / "engine_plan.json").read_text())
    assert set(plan["profiles"]["jetson-orin-nano-8gb"]["builds"]) == {"fp32", "fp16", "int8"}
    checks = verify_bundle(out)
    assert [c.precision for c in checks] == ["fp32", "fp16", "int8"] and all(c.ok for c in checks)


def test_a_missing_lpips_trunk_stops_the_export_unless_random_is_named(tmp_path, monkeypatch):
    """No trunk file and none named: one sentence naming the file and the ways on, never a silent random."""
    from sonoedge.export.lpips_metric import build_metric

    monkeypatch.delenv("SONOEDGE_LPIPS_TRUNK", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(InputError) as err:
        build_metric(None)
    assert "vgg16-397923af.pth" in str(err.value) and "--lpips-trunk random" in str(err.value)


@pytest.mark.slow
def test_lpips_is_reported_with_its_trunk_named(tmp_path, tiny_checkpoints, speckle_dir):
    """LPIPS (VGG16 on the CPU, seconds) is reported for every precision, never gated."""
    cfg = _cfg(speckle_dir, (48, 48), precisions=("fp32", "int8"), lpips=True, lpips_trunk="random")
    manifest = export_bundle(tiny_checkpoints["resnet"], tmp_path / "b", cfg, _quiet)
    for entry in manifest.precisions.values():
        assert entry.results["lpips"] >= 0 and np.isfinite(entry.results["lpips"])
        assert "random" in entry.lpips_trunk or "sha256" in entry.lpips_trunk
    assert "lpips" not in gates.GATES["int8"].required()


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory, tiny_checkpoints, speckle_dir):
    out = tmp_path_factory.mktemp("bundle") / "b"
    export_bundle(tiny_checkpoints["unet"], out, _cfg(speckle_dir, (48, 48), precisions=("fp32", "int8")), _quiet)
    return out


def test_tampered_bundle_is_refused_with_the_file_named(tmp_path, small_bundle, capsys):
    assert main(["verify", str(small_bundle)]) == 0
    bad = tmp_path / "bad"
    shutil.copytree(small_bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx"):
        verify_bundle(bad)
    capsys.readouterr()
    assert main(["verify", str(bad)]) == 2
    assert "model.onnx" in capsys.readouterr().err
    shutil.rmtree(bad)
    shutil.copytree(small_bundle, bad)
    frame = bad / "reference" / "frame_000.png"
    frame.write_bytes(frame.read_bytes()[:-1] + bytes([frame.read_bytes()[-1] ^ 0xFF]))
    with pytest.raises(BundleError, match="reference/frame_000.png"):
        verify_bundle(bad)


def test_unknown_target_is_a_clear_error(tmp_path, tiny_checkpoints, capsys):
    with pytest.raises(UnknownNameError, match="jetson-orin-nano-8gb"):
        export_bundle(tiny_checkpoints["resnet"], tmp_path / "b", ExportConfig(target="jetson-nano-2gb", frames="x"), _quiet)
    code = main(["export", str(tiny_checkpoints["resnet"]), "--target", "orin-nano", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown target 'orin-nano'" in err and "jetson-agx-thor" in err
    assert not (tmp_path / "b").exists()


def test_unsupported_precision_for_target(tmp_path, tiny_checkpoints, speckle_dir):
    with pytest.raises(InputError, match="fp16"):
        export_bundle(tiny_checkpoints["resnet"], tmp_path / "b", _cfg(speckle_dir, (48, 48), target="cpu"), _quiet)


def test_gate_failure_exits_nonzero_and_degraded_is_flagged(tmp_path, tiny_checkpoints, speckle_dir, monkeypatch, capsys):
    monkeypatch.setitem(gates.GATES, "fp16", gates.Gate(psnr_min=500.0))  # unreachable: fp16 must fail
    args = ["export", str(tiny_checkpoints["resnet"]), "--target", "x86-cuda", "--precisions", "fp32,fp16",
            "--frames", str(speckle_dir), "--reference-frames", "2", "--reference-size", "48", "--no-lpips", "--calib-bins", "256",
            "--fidelity-frames", "none", "-o"]
    assert main([*args, str(tmp_path / "strict")]) == GateError.exit_code
    assert "fp16: PSNR" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists(), "a failed export must leave no bundle"
    assert main([*args, str(tmp_path / "kept"), "--allow-degraded"]) == 0
    root, manifest = load_manifest(tmp_path / "kept")
    assert manifest.precisions["fp16"].degraded is True and manifest.precisions["fp16"].passed is False
    assert manifest.precisions["fp32"].degraded is False
    assert main(["verify", str(root)]) == 0  # degraded is reported, not fatal...
    assert "DEGRADED" in capsys.readouterr().out
    assert main(["verify", str(root), "--strict"]) == GateError.exit_code  # ...unless --strict


def test_tar_bundle_verifies(tmp_path, tiny_checkpoints, speckle_dir):
    out = tmp_path / "b"
    export_bundle(tiny_checkpoints["resnet"], out, _cfg(speckle_dir, (48, 48), precisions=("fp32",), tar=True,
                                                          target="cpu"), _quiet)
    assert (tmp_path / "b.tar").is_file()
    assert all(c.ok for c in verify_bundle(tmp_path / "b.tar"))


def test_build_engine_dry_run_on_a_bundle(small_bundle, capsys):
    assert main(["build-engine", str(small_bundle), "--profile", "jetson-xavier-nx", "--precision", "int8", "--dry-run",
                 "--dla-core", "0"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["mode"] == "builder_flags" and spec["flags"] == ["INT8", "FP16"]  # DLA: no silent GPU fallback
    assert spec["calibrator"] == "entropy2" and spec["dla_core"] == 0 and "--int8" in spec["trtexec"]
    assert spec["shapes"]["min"] == spec["shapes"]["opt"] == spec["shapes"]["max"]  # DLA: static shapes
    assert main(["build-engine", str(small_bundle), "--profile", "jetson-xavier-nx", "--precision", "int8", "--dry-run",
                 "--dla-core", "0", "--allow-gpu-fallback"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["flags"] == ["INT8", "FP16", "GPU_FALLBACK"] and "--allowGPUFallback" in spec["trtexec"]
    assert f"--calib=${{SONOEDGE_CACHE:-$HOME/.cache/sonoedge}}/engines/{spec['calibration_cache']}" in spec["trtexec"]
    assert main(["build-engine", str(small_bundle), "--profile", "jetson-agx-thor", "--precision", "int8",
                 "--dry-run", "--trt-version", "11.0"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["mode"] == "strongly_typed" and spec["onnx"] == "model.int8.qdq.onnx" and "--int8" not in spec["trtexec"]


def test_sr_generator_exports_at_scale_4(tmp_path, speckle_dir):
    """liu_sr (4x SR, Liu et al.) when registered: reference outputs are 4x the input, all gates checked."""
    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.registries import GENERATORS, load_all

    load_all()
    if "liu_sr" not in GENERATORS:
        pytest.skip("the liu_sr generator is not registered in this checkout")
    g = GENERATORS.create("liu_sr", width=0.125)
    ckpt = save_checkpoint(tmp_path / "sr.pt", model_info=model_info("liu_sr", {"width": 0.125}, task="sr", scale=4,
                                                                   stride=g.stride),
                           state_dicts={"G_H": g.state_dict()}, config={}, meta={})
    cfg = _cfg(speckle_dir, (96, 96), target="x86-cuda", calib_size=(32, 32), calib_frames=6, search_frames=2)
    manifest = export_bundle(ckpt, tmp_path / "b", cfg, _quiet)
    assert manifest.model.scale == 4
    image = manifest.reference.inputs[0]
    ref = np.load(tmp_path / "b" / manifest.reference.torch_outputs[0])
    import cv2

    h, w = cv2.imread(str(tmp_path / "b" / image), cv2.IMREAD_UNCHANGED).shape
    assert ref.shape == (1, 1, 4 * h, 4 * w)
    assert all(e.passed for e in manifest.precisions.values())
    assert all(c.ok for c in verify_bundle(tmp_path / "b"))


@pytest.mark.slow
def test_without_frames_parity_runs_on_phantom_frames(tmp_path, tiny_checkpoints):
    cfg = _cfg(None, (48, 48), precisions=("fp32",), target="cpu", reference_frames=1)
    manifest = export_bundle(tiny_checkpoints["unet"], tmp_path / "b", cfg, _quiet)
    assert "phantom" in manifest.reference.source and manifest.precisions["fp32"].passed


def test_build_engine_caches_under_the_backend_key(small_bundle, tmp_path, monkeypatch, capsys):
    """build-engine with a stand-in tensorrt module (dispatch and caching only, NOT a TensorRT test):
    the plan lands in the cache under the key the TensorRT backend computes, and a rerun reuses it."""
    import sys
    import types

    from sonoedge.runtime.backends.tensorrt import cache as engine_cache
    from sonoedge.runtime.digest import sha256_file

    built = []

    class Builder:
        def __init__(self, logger): pass
        def create_network(self, flags): return object()
        def create_builder_config(self):
            return types.SimpleNamespace(set_memory_pool_limit=lambda *a: None, add_optimization_profile=lambda p: None,
                                         set_flag=lambda f: None, create_timing_cache=lambda b: types.SimpleNamespace(serialize=lambda: b"T"),
                                         set_timing_cache=lambda c, ignore_mismatch: None)
        def create_optimization_profile(self): return types.SimpleNamespace(set_shape=lambda *a: None)
        def build_serialized_network(self, network, config): built.append(1); return b"FAKEPLAN"

    fake = types.SimpleNamespace(
        __version__="10.3.0", Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=Builder, OnnxParser=lambda network, logger: types.SimpleNamespace(parse_from_file=lambda p: True, num_errors=0),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE=0), BuilderFlag=types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    gpu = engine_cache.GpuDescription("Orin (nvgpu)", "8.7", 8, "10.3.0")
    monkeypatch.setattr(engine_cache, "describe_current_gpu", lambda *a, **k: gpu)
    args = ["build-engine", str(small_bundle), "--profile", "jetson-orin-nano-8gb", "--cache", str(tmp_path)]
    assert main(args) == 0 and built == [1]
    key = gpu.key("int8", None, sha256_file(small_bundle / "model.int8.qdq.onnx"))  # what the backend looks up
    plan = engine_cache.EngineCache(tmp_path).lookup(key)
    assert plan is not None and plan.read_bytes() == b"FAKEPLAN"
    assert main(args) == 0 and built == [1]  # cached: no second build
    assert "up to date" in capsys.readouterr().out
