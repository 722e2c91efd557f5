"""The checkpoint contract (DESIGN.md): weights_only loading, errors naming the file, generator rebuild."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import sonoedge.train.generators  # noqa: E402,F401
from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train.checkpoint import (  # noqa: E402
    load_checkpoint,
    load_generator,
    model_info,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from sonoedge.train.registries import GENERATORS  # noqa: E402

KW = {"ngf": 4, "depth": 3}


def _save(path, **extra):
    torch.manual_seed(1)
    g = GENERATORS.create("unet", **KW)
    info = model_info("unet", KW, stride=g.stride)
    wrapped = {f"module.{k}": v for k, v in g.state_dict().items()}  # as DDP would name them
    save_checkpoint(path, model_info=info, state_dicts={"G_H": wrapped, "G_L": g.state_dict()},
                    config={"lr": 3e-4}, meta={"epoch": 3, "step": 12, "metrics": {"ssim": 0.5}}, **extra)
    return g


def test_roundtrip_weights_only(tmp_path):
    g = _save(tmp_path / "c.pt", rng=rng_state())
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["format"] == "sonoedge-checkpoint" and raw["format_version"] == 1
    assert raw["model"]["deploy"] == "G_H" and raw["model"]["stride"] == 8
    assert not any(k.startswith("module.") for k in raw["state_dicts"]["G_H"])
    assert raw["meta"]["epoch"] == 3 and raw["meta"]["created"] and raw["meta"]["sonoedge"]
    model, info = load_generator(tmp_path / "c.pt")
    assert not model.training and info["generator"] == "unet"
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    g.eval()
    assert torch.equal(model(x), g(x))
    assert load_checkpoint(tmp_path / "c.pt")["config"] == {"lr": 3e-4}


def test_rng_state_roundtrip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(5); np.random.seed(5); random.seed(5)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    _save(tmp_path / "c.pt", rng=state)  # _save draws from the RNGs too
    torch.manual_seed(9); np.random.seed(9); random.seed(9)
    (torch.rand(3), np.random.rand(3), random.random())  # draws that the restored state must undo
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(path)


def test_truncated_file(tmp_path):
    _save(tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.pt"):
        load_checkpoint(tmp_path / "t.pt")


def test_foreign_torch_file(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a sonoedge checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_key_and_mismatched_weights(tmp_path):
    _save(tmp_path / "c.pt")
    with pytest.raises(InputError, match="no state dict 'D_H'"):
        load_generator(tmp_path / "c.pt", key="D_H")
    data = torch.load(tmp_path / "c.pt", weights_only=True)
    data["model"]["kwargs"] = {"ngf": 8, "depth": 3}
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(InputError, match="do not fit"):
        load_generator(tmp_path / "m.pt")


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "x.pt", model_info=model_info("unet", KW, stride=8), state_dicts={"G_L": {}},
                        config={}, meta={})
    assert list(tmp_path.iterdir()) == []
