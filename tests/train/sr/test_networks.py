"""Shapes, value ranges and initial behaviour of the SR networks (Liu et al. Fig. 1-3, Table I)."""
import pytest
import torch
import torch.nn.functional as F

from sonoedge.train.registries import DISCRIMINATORS, GENERATORS
from sonoedge.train.sr.networks import DegradationGenerator, LiuSRGenerator, PatchDiscriminator


def _detailed(g: LiuSRGenerator) -> LiuSRGenerator:
    """A generator whose branches add non-zero detail (weights as after some training)."""
    torch.manual_seed(0)
    for branch in g.branches:
        torch.nn.init.normal_(branch.detail.weight, std=0.05)
    return g.eval()


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (16, 16), (17, 31), (34, 50)])
def test_generator_any_size_scale_4(size):
    g = _detailed(LiuSRGenerator())
    x = torch.rand(2, 1, *size) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 1, 4 * size[0], 4 * size[1])
    assert y.min() >= -1 and y.max() <= 1
    assert LiuSRGenerator.scale == 4 and LiuSRGenerator.stride == 1


def test_generator_registered_and_paper_size():
    assert GENERATORS.get("liu_sr") is LiuSRGenerator
    params = sum(p.numel() for p in LiuSRGenerator().parameters())
    # Table IV: 1.1 MB model capacity; float32 Table I layers come to ~1.1 MB
    assert 1.0e6 < params * 4 < 1.2e6


def test_untrained_generator_is_bicubic_and_learns_detail():
    g = LiuSRGenerator()
    x = torch.rand(1, 1, 10, 12) * 1.6 - 0.8
    bicubic = F.interpolate(x, scale_factor=4.0, mode="bicubic", align_corners=False)
    assert torch.allclose(g(x), bicubic.clamp(-1, 1), atol=1e-5)
    g(x).sum().backward()
    assert all(b.detail.weight.grad.abs().sum() > 0 for b in g.branches)


def test_branches_change_the_output_and_depths_follow_table_1():
    g = _detailed(LiuSRGenerator())
    x = torch.rand(1, 1, 8, 8) * 2 - 1
    bicubic = F.interpolate(x, scale_factor=4.0, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert (g(x) - bicubic).abs().max() > 1e-3
    assert [b.depth for b in g.branches] == [0, 1, 2]
    convs = [sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in b.body) for b in g.branches]
    assert convs == [2, 8, 12]  # Table I: (conv3-32)x2 | +(conv3-32)x2, 2x (deconv3-32)x2 | + conv64, deconv64


@pytest.mark.parametrize("size", [(16, 16), (64, 64), (20, 36)])
def test_degradation_quarter_size_with_noise(size):
    f = DegradationGenerator()
    torch.nn.init.normal_(f.out.weight, std=0.05)
    y = torch.rand(3, 1, *size) * 2 - 1
    out = f(y)
    assert out.shape == (3, 1, size[0] // 4, size[1] // 4)
    assert out.min() >= -1 and out.max() <= 1
    noise = torch.zeros_like(y)
    assert torch.equal(f(y, noise), f(y, noise))  # deterministic given the noise
    assert not torch.equal(f(y), f(y))            # fresh Gaussian noise each call


def test_discriminator_patch_map_and_registry():
    d = PatchDiscriminator()
    assert DISCRIMINATORS.get("liu_patch") is PatchDiscriminator
    assert d(torch.rand(4, 1, 64, 64)).shape == (4, 1, 8, 8)
    blocks = [m for m in d.body if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(blocks) == 4  # Fig. 3: four conv-ReLU-BN blocks after the input layer


@pytest.mark.slow
def test_generator_exports_to_onnx_with_dynamic_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    g = _detailed(LiuSRGenerator())
    path = tmp_path / "g.onnx"
    torch.onnx.export(g, (torch.zeros(1, 1, 12, 20),), str(path), opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}},
                      dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 1, 9, 13) * 2 - 1
    out = session.run(None, {"input": x.numpy()})[0]
    assert out.shape == (1, 1, 36, 52)
    assert abs(out - g(x).detach().numpy()).max() < 1e-4
