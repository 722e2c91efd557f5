"""The CPU precision choice: timed at export on real ONNX Runtime sessions, recorded in the manifest
(optional: schema-2 bundles without it load as before), and used by ``auto`` on the CPU provider
only when the machine matches loosely; every other case falls back to the device profile's rule
and says why."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest

from sonoedge.cli import main
from sonoedge.export.cpu_choice import exclusion, measure_cpu_choice, record_cpu_choice
from sonoedge.runtime.bundle import default_bundle_path
from sonoedge.runtime.bundle.cpu_choice import Machine, choose, usable
from sonoedge.runtime.bundle.manifest import load_manifest, write_manifest
from sonoedge.runtime.bundle.model import ModelConfig, load_model
from sonoedge.runtime.errors import BundleError, InputError

CPU = ["CPUExecutionProvider"]


@pytest.fixture()
def bundle(tmp_path):
    """A copy of the embedded default bundle with a CPU choice recorded on this machine (1 round)."""
    root = shutil.copytree(default_bundle_path(), tmp_path / "default")
    record_cpu_choice(root, rounds=1, progress=lambda line: None)
    return root


def _with_choice(root, **changes):
    root, manifest = load_manifest(root)
    write_manifest(root, dataclasses.replace(manifest, cpu_choice=dataclasses.replace(manifest.cpu_choice, **changes)))


def test_recording_times_every_precision_and_leaves_the_models_alone(bundle, tmp_path):
    _, before = load_manifest(default_bundle_path())
    bare = shutil.copytree(default_bundle_path(), tmp_path / "bare")  # a schema-2 bundle without the field
    write_manifest(bare, dataclasses.replace(before, cpu_choice=None))
    assert load_manifest(bare)[1].cpu_choice is None  # still loads
    _, manifest = load_manifest(bundle)
    choice = manifest.cpu_choice
    assert set(choice.cpu_ms) == set(choice.wall_ms) == set(manifest.precisions) == {"fp32", "fp16", "int8"}
    assert all(v > 0 for v in choice.cpu_ms.values())
    assert choice.precision == min(choice.cpu_ms, key=choice.cpu_ms.get)  # nothing excluded: the fastest wins
    assert choice.onnxruntime and choice.arch and choice.cores >= 1 and choice.measured.startswith("20")
    assert "weighted layers have quantized inputs AND outputs" in choice.int8_layout
    assert {k: v for k, v in manifest.files.items()} == before.files  # model files byte for byte


def test_auto_on_the_cpu_runs_the_recorded_choice(bundle):
    _, manifest = load_manifest(bundle)
    model = load_model(ModelConfig(bundle=str(bundle), providers=CPU))
    try:
        assert model.precision == manifest.cpu_choice.precision
        assert model.precision_reason.startswith("fastest passing precision on the CPU at export")
    finally:
        model.close()
    # a recorded int8 choice is served by a real int8 session that passes its gate on the references
    _with_choice(bundle, precision="int8", cpu_ms={"fp32": 3.0, "fp16": 4.0, "int8": 1.0})
    model = load_model(ModelConfig(bundle=str(bundle), providers=CPU))
    try:
        assert model.precision == "int8" and model.backend.model_path.name == "model.int8.qdq.onnx"
        assert "int8 1.00, fp32 3.00, fp16 4.00 CPU ms/frame" in model.precision_reason
    finally:
        model.close()
    explicit = load_model(ModelConfig(bundle=str(bundle), providers=CPU, precision="fp16"))
    try:
        assert explicit.precision == "fp16" and explicit.precision_reason == "requested"
    finally:
        explicit.close()


def test_another_ort_major_or_architecture_falls_back_to_the_profile_rule(bundle, caplog):
    _with_choice(bundle, precision="int8", onnxruntime="0.9.1")
    with caplog.at_level(logging.INFO, logger="sonoedge.runtime.bundle.model"):
        model = load_model(ModelConfig(bundle=str(bundle), providers=CPU))
    try:
        assert model.precision == "fp32"  # the cpu profile's first preferred precision
        assert "another major version" in model.precision_reason
        logged = [r for r in caplog.records if getattr(r, "event", "") == "precision_chosen"]
        assert logged and "ONNX Runtime 0.9.1" in logged[-1].reason
    finally:
        model.close()
    _, manifest = load_manifest(bundle)
    here = Machine(cpu="x", cores=2, arch="aarch64", onnxruntime=manifest.cpu_choice.onnxruntime)
    assert usable(manifest.cpu_choice, here)[0] is False
    precision, why = choose(manifest, manifest.kept_precisions(), here)
    assert precision is None and "aarch64" in why
    other_cpu = Machine(cpu="Other CPU", cores=8, arch=manifest.cpu_choice.arch, onnxruntime="0.99.0")
    precision, why = choose(manifest, manifest.kept_precisions(), other_cpu)  # same arch and major: used, named
    assert precision == "int8" and "this is Other CPU" in why


def test_failing_precisions_are_timed_but_never_chosen(bundle):
    root, manifest = load_manifest(bundle)
    faster = min(manifest.cpu_choice.cpu_ms, key=manifest.cpu_choice.cpu_ms.get)
    entries = dict(manifest.precisions)
    for name in entries:
        if name != "fp32":
            entries[name] = dataclasses.replace(entries[name], passed=False, degraded=True)
    manifest = write_manifest(root, dataclasses.replace(manifest, precisions=entries))
    choice = measure_cpu_choice(root, manifest, rounds=1, progress=lambda line: None)
    assert choice.precision == "fp32" and set(choice.excluded) == {"fp16", "int8"}
    assert "accuracy gate" in choice.excluded["int8"] and set(choice.cpu_ms) == {"fp32", "fp16", "int8"}
    assert faster in choice.cpu_ms
    fidelity_fail = dataclasses.replace(manifest.precisions["fp32"], passed=True,
                                        fidelity=dataclasses.replace(_fidelity_fail()))
    assert "fidelity" in exclusion(fidelity_fail)


def _fidelity_fail():
    from sonoedge.runtime.bundle.manifest import FidelityEntry

    return FidelityEntry(status="fail", failures=("f#0: erased 3",))


def test_malformed_choices_and_unsafe_rewrites_are_refused(bundle, tmp_path):
    data = json.loads((bundle / "manifest.json").read_text())
    from sonoedge.runtime.bundle.manifest import Manifest

    bad = dict(data, cpu_choice=dict(data["cpu_choice"], precision="int4"))
    with pytest.raises(BundleError, match="cpu_choice.precision"):
        Manifest.from_dict(bad)
    bad = dict(data, cpu_choice=dict(data["cpu_choice"], cpu_ms={"fp32": "fast"}))
    with pytest.raises(BundleError, match="cpu_choice.cpu_ms.fp32"):
        Manifest.from_dict(bad)
    (bundle / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="notes.txt"):
        record_cpu_choice(bundle, rounds=1, progress=lambda line: None)
    tar = tmp_path / "b.tar"
    tar.write_bytes(b"x")
    with pytest.raises(InputError, match="unpack"):
        record_cpu_choice(tar, progress=lambda line: None)


def test_the_command_records_into_a_bundle_and_refuses_mixed_use(tmp_path, capsys):
    root = shutil.copytree(default_bundle_path(), tmp_path / "b")
    assert main(["export", "--choose-cpu-precision", str(root), "--cpu-timing-rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "CPU precision" in out and "cpu_choice recorded" in out
    assert load_manifest(root)[1].cpu_choice is not None
    assert main(["export", "ckpt.pt", "--choose-cpu-precision", str(root)]) == 2
    assert "takes no checkpoint" in capsys.readouterr().err
