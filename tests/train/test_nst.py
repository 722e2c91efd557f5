"""Menini 2020 NST (train/nst/): VGG19 layers, losses against explicit formulas, masks, average
style, the optimisation (``stylize``), the transform net with noise injection, its trainer (exact
resume), the ``menini2021-nst`` preset and smoke runs on phantom and real frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sonoedge.runtime.config import load_config  # noqa: E402
from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train.checkpoint import load_checkpoint  # noqa: E402
from sonoedge.train.nst import losses as L  # noqa: E402
from sonoedge.train.nst.vgg19 import STYLE_LAYERS, layer_indices, vgg19_features  # noqa: E402


@pytest.fixture(scope="module")
def vgg():
    return vgg19_features("random")


def test_keras_layer_names_point_at_the_relu_after_each_conv():
    import torchvision

    features = torchvision.models.vgg19(weights=None).features
    for name, index in layer_indices().items():
        block = int(name[5])
        pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in features[:index])
        if name.endswith("pool"):
            assert isinstance(features[index], torch.nn.MaxPool2d) and pools == block - 1
        else:
            assert isinstance(features[index - 1], torch.nn.Conv2d) and isinstance(features[index], torch.nn.ReLU)
            assert pools == block - 1
    assert layer_indices()["block5_conv2"] == 31


def test_trunk_is_labelled_or_named_when_missing(tmp_path, monkeypatch, vgg):
    assert "random" in vgg.trunk_description
    monkeypatch.delenv("SONOEDGE_VGG19_TRUNK", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError, match="vgg19-dcbb9e9d.pth"):
        vgg19_features()


def test_losses_match_the_thesis_equations():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 3, 4, 5, generator=g), torch.randn(1, 3, 4, 5, generator=g)
    # Eq. 2.3: G(c, d) = 1/(MN) sum_ij F(i, j, c) F(i, j, d)
    expected = torch.zeros(3, 3)
    for c in range(3):
        for d in range(3):
            expected[c, d] = (a[0, c] * a[0, d]).sum() / 20
    assert torch.allclose(L.gram(a)[0], expected, atol=1e-6)
    # Eq. 2.2: 1/(2 M N C) sum (F[C] - F[O])^2
    assert torch.allclose(L.content_loss(a, b), ((a - b) ** 2).sum() / (2 * 4 * 5 * 3))
    # Eq. 2.4: 1/(2 C^2) sum (G[S] - G[O])^2
    assert torch.allclose(L.style_loss(L.gram(a)[0], b), ((L.gram(a) - L.gram(b)) ** 2).sum() / (2 * 9))
    # Eq. 2.5 / 3.1 with one all-ones mask is the plain style loss
    ones = torch.ones(1, 4, 5)
    assert torch.allclose(L.augmented_style_loss(L.masked_gram(a, ones)[0], b, ones), L.style_loss(L.gram(a)[0], b))


def test_masks_follow_the_feature_maps_and_small_labels_are_dropped(vgg):
    labels = np.zeros((64, 64), int)
    labels[8:40, 8:40], labels[45:60, 10:50], labels[0, 0] = 1, 2, 3  # label 3: one pixel, below 0.25 %
    masks = L.label_masks(labels)
    assert masks.shape == (3, 64, 64)  # labels 1, 2 and the whole object
    feats = vgg(torch.zeros(1, 1, 64, 64))
    for layer in STYLE_LAYERS:
        assert L.masks_at(torch.from_numpy(masks), layer).shape[-2:] == feats[layer].shape[-2:]
    with pytest.raises(InputError, match="label"):
        L.label_masks(np.zeros((8, 8), int))


def test_average_style_in_feature_and_gram_space(vgg):
    rng = np.random.default_rng(0)
    xs = [torch.from_numpy(rng.uniform(-1, 1, (1, 1, 32, 32)).astype(np.float32)) for _ in range(2)]
    feats = [vgg(x) for x in xs]
    one_f, one_g = L.style_grams(feats[:1], STYLE_LAYERS, "feature"), L.style_grams(feats[:1], STYLE_LAYERS, "gram")
    assert all(torch.allclose(one_f[k], one_g[k]) for k in STYLE_LAYERS)
    two_g = L.style_grams(feats, STYLE_LAYERS, "gram")
    assert torch.allclose(two_g["block1_conv1"], (L.gram(feats[0]["block1_conv1"]) + L.gram(feats[1]["block1_conv1"]))[0] / 2)
    two_f = L.style_grams(feats, STYLE_LAYERS, "feature")
    mean = (feats[0]["block2_conv1"] + feats[1]["block2_conv1"]) / 2
    assert torch.allclose(two_f["block2_conv1"], L.gram(mean)[0])
    with pytest.raises(InputError, match="average"):
        L.style_grams(feats, STYLE_LAYERS, "none")


def test_stylize_lowers_the_style_loss_and_local_nst_keeps_the_rest(vgg):
    from sonoedge.train.nst.optimize import NSTConfig, stylize

    rng = np.random.default_rng(1)
    content = (np.clip(rng.normal(120, 20, (32, 32)), 0, 255)).astype(np.uint8)
    styles = [(rng.rayleigh(40, (32, 32))).clip(0, 255).astype(np.uint8) for _ in range(2)]
    cfg = NSTConfig(iterations=25, lr=0.05, style_weight=1e3, content_weight=1.0)
    out, history = stylize(content, styles, cfg, vgg)
    assert out.shape == content.shape and out.dtype == np.uint8
    assert history[-1]["style"] < 0.5 * history[0]["style"]
    _, history = stylize(content, styles, NSTConfig(iterations=25, lr=0.05, init="noise", content_weight=1.0), vgg)
    assert history[-1]["loss"] < history[0]["loss"]
    labels = np.zeros((32, 32), int)
    labels[4:16, 4:16], labels[18:30, 6:28] = 1, 2
    out, _ = stylize(content, styles, NSTConfig(iterations=3, lr=0.05, local=True), vgg, content_labels=labels)
    outside = labels == 0
    assert np.array_equal(out[outside], content[outside]) and not np.array_equal(out[~outside], content[~outside])
    out, history = stylize(content, styles, NSTConfig(iterations=3, lr=0.05), vgg, content_labels=labels)
    assert len(history) == 3


def test_transform_net_shapes_and_noise_ablation():
    from sonoedge.train.registries import GENERATORS, load_all

    load_all()
    x = torch.rand(2, 1, 32, 36) * 2 - 1
    plain = GENERATORS.create("johnson", ngf=4, n_blocks=1, noise=False).eval()
    assert plain(x).shape == x.shape and torch.equal(plain(x), plain(x))
    noisy = GENERATORS.create("johnson", ngf=4, n_blocks=1, noise=True).eval()
    assert torch.equal(noisy(x), noisy(x))  # zero-initialised noise weights: the untrained net is noiseless
    with torch.no_grad():
        for m in noisy.modules():
            if hasattr(m, "weight") and type(m).__name__ == "NoiseInjection":
                m.weight.fill_(0.5)
    assert not torch.equal(noisy(x), noisy(x))  # active at test time (thesis Sec. 3.3)
    assert sum(type(m).__name__ == "NoiseInjection" for m in noisy.modules()) == 3


def test_preset_holds_the_thesis_values(capsys):
    from sonoedge.cli import main
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    cfg = PRESETS.get("menini2021-nst").config
    assert (cfg.loss.content_weight, cfg.loss.style_weight, cfg.optim.lr, cfg.train.batch_size) == (1e2, 5e6, 1e-5, 1)
    assert cfg.loss.style_layers == STYLE_LAYERS and cfg.loss.content_layers == ("block5_conv2",)
    assert cfg.model.generator_kwargs["noise"] is True and cfg.loss.average == "feature"
    assert main(["train", "--preset", "menini2021-nst", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "style_weight = 5000000.0" in printed and "lr = 1e-05" in printed
    assert "optim.lr = 1e-5, train.batch_size = 1: Menini 2020, Sec. 4.3 and Table 4.6" in printed


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.high = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, 5, 1, 2).clamp(-1, 1)
        self.low = (self.high + 0.3 * torch.randn(self.high.shape, generator=g)).clamp(-1, 1)

    def __len__(self):
        return len(self.high)

    def __getitem__(self, i):
        return {"low": self.low[i], "high": self.high[i], "name": f"p{i}"}


TINY = ["model.generator_kwargs={ngf=4, n_blocks=1, noise=true}", "loss.vgg_trunk='random'", "train.log_every=1",
        "optim.lr=1e-3", "loss.style_weight=1e3", "loss.content_weight=1.0"]


def _cfg(*overrides):
    from sonoedge.train.nst.presets import menini
    from sonoedge.train.nst.trainer import NSTTrainConfig

    return load_config(NSTTrainConfig, None, [*TINY, *overrides], base=menini())


def test_resume_takes_the_identical_next_step(tmp_path):
    from sonoedge.train.nst.trainer import NSTTrainer

    data = {"train": Pairs(4, 0), "val": Pairs(2, 1)}
    fit = lambda cfg, out, resume=None: NSTTrainer(cfg, out, resume, datasets=data).fit()  # noqa: E731
    fit(_cfg("train.epochs=3", "train.max_steps=6"), tmp_path / "straight")
    fit(_cfg("train.epochs=3", "train.max_steps=5"), tmp_path / "split")  # 4 per epoch: 5 -> 6 inside epoch 2
    fit(_cfg("train.epochs=3", "train.max_steps=6"), tmp_path / "split", tmp_path / "split" / "last.pt")
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("straight", "split"))
    assert a["meta"]["step"] == b["meta"]["step"] == 6 and "random" in a["meta"]["vgg19_trunk"]
    for key, value in a["state_dicts"]["G_H"].items():
        assert torch.equal(value, b["state_dicts"]["G_H"][key]), key
    assert (tmp_path / "straight" / "best.pt").is_file()


@pytest.mark.slow
def test_smoke_on_phantom_and_real_frames_lowers_the_loss(tmp_path, realus):
    """LQ to HQ on phantom pairs, and phantom to real (style = real HC18 frames), through the CLI."""
    from sonoedge.cli import main
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    write_pairs(tmp_path / "ph", 8, PhantomConfig(size=(64, 64)))
    s2r = tmp_path / "s2r"
    s2r.mkdir()
    (s2r / "A").symlink_to(tmp_path / "ph" / "high")
    (s2r / "B").symlink_to(realus / "hc18")
    for name, data, extra in (("lq", tmp_path / "ph", []), ("real", s2r, ["--set", "data.layout='unpaired'"])):
        common = ["train", "--preset", "menini2021-nst", "--data", str(data), *sum((["--set", o] for o in TINY), []),
                  "--set", "data.size=32", "--set", "train.epochs=20", *extra]
        assert main([*common, "--out", str(tmp_path / name), "--set", "train.max_steps=30"]) == 0
        records = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in records if r["kind"] == "step"]
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), f"{name}: NST loss did not go down"
        assert main([*common, "--out", str(tmp_path / f"{name}2"), "--set", "train.max_steps=29"]) == 0
        assert main([*common, "--out", str(tmp_path / f"{name}2"), "--set", "train.max_steps=30",
                     "--resume", str(tmp_path / f"{name}2" / "last.pt")]) == 0
        a, b = (load_checkpoint(tmp_path / r / "last.pt")["state_dicts"]["G_H"] for r in (name, f"{name}2"))
        assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
