"""CPU benchmark of the SR model: dataset-mode inference per 600 x 448 output (the size of Liu et al.
Table IV, 176 ms on their GPU) and the zero-shot cost (training iteration, whole image).

    python -m sonoedge.train.sr.bench [--threads 1] [--repeats 5] [--iters 10]
    python -m sonoedge.train.sr.bench --onnx BUNDLE/model.onnx     # the exported generator, ONNX Runtime

Reports wall time and process CPU time (the machine is shared: CPU time is what the work costs,
wall time what a user waits under the load of the moment), medians over ``--repeats``.
"""
from __future__ import annotations

import argparse
import json
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


def run(threads: int, repeats: int, iters: int) -> dict:
    import numpy as np
    import torch

    from .config import SRConfig
    from .ensemble import self_ensemble
    from .trainer import SRTrainer, image_probe, to_tensor

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


def run_onnx(path: str, threads: int, repeats: int) -> dict:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--onnx", help="time this exported model.onnx with ONNX Runtime instead")
    args = parser.parse_args(argv)
    result = run_onnx(args.onnx, args.threads, args.repeats) if args.onnx else run(args.threads, args.repeats, args.iters)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
