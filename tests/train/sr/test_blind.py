"""The blind generator (train/sr/blind.py, networks.BlindSRNet): bicubic at init, the training
pairs, supervised training with a validation choice, zero-shot fine-tuning under a budget."""
import numpy as np
import pytest
import torch

from sonoedge.train.sr import blind, degrade
from sonoedge.train.sr.networks import BlindSRNet
from sonoedge.train.sr.resize import resize
from tests.train.sr.test_trainer import textured


def _image(seed=0, shape=(120, 128)):
    return textured(seed, shape, periods=(5.0, 7.0), noise=8)


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


def _speckled(image, std=0.1, seed=5):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(image * rng.gamma(1 / std ** 2, std ** 2, image.shape)), 0, 255).astype(np.uint8)


def test_zero_shot_stops_at_the_budget_and_leaves_the_callers_generator_alone():
    G = BlindSRNet(channels=8, layers=3).eval()
    lr = _image(4)
    sr, log = blind.zero_shot(G, lr, blind.ZeroShotConfig(budget_s=1.0, check_every=2, sons="area", internal=1.0))
    assert sr.shape == (480, 512) and log.stop_reason == "time budget 1 s" and log.iterations > 0
    assert "area (given)" in log.sons and log.operator == "area" and len(log.probe) == 2
    assert log.terms and all(t[1] > 0 for t in log.terms)  # the internal term ran
    # the caller's generator is not changed
    assert torch.equal(G(torch.zeros(1, 1, 4, 4)), torch.full((1, 1, 16, 16), 0.0))


def test_cleanliness_separates_a_speckled_input_from_a_clean_one():
    clean = degrade.apply_image(degrade.operator("gauss1.5"), np.kron(_image(7), np.ones((4, 4), np.uint8)))
    c_clean, level_clean = blind.cleanliness(clean, (0.04, 0.08))
    c_noisy, level_noisy = blind.cleanliness(_speckled(clean), (0.04, 0.08))
    assert level_clean < 0.04 < 0.08 < level_noisy < 0.12
    assert c_clean == 1.0 and c_noisy == 0.0


def test_zero_shot_on_a_speckled_input_without_the_internal_term_is_the_dataset_output_at_once():
    """Cleanliness 0 turns the consistency term off; the anchor alone has zero gradient at G0 (checked
    here on the anchor loss itself), so no budget is spent and the output is G0's bit for bit."""
    G = BlindSRNet(channels=8, layers=3)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lr = _speckled(_image(8))
    G.eval()
    x = torch.from_numpy(lr[:32, :32].astype(np.float32) / 127.5 - 1.0)[None, None]
    with torch.no_grad():
        y0 = G(x)
    (G(x) - y0).abs().mean().backward()
    assert all(float(p.grad.abs().max()) == 0.0 for p in G.parameters())
    G.zero_grad(set_to_none=True)
    sr, log = blind.zero_shot(G, lr, blind.ZeroShotConfig(budget_s=30.0, internal=0.0))
    assert log.cleanliness == 0.0 and log.iterations == 0 and log.drift == 0.0
    assert "nothing to fit" in log.stop_reason and "speckled" in log.stop_reason
    assert np.array_equal(sr, blind.infer(G, lr))


def test_zero_shot_consistency_pulls_the_output_towards_the_input_through_the_operator():
    op = degrade.operator("gauss2")
    hr = np.kron(_image(9, (60, 64)), np.ones((4, 4), np.uint8))
    lr = degrade.apply_image(op, hr)
    G = BlindSRNet(channels=8, layers=3).eval()  # bicubic: its output, down-scaled, is not the input

    def residual(image):
        return float(np.abs(degrade.apply_image(op, image).astype(float) - lr).mean())

    cfg = blind.ZeroShotConfig(budget_s=60.0, max_iters=150, internal=0.0, consistency=10.0, lr=1e-3, sons="gauss2")
    sr, log = blind.zero_shot(G, lr, cfg)
    assert log.cleanliness == 1.0 and log.stop_reason == "max_iters 150" and log.drift > 0
    assert residual(sr) < 0.8 * residual(blind.infer(G, lr))


def test_zero_shot_with_every_weight_zero_returns_the_dataset_output_at_once():
    G = BlindSRNet(channels=8, layers=3).eval()
    lr = _image(10)
    sr, log = blind.zero_shot(G, lr, blind.ZeroShotConfig(internal=0.0, anchor=0.0, consistency=0.0))
    assert log.iterations == 0 and "nothing to fit" in log.stop_reason and np.array_equal(sr, blind.infer(G, lr))


def test_fine_tuning_from_a_checkpoint_keeps_it_unless_the_worst_degradation_improves(tmp_path):
    cfg = blind.BlindConfig(max_iters=4, check_every=2)
    cfg.net.channels, cfg.net.layers, cfg.data.lr_crop, cfg.data.batch = 8, 3, 8, 4
    G, log = blind.train([_image(1)], [_image(3)], cfg)
    path = blind.save(G, log, cfg, tmp_path / "a.pt")
    cfg2 = blind.BlindConfig(max_iters=4, check_every=2, init=str(path), select="worst", lr=1e-2)
    cfg2.net.channels, cfg2.net.layers, cfg2.data.lr_crop, cfg2.data.batch = 8, 3, 8, 4
    cfg2.data.operator_weights = (1.0, 0.0, 0.0, 0.0)
    G2, log2 = blind.train([_image(1)], [_image(3)], cfg2)
    pairs = blind.validation_inputs([_image(3)])
    assert log2.start == pytest.approx(blind.validation_gains(G, pairs))  # measured from the checkpoint
    worst = [c[3] for c in log2.checks]
    if log2.best[0] == 0:  # kept the checkpoint: no check beat its worst degradation
        assert all(w <= min(log2.start.values()) for w in worst)
        x = torch.rand(1, 1, 9, 9) * 2 - 1
        assert torch.equal(G2(x), G(x))
    else:
        assert min(log2.best_gains.values()) == max(worst) > min(log2.start.values())


def test_weighted_operators_draw_the_kinds_with_their_odds():
    rng = np.random.default_rng(0)
    pick = blind.weighted_operators((3.0, 1.0, 0.0, 0.0))
    names = [pick(rng).name for _ in range(400)]
    assert set(names) == {"cubic", "area"} and 0.65 < names.count("cubic") / 400 < 0.85
    assert blind.weighted_operators((2.0, 2.0, 2.0, 2.0)) is blind.random_operator


def test_blind_config_refuses_bad_choices(tmp_path):
    from sonoedge.runtime.errors import InputError

    with pytest.raises(InputError, match="select"):
        blind.BlindConfig(select="best").validate()
    bad = blind.BlindConfig()
    bad.data.operator_weights = (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="operator_weights"):
        bad.validate()
    with pytest.raises(InputError, match="no such checkpoint"):
        blind.BlindConfig(init=str(tmp_path / "none.pt")).validate()
    with pytest.raises(InputError, match="clean_speckle"):
        blind.ZeroShotConfig(clean_speckle=(0.1, 0.05)).validate()


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
