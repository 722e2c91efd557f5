"""Grimwood et al. 2022 in the CycleGAN trainer: the denoiser-guarded discriminator, linear decay,
the ``grimwood2022-sim2real`` preset, exact resume and a smoke run on phantom and real frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sonoedge.runtime.config import load_config  # noqa: E402
from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train.checkpoint import load_checkpoint  # noqa: E402
from sonoedge.train.sim2real import GaussianDenoiser, LinearDecay, guard_discriminator  # noqa: E402

TINY = ["model.generator_kwargs={ngf=4, n_blocks=1, n_down=2}", "model.discriminator_kwargs={ndf=4}",
        "train.log_every=1", "train.pool_size=3"]


def test_gaussian_denoiser_removes_a_hidden_high_frequency_code():
    smooth = torch.linspace(-0.5, 0.5, 32).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    code = 0.02 * (torch.arange(32).view(1, -1) + torch.arange(32).view(-1, 1)).remainder(2).float()[None, None] * 2 - 0.02
    den = GaussianDenoiser(1.0)
    assert (den(smooth + code) - den(smooth)).abs().max() < 0.1 * code.abs().max()
    assert torch.allclose(den(torch.full((1, 1, 8, 8), 0.3)), torch.full((1, 1, 8, 8), 0.3), atol=1e-6)
    with pytest.raises(InputError, match="sigma"):
        GaussianDenoiser(0.0)


def test_guarded_discriminator_scores_the_denoised_image_and_keeps_its_keys():
    from sonoedge.train.discriminators import PatchDiscriminator

    torch.manual_seed(0)
    plain = PatchDiscriminator(ndf=4)
    guarded = guard_discriminator(PatchDiscriminator(ndf=4), "gaussian", 1.0)
    guarded.load_state_dict(plain.state_dict())  # same keys: nothing of the denoiser is saved
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert torch.allclose(guarded(x), plain(GaussianDenoiser(1.0)(x)), atol=1e-6)
    assert guard_discriminator(plain, "none") is plain
    with pytest.raises(InputError, match="discriminator_denoiser"):
        guard_discriminator(plain, "dncnn")


def test_linear_decay_holds_then_falls_to_zero():
    f = LinearDecay(100, 200)
    assert [f(0), f(100), f(150), f(200), f(250)] == [1.0, 1.0, 0.5, 0.0, 0.0]


def test_preset_holds_the_papers_values():
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    cfg = PRESETS.get("grimwood2022-sim2real").config
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.lr_policy, cfg.optim.lr_step_epochs) == (2e-4, 2e-4, "linear", 100)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.data.layout) == (1, 200, "unpaired")
    assert (cfg.data.augment.hflip, cfg.data.augment.crop_margin) == (True, 40)
    assert cfg.model.discriminator_denoiser == "gaussian" and tuple(cfg.data.ratios)[:2] == (0.9, 0.1)


class Unpaired(torch.utils.data.Dataset):
    """A: smooth 'phantom' images; B: the same with speckle-like multiplicative noise, (1, 32, 32)."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, 5, 1, 2).clamp(-1, 1)
        self.b = (self.a.roll(1, 0) * (1 + 0.5 * torch.randn(self.a.shape, generator=g))).clamp(-1, 1)

    def __len__(self):
        return len(self.a)

    def __getitem__(self, i):
        return {"A": self.a[i], "B": self.b[i], "name_A": f"a{i}", "name_B": f"b{i}"}


def _fit(cfg, out, resume=None):
    from sonoedge.train.trainer import Trainer

    t = Trainer(cfg, out, resume, datasets={"train": Unpaired(6, 0), "val": Unpaired(2, 1)})
    try:
        t.fit()
    finally:
        t.writer.close()


def test_resume_takes_the_identical_next_step(tmp_path):
    from sonoedge.train.config import TrainConfig
    from sonoedge.train.presets import grimwood

    cfg = lambda *o: load_config(TrainConfig, None, [*TINY, "train.epochs=3", *o], base=grimwood())  # noqa: E731
    _fit(cfg("train.max_steps=8"), tmp_path / "straight")  # 6 steps per epoch: 7 -> 8 crosses an epoch (lr decays)
    _fit(cfg("train.max_steps=7"), tmp_path / "split")
    _fit(cfg("train.max_steps=8"), tmp_path / "split", resume=tmp_path / "split" / "last.pt")
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("straight", "split"))
    for net in ("G_H", "G_L", "D_H", "D_L"):
        for key, value in a["state_dicts"][net].items():
            assert torch.equal(value, b["state_dicts"][net][key]), f"{net}.{key} differs after resume"
    assert a["schedulers"]["G"]["last_epoch"] == b["schedulers"]["G"]["last_epoch"] == 1


@pytest.mark.slow
def test_smoke_on_phantom_and_real_frames_lowers_the_loss(tmp_path, realus):
    """Through ``sonoedge train``: A = phantom console images, B = real HC18 console frames."""
    from sonoedge.cli import main
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    write_pairs(tmp_path / "ph", 8, PhantomConfig(size=(64, 64)))
    data = tmp_path / "sim2real"
    data.mkdir()
    (data / "A").symlink_to(tmp_path / "ph" / "high")
    (data / "B").symlink_to(realus / "hc18")
    common = ["train", "--preset", "grimwood2022-sim2real", "--data", str(data), *sum((["--set", o] for o in TINY), []),
              "--set", "data.size=32", "--set", "data.augment.crop_margin=8", "--set", "train.epochs=100"]
    assert main([*common, "--out", str(tmp_path / "a"), "--set", "train.max_steps=40"]) == 0
    records = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    g = [r["loss_g"] for r in records if r["kind"] == "step"]
    assert np.mean(g[-8:]) < np.mean(g[:8]), "generator loss did not go down"
    assert main([*common, "--out", str(tmp_path / "b"), "--set", "train.max_steps=39"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--set", "train.max_steps=40", "--resume", str(tmp_path / "b" / "last.pt")]) == 0
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("a", "b"))
    for key, value in a["state_dicts"]["G_H"].items():
        assert torch.allclose(value, b["state_dicts"]["G_H"][key], atol=1e-6, rtol=0)
