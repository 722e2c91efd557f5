"""A briefly trained conference ResNet-15 checkpoint for CPU speed and INT8 accuracy checks (not run in CI).

    python tools/brief_resnet.py --frames ../shared/data/realtrain/hc18 --steps 100 --out resnet15.pt

The conference generator (Athreya et al. 2024, seed 000, Sec. 2.2: ResNet ngf 64, 15 residual
blocks, 2 down-samplings) at full width, trained for a few steps with an L1 loss towards its own
input on random 128 x 128 crops of TRAINING frames (HC18 console frames). Why: random weights
collapse under INT8 (23 dB with every layer quantized, docs/benchmarks/export.md), which says
nothing about a deployed model, whose activations carry the image; a full CycleGAN run of the preset
costs about 40 CPU-s per iteration here. Identity steps move the network towards one whose output
is an image close to its input; 100 steps at the defaults (lr 2e-4, 128 x 128) took the L1 only
from 0.280 to 0.268, so such a checkpoint is still essentially random weights: say so wherever it
is quoted (docs/benchmarks/export.md). It is NOT an enhancer: use it for speed and quantization
checks only. (lr 2e-3 on 32 x 32 crops diverged to NaN.)

The checkpoint is written through train/checkpoint.py like a training run's, so ``sonoedge export``
and ``sonoedge bench-export`` take it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _textured_crop(frames, crop, rng, tries: int = 20):
    """A random crop as a 1x1xHxW tensor in [-1, 1], redrawn (up to ``tries`` times) while it is nearly
    flat (std under 2 grey levels: the black surround outside the imaging sector)."""
    import torch

    for _ in range(tries):
        f = frames[rng.integers(len(frames))]
        y, x = rng.integers(0, f.shape[0] - crop + 1), rng.integers(0, f.shape[1] - crop + 1)
        tile = f[y:y + crop, x:x + crop]
        if tile.std() >= 2.0:
            break
    return torch.from_numpy(tile.astype(np.float32) / 127.5 - 1.0)[None, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help="training frames (folder of images)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    from sonoedge.runtime.readers import iter_frames
    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.generators import ResnetGenerator

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    frames = [f for f in iter_frames(args.frames, "fast")]
    if not frames:
        raise SystemExit(f"no frames in {args.frames}")
    kwargs = {"ngf": 64, "n_blocks": 15, "n_down": 2}
    g = ResnetGenerator(**kwargs)
    opt = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(0.5, 0.999))  # the paper's Adam betas (Sec. 2.4)
    losses = []
    t0 = time.perf_counter()
    for _ in tqdm(range(args.steps), desc="identity steps"):
        tile = _textured_crop(frames, args.crop, rng)
        loss = torch.nn.functional.l1_loss(g(tile), tile)
        if not torch.isfinite(loss):
            raise SystemExit(f"brief_resnet: the L1 became {float(loss)} at step {len(losses) + 1}; lower --lr "
                             f"(now {args.lr}) or raise --crop (now {args.crop})")
        opt.zero_grad()
        loss.backward()
        # A crop of the black surround gives InstanceNorm near-zero variance and huge gradients (a run
        # with realus frames went to NaN at step ~80): clip them.
        torch.nn.utils.clip_grad_norm_(g.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if len(losses) % 25 == 0:
            tqdm.write(f"step {len(losses)}: L1 over the last 25 steps {np.mean(losses[-25:]):.4f}")
    print(f"{args.steps} steps in {time.perf_counter() - t0:.0f} s; L1 first 10 {np.mean(losses[:10]):.4f}, "
          f"last 10 {np.mean(losses[-10:]):.4f}")
    out = save_checkpoint(args.out, model_info=model_info("resnet", kwargs, stride=g.stride),
                          state_dicts={"G_H": g.state_dict()}, config={"brief_identity_steps": vars(args)},
                          meta={"note": "conference ResNet-15 after a few L1-identity steps: speed and INT8 checks only"})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
