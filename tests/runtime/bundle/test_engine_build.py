"""The engine build as a device runs it, on any machine: the one precision rule shared by
build-engine, enhance and serve; the dry run for the profile's declared TensorRT; calibration
frames cut from the imaging region; the calibration cache the trtexec line names; a first build on
a fresh device (no cache folder). TensorRT itself is a stand-in module object here (dispatch only;
the real bindings are checked by tests/runtime/backends/tensorrt/test_api_tier.py)."""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

from sonoedge.devices.detect import DetectedDevice
from sonoedge.devices.profiles import load_profile
from sonoedge.runtime.backends.tensorrt import cache as cache_mod
from sonoedge.runtime.backends.tensorrt.backend import build_command
from sonoedge.runtime.backends.tensorrt.cache import EngineCache, GpuDescription, engine_key
from sonoedge.runtime.backends.tensorrt.calibrator import region_tiles
from sonoedge.runtime.bundle import default_bundle_path
from sonoedge.runtime.bundle.engine import (
    build_engine,
    calibration_cache_name,
    declared_trt_version,
    dry_run,
    resolve_precision,
)
from sonoedge.runtime.bundle.manifest import load_manifest, model_file
from sonoedge.runtime.bundle.model import model_precision
from sonoedge.runtime.errors import BundleError, InputError

TRT_PROFILES = ["jetson-xavier-nx", "jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb",
                "jetson-agx-thor", "x86-cuda"]
GPU = GpuDescription("Orin (nvgpu)", "8.7", 8, "10.3.0")


@pytest.fixture(scope="module")
def default_bundle():
    return load_manifest(default_bundle_path())


def _detect_as(monkeypatch, name: str) -> None:
    import sonoedge.devices.detect as detect

    monkeypatch.setattr(detect, "detect_device", lambda *a, **k: DetectedDevice(load_profile(name), "test"))


@pytest.mark.parametrize("name", TRT_PROFILES)
def test_one_precision_rule_for_build_engine_enhance_and_serve(monkeypatch, default_bundle, name):
    """The precision build-engine builds by default is the one enhance/serve look for: no fp32/int8 loop."""
    root, manifest = default_bundle
    _detect_as(monkeypatch, name)
    built = dry_run(root)["precision"]  # build-engine BUNDLE, no --precision
    served = model_precision(root, manifest, "auto")  # enhance/serve, precision "auto" (the default)
    assert built == served == load_profile(name).precisions[0]
    assert model_precision(root, manifest, "fp32") == "fp32"  # explicit wins, never changed
    assert build_command(root, served) == f"sonoedge build-engine {root} --precision {served}"


def test_the_default_precision_is_auto_everywhere():
    from sonoedge.runtime.bundle.model import ModelConfig
    from sonoedge.runtime.stream.enhancer import EnhancerConfig

    assert ModelConfig().precision == EnhancerConfig().precision == "auto"


def test_the_missing_engine_error_names_the_command_that_builds_it():
    assert build_command("b/", "fp32") == "sonoedge build-engine b/ --precision fp32"
    assert build_command("b/", "int8", dla_core=1) == "sonoedge build-engine b/ --precision int8 --dla-core 1"


def test_precision_errors_name_the_fix(default_bundle):
    root, manifest = default_bundle
    only_fp32 = dataclasses.replace(manifest, precisions={"fp32": manifest.precisions["fp32"]})
    with pytest.raises(BundleError, match=r"has no int8 model.*--precisions int8"):
        resolve_precision(only_fp32, None, "int8", root)
    with pytest.raises(BundleError, match=r"none of jetson-orin-nano-8gb's.*--target jetson-orin-nano-8gb"):
        resolve_precision(dataclasses.replace(manifest, precisions={}), load_profile("jetson-orin-nano-8gb"), "auto", root)
    with pytest.raises(InputError, match="unknown precision"):
        resolve_precision(manifest, None, "bf16", root)


def test_dry_run_plans_for_the_profiles_declared_tensorrt(monkeypatch, default_bundle):
    root, _ = default_bundle
    _detect_as(monkeypatch, "x86-cuda")
    x86 = dry_run(root, "int8", "x86-cuda")  # the bundle's copy declares "10.x"
    assert x86["tensorrt"] == "10.3" and x86["mode"] == "strongly_typed" and "--stronglyTyped" in x86["trtexec"]
    xavier = dry_run(root, "int8", "jetson-xavier-nx")
    assert xavier["tensorrt"] == "8.5" and xavier["mode"] == "builder_flags" and xavier["calibrator"] == "entropy2"
    assert dry_run(root, "fp16", "jetson-agx-thor")["tensorrt"] == "10.13"
    assert declared_trt_version(load_profile("jetson-orin-nano-8gb")) == "10.3"
    with pytest.raises(InputError, match="has no TensorRT"):
        declared_trt_version(load_profile("cpu"))


