"""Zero-shot and dataset modes end to end on small synthetic images (tiny widths and crops)."""
import numpy as np
import pytest
import torch

from sonoedge.train.sr.config import SRConfig
from sonoedge.train.sr.trainer import SRTrainer, image_probe, load_sr_generator, to_tensor, train_dataset, zero_shot

SMALL = ["net.width=0.25", "net.degrade_channels=8", "net.disc_channels=8", "data.crop=16", "data.batch=2",
         "weights.perceptual=0.0", "ensemble.transforms=1", "ensemble.back_projection=2"]


def _cfg(*overrides):
    from sonoedge.runtime.config import load_config

    return load_config(SRConfig, None, [*SMALL, *overrides])


def textured(seed=0, shape=(40, 48), periods=(3.0, 5.0), noise=5):
    """A uint8 test image: a smooth sine-cosine pattern (x / periods[0], y / periods[1]) plus seeded noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 128 + 80 * np.sin(x / periods[0]) * np.cos(y / periods[1]) + rng.normal(0, noise, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


_image = textured


def test_zero_shot_returns_4x_image_and_log():
    image = _image()
    sr, log = zero_shot(image, _cfg("max_iters=3"))
    assert sr.shape == (160, 192) and sr.dtype == np.uint8
    assert log.iterations == 3 and log.stop_reason == "max_iters 3"
    assert log.perceptual_trunk.startswith("off")


def test_training_lowers_the_reconstruction_error():
    y, x = np.mgrid[:40, :48]
    image = np.where(((x // 6) + (y // 6)) % 2, 200, 60).astype(np.uint8)  # edges bicubic blurs
    cfg = _cfg("max_iters=20", "weights.adversarial=0.0", "probe_every=1")
    trainer = SRTrainer(cfg, [to_tensor(image)], probe=image_probe(image))
    before = trainer.probe_error()
    log = trainer.fit()
    assert min(e for _, e in log.probe) < 0.95 * before  # measured: 0.315 -> 0.276 by iteration 18
    assert len(log.probe) == 20 and "discriminator" not in log.last_terms


def test_full_objective_updates_all_four_networks():
    image = _image(2)
    trainer = SRTrainer(_cfg(), [to_tensor(image)], probe=image_probe(image))
    before = {k: {n: t.clone() for n, t in sd.items()} for k, sd in trainer.state_dicts().items()}
    terms = trainer.step()
    assert set(terms) == {"pixel", "cycle", "adversarial", "discriminator"}
    for name, sd in trainer.state_dicts().items():
        assert any(not torch.equal(sd[n], before[name][n]) for n in sd if sd[n].is_floating_point()), name


def test_time_budget_and_policy_stop():
    image = _image(3)
    trainer = SRTrainer(_cfg("max_iters=1000", "time_budget_s=0.5"), [to_tensor(image)], probe=image_probe(image))
    log = trainer.fit()
    assert log.stop_reason == "time budget 0.5 s" and 0 < log.iterations < 1000
    cfg = _cfg("max_iters=1000", "policy.lr=1e-6")
    log = SRTrainer(cfg, [to_tensor(image)], probe=image_probe(image)).fit()
    assert log.iterations == 0 and "ZSSR" in log.stop_reason


def test_dataset_mode_checkpoint_contract(tmp_path):
    from sonoedge.train.checkpoint import load_checkpoint

    path, log = train_dataset([_image(4), _image(5, (48, 40))], _cfg("max_iters=2", "mode='dataset'"),
                              tmp_path / "sr.pt")
    data = load_checkpoint(path)
    assert data["model"] == {"generator": "liu_sr", "kwargs": {"width": 0.25}, "task": "sr", "scale": 4,
                             "channels": 1, "stride": 1, "normalisation": "minus1_1", "deploy": "G_SR"}
    assert set(data["state_dicts"]) == {"G_SR", "F_HL", "D_HR", "D_LR"}
    assert data["config"]["mode"] == "dataset" and data["meta"]["step"] == 2
    G, info = load_sr_generator(path)
    assert G.scale == 4 and not G.training
    out = G(torch.zeros(1, 1, 5, 6))
    assert out.shape == (1, 1, 20, 24)


def test_non_sr_checkpoint_is_refused(tmp_path):
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.checkpoint import model_info, save_checkpoint

    path = save_checkpoint(tmp_path / "e.pt", model_info=model_info("resnet", {}, stride=4),
                           state_dicts={"G_H": {}}, config={}, meta={})
    with pytest.raises(InputError, match="not an SR"):
        load_sr_generator(path)


def test_sons_follow_the_estimated_degradation_and_the_log_says_so():
    from sonoedge.train.sr.fathers import SonMaker
    from sonoedge.train.sr.trainer import resolve_degradation

    sons, est, op = resolve_degradation(_cfg("degradation.operator='area'"), _image())
    assert est is None and op.name == "area" and sons.describe() == "area"
    sons, _, _ = resolve_degradation(_cfg("mode='dataset'", "degradation.speckle=0.1"), None)
    assert len(sons.ops) > 5 and "speckle up to 0.1" in sons.describe()
    maker = SonMaker([None], speckle=0.2)
    hr = torch.zeros(8, 1, 16, 16)
    son = maker(hr, np.random.default_rng(0))
    assert son.shape == (8, 1, 4, 4)
    _, log = zero_shot(_image(), _cfg("max_iters=2", "degradation.operator='cubic'"))
    assert log.sons == "cubic" and log.device.startswith("cpu")


def test_device_choice_is_checked():
    from sonoedge.runtime.errors import InputError

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the CPU-only refusal cannot be shown here")
    with pytest.raises(InputError, match="CUDA is not available"):
        SRTrainer(_cfg("device='cuda'"), [to_tensor(_image())], probe=image_probe(_image()))


def test_time_budget_stops_training():
    _, log = zero_shot(_image(), _cfg("max_iters=100000", "time_budget_s=0.5"))
    assert log.stop_reason == "time budget 0.5 s" and 0 < log.iterations < 100000


def _ddp_worker(rank, port, folder):
    import os

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = SRTrainer(_cfg("max_iters=3", "mode='dataset'"), [to_tensor(_image(0)), to_tensor(_image(1))])
    trainer.fit()
    torch.save(trainer.G.state_dict(), f"{folder}/G{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_ranks_average_gradients_and_stay_identical(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "G0.pt"), torch.load(tmp_path / "G1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same updates on both ranks
    assert any(not torch.equal(a[k], LiuSRGenerator_init(k)) for k in a)  # and they did train


def LiuSRGenerator_init(key):
    from sonoedge.train.sr.networks import LiuSRGenerator

    torch.manual_seed(0)
    return LiuSRGenerator(width=0.25).state_dict()[key]


def test_shipped_realtrain_checkpoint_loads_and_is_small():
    from pathlib import Path

    import sonoedge.train.sr as sr_pkg

    path = Path(sr_pkg.__file__).parent / "weights" / "liu2021-sr-realtrain.pt"
    assert path.stat().st_size < 2_000_000
    G, info = load_sr_generator(path)
    assert info["task"] == "sr" and info["scale"] == 4
    x = to_tensor(_image())
    with torch.no_grad():
        out = G(x)
    from sonoedge.train.sr.resize import resize

    assert out.shape[-2:] == (160, 192)
    assert float((out - resize(x, scale=4).clamp(-1, 1)).abs().mean()) > 1e-4  # trained: not plain bicubic
