"""DistributedDataParallel through torchrun: 2 CPU processes, gloo backend, a tiny model, 3 steps.

Checks that both ranks finish, that the processes trained in lock-step (identical generator weights
on both ranks afterwards: gradients were all-reduced), and that rank 0 alone wrote the run.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

SCRIPT = textwrap.dedent('''
    import os, sys, torch
    from sonoedge.runtime.config import load_config
    from sonoedge.train.config import TrainConfig
    from sonoedge.train.presets import conference
    from sonoedge.train.trainer import Trainer

    class Pairs(torch.utils.data.Dataset):
        def __init__(self, n):
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(n, 2, 1, 32, 32, generator=g) * 2 - 1
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return {"low": self.x[i, 0], "high": self.x[i, 1], "name": str(i), "organ": ""}

    out = sys.argv[1]
    cfg = load_config(TrainConfig, None, ["model.generator_kwargs={ngf=4, n_blocks=1, n_down=2}",
        "model.discriminator_kwargs={ndf=4}", "loss.perceptual='none'", "train.batch_size=2",
        "train.epochs=1", "train.max_steps=3", "train.device='cpu'", "train.log_every=1", "train.threads=1"], base=conference())
    trainer = Trainer(cfg, out, datasets={"train": Pairs(12), "val": Pairs(2)})
    assert trainer.world == 2 and torch.distributed.get_backend() == "gloo"
    trainer.fit()
    rank = os.environ["RANK"]
    torch.save({k: v.detach() for k, v in trainer.nets["G_H"].module.state_dict().items()}, f"{out}/G_H.rank{rank}.pt")
    torch.distributed.destroy_process_group()
''')


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (torch.load(out / f"G_H.rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a), "ranks diverged: gradients were not synchronised"
    assert (out / "last.pt").is_file() and (out / "log.jsonl").is_file()
    steps = [line for line in (out / "log.jsonl").read_text().splitlines() if '"kind": "step"' in line]
    assert len(steps) == 3  # logged once (rank 0), not once per process
