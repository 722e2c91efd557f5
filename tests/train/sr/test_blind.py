"""The blind generator (train/sr/blind.py, networks.BlindSRNet): bicubic at init, the training
pairs, supervised training with a validation choice, zero-shot fine-tuning under a budget."""
import numpy as np
import pytest
import torch

from sonoedge.train.sr import blind, degrade
from sonoedge.train.sr.networks import BlindSRNet
from sonoedge.train.sr.resize import resize


def _image(seed=0, shape=(120, 128)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 128 + 80 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 8, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_untrained_net_is_exactly_bicubic_and_trainable():
    G = BlindSRNet(channels=8, layers=3)
    x = torch.rand(2, 1, 13, 17) * 2 - 1
    assert torch.equal(G(x), resize(x, scale=4).clamp(-1, 1))
    (G(x) - 0.5).abs().mean().backward()
    assert G.subpixel.weight.grad.abs().sum() > 0


def test_sons_are_the_operator_on_the_crop_interior():
    hr = blind.CropSampler.MARGIN
    frame = torch.from_numpy(_image().astype(np.float32) / 127.5 - 1)[None, None]
    op = degrade.operator("gauss2.5")
    sampler = blind.CropSampler([frame], 12, 0.0, lambda _rng: op)
    son, crop = sampler.sample(3, np.random.default_rng(0))
    assert son.shape == (3, 1, 12, 12) and crop.shape == (3, 1, 48, 48)
    # the son of a crop is the operator applied with real image around it (no replicated border)
    side = 4 * (12 + 2 * hr)
    sampler1 = blind.CropSampler([frame[..., :side, :side]], 12, 0.0, lambda _rng: op)
    son1, crop1 = sampler1.sample(1, np.random.default_rng(3))
    # crop1 is one of the 8 flips/rotations of the interior; find it and compare the son
    full = blind.quantise(degrade.apply(op, frame[..., :side, :side]))[..., hr:hr + 12, hr:hr + 12]
    inner = frame[..., 4 * hr:4 * (hr + 12), 4 * hr:4 * (hr + 12)]
    from sonoedge.train.sr.fathers import dihedral

    k = next(k for k in range(8) if torch.equal(dihedral(inner, k), crop1))
    assert torch.allclose(dihedral(full, k), son1, atol=1e-6)


def test_training_keeps_the_best_validation_weights_and_saves_a_checkpoint(tmp_path):
    from sonoedge.train.sr.trainer import load_sr_generator

    cfg = blind.BlindConfig(max_iters=6, check_every=3)
    cfg.net.channels, cfg.net.layers, cfg.data.lr_crop, cfg.data.batch = 8, 3, 8, 4
    G, log = blind.train([_image(1), _image(2)], [_image(3)], cfg)
    assert log.iterations == 6 and [c[0] for c in log.checks] == [3, 6]
    gains = [c[2] for c in log.checks]
    assert log.best[1] == max(0.0, *gains)  # the untrained net (gain 0) counts too
    path = blind.save(G, log, cfg, tmp_path / "b.pt")
    G2, info = load_sr_generator(path)
    assert info["generator"] == "blind_sr" and info["kwargs"] == {"channels": 8, "layers": 3}
    x = torch.rand(1, 1, 10, 11) * 2 - 1
    assert torch.equal(G2(x), G(x))


def test_split_keeps_validation_out_of_training():
    train, val = blind.split(list(range(40)), 10)
    assert val == [5, 15, 25, 35] and not set(train) & set(val) and len(train) == 36


def test_zero_shot_stops_at_the_budget_and_never_fits_worse_than_it_started():
    G = BlindSRNet(channels=8, layers=3).eval()
    lr = _image(4)
    sr, log = blind.zero_shot(G, lr, blind.ZeroShotConfig(budget_s=1.0, check_every=2, sons="area"))
    assert sr.shape == (480, 512) and log.stop_reason == "time budget 1 s" and log.iterations > 0
    errors = dict(log.probe)
    assert errors[log.kept] == min(errors.values())
    assert "area (given)" in log.sons
    # the caller's generator is not changed
    assert torch.equal(G(torch.zeros(1, 1, 4, 4)), torch.full((1, 1, 16, 16), 0.0))


def test_zero_shot_config_refuses_an_unknown_operator():
    from sonoedge.runtime.errors import InputError

    with pytest.raises(InputError, match="lanczos"):
        blind.ZeroShotConfig(sons="lanczos").validate()


def test_preset_is_registered():
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    preset = PRESETS.get("blind-sr")
    assert isinstance(preset.config, blind.BlindConfig) and preset.config.data.val_every == 10


def test_stop_iters_stops_without_changing_the_schedule():
    cfg = blind.BlindConfig(max_iters=100, check_every=50, stop_iters=3)
    cfg.net.channels, cfg.net.layers, cfg.data.lr_crop, cfg.data.batch = 4, 2, 8, 2
    G, log = blind.train([_image(1)], [], cfg)
    assert log.iterations == 3 and log.stop_reason == "stop_iters 3"
