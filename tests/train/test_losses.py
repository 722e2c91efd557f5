"""Each loss term of Athreya et al. 2024 against a hand computation, and the label-smoothing switch."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sonoedge.train import losses  # noqa: E402
from sonoedge.train.pool import ImagePool  # noqa: E402


def t(*values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_adversarial_g_is_mse_to_ones():
    a, b = t(1.0, 0.0), t(0.5, 0.5)
    assert losses.adversarial_g(a, b).item() == pytest.approx((0 + 1) / 2 + (0.25 + 0.25) / 2)
    assert losses.adversarial_g(torch.ones(2, 1, 3, 3)).item() == 0


def test_cycle_identity_paired_l1():
    h, l = t(1.0, -1.0), t(0.0, 0.0)
    assert losses.cycle_l1(h, t(0.0, -1.0), l, t(0.5, -0.5)).item() == pytest.approx(0.5 + 0.5)
    assert losses.identity_l1(h, h, l, t(1.0, 1.0)).item() == pytest.approx(1.0)
    assert losses.paired_l1(h, t(1.0, 1.0), l, l).item() == pytest.approx(1.0)


def test_perceptual_sums_both_domains():
    calls = []

    def phi(x, y):  # a stand-in distance: mean absolute difference per item
        calls.append((x, y))
        return (x - y).abs().flatten(1).mean(1)

    h, l = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    value = losses.perceptual(phi, h, h + 1, l, l - 0.5)
    assert value.item() == pytest.approx(1.5) and len(calls) == 2


def test_perceptual_with_lpips_is_differentiable_and_zero_for_equal():
    from sonoedge.train.lpips_offline import build_lpips

    phi = build_lpips(net="vgg", trunk="random")
    h = torch.rand(1, 1, 32, 32) * 2 - 1
    fake = torch.zeros_like(h, requires_grad=True)
    value = losses.perceptual(phi, h, fake, h, h.clone())
    value.backward()
    assert value.item() > 0 and fake.grad is not None and fake.grad.abs().sum() > 0
    assert losses.perceptual(phi, h, h, h, h).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("mean_h, mean_l, expected", [(0.5, 0.5, 1.0), (0.95, 0.5, 0.9), (0.5, 0.95, 0.9), (0.9, 0.9, 0.9)])
def test_label_smoothing_switch(mean_h, mean_l, expected):
    assert losses.real_target(mean_h, mean_l) == expected
    assert losses.real_target(mean_h, mean_l, enabled=False) == 1.0


def test_discriminator_loss_targets():
    real, fake = torch.full((1, 1, 2, 2), 0.9), torch.zeros(1, 1, 2, 2)
    assert losses.discriminator_lsgan(real, fake, 0.9).item() == pytest.approx(0)
    assert losses.discriminator_lsgan(real, fake, 1.0).item() == pytest.approx(0.01)
    assert losses.discriminator_lsgan(real, fake + 1, 0.9).item() == pytest.approx(1.0)


def test_pool_passthrough_and_history():
    torch.manual_seed(0)
    assert torch.equal(ImagePool(0).query(torch.ones(2, 1, 2, 2)), torch.ones(2, 1, 2, 2))
    pool = ImagePool(2)
    first = pool.query(torch.zeros(2, 1, 2, 2))
    assert torch.equal(first, torch.zeros(2, 1, 2, 2)) and len(pool.images) == 2
    seen = torch.cat([pool.query(torch.ones(1, 1, 2, 2)) for _ in range(20)])
    assert (seen.flatten(1).mean(1) == 0).any() and (seen.flatten(1).mean(1) == 1).any()  # old and new both served
    state = pool.state_dict()
    other = ImagePool(5)
    other.load_state_dict(state)
    assert other.size == 2 and all(torch.equal(a, b) for a, b in zip(other.images, pool.images))


def test_lowpass_l1_sees_echogenicity_not_speckle():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 32, 32, generator=g) * 2 - 1
    # texture changed below the 8-pixel scale with the block means kept: no low-pass loss
    flipped = x.view(1, 1, 4, 8, 4, 8).flip(3).flip(5).reshape(1, 1, 32, 32)
    assert losses.lowpass_l1(x, flipped, 8).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.paired_l1(x, flipped, x, x).item() > 0.1
    # a dark blob erased into the map costs its block means
    blob = x.clone()
    blob[..., 8:16, 8:16] = -1.0
    expected = (x[..., 8:16, 8:16].mean() + 1.0).abs().item() / 16
    assert losses.lowpass_l1(x, blob, 8).item() == pytest.approx(expected, rel=1e-5)
    assert losses.lowpass(x, 1) is x
    assert losses.lowpass(torch.zeros(1, 1, 30, 33), 8).shape == (1, 1, 3, 4)
