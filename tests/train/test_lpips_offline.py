"""train/lpips_offline.py: offline trunk loading (file, env var, hub cache), refusals, random by name."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("lpips")

from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train import lpips_offline  # noqa: E402
from sonoedge.train.lpips_offline import ENV_TRUNK, build_lpips, resolve_trunk, vgg16_features  # noqa: E402


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised torchvision vgg16 state_dict standing in for vgg16-397923af.pth
    (features only: the classifier is 470 MB and LPIPS does not use it)."""
    torch.manual_seed(123)
    state = {k: v for k, v in torchvision.models.vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    path = tmp_path_factory.mktemp("trunk") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def no_trunk_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_TRUNK, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 40), dtype=np.uint8)
    return a, 255 - a


def test_loads_trunk_from_given_file(vgg_file, no_trunk_anywhere):
    path, state = vgg_file
    metric = build_lpips("vgg", trunk=path)
    # every trunk tensor came from the file (lpips keeps torchvision's feature indices as names)
    assert torch.equal(metric.model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(metric.model.net.slice5, "28").bias, state["features.28.bias"])
    assert metric.trunk_description.startswith("vgg16-397923af.pth (sha256 ")
    a, b = _images()
    assert metric.distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metric.distance(a, b) > 0.01


def test_env_var_and_hub_cache(vgg_file, no_trunk_anywhere, monkeypatch):
    path, _ = vgg_file
    monkeypatch.setenv(ENV_TRUNK, str(path))
    assert resolve_trunk("vgg") == path
    monkeypatch.delenv(ENV_TRUNK)
    no_trunk_anywhere.mkdir(parents=True)
    cached = no_trunk_anywhere / "vgg16-397923af.pth"
    cached.symlink_to(path)
    assert resolve_trunk("vgg") == cached
    assert build_lpips("vgg").trunk_description.startswith("vgg16-397923af.pth")


def test_missing_trunk_is_one_clear_sentence(no_trunk_anywhere):
    with pytest.raises(InputError) as info:
        build_lpips("vgg")
    message = str(info.value)
    assert "vgg16-397923af.pth" in message and str(no_trunk_anywhere) in message
    assert ENV_TRUNK in message and "--lpips-trunk" in message and "\n" not in message


def test_missing_given_file_and_bad_env(no_trunk_anywhere, monkeypatch, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_lpips("vgg", trunk=tmp_path / "nope.pth")
    with pytest.raises(InputError, match="is a folder"):
        build_lpips("vgg", trunk=tmp_path)
    monkeypatch.setenv(ENV_TRUNK, str(tmp_path / "nope.pth"))
    with pytest.raises(InputError, match=ENV_TRUNK):
        build_lpips("vgg")


def test_wrong_or_corrupt_file_is_refused(tmp_path, no_trunk_anywhere):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        build_lpips("vgg", trunk=corrupt)
    alex = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
    with pytest.raises(InputError, match="does not fit"):
        build_lpips("vgg", trunk=alex)
    assert build_lpips("alex", trunk=alex).net == "alex"


def test_random_trunk_only_by_name_and_seeded(no_trunk_anywhere):
    first, second = build_lpips("alex", trunk="random", seed=3), build_lpips("alex", trunk="random", seed=3)
    assert "random (seed 3)" in first.trunk_description and "not comparable" in first.trunk_description
    a, b = _images()
    assert first.distance(a, b) == pytest.approx(second.distance(a, b), abs=1e-7)
    state = torch.get_rng_state()
    build_lpips("alex", trunk="random", seed=9)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_tensor_call_repeats_grey_and_is_differentiable(no_trunk_anywhere):
    metric = build_lpips("alex", trunk="random")
    x = torch.zeros(2, 1, 32, 32, requires_grad=True)
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    d = metric(x, y)
    assert d.shape == (2,)
    d.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    rgb = metric(x.detach().repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1))
    assert torch.allclose(rgb, d.detach())
    with pytest.raises(InputError, match="shape"):
        metric.distance(np.zeros((32, 32), np.uint8), np.zeros((32, 33), np.uint8))


def test_vgg16_features_layers(vgg_file, no_trunk_anywhere):
    path, state = vgg_file
    names = lpips_offline.vgg16_layer_names()
    assert names["conv1_1"] == 0 and names["relu3_3"] == 15 and names["conv12"] == names["conv5_2"] == 26
    extractor = vgg16_features(path, ["relu1_2", "conv12", 2])
    assert torch.equal(extractor.features[0].weight, state["features.0.weight"])
    assert not any(p.requires_grad for p in extractor.parameters())
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    outs = extractor(x)
    assert [tuple(o.shape) for o in outs] == [(1, 64, 64, 64), (1, 512, 4, 4), (1, 64, 64, 64)]
    assert (outs[0] >= 0).all()  # after the ReLU
    outs[1].sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(InputError, match="unknown VGG16 layer"):
        vgg16_features(path, ["relu9_9"])


def test_batched_distances_equal_the_lpips_forward(no_trunk_anywhere):
    metric = build_lpips("alex", trunk="random", seed=1)
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    others = [rng.integers(0, 256, (40, 48), dtype=np.uint8), ref, 255 - ref]
    batched = metric.distances(ref, others)
    single = [metric.distance(o, ref) for o in others]
    assert batched == pytest.approx(single, abs=1e-6)
    assert batched[1] == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(InputError, match="differ in shape"):
        metric.distances(ref, [np.zeros((40, 40), np.uint8)])


def test_env_var_accepts_random_like_the_option(monkeypatch):
    monkeypatch.setenv(ENV_TRUNK, "random")
    assert resolve_trunk("vgg") == "random"
    monkeypatch.setenv(ENV_TRUNK, "/nonexistent/vgg.pth")
    with pytest.raises(InputError, match="random"):
        resolve_trunk("vgg")
