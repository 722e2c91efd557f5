"""The CycleGAN trainer: exact resume, records, checkpoints, presets and the CLI.

Fast tests use in-memory pairs (``Trainer(..., datasets=...)``) and tiny networks; the smoke run of
the issue (journal preset, tiny width, 50 iterations on phantom pairs, loss goes down, exact resume)
goes through ``sonoedge train`` and is marked slow.
"""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sonoedge.runtime.config import load_config  # noqa: E402
from sonoedge.runtime.errors import InputError  # noqa: E402
from sonoedge.train.checkpoint import load_checkpoint, load_generator  # noqa: E402

TINY = ["model.generator_kwargs={ngf=4, depth=3, dropout=0.5, dropout_layers=1}", "model.discriminator_kwargs={ndf=4}",
        "train.batch_size=2", "train.log_every=1", "train.val_max_items=3"]


class Pairs(torch.utils.data.Dataset):
    """Smooth random 'high' images and a noisy 'low' copy, (1, 32, 32) in [-1, 1]."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        high = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, 5, 1, 2) * 2
        self.high = high.clamp(-1, 1)
        self.low = (self.high + 0.3 * torch.randn(self.high.shape, generator=g)).clamp(-1, 1)

    def __len__(self):
        return len(self.high)

    def __getitem__(self, i):
        return {"low": self.low[i], "high": self.high[i], "name": f"p{i:03d}", "organ": "phantom"}


def data():
    return {"train": Pairs(12, 0), "val": Pairs(3, 1), "test": Pairs(3, 2)}


def journal(*overrides):
    from sonoedge.train.config import TrainConfig
    from sonoedge.train.presets import journal as preset

    return load_config(TrainConfig, None, [*TINY, *overrides], base=preset())


def fit(cfg, out, resume=None):
    from sonoedge.train.trainer import Trainer

    trainer = Trainer(cfg, out, resume, datasets=data())
    try:
        trainer.fit()
    finally:
        trainer.writer.close()
    return trainer


def test_resume_takes_the_identical_next_step(tmp_path):
    # pool, dropout and label smoothing all draw randomness or keep state; 7 -> 8 crosses an epoch
    over = ["train.epochs=3", "train.pool_size=2", "loss.perceptual='none'"]
    fit(journal(*over, "train.max_steps=8"), tmp_path / "straight")
    fit(journal(*over, "train.max_steps=7"), tmp_path / "split")
    fit(journal(*over, "train.max_steps=8"), tmp_path / "split", resume=tmp_path / "split" / "last.pt")
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("straight", "split"))
    assert a["meta"]["step"] == b["meta"]["step"] == 8
    for net in ("G_H", "G_L", "D_H", "D_L"):
        for key, value in a["state_dicts"][net].items():
            assert torch.equal(value, b["state_dicts"][net][key]), f"{net}.{key} differs after resume"
    steps = lambda run: [json.loads(l) for l in (tmp_path / run / "log.jsonl").read_text().splitlines()]  # noqa: E731
    last = lambda run: [r for r in steps(run) if r.get("step") == 8 and r["kind"] == "step"][0]  # noqa: E731
    assert last("straight")["loss_g"] == last("split")["loss_g"]


def test_run_records_and_checkpoints(tmp_path):
    cfg = journal("train.epochs=2", "loss.lpips_trunk='random'")
    trainer = fit(cfg, tmp_path)
    records = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"val_ssim", "val_psnr", "val_lncc", "val_lpips", "iters_per_s"} <= set(epochs[0])
    assert any(r["kind"] == "step" and "loss_perceptual" in r and "loss_paired" in r for r in records)
    assert (tmp_path / "config.toml").read_text().count("lambda_perceptual = 10.0") == 1
    assert list((tmp_path / "tb").iterdir())
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert ckpt["model"]["generator"] == "unet" and ckpt["model"]["stride"] == 8
    assert ckpt["meta"]["epoch"] in (1, 2) and "random" in ckpt["meta"]["lpips_trunk"]
    assert ckpt["config"]["loss"]["lambda_paired"] == 2.0
    g, info = load_generator(tmp_path / "last.pt")
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    assert torch.equal(g(x), trainer.nets["G_H"].eval()(x))


def test_lpips_trunk_must_be_named_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SONOEDGE_LPIPS_TRUNK", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(InputError, match="LPIPS"):
        fit(journal("train.epochs=1"), tmp_path / "run")


def test_unpaired_data_refuses_paired_terms(tmp_path):
    from sonoedge.train.trainer import Trainer

    class Unpaired(Pairs):
        def __getitem__(self, i):
            return {"A": self.low[i], "B": self.high[(i + 1) % len(self)]}

    cfg = journal("train.epochs=1", "loss.perceptual='none'")
    t = Trainer(cfg, tmp_path, datasets={"train": Unpaired(4, 0), "val": Unpaired(2, 1)})
    with pytest.raises(InputError, match="paired"):
        t.fit()
    t.writer.close()
    cfg = journal("train.epochs=1", "loss.perceptual='cycled'", "loss.lambda_paired=0.0", "loss.lpips_trunk='random'")
    t = Trainer(cfg, tmp_path / "u", datasets={"train": Unpaired(4, 0), "val": Unpaired(2, 1)})
    t.fit()
    t.writer.close()
    assert (tmp_path / "u" / "last.pt").is_file()


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="loss.perceptual"):
        fit(journal("loss.perceptual='sideways'"), tmp_path)
    with pytest.raises(InputError, match="generator_kwargs"):
        fit(journal("model.generator_kwargs={ngf=4, n_blocks=2}"), tmp_path)
    with pytest.raises(InputError, match="batch"):
        fit(journal("train.batch_size=64"), tmp_path)


def test_presets_hold_the_papers_values():
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    conf, jour = PRESETS.get("athreya2024-conference").config, PRESETS.get("athreya2024-journal").config
    assert (conf.model.generator, conf.model.generator_kwargs["n_blocks"]) == ("resnet", 15)
    assert (conf.loss.lambda_adv, conf.loss.lambda_cycle, conf.loss.lambda_identity, conf.loss.lambda_perceptual) == (1, 12, 1, 1)
    assert (conf.optim.lr_g, conf.optim.lr_d, conf.optim.betas_g, conf.train.batch_size) == (3e-4, 3e-3, (0.9, 0.9), 24)
    assert (jour.model.generator, jour.loss.lambda_cycle, jour.loss.lambda_paired, jour.loss.lambda_perceptual) == ("unet", 10, 2, 10)
    assert (jour.optim.lr_d, jour.optim.betas_d, jour.train.batch_size, jour.loss.lambda_identity) == (3e-4, (0.9, 0.999), 4, 0)
    for cfg in (conf, jour):
        assert (cfg.train.epochs, cfg.optim.lr_step_epochs, cfg.optim.lr_gamma, cfg.train.amp) == (300, 100, 0.5, True)
    ratios = [getattr(c.data, "ratios", None) for c in (conf, jour)]
    assert ratios[0] is None or tuple(ratios[0])[:2] == (0.9, 0.1)
    assert ratios[1] is None or tuple(ratios[1]) == (0.7, 0.1, 0.2)


def test_cli_print_config_and_unknown_preset(capsys):
    from sonoedge.cli import main

    assert main(["train", "--preset", "athreya2024-journal", "--print-config", "--set", "train.epochs=7"]) == 0
    out = capsys.readouterr().out
    assert 'generator = "unet"' in out and "epochs = 7" in out and "lambda_paired = 2.0" in out
    assert main(["train", "--preset", "nope", "--print-config"]) != 0
    assert "valid names" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_journal_tiny_50_iterations_on_phantom(tmp_path):
    """The issue's CPU smoke run, through the CLI: loss goes down, resume gives the identical next step."""
    from sonoedge.cli import main
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    write_pairs(tmp_path / "ph", 24, PhantomConfig(size=(64, 64)))
    common = ["train", "--preset", "athreya2024-journal", "--data", str(tmp_path / "ph"),
              "--set", "model.generator_kwargs={ngf=8, depth=4}", "--set", "model.discriminator_kwargs={ndf=8}",
              "--set", "loss.lpips_trunk='random'", "--set", "train.batch_size=2", "--set", "train.log_every=1",
              "--set", "train.epochs=100", "--set", "train.val_max_items=2", "--set", "data.size=64"]
    assert main([*common, "--out", str(tmp_path / "a"), "--set", "train.max_steps=51"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--set", "train.max_steps=50"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--set", "train.max_steps=51", "--resume", str(tmp_path / "b" / "last.pt")]) == 0
    records = [json.loads(l) for l in (tmp_path / "a" / "log.jsonl").read_text().splitlines() if '"step"' in l]
    g = [r["loss_g"] for r in records if r["kind"] == "step"]
    assert sum(g[-10:]) / 10 < sum(g[:10]) / 10, "generator loss did not go down in 50 iterations"
    a, b = (load_checkpoint(tmp_path / r / "last.pt") for r in ("a", "b"))
    for key, value in a["state_dicts"]["G_H"].items():
        assert torch.allclose(value, b["state_dicts"]["G_H"][key], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_evaluate_checkpoint_on_phantom_test_split(tmp_path, capsys):
    """`sonoedge evaluate --checkpoint CKPT DATA`: Table 2 with 'reference low' and the model."""
    from sonoedge.cli import main
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    write_pairs(tmp_path / "ph", 10, PhantomConfig(size=(64, 64)))
    common = ["--preset", "athreya2024-journal", "--data", str(tmp_path / "ph"), "--out", str(tmp_path / "run"),
              "--set", "model.generator_kwargs={ngf=4, depth=3}", "--set", "model.discriminator_kwargs={ndf=4}",
              "--set", "loss.perceptual='none'", "--set", "train.batch_size=2", "--set", "train.epochs=1",
              "--set", "data.size=64", "--set", "data.augment.crop_margin=0", "--set", "data.ratios=[0.6, 0.2, 0.2]"]
    assert main(["train", *common]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), str(tmp_path / "ph"),
                 "--out", str(out), "--no-lpips", "--quiet", "--as-deployed"]) == 0
    table = (out / "table.md").read_text()
    assert "reference low" in table.lower() and "unet" in table and "as deployed" in table
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), str(tmp_path / "ph"), "--out", str(tmp_path / "eval2")]) != 0
    assert "nope.pt" in capsys.readouterr().err


