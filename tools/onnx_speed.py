"""Time ONNX models against each other in ONE interleaved run (ONNX Runtime, CPU).

    python tools/onnx_speed.py teacher/model.onnx student/model.onnx --size 512 --rounds 20 --threads 1

Each round runs every model once on the same (1, 1, H, W) input, in a rotating order, so a shared
machine's load affects them alike; reported: the median ms per frame of each model, the median of
the per-round ratios against the first model, the load average at start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="ONNX files (the first is the baseline of the ratios)")
    parser.add_argument("--size", type=int, default=512, help="input side (default 512; rounded up to 64)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    args = parser.parse_args()
    side = -(-args.size // 64) * 64
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, side, side)).astype(np.float32)
    sessions = []
    for path in args.models:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        sessions.append((path, sess, sess.get_inputs()[0].name))
    for _ in range(args.warmup):
        for _, sess, name in sessions:
            sess.run(None, {name: x})
    load = os.getloadavg()
    times: dict[str, list[float]] = {p: [] for p, _, _ in sessions}
    for r in range(args.rounds):
        order = sessions[r % len(sessions):] + sessions[: r % len(sessions)]
        for path, sess, name in order:
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times[path].append(time.perf_counter() - t0)
    base = args.models[0]
    result = {"size": side, "threads": args.threads, "rounds": args.rounds,
              "ms": {p: 1000 * statistics.median(v) for p, v in times.items()},
              "speedup_vs_first": {p: statistics.median(b / t for b, t in zip(times[base], v)) for p, v in times.items()},
              "load_average": {"start": list(load), "end": list(os.getloadavg())}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
