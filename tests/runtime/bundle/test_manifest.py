"""The typed manifest and the bundle's integrity: bundle.sha256 covers manifest.json and every file,
nothing unlisted is loaded, malformed or unknown manifests are refused with one sentence naming the
field. Bundles are copied to tmp_path before any edit; the repo's default bundle is never edited."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from sonoedge.runtime.bundle import default_bundle_path
from sonoedge.runtime.bundle.engine import device_profile
from sonoedge.runtime.bundle.manifest import (
    CHECKSUMS,
    MANIFEST,
    SCHEMA_VERSION,
    Manifest,
    checksum_text,
    load_manifest,
    migrate_v1,
    open_bundle,
    write_manifest,
)
from sonoedge.runtime.bundle.model import ModelConfig, load_model
from sonoedge.runtime.bundle.verify import verify_bundle
from sonoedge.runtime.errors import BundleError


def _copy(bundle: Path, tmp_path: Path, name: str = "b") -> Path:
    dst = tmp_path / name
    shutil.copytree(bundle, dst)
    return dst


def _refused_by_both(root: Path, match: str, precision: str = "fp32") -> None:
    """verify_bundle and load_model both refuse ``root`` with one sentence matching ``match``."""
    for load in (lambda: verify_bundle(root), lambda: load_model(ModelConfig(bundle=str(root), precision=precision))):
        with pytest.raises(BundleError, match=match) as info:
            load()
        assert "\n" not in str(info.value)


def _resign(root: Path, edit) -> None:
    """Edit manifest.json's JSON and write a consistent bundle.sha256 for it, bypassing the writer's
    checks: what a careless or hostile tool could produce, so parsing is what must refuse it."""
    data = json.loads((root / MANIFEST).read_text())
    edit(data)
    raw = (json.dumps(data, indent=2) + "\n").encode()
    (root / MANIFEST).write_bytes(raw)
    sums = {rel: digest for rel, digest in data.get("files", {}).items()}
    (root / CHECKSUMS).write_text(checksum_text({**sums, MANIFEST: hashlib.sha256(raw).hexdigest()}))


def _flip_degraded(text: str) -> str:
    assert '"degraded": false' in text
    return text.replace('"degraded": false', '"degraded": true', 1)


def _change_digit(text: str) -> str:
    i = text.index('"stride": ') + len('"stride": ')
    return text[:i] + ("9" if text[i] != "9" else "7") + text[i + 1:]


@pytest.mark.parametrize("edit", [_flip_degraded, _change_digit, lambda t: t.replace("{", "{ ", 1), lambda t: t + " "],
                         ids=["degraded", "digit", "space", "trailing-space"])
def test_any_edit_of_the_manifest_is_refused(tiny_bundle, tmp_path, edit):
    root = _copy(tiny_bundle, tmp_path)
    path = root / MANIFEST
    path.write_text(edit(path.read_text()))
    _refused_by_both(root, r"manifest\.json does not match bundle\.sha256 .*modified or corrupted")


def test_degraded_flip_in_the_default_bundle_is_refused(tmp_path):
    root = _copy(default_bundle_path(), tmp_path)
    (root / MANIFEST).write_text(_flip_degraded((root / MANIFEST).read_text()))
    _refused_by_both(root, r"manifest\.json does not match bundle\.sha256")


@pytest.mark.parametrize("rel, precision", [("model.onnx", "fp32"), ("model.fp16.onnx", "fp16"),
                                            ("model.int8.qdq.onnx", "int8"), ("reference/frame_001.torch.npy", "fp32"),
                                            ("reference/frame_000.png", "int8")])
def test_one_byte_of_a_model_or_reference_file_is_refused(tmp_path, rel, precision):
    root = _copy(default_bundle_path(), tmp_path)
    data = bytearray((root / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / rel).write_bytes(bytes(data))
    _refused_by_both(root, f"file {rel} does not match its manifest sha256", precision)


def test_a_missing_listed_file_or_checksum_list_is_refused(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    (root / "reference" / "input_1.png").unlink()
    _refused_by_both(root, "file reference/input_1.png listed in the manifest is missing")
    root = _copy(tiny_bundle, tmp_path, "c")
    (root / CHECKSUMS).unlink()
    _refused_by_both(root, f"has no {CHECKSUMS}")


def test_an_unlisted_file_in_the_folder_is_never_loaded(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    (root / "model.fp16.onnx").write_bytes(b"not a model")  # in the folder, not in the manifest
    (root / "devices").mkdir()
    (root / "devices" / "x86-cuda.toml").write_text("this = [is not toml")
    _, manifest = load_manifest(root)
    assert "model.fp16.onnx" not in manifest.files
    with pytest.raises(BundleError, match="has no fp16 model"):
        load_model(ModelConfig(bundle=str(root), precision="fp16"))
    assert device_profile(root, manifest, "x86-cuda").name == "x86-cuda"  # the packaged profile, not the stray file
    load_model(ModelConfig(bundle=str(root))).close()


def test_an_unlisted_file_named_by_the_manifest_is_refused(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    shutil.copyfile(root / "model.onnx", root / "model.fp16.onnx")
    _resign(root, lambda d: d["precisions"].update(fp16={**d["precisions"]["fp32"], "file": "model.fp16.onnx"}))
    _refused_by_both(root, r"precisions\.fp16\.file names model\.fp16\.onnx, which is not among its hashed files")


def test_checksum_list_and_manifest_files_must_agree(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    (root / "extra.bin").write_bytes(b"x")
    with open(root / CHECKSUMS, "a") as handle:
        handle.write(f"{hashlib.sha256(b'x').hexdigest()}  extra.bin\n")
    _refused_by_both(root, f"{CHECKSUMS} lists extra.bin, which {MANIFEST} does not")
    root = _copy(tiny_bundle, tmp_path, "c")
    (root / CHECKSUMS).write_text((root / CHECKSUMS).read_text().replace("  model.onnx", "  ../model.onnx"))
    _refused_by_both(root, f"{CHECKSUMS} line \\d+ is not")


def test_an_unknown_schema_version_is_one_sentence(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    _resign(root, lambda d: d.update(schema_version=7))
    _refused_by_both(root, rf"manifest\.json schema_version 7 is not supported by this sonoedge \(reads "
                           rf"{SCHEMA_VERSION}\); re-export it with `sonoedge export`$")


def test_a_schema_1_bundle_is_refused_and_migrate_v1_upgrades_it(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    data = json.loads((root / MANIFEST).read_text())
    data["schema_version"] = 1
    (root / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")
    (root / CHECKSUMS).unlink()
    _refused_by_both(root, r"schema-1 bundle.*re-export it with `sonoedge export`, or upgrade .*migrate_v1")
    before = (root / MANIFEST).read_text()
    migrate_v1(root)
    after = (root / MANIFEST).read_text()
    assert after == before.replace('"schema_version": 1', f'"schema_version": {SCHEMA_VERSION}')
    assert load_manifest(root)[1].schema_version == SCHEMA_VERSION
    with pytest.raises(BundleError, match="not 1; nothing to migrate"):
        migrate_v1(root)


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["model"].update(channels="1"), r"model\.channels must be an integer >= 1"),
    (lambda d: d["model"].update(stride=0), r"model\.stride must be an integer >= 1"),
    (lambda d: d["model"].update(task="denoise"), r"model\.task must be one of enhance, sr"),
    (lambda d: d["model"].update(scale=0), r"model\.scale must be an integer >= 1"),
    (lambda d: d["model"]["size_range"].update(min=[4096, 16]), r"model\.size_range must have min <= opt <= max"),
    (lambda d: d["model"]["size_range"].update(opt=[256.0, 256]), r"model\.size_range\.opt\[0\] must be an integer"),
    (lambda d: d["model"].pop("stride"), r"model\.stride is missing"),
    (lambda d: d["model"].update(strid=8), r"model\.strid is not part of the schema"),
    (lambda d: d["precisions"]["fp32"].update(file="../x"), r"precisions\.fp32\.file must stay inside the bundle"),
    (lambda d: d["precisions"]["fp32"].update(file="/etc/passwd"), r"precisions\.fp32\.file must be a relative path"),
    (lambda d: d["precisions"]["fp32"].update(degraded="yes"), r"precisions\.fp32\.degraded must be true or false"),
    (lambda d: d["precisions"].update(bf16=d["precisions"]["fp32"]), r"precisions\.bf16 is not a precision"),
    (lambda d: d["reference"]["inputs"].append("a/../../x.png"), r"reference\.inputs\[2\] must stay inside"),
    (lambda d: d["preprocess"].update(region="sector"), r"preprocess\.region must be one of auto, full"),
    (lambda d: d.pop("precisions"), r"precisions is missing"),
])
def test_a_malformed_manifest_is_refused_naming_the_field(tiny_bundle, tmp_path, edit, field):
    data = json.loads((tiny_bundle / MANIFEST).read_text())
    edit(data)
    with pytest.raises(BundleError, match=f"^manifest.json field {field}"):
        Manifest.from_dict(data)
    root = _copy(tiny_bundle, tmp_path)
    _resign(root, edit)
    with pytest.raises(BundleError, match=f"^bundle {root}: manifest.json field {field}") as info:
        load_manifest(root)
    assert "\n" not in str(info.value)


def test_write_then_read_gives_an_equal_manifest(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    _, manifest = load_manifest(root)
    changed = dataclasses.replace(manifest, created="2030-01-01T00:00:00Z", extra={"export": {"note": [1, 2]}})
    written = write_manifest(root, changed)
    assert written == dataclasses.replace(changed, files=manifest.files)
    assert load_manifest(root)[1] == written
    assert Manifest.from_dict(written.to_dict()) == written


def test_the_writer_refuses_a_path_outside_the_files(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    _, manifest = load_manifest(root)
    with pytest.raises(BundleError, match="engine_plan names plan.json, which is not among its hashed files"):
        write_manifest(root, dataclasses.replace(manifest, engine_plan="plan.json"))


def test_default_bundle_keys_survive_the_typed_round_trip():
    raw = json.loads((default_bundle_path() / MANIFEST).read_text())
    _, manifest = load_manifest(default_bundle_path())
    assert manifest.to_dict() == raw
    assert manifest.precisions["int8"].extra["excluded_nodes"] and "export" in manifest.extra


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum on this machine")
def test_stock_sha256sum_checks_a_bundle(tiny_bundle):
    done = subprocess.run(["sha256sum", "-c", "--strict", CHECKSUMS], cwd=tiny_bundle, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_tar_bundles_load_and_escaping_or_link_members_are_refused(tiny_bundle, tmp_path):
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        tar.add(tiny_bundle, arcname="tiny")
    assert load_manifest(good)[1] == load_manifest(tiny_bundle)[1]
    for name, kind in [("../evil.txt", tarfile.REGTYPE), ("tiny/link", tarfile.SYMTYPE), ("/abs.txt", tarfile.REGTYPE)]:
        bad = tmp_path / f"bad{len(list(tmp_path.iterdir()))}.tar"
        with tarfile.open(bad, "w") as tar:
            tar.add(tiny_bundle, arcname="tiny")
            member = tarfile.TarInfo(name)
            member.type = kind
            member.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(member, None if kind == tarfile.SYMTYPE else __import__("io").BytesIO(b""))
        with pytest.raises(BundleError, match="tar member"):
            open_bundle(bad)
