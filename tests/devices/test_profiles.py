"""Device profiles: every TOML loads as a typed profile, families, targets, detection, the CLI."""
import json

import pytest

from sonoedge.cli import main
from sonoedge.devices.detect import detect_device, match_model
from sonoedge.devices.profiles import DeviceProfile, InputRange, load_profile_file, load_profiles, resolve_target
from sonoedge.runtime.errors import InputError, UnknownNameError
from sonoedge.runtime.precision import PRECISIONS

REQUIRED = {"jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb", "jetson-xavier-nx",
            "jetson-agx-thor", "x86-cuda", "cpu"}


def test_every_required_profile_loads_typed():
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    for name, prof in profiles.items():
        assert isinstance(prof, DeviceProfile) and prof.name == name
        assert isinstance(prof.input, InputRange)
        assert set(prof.precisions) <= set(PRECISIONS)
        assert prof.sources, f"{name} cites no source for its numbers"
        if prof.family == "jetson":
            assert prof.compute_capability and prof.tensorrt and prof.jetpack and prof.device_tree_models


def test_published_numbers():
    p = load_profiles()
    assert p["jetson-orin-nano-8gb"].dla_cores == 0 and p["jetson-orin-nx-16gb"].dla_cores == 2
    assert p["jetson-agx-orin-64gb"].cuda_cores == 2048 and p["jetson-xavier-nx"].compute_capability == "7.2"
    assert p["jetson-xavier-nx"].trt_major == 8 and p["jetson-agx-thor"].dla_cores == 0
    assert p["cpu"].trt_major is None


def test_family_target_merges_ranges_and_precisions():
    target = resolve_target("jetson")
    names = target.profile_names()
    assert len(names) == 5 and all(n.startswith("jetson-") for n in names)
    assert target.input.max == (2048, 2048) and target.input.opt == (384, 384)
    assert target.precisions == ("fp32", "fp16", "int8")
    one = resolve_target("jetson-xavier-nx")
    assert one.profile_names() == ["jetson-xavier-nx"] and one.input.max == (768, 768)
    assert resolve_target("cpu").precisions == ("fp32", "int8")


def test_unknown_target_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        resolve_target("jetson-nano-2gb")
    message = str(info.value)
    assert "jetson-nano-2gb" in message and "jetson-orin-nx-16gb" in message and "cpu" in message


def test_bad_profiles_are_refused(tmp_path):
    good = (load_profile_file.__globals__["PROFILE_DIR"] / "cpu.toml").read_text()
    bad = tmp_path / "cpu.toml"
    bad.write_text(good.replace('precisions = ["fp32", "int8"]', 'precisions = ["fp8"]'))
    with pytest.raises(InputError, match="precisions"):
        load_profile_file(bad)
    bad.write_text(good.replace("max = [1024, 1024]", "max = [16, 16]"))
    with pytest.raises(InputError, match="min <= opt <= max"):
        load_profile_file(bad)
    renamed = tmp_path / "other.toml"
    renamed.write_text(good)
    with pytest.raises(InputError, match="file name"):
        load_profile_file(renamed)


def test_input_range_alignment():
    r = InputRange((60, 61), (500, 500), (1000, 1001)).aligned(8)
    assert r.min == (64, 64) and r.opt == (504, 504) and r.max == (1000, 1008)


@pytest.mark.parametrize("model, expected", [
    ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano-8gb"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "jetson-orin-nx-16gb"),
    ("Jetson AGX Orin Developer Kit", "jetson-agx-orin-64gb"),
    ("NVIDIA Jetson Xavier NX Developer Kit", "jetson-xavier-nx"),
    ("NVIDIA Jetson AGX Thor Developer Kit", "jetson-agx-thor"),
])
def test_detect_from_fake_device_tree(tmp_path, model, expected):
    tree = tmp_path / "proc" / "device-tree"
    tree.mkdir(parents=True)
    (tree / "model").write_bytes(model.encode() + b"\x00")
    found = detect_device(tmp_path, runner=lambda cmd: "")
    assert found.profile.name == expected and model in found.reason


def test_detect_gpu_then_cpu(tmp_path):
    gpu = detect_device(tmp_path, runner=lambda cmd: "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n")
    assert gpu.profile.name == "x86-cuda" and "H100" in gpu.reason
    assert detect_device(tmp_path, runner=lambda cmd: "").profile.name == "cpu"
    assert match_model("Raspberry Pi 5", load_profiles()) is None


def test_devices_cli(capsys, tmp_path):
    assert main(["devices", "--root", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert REQUIRED <= set(data["profiles"]) and "jetson" in data["families"]
    assert main(["devices", "jetson-nano-2gb"]) == 2
    assert "known targets" in capsys.readouterr().err


def test_all_target_holds_every_profile():
    target = resolve_target("all")
    assert set(target.profile_names()) == set(load_profiles()) and target.precisions == PRECISIONS