def test_trtexec_calib_names_the_cache_build_engine_writes(monkeypatch, default_bundle, tmp_path):
    root, manifest = default_bundle
    line = dry_run(root, "int8", "jetson-xavier-nx")["trtexec"]
    name = calibration_cache_name(manifest)
    assert f"--calib=${{SONOEDGE_CACHE:-$HOME/.cache/sonoedge}}/engines/{name}" in line
    assert "trt_int8.cache" in name and name != "trt_int8.cache"
    from sonoedge.runtime.bundle import engine as engine_mod

    written = []
    monkeypatch.setattr("sonoedge.runtime.backends.tensorrt.calibrator.make_entropy_calibrator",
                        lambda batches, path: written.append((batches.shape, path)) or object())
    spec = engine_mod.build_spec(manifest, load_profile("jetson-xavier-nx"), "int8", "8.5.2")
    engine_mod._calibrator(root, manifest, None, spec, tmp_path, lambda s: None)
    assert written[0][1] == tmp_path / name and written[0][0] == (1, 1, 256, 256)


def _screen_with_sector(h=480, w=640, seed=0) -> np.ndarray:
    """A black screen with UI text blocks in the top-left corner and a speckle fan in the middle."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((h, w), np.uint8)
    frame[5:40, 5:200] = 230  # a bright UI banner in the top-left corner
    yy, xx = np.mgrid[:h, :w]
    cy, cx = 60, w // 2
    radius, angle = np.hypot(yy - cy, xx - cx), np.arctan2(xx - cx, yy - cy)
    fan = (radius > 80) & (radius < 420) & (np.abs(angle) < 0.6)
    frame[fan] = np.clip(rng.gamma(2.0, 40.0, fan.sum()), 20, 255).astype(np.uint8)
    return frame


def test_calibration_frames_are_cut_from_the_imaging_region():
    frames = [_screen_with_sector(seed=i) for i in range(3)]
    tiles = region_tiles(frames, opt_hw=(384, 384), min_hw=(64, 64), stride=64)
    assert len(tiles) == 3 and {t.shape for t in tiles} == {tiles[0].shape}
    h, w = tiles[0].shape
    assert h % 64 == 0 and w % 64 == 0 and h >= 64 and w >= 64
    assert (tiles[0] == 230).mean() < 0.01  # the UI banner of the top-left corner is not calibration data
    assert tiles[0].mean() > 30  # speckle, not black screen
    with pytest.raises(InputError, match="imaging region of at least"):
        region_tiles(frames, (384, 384), (2048, 2048), 64)


def test_build_engine_on_a_fresh_device_creates_the_cache_folder(monkeypatch, tmp_path, default_bundle, fake_tensorrt):
    """Empty HOME, no SONOEDGE_CACHE: the first build gets through to the cache store."""
    root, manifest = default_bundle
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SONOEDGE_CACHE", raising=False)
    trt, calls = fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cache_mod, "describe_current_gpu", lambda *a, **k: GPU)
    _detect_as(monkeypatch, "jetson-orin-nano-8gb")
    lines = []
    plan = build_engine(root, progress=lines.append)  # precision auto: the profile's int8
    assert plan.parent == home / ".cache" / "sonoedge" / "engines" and plan.read_bytes() == b"PLAN"
    assert (plan.parent / "timing.cache").read_bytes() == b"TC"
    sidecar = json.loads(plan.with_suffix(".json").read_text())
    assert sidecar["spec"]["precision"] == "int8" and sidecar["spec"]["mode"] == "strongly_typed"
    # enhance/serve with precision auto find exactly this engine: the same key
    precision = model_precision(root, manifest, "auto")
    key = engine_key(model_file(root, manifest, precision), precision, None, gpu=GPU)
    assert EngineCache().lookup(key) == plan
    assert any("cached at" in line for line in lines)


def test_dry_run_stdout_is_the_json_alone_with_a_detected_device(monkeypatch, default_bundle, capsys):
    """The detected-device line goes to stderr, so `build-engine --dry-run | jq` reads the plan."""
    import json

    from sonoedge.cli import main

    root, _ = default_bundle
    _detect_as(monkeypatch, "jetson-orin-nano-8gb")
    assert main(["build-engine", str(root), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["profile"] == "jetson-orin-nano-8gb"
    assert "detected device jetson-orin-nano-8gb" in captured.err
