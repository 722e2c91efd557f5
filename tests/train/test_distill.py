"""sonoedge distill (train/distill.py): a real teacher checkpoint in, an INT8-ready student out."""
from __future__ import annotations

import json

import pytest
import torch

from sonoedge.cli import main
from sonoedge.train.checkpoint import load_generator, model_info, save_checkpoint
from sonoedge.train.distill import DistillConfig, disable_qat, distill, enable_qat
from sonoedge.train.registries import DISCRIMINATORS, GENERATORS, load_all

load_all()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A small U-Net teacher checkpoint and a paired phantom folder (train/val/test split by the config)."""
    from sonoedge.train.datasets import DataConfig
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    root = tmp_path_factory.mktemp("distill")
    data = root / "data"
    write_pairs(data, 10, PhantomConfig(size=(64, 64)), seed=3, workers=1, progress=False)
    torch.manual_seed(0)
    g = GENERATORS.create("unet", ngf=8, depth=4, dropout=0.0)
    info = model_info("unet", {"in_channels": 1, "out_channels": 1, "ngf": 8, "depth": 4, "dropout": 0.0}, stride=16)
    cfg = {"data": {**DataConfig().__dict__, "augment": {}, "size": 64, "stride": 16, "ratios": [0.6, 0.2, 0.2]},
           "model": {"discriminator": "patchgan", "discriminator_kwargs": {"ndf": 8}}}
    disc = DISCRIMINATORS.create("patchgan", in_channels=1, ndf=8)
    path = save_checkpoint(root / "teacher.pt", model_info=info, state_dicts={"G_H": g.state_dict(), "D_H": disc.state_dict()},
                           config=cfg, meta={})
    return path, data


def test_distill_writes_a_loadable_student_with_taps_qat_and_the_teachers_discriminator(teacher, tmp_path):
    path, data = teacher
    cfg = DistillConfig(student="edge-tiny", steps=5, qat_steps=2, batch_size=2, crop=32, log_every=1,
                        lambda_temporal=0.5, temporal_clips=1)
    out = distill(path, data, tmp_path / "s", cfg, progress=False)
    student, info = load_generator(out)
    assert info["generator"] == "edge-tiny" and info["stride"] == 4
    lines = [json.loads(s) for s in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    setup = lines[0]
    assert setup["discriminator"].startswith("the teacher's D_H") and setup["taps"] and setup["temporal_pairs"] > 0
    assert setup["train_images"] == 6  # the train split only (60 % of 10): the test split stays unseen
    steps = [s for s in lines if s["kind"] == "step"]
    assert [s["qat"] for s in steps] == [False, False, False, True, True]
    assert all("temporal" in s and "feat" in s and "adv" in s for s in steps)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert student(x).shape == x.shape


def test_qat_round_trip_keeps_float_weights_and_outputs_close():
    torch.manual_seed(0)
    g = GENERATORS.create("edge-tiny")
    g(torch.randn(4, 1, 32, 32))
    for p in g.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    g.eval()
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = g(x)
        handles = enable_qat(g)
        fake = g(x)
        disable_qat(handles)
        back = g(x)
    assert torch.allclose(back, ref, atol=1e-5)  # folding is exact, the parametrisation is gone
    assert 0 < (fake - ref).abs().max() < 0.1  # the fake-quantized net is close but not identical
    assert not any("parametrizations" in k for k in g.state_dict())


def test_command_refuses_a_non_empty_output_and_a_wrong_student(teacher, tmp_path, capsys):
    path, data = teacher
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["distill", "--teacher", str(path), "--data", str(data), "-o", str(out), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert main(["distill", "--teacher", str(path), "--data", str(data), "-o", str(tmp_path / "n"),
                 "--student", "resnet", "--set", "steps=1", "--set", "qat_steps=0", "--quiet"]) == 2
    assert "feature taps" in capsys.readouterr().err


def test_the_shipped_default_bundle_teaches_through_onnx_runtime(teacher, tmp_path):
    """A bundle teacher (the embedded default): its fp32 ONNX output is the target, no feature taps,
    a fresh discriminator, every image of the folder, and a student with its own kwargs comes back."""
    import numpy as np

    from sonoedge.train.distill_teacher import load_teacher

    _, data = teacher
    t = load_teacher("default")
    assert t.kind == "bundle" and t.info["generator"] == "unet" and t.info["stride"] == 64 and len(t.sha256) == 64
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        y = t.module(x)
    assert y.shape == x.shape and float((y - x).abs().mean()) > 1e-4  # the model ran, it is not the identity
    cfg = DistillConfig(student="edge-tiny", student_kwargs={"widths": [4, 8, 16, 16], "n_blocks": 0},
                        steps=4, qat_steps=2, batch_size=2, crop=64, log_every=1, lambda_adv=0.1)
    out = distill("default", data / "low", tmp_path / "s", cfg, progress=False)
    student, info = load_generator(out)
    assert info["generator"] == "edge-tiny" and info["kwargs"]["widths"] == [4, 8, 16, 16] and info["stride"] == 16
    setup = json.loads((tmp_path / "s" / "log.jsonl").read_text().splitlines()[0])
    assert setup["teacher_kind"].startswith("bundle default") and setup["taps"] == []
    assert setup["discriminator"].startswith("a fresh patchgan") and setup["train_images"] == 10
    meta = torch.load(out, weights_only=False)["meta"]
    assert meta["teacher_sha256"] == t.sha256
    with torch.no_grad():
        assert np.isfinite(student(x).numpy()).all()
