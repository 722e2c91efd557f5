"""The fidelity gate (gates.py), its runner (fidelity_check.py), its manifest entry and verify."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from sonoedge.runtime.bundle import default_bundle_path, fidelity_check
from sonoedge.runtime.bundle.gates import FIDELITY_GATE, check_fidelity
from sonoedge.runtime.bundle.manifest import FidelityEntry, Manifest, load_manifest
from sonoedge.runtime.bundle.verify import recorded_fidelity, verify_bundle
from sonoedge.runtime.errors import BundleError

CLEAN = {"frame": "a.png#0", "erased": 0, "invented": 0, "lowpass_corr": 0.99, "bright_to_black": 0.0,
         "bright_kept": 0.95, "anechoic_kept": 1.0}


def test_a_clean_frame_passes_and_each_measure_fails_by_name():
    assert check_fidelity([CLEAN]).passed
    bad = {"erased": 1, "invented": 2, "lowpass_corr": 0.85, "bright_to_black": 0.05, "bright_kept": -0.3,
           "anechoic_kept": 0.2}
    for key, value in bad.items():
        result = check_fidelity([CLEAN, {**CLEAN, "frame": "b.png#3", key: value}])
        assert not result.passed and len(result.failures) == 1, (key, result.failures)
        assert result.failures[0].startswith("b.png#3: ")
    assert "inverted" in check_fidelity([{**CLEAN, "bright_kept": -0.3}]).failures[0]


def test_skull_and_head_circumference_thresholds():
    skull = {**CLEAN, "skull_kept": 0.9, "hc_source_mm": 170.0, "hc_diff_mm": 1.5}
    assert check_fidelity([skull]).passed
    assert "skull contrast" in check_fidelity([{**skull, "skull_kept": 0.5}]).failures[0]
    assert "2 mm" in check_fidelity([{**skull, "hc_diff_mm": -2.5}]).failures[0]
    assert "could not be fitted" in check_fidelity([{**skull, "hc_diff_mm": None}]).failures[0]


def test_nothing_measured_or_a_missing_measure_fails():
    assert not check_fidelity([]).passed
    result = check_fidelity([{k: v for k, v in CLEAN.items() if k != "lowpass_corr"}])
    assert not result.passed and "could not be computed" in result.failures[0]


def test_worst_over_frames():
    result = check_fidelity([CLEAN, {**CLEAN, "frame": "b", "lowpass_corr": 0.93, "bright_kept": None}])
    assert result.worst["lowpass_corr"] == 0.93 and result.worst["bright_kept"] == 0.95 and result.worst["frames"] == 2


def test_the_shipped_default_records_a_fidelity_pass_and_verifies():
    root, manifest = load_manifest(default_bundle_path())
    for precision, entry in manifest.precisions.items():  # export (fp32, fp16) and requantize (int8) ran the gate
        assert entry.fidelity is not None and entry.fidelity.status == "pass", precision
        assert entry.fidelity.results["erased"] == 0 and entry.fidelity.results["invented"] == 0
    checks = verify_bundle(root, precisions=["fp32"])
    assert checks[0].ok and checks[0].fidelity.status == "pass"


def _with_fidelity(bundle_factory, rehash, tmp_path, entry: dict):
    root = bundle_factory(tmp_path / "b")
    return rehash(root, lambda data: data["precisions"]["fp32"].update({"fidelity": entry}))


def test_manifest_round_trip_and_a_recorded_pass_is_rechecked(bundle_factory, rehash, tmp_path):
    entry = {"status": "pass", "gate": FIDELITY_GATE.to_dict(), "results": {"frames": 1.0}, "frames": ["a.png#0"],
             "source": "realus", "per_frame": [CLEAN]}
    root = _with_fidelity(bundle_factory, rehash, tmp_path, entry)
    _, manifest = load_manifest(root)
    fid = manifest.precisions["fp32"].fidelity
    assert isinstance(fid, FidelityEntry) and fid.passed and fid.frames == ("a.png#0",)
    assert Manifest.from_dict(manifest.to_dict()).precisions["fp32"].fidelity == fid
    assert recorded_fidelity(manifest, "fp32").status == "pass"
    # a manifest that says "pass" over failing numbers fails verify
    lying = dataclasses.replace(fid, per_frame=({**CLEAN, "erased": 3},))
    forged = dataclasses.replace(manifest, precisions={"fp32": dataclasses.replace(manifest.precisions["fp32"], fidelity=lying)})
    check = recorded_fidelity(forged, "fp32")
    assert check.status == "fail" and "records a pass" in check.failures[0]


def test_a_malformed_fidelity_entry_is_refused(bundle_factory, rehash, tmp_path):
    root = _with_fidelity(bundle_factory, rehash, tmp_path, {"status": "fine"})
    with pytest.raises(BundleError, match="fidelity.status"):
        load_manifest(root)


def test_not_checked_is_reported_with_its_reason(bundle_factory, rehash, tmp_path):
    root = _with_fidelity(bundle_factory, rehash, tmp_path, {"status": "not checked", "reason": "no real frames"})
    check = verify_bundle(root)[0]
    assert check.fidelity.status == "not checked" and check.fidelity.reason == "no real frames"


# -- real frames ----------------------------------------------------------------------------------

def test_picking_real_frames_covers_every_kind(realus):
    files = fidelity_check.pick_files(realus, per_group=2)
    kinds = {p.relative_to(realus).parts[0] for p in files}
    assert kinds == {"clips", "hc18", "hip_spj", "itkpocus_handheld"} and len(files) == 8
    clips = [p for p in files if p.relative_to(realus).parts[0] == "clips"]
    assert len({p.parent for p in clips}) == 2  # two recordings, not two frames of one


def test_run_deployed_is_what_the_enhancer_shows(realus):
    """The gate's runner and the stream enhancer give the same pixels (region, pad, paste back)."""
    import onnxruntime as ort

    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame
    from sonoedge.runtime.readers import read_image
    from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
    from sonoedge.runtime.stream.guard import GuardConfig

    image = read_image(realus / "hc18" / "050_HC.png")
    session = ort.InferenceSession(str(default_bundle_path() / "model.onnx"), providers=["CPUExecutionProvider"])
    ours = fidelity_check.run_deployed(lambda x: session.run(None, {"input": x})[0], image, 64)
    model = load_model(EnhancerConfig(precision="fp32", backend="onnxruntime"))
    try:
        # the model's pixels, not the structure guard's fallback (the default trips it on this frame)
        theirs = Enhancer(model, EnhancerConfig(precision="fp32", guard=GuardConfig(enabled=False)))(Frame(image, 0)).image
    finally:
        model.close()
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_the_gate_passes_the_default_and_identity_and_fails_an_inverting_model_on_real_frames(realus, tmp_path):
    annotations = fidelity_check.Hc18Annotations.beside(realus)
    frames = fidelity_check.load_frames(realus, per_group=1, annotations=annotations)
    assert check_fidelity([]).passed is False
    identity = fidelity_check.check_model(lambda x: x, frames, 64)
    assert identity.passed, identity.failures
    # a model that inverts intensities fails, naming frames and measures
    inverted = fidelity_check.check_model(lambda x: -x, frames, 64)
    assert not inverted.passed and any("hc18/" in f for f in inverted.failures)
    # the shipped default (trained on real anatomy), re-run by verify on real frames: it passes
    bundle = shutil.copytree(default_bundle_path(), tmp_path / "default")
    check = verify_bundle(bundle, precisions=["fp32"], fidelity_frames=frames)[0]
    assert check.ok and check.fidelity.status == "pass", check.fidelity.failures
    assert json.dumps(check.fidelity.to_dict())  # JSON-able for --json
