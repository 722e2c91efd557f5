"""Generators and discriminators: shapes, value ranges, stride, registry coverage, ONNX-friendliness."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import sonoedge.train.discriminators  # noqa: E402  (registers its entries)
import sonoedge.train.generators  # noqa: E402,F401
from sonoedge.train.registries import DISCRIMINATORS, GENERATORS  # noqa: E402

# small constructor arguments per registered enhancement generator, so every entry is tested
SMALL = {"resnet": {"ngf": 8, "n_blocks": 2, "n_down": 2}, "unet": {"ngf": 8, "depth": 4}}


def enhancement_generators():
    return [name for name in GENERATORS.names()
            if GENERATORS.get(name).scale == 1 and GENERATORS.get(name).__module__ == "sonoedge.train.generators"]


def test_every_enhancement_generator_has_small_settings():
    assert set(enhancement_generators()) <= set(SMALL), "add small test kwargs for new generators"
    assert {"resnet", "unet"} <= set(GENERATORS.names())


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shape_and_range(name, channels):
    torch.manual_seed(0)
    g = GENERATORS.create(name, in_channels=channels, out_channels=channels, **SMALL[name])
    assert g.scale == 1
    s = g.stride
    x = torch.rand(2, channels, 2 * s, 3 * s) * 2 - 1  # non-square, a multiple of the stride
    y = g(x * 50)  # large inputs still land in [-1, 1] (tanh)
    assert y.shape == x.shape
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_strides_follow_the_configuration():
    assert GENERATORS.create("resnet", ngf=4, n_blocks=1, n_down=3).stride == 8
    assert GENERATORS.create("unet", ngf=4, depth=5).stride == 32
    assert GENERATORS.create("unet", ngf=4).stride == 256  # pix2pix unet_256 default


def test_paper_defaults():
    g = GENERATORS.create("resnet")
    assert g.stem[0].kernel_size == (7, 7) and g.stem[0].out_channels == 64  # 7x7, 64 channels (Sec. 2.2)
    assert len(g.blocks) == 15  # 15 residual blocks
    assert isinstance(g.blocks[0].body[1], torch.nn.InstanceNorm2d)
    u = GENERATORS.create("unet")
    assert u.encoder[0][0].out_channels == 64
    assert any(isinstance(m, torch.nn.Dropout) for m in u.encoder.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in u.decoder.modules())


def test_unet_dropout_only_in_training():
    torch.manual_seed(0)
    g = GENERATORS.create("unet", ngf=4, depth=4, dropout=0.5, dropout_layers=2)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    g.eval()
    assert torch.equal(g(x), g(x))
    g.train()
    assert not torch.equal(g(x), g(x))


def test_bad_arguments_fail():
    with pytest.raises(ValueError):
        GENERATORS.create("unet", depth=1)
    with pytest.raises(ValueError):
        GENERATORS.create("resnet", n_down=-1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_generator_traces_to_onnx(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    g = GENERATORS.create(name, **SMALL[name]).eval()
    s = g.stride
    path = tmp_path / "g.onnx"
    torch.onnx.export(g, torch.zeros(1, 1, 2 * s, 2 * s), str(path), opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}}, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))


def test_patchgan_is_30x30_for_256():
    d = DISCRIMINATORS.create("patchgan")
    out = d(torch.rand(1, 1, 256, 256) * 2 - 1)
    assert out.shape == (1, 1, 30, 30)


def test_patchgan_spectral_norm_on_every_conv():
    d = DISCRIMINATORS.create("patchgan", ndf=8)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        assert hasattr(conv, "parametrizations") and "weight" in conv.parametrizations
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())


def test_every_discriminator_gives_a_map():
    ours = [n for n in DISCRIMINATORS.names() if DISCRIMINATORS.get(n).__module__ == "sonoedge.train.discriminators"]
    assert ours  # entries of other modules (train/sr) are tested by their owners
    for name in ours:
        d = DISCRIMINATORS.create(name, in_channels=3, ndf=4)
        out = d(torch.rand(2, 3, 64, 64))
        assert out.ndim == 4 and out.shape[:2] == (2, 1) and out.shape[-1] >= 1
