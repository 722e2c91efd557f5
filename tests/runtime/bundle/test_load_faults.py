"""load_model on bundles that pass their hashes but not the model's contract: one BundleError (or
InputError for a config value) naming the bundle, whatever failed underneath, nothing allocated
beyond the limits, and no unpacked copy of a .tar left behind."""
from __future__ import annotations

import shutil
import tarfile
import tempfile

import numpy as np
import pytest

from sonoedge.runtime.bundle.model import MAX_WARMUP_SIDE, ModelConfig, load_model
from sonoedge.runtime.errors import BundleError, InputError


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The process's temporary folder, redirected to an empty one the test can inspect."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _edited(tmp_path, tiny_bundle, rehash, edit):
    root = tmp_path / "edited"
    shutil.copytree(tiny_bundle, root)
    return rehash(root, edit)


def test_a_tar_bundle_is_unpacked_once_and_removed_with_its_model(tmp_path, tiny_bundle, scratch):
    archive = tmp_path / "tiny.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tiny_bundle, arcname="tiny")
    for _ in range(3):  # open, reload, reload
        model = load_model(ModelConfig(bundle=str(archive)))
        assert len(list(scratch.iterdir())) == 1 and model.root.is_relative_to(scratch)
        model.close()
        assert not list(scratch.iterdir())
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 3])
    with pytest.raises(BundleError, match="cannot be unpacked"):
        load_model(ModelConfig(bundle=str(truncated)))
    assert not list(scratch.iterdir())  # a failed load removes its copy too


def test_warmup_sizes_are_bounded_before_anything_is_allocated(tmp_path, tiny_bundle, rehash, monkeypatch):
    allocated = []
    real_zeros = np.zeros
    monkeypatch.setattr(np, "zeros", lambda shape, *a, **k: allocated.append(shape) or real_zeros(shape, *a, **k))
    with pytest.raises(InputError, match=f"1..{MAX_WARMUP_SIDE} a side"):
        load_model(ModelConfig(bundle=str(tiny_bundle), warmup_size=(100000, 100000)))
    with pytest.raises(InputError, match="outside the bundle's size range"):
        load_model(ModelConfig(bundle=str(tiny_bundle), warmup_size=(4000, 4000)))
    huge = _edited(tmp_path, tiny_bundle, rehash, lambda d: d["model"].update(
        size_range={"min": [16, 16], "opt": [100000, 100000], "max": [100000, 100000]}))
    with pytest.raises(BundleError, match="warm-up limit"):
        load_model(ModelConfig(bundle=str(huge)))
    assert not [s for s in allocated if isinstance(s, tuple) and len(s) == 4 and max(s) > MAX_WARMUP_SIDE]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"].update(stride=1), r"fails on an input of shape \(1, 1, 17, 17\)"),
    (lambda d: d["model"].update(channels=3), r"fails on an input of shape \(1, 3,"),
    (lambda d: d["model"].update(task="sr", scale=2), r"not \(1, 1, 512, 512\)"),
])
def test_a_manifest_that_is_not_the_model_fails_at_load(tmp_path, tiny_bundle, rehash, edit, message):
    with pytest.raises(BundleError, match=message):
        load_model(ModelConfig(bundle=str(_edited(tmp_path, tiny_bundle, rehash, edit))))


def test_an_engine_error_becomes_a_bundle_error(tmp_path, tiny_bundle, rehash):
    root = tmp_path / "edited"
    shutil.copytree(tiny_bundle, root)
    (root / "model.onnx").write_bytes(b"\x08\x01" + b"\xff" * 200)  # not a valid ONNX protobuf
    with pytest.raises(BundleError, match="ONNX Runtime cannot load"):
        load_model(ModelConfig(bundle=str(rehash(root))))


@pytest.mark.parametrize("edit", [lambda d: d["model"].update(stride=10**9),
                                  lambda d: d["model"].update(channels=10**6)])
def test_a_huge_stride_or_channel_count_is_refused_before_allocating(tmp_path, tiny_bundle, rehash, edit):
    with pytest.raises(BundleError, match="over the limit"):
        load_model(ModelConfig(bundle=str(_edited(tmp_path, tiny_bundle, rehash, edit))))
