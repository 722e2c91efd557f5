"""Export's fidelity gate: a model run as deployed on real frames is refused when it erases or
invents structure, kept flagged with --allow-degraded, and "not checked" is said when no real
frames are at hand."""
from __future__ import annotations

import pytest

from sonoedge.cli import main
from sonoedge.export.bundle import export_bundle
from sonoedge.export.config import ExportConfig
from sonoedge.runtime.bundle.manifest import load_manifest
from sonoedge.runtime.bundle.verify import verify_bundle
from sonoedge.runtime.errors import GateError


def _cfg(**over):
    base = dict(target="x86-cuda", precisions=("fp32",), reference_frames=2, reference_size=(48, 48), lpips=False,
                fidelity_per_group=1)
    base.update(over)
    return ExportConfig(**base)


def test_an_unfaithful_model_is_refused_naming_frames_and_measures(tmp_path, tiny_checkpoints, speckle_dir, realus):
    lines: list[str] = []
    with pytest.raises(GateError) as exc:
        export_bundle(tiny_checkpoints["unet"], tmp_path / "b", _cfg(frames=str(speckle_dir), fidelity_frames=str(realus)),
                      lines.append)
    text = str(exc.value)
    assert "fidelity gate on real frames" in text and "--allow-degraded" in text
    assert "#" in text and any(m in text for m in ("erased", "invented", "low-pass", "bright"))
    assert not (tmp_path / "b").exists(), "a refused export leaves no bundle"
    assert any("fidelity gate on 4 real frame(s)" in line for line in lines)


def test_allow_degraded_records_the_failure_and_verify_reports_it(tmp_path, tiny_checkpoints, speckle_dir, realus, capsys):
    out = tmp_path / "kept"
    manifest = export_bundle(tiny_checkpoints["unet"], out,
                             _cfg(frames=str(speckle_dir), fidelity_frames=str(realus), allow_degraded=True), lambda _: None)
    fid = manifest.precisions["fp32"].fidelity
    assert fid.status == "fail" and fid.degraded and fid.failures and fid.source == str(realus)
    assert len(fid.frames) == 4 and {f.split("/")[0] for f in fid.frames} == {"clips", "hc18", "hip_spj", "itkpocus_handheld"}
    assert [m["frame"] for m in fid.per_frame] == list(fid.frames) and "erased" in fid.results
    check = verify_bundle(out)[0]
    assert check.ok and check.fidelity.status == "fail" and check.fidelity.degraded
    assert main(["verify", str(out)]) == 0  # kept degraded on purpose: reported, not fatal
    assert "fidelity DEGRADED" in capsys.readouterr().out
    assert main(["verify", str(out), "--strict"]) == GateError.exit_code


def test_without_real_frames_fidelity_is_not_checked_and_said_so(tmp_path, tiny_checkpoints, speckle_dir, monkeypatch, capsys):
    monkeypatch.setenv("SONOEDGE_REALUS", str(tmp_path / "nowhere"))
    lines: list[str] = []
    manifest = export_bundle(tiny_checkpoints["resnet"], tmp_path / "b", _cfg(frames=str(speckle_dir)), lines.append)
    fid = manifest.precisions["fp32"].fidelity
    assert fid.status == "not checked" and "--fidelity-frames" in fid.reason
    assert any("WARNING" in line and "NOT checked" in line for line in lines)
    _, loaded = load_manifest(tmp_path / "b")
    assert loaded.precisions["fp32"].fidelity == fid
    assert main(["verify", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert "fidelity NOT CHECKED" in captured.out and "fidelity not checked" in captured.err
