"""Eq. 2-7 of Liu et al. and the history buffer."""
import pytest
import torch

from sonoedge.train.sr import losses as L


def test_weights_are_the_papers():
    w = L.LossWeights()
    assert (w.pixel, w.perceptual, w.adversarial, w.cycle) == (5.0, 0.1, 5.0, 0.3)


def test_pixel_and_cycle_are_l1_of_both_directions():
    hr, lr = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 2, 2)
    assert L.pixel_loss(hr, hr, lr, lr) == 0
    assert torch.isclose(L.pixel_loss(hr + 0.5, hr, lr, lr), torch.tensor(0.5))
    assert torch.isclose(L.pixel_loss(hr, hr, lr - 0.25, lr), torch.tensor(0.25))
    assert torch.isclose(L.cycle_loss(lr + 0.1, lr, hr - 0.2, hr), torch.tensor(0.3))


def test_adversarial_is_minus_log_d():
    logits = torch.zeros(1, 1, 4, 4)  # D = 0.5 everywhere
    assert torch.isclose(L.generator_adversarial(logits, logits), 2 * torch.log(torch.tensor(2.0)))
    confident = torch.full((1, 1, 4, 4), 20.0)
    assert L.generator_adversarial(confident, confident) < 1e-6
    assert L.discriminator_loss(confident, -confident) < 1e-6
    assert L.discriminator_loss(-confident, confident) > 30


def test_perceptual_compares_features_and_passes_gradient():
    phi = lambda x: [torch.nn.functional.avg_pool2d(x, 2), x * 2]  # noqa: E731 - a stand-in trunk
    a = torch.rand(1, 1, 8, 8, requires_grad=True)
    b = torch.rand(1, 1, 8, 8)
    assert L.perceptual_loss(phi, b, b, b, b) == 0
    loss = L.perceptual_loss(phi, a, b, b, b)
    loss.backward()
    assert loss > 0 and a.grad.abs().sum() > 0


@pytest.mark.slow  # building torchvision's VGG16 (138M parameters) takes tens of seconds on 2 cores
def test_perceptual_with_named_random_vgg_trunk():
    from sonoedge.train.lpips_offline import vgg16_features

    phi = vgg16_features("random", ("conv12",))
    assert "random" in phi.trunk_description
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    assert L.perceptual_loss(phi, x, x, x, x) == 0
    assert L.perceptual_loss(phi, x, -x, x, x) > 0


def test_total_is_the_weighted_sum():
    terms = {"pixel": torch.tensor(1.0), "perceptual": torch.tensor(1.0), "adversarial": torch.tensor(1.0),
             "cycle": torch.tensor(1.0)}
    assert torch.isclose(L.total_loss(terms, L.LossWeights()), torch.tensor(10.4))
    assert torch.isclose(L.total_loss({"cycle": torch.tensor(2.0)}, L.LossWeights()), torch.tensor(0.6))


def test_history_buffer_fills_then_mixes_old_images():
    buf = L.HistoryBuffer(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(buf.query(first), first)  # filling: new images pass through
    mixed = torch.cat([buf.query(torch.full((4, 1, 1, 1), 100.0)) for _ in range(10)])
    assert (mixed < 100).any() and (mixed == 100).any()
    assert not L.HistoryBuffer(size=0).query(first.requires_grad_()).requires_grad
