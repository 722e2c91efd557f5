"""The GPU training switches of ``train`` (cudnn_benchmark, workers/prefetch_factor, channels_last,
compile, syncs only at logging steps) are honoured; checked on CPU."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train.trainer import Trainer, apply_cuda_settings, loader_workers, split_batch, unwrap  # noqa: E402
from tests.train.test_trainer import data  # noqa: E402
from tests.train.test_trainer import journal as _journal  # noqa: E402


def journal(*overrides):
    return _journal("loss.lpips_trunk='random'", *overrides)


def test_defaults_are_on_only_where_they_pay():
    from sonoedge.train.config import LoopConfig

    loop = LoopConfig()
    assert loop.cudnn_benchmark and not loop.compile and not loop.channels_last
    assert loop.workers == -1 and loop.prefetch_factor == 2


@pytest.mark.parametrize("workers,cuda,cores,want", [(-1, False, 16, 0), (-1, True, 16, 8), (-1, True, 4, 3),
                                                     (-1, True, 1, 0), (3, False, 16, 3), (0, True, 16, 0)])
def test_auto_workers_follow_the_cores_on_cuda_only(workers, cuda, cores, want):
    assert loader_workers(workers, cuda, cores) == want


def test_workers_and_prefetch_reach_the_dataloader(tmp_path):
    trainer = Trainer(journal("train.workers=2", "train.prefetch_factor=3"), tmp_path, datasets=data())
    try:
        loader = trainer.epoch_loader()
        assert loader.num_workers == 2 and loader.prefetch_factor == 3
        assert next(iter(loader))["low"].shape[0] == 2
    finally:
        trainer.writer.close()
    trainer = Trainer(journal(), tmp_path / "b", datasets=data())
    try:
        assert trainer.epoch_loader().num_workers == 0  # auto on CPU
    finally:
        trainer.writer.close()


def test_cudnn_benchmark_follows_the_config_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    apply_cuda_settings(journal().train, cuda=True)
    assert torch.backends.cudnn.benchmark is True
    apply_cuda_settings(journal("train.cudnn_benchmark=false").train, cuda=True)
    assert torch.backends.cudnn.benchmark is False
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    apply_cuda_settings(journal("train.cudnn_benchmark=false").train, cuda=False)  # CPU: untouched
    assert torch.backends.cudnn.benchmark is True


def test_instance_norm_returns_the_standard_layout():
    """Why channels_last is off by default for these generators (every conv feeds an InstanceNorm)."""
    conv = torch.nn.Conv2d(4, 4, 3, padding=1).to(memory_format=torch.channels_last)
    y = torch.nn.InstanceNorm2d(4)(conv(torch.randn(1, 4, 8, 8).to(memory_format=torch.channels_last)))
    assert y.is_contiguous() and not y.is_contiguous(memory_format=torch.channels_last)


def test_step_returns_device_tensors_and_syncs_only_in_scalars(tmp_path):
    trainer = Trainer(journal(), tmp_path, datasets=data())
    try:
        low, high, paired = split_batch(next(iter(trainer.epoch_loader())), trainer.device, False)
        record = trainer.train_step(low, high, paired)
        assert all(torch.is_tensor(v) and v.dim() == 0 for v in record.values())
        values = trainer.scalars(record)
        assert set(values) == set(record) and values["real_target"] in (1.0, 0.9)
        trainer.finite &= torch.tensor(False)  # a NaN seen at an earlier, unlogged step
        with pytest.raises(FloatingPointError, match="non-finite loss"):
            trainer.scalars(record)
    finally:
        trainer.writer.close()


def test_real_target_on_the_device_matches_the_float_rule():
    from sonoedge.train import losses

    for h, l in [(0.5, 0.95), (0.95, 0.95), (0.1, 0.2)]:
        t = losses.real_target_tensor(torch.tensor(h), torch.tensor(l))
        assert float(t) == pytest.approx(losses.real_target(h, l))
        assert float(losses.real_target_tensor(torch.tensor(h), torch.tensor(l), enabled=False)) == 1.0


def test_compile_wraps_the_networks_and_checkpoints_keep_plain_keys(tmp_path):
    trainer = Trainer(journal("train.compile=true"), tmp_path, datasets=data())
    try:
        assert all(type(net).__name__ == "OptimizedModule" for net in trainer.nets.values())
        g = trainer.nets["G_H"]
        assert unwrap(g) is g._orig_mod
        assert not any(k.startswith("_orig_mod") for k in unwrap(g).state_dict())
    finally:
        trainer.writer.close()


def test_bad_loader_settings_are_refused():
    with pytest.raises(InputError, match="train.workers"):
        journal("train.workers=-2").check()
    with pytest.raises(InputError, match="prefetch_factor"):
        journal("train.prefetch_factor=0").check()


@pytest.mark.slow
def test_a_compiled_step_trains(tmp_path):
    """torch.compile on CPU (inductor, a C compiler): about 1-3 minutes for the first step here."""
    trainer = Trainer(journal("train.compile=true", "loss.perceptual='none'"), tmp_path, datasets=data())
    try:
        low, high, paired = split_batch(next(iter(trainer.epoch_loader())), trainer.device, False)
        before = [p.detach().clone() for p in unwrap(trainer.nets["G_H"]).parameters()]
        values = trainer.scalars(trainer.train_step(low, high, paired))
        after = list(unwrap(trainer.nets["G_H"]).parameters())
        assert values["loss_g"] > 0 and any(not torch.equal(a, b) for a, b in zip(before, after))
    finally:
        trainer.writer.close()


def test_bench_train_flips_each_cuda_switch_alone_and_times_every_active_term():
    from sonoedge.train.bench_train import CUDA_SWITCHES, active_terms, modes
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    conference, journal_cfg = PRESETS.get("athreya2024-conference").config, PRESETS.get("athreya2024-journal").config
    assert list(modes(conference, cuda=False)) == ["defaults"]
    rows = modes(conference, cuda=True)
    assert len(rows) == 1 + len(CUDA_SWITCHES) and all(len(v) == 1 for k, v in rows.items() if k != "defaults")
    assert rows["compile=on"] == {"compile": True} and rows["cudnn_benchmark=off"] == {"cudnn_benchmark": False}
    assert active_terms(conference) == ["adv", "cycle", "identity", "perceptual"]
    assert active_terms(journal_cfg) == ["adv", "cycle", "paired", "perceptual"]