def test_one_way_mode_trains_g_h_alone_with_the_low_pass_term(tmp_path):
    from sonoedge.train.config import TrainConfig
    from sonoedge.train.presets import default_recipe
    from sonoedge.train.trainer import Trainer

    cfg = load_config(TrainConfig, None, ["model.generator_kwargs={ngf=4, depth=3, dropout=0.0, dropout_layers=1}",
                                          "model.discriminator_kwargs={ndf=4}", "train.batch_size=2",
                                          "train.log_every=1", "train.max_steps=3", "train.threads=0",
                                          "data.stride=8"], base=default_recipe())
    trainer = Trainer(cfg, tmp_path / "run", datasets=data())
    before = {k: [p.detach().clone() for p in trainer.nets[k].parameters()] for k in ("G_H", "G_L", "D_H")}
    try:
        trainer.fit()
    finally:
        trainer.writer.close()
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"loss_paired", "loss_identity", "loss_lowpass"} <= set(steps[0]) and "loss_adv" not in steps[0]
    assert steps[-1]["loss_d"] == 0.0
    changed = {k: any(not torch.equal(a, b) for a, b in zip(v, trainer.nets[k].parameters())) for k, v in before.items()}
    assert changed == {"G_H": True, "G_L": False, "D_H": False}
    with pytest.raises(InputError, match="reverse=false"):
        load_config(TrainConfig, None, ["loss.lambda_adv=1.0"], base=default_recipe()).check()
