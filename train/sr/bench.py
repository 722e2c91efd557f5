"""CPU benchmark of the SR model: dataset-mode inference per 600 x 448 output (the size of Liu et al.
Table IV, 176 ms on their GPU) and the zero-shot cost (training iteration, whole image).

    sonoedge bench-sr [--threads 1] [--repeats 5] [--iters 10]
    sonoedge bench-sr --blind                      # the blind generator (blind.py)
    sonoedge bench-sr --onnx BUNDLE/model.onnx     # the exported generator, ONNX Runtime

Reports wall time and process CPU time (the machine is shared: CPU time is what the work costs,
wall time what a user waits under the load of the moment), medians over ``--repeats``.
"""
from __future__ import annotations

import statistics
import time

LR_SIZE = (112, 150)  # -> 448 x 600 output, Table IV's "600*448"


def _timed(fn, repeats: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall_ms": 1000 * statistics.median(walls), "cpu_ms": 1000 * statistics.median(cpus)}


def bench_pytorch(threads: int = 1, repeats: int = 5, iters: int = 10) -> dict:
    """PyTorch CPU timings of G (single pass, back-projection, 8-way ensemble) and of one training iteration."""
    import numpy as np
    import torch

    from sonoedge.train.sr.config import SRConfig
    from sonoedge.train.sr.ensemble import self_ensemble
    from sonoedge.train.sr.trainer import SRTrainer, image_probe, to_tensor

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = SRConfig()
    cfg.weights.perceptual = 0.0
    rng = np.random.default_rng(0)
    lr_image = rng.integers(0, 255, LR_SIZE, dtype=np.uint8)
    trainer = SRTrainer(cfg, [to_tensor(lr_image)], probe=image_probe(lr_image))
    G = trainer.G.eval()
    x = to_tensor(lr_image)
    with torch.no_grad():
        G(x)  # warm-up
        single = _timed(lambda: G(x), repeats)
        bp = _timed(lambda: self_ensemble(G, x, transforms=1, back_projection=8), repeats)
        ens8 = _timed(lambda: self_ensemble(G, x, transforms=8, back_projection=8), max(1, repeats // 2))
    trainer.step()  # warm-up
    step = _timed(trainer.step, iters)
    return {"threads": threads, "output": f"{LR_SIZE[1] * 4}x{LR_SIZE[0] * 4}", "G_single_pass": single,
            "G_plus_back_projection": bp, "ensemble_8_way": ens8, "train_iteration_batch4_crop64": step,
            "parameters": sum(p.numel() for p in G.parameters())}


def bench_blind(threads: int = 1, repeats: int = 5, iters: int = 10) -> dict:
    """The blind generator (blind.py, networks.BlindSRNet at its default size): one pass per 600 x 448
    and per 800 x 540 output, one dataset-training iteration (batch 16, 48 x 48 LR crops), one
    iteration of zero-shot's internal term (batch 8, 16 x 16 LR crops; off by default) and one
    default zero-shot iteration (anchor + consistency on one 56 x 56 LR crop)."""
    import numpy as np
    import torch

    from sonoedge.train.sr.blind import BlindConfig, CropSampler, ZeroShotConfig
    from sonoedge.train.sr.networks import BlindSRNet
    from sonoedge.train.sr.trainer import to_tensor

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, zcfg = BlindConfig(), ZeroShotConfig()
    G = BlindSRNet(cfg.net.channels, cfg.net.layers)
    rng = np.random.default_rng(0)
    out: dict = {"threads": threads, "parameters": sum(p.numel() for p in G.parameters())}
    with torch.no_grad():
        for h, w in (LR_SIZE, (135, 200)):
            x = to_tensor(rng.integers(0, 255, (h, w), dtype=np.uint8))
            G(x)  # warm-up
            out[f"single_pass_{4 * w}x{4 * h}"] = _timed(lambda x=x: G(x), repeats)
    frame = to_tensor(rng.integers(0, 255, (540, 800), dtype=np.uint8))
    opt = torch.optim.Adam(G.parameters(), lr=1e-4)

    def step(sampler, batch):
        son, hr = sampler.sample(batch, rng)
        loss = (G(son) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    train = CropSampler([frame], cfg.data.lr_crop, cfg.data.speckle)
    zero = CropSampler([frame[..., :135, :200]], zcfg.son_crop, zcfg.speckle)
    step(train, cfg.data.batch)  # warm-up
    out[f"train_iteration_batch{cfg.data.batch}_lr{cfg.data.lr_crop}"] = _timed(lambda: step(train, cfg.data.batch), iters)
    out[f"zero_shot_iteration_batch{zcfg.batch}_lr{zcfg.son_crop}"] = _timed(lambda: step(zero, zcfg.batch), iters)

    # the default zero-shot iteration (blind.zero_shot): anchor + consistency on one LR crop with its margins
    import copy

    from sonoedge.train.sr import degrade

    G0, op = copy.deepcopy(G).eval(), degrade.operator("gauss1.5")
    side = zcfg.crop + 2 * CropSampler.MARGIN
    x = frame[..., :side, :side]

    def adapt():
        y = G(x)
        with torch.no_grad():
            y0 = G0(x)
        loss = zcfg.anchor * (y - y0).abs().mean() + zcfg.consistency * (degrade.apply(op, y) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    adapt()  # warm-up
    out[f"zero_shot_iteration_anchor_consistency_lr{side}"] = _timed(adapt, iters)
    return out


def bench_onnx(path: str, threads: int = 1, repeats: int = 5) -> dict:
    """ONNX Runtime (CPU) on the exported generator: one 150 x 112 -> 600 x 448 pass."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, *LR_SIZE)).astype(np.float32)
    out = session.run(None, {name: x})[0]  # warm-up
    return {"threads": threads, "onnx": path, "output": f"{out.shape[-1]}x{out.shape[-2]}",
            "onnxruntime_single_pass": _timed(lambda: session.run(None, {name: x}), repeats)}
