"""Engine cache: keys, atomic store, lookup refusing stale or corrupt entries, GPU description."""
import json

import pytest

from sonoedge.runtime.backends.tensorrt.cache import (
    EngineCache,
    EngineKey,
    GpuDescription,
    describe_current_gpu,
    parse_nvidia_smi,
)
from sonoedge.runtime.errors import InputError, SonoedgeError


def _key(**over):
    base = dict(gpu_name="Orin (nvgpu)", compute_capability="8.7", sm_count=8, trt_version="10.3.0",
                precision="fp16", dla_core=None, model_sha256="ab" * 32)
    base.update(over)
    return EngineKey(**base)


def test_digest_changes_with_every_field():
    ref = _key().digest()
    assert ref == _key().digest() and len(ref) == 24
    for field, value in [("gpu_name", "Xavier"), ("compute_capability", "7.2"), ("sm_count", 16),
                         ("trt_version", "11.0.0"), ("precision", "int8"), ("dla_core", 0),
                         ("model_sha256", "cd" * 32)]:
        assert _key(**{field: value}).digest() != ref, field


def test_unknown_precision_is_refused():
    with pytest.raises(InputError, match="bf8"):
        _key(precision="bf8")


def test_store_lookup_entries(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = _key()
    assert cache.lookup(key) is None
    plan = cache.store(key, b"PLANBYTES", {"builder": "strongly_typed"})
    assert plan.read_bytes() == b"PLANBYTES"
    assert cache.lookup(key) == plan
    assert cache.lookup(_key(precision="int8")) is None
    (entry_key, entry_plan, meta), = list(cache.entries())
    assert entry_key == key and entry_plan == plan and meta["builder"] == "strongly_typed"
    assert not [p for p in plan.parent.iterdir() if "partial" in p.name]


def test_lookup_refuses_corrupt_plan_and_foreign_sidecar(tmp_path):
    cache = EngineCache(tmp_path)
    key = _key()
    plan = cache.store(key, b"PLANBYTES")
    plan.write_bytes(b"PLANBYTEZ")
    assert cache.lookup(key) is None
    plan = cache.store(key, b"PLANBYTES")
    sidecar = plan.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["key"]["trt_version"] = "8.6.1"
    sidecar.write_text(json.dumps(meta))
    assert cache.lookup(key) is None
    sidecar.write_text("{not json")
    assert cache.lookup(key) is None and list(cache.entries()) == []


def test_empty_plan_is_refused(tmp_path):
    with pytest.raises(SonoedgeError, match="empty"):
        EngineCache(tmp_path).store(_key(), b"")


def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SONOEDGE_CACHE", str(tmp_path))
    assert EngineCache().root == tmp_path / "engines"


def test_describe_current_gpu_from_nvidia_smi():
    calls = []

    def runner(cmd):
        calls.append(cmd)
        return "NVIDIA H100 80GB HBM3, 9.0\n"

    gpu = describe_current_gpu(runner=runner)
    assert gpu.gpu_name == "NVIDIA H100 80GB HBM3" and gpu.compute_capability == "9.0"
    assert calls[0][0] == "nvidia-smi"
    assert isinstance(gpu.key("fp32", None, "00"), EngineKey)


def test_parse_nvidia_smi_rejects_garbage():
    with pytest.raises(SonoedgeError, match="nvidia-smi"):
        parse_nvidia_smi("No devices were found")
    assert parse_nvidia_smi("Orin, 8.7", "10.3.0") == GpuDescription("Orin", "8.7", 0, "10.3.0")
