"""Pipeline thread layout x ONNX Runtime intra-op threads, in ONE interleaved run (not run in CI).

    python tools/pipeline_ab.py --input ../shared/data/realus/clips/itkpocus/sonosite-anon-eye1-video.mp4 \
        --frames 40 --repeats 8 [--variants floor1,floor2,hand2,seq1,seq2,p3t1,p5t1,p3t2,p5t2] [--base floor1]

The embedded default bundle, region auto, the clip read from the file in every variant (as
``sonoedge bench``: runtime/service/bench.py). Variants:

- ``floor1``/``floor2``: decode + model (``bench.bare_loop``) with 1 / 2 intra-op threads;
- ``hand2``: the careful hand loop (``bench.hand_loop``) with 2 intra-op threads;
- ``seq1``/``seq2``: the enhancer's prepare, infer, finish called in one thread on the file source's
  frames, 1 / 2 intra-op threads;
- ``p3t1``, ``p5t1``, ``p3t2``, ``p5t2``: the pipeline with 3 or 5 threads (``PipelineConfig.threads``)
  and 1 or 2 intra-op threads.

Prints a Markdown table: process CPU ms per frame and fps (medians over repeats), CPU against
``--base`` (default ``floor1``) and fps against ``hand2`` (when run) (medians of per-repeat ratios, quartiles), and the load average.
The order of the variants rotates each repeat.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--variants", default="floor1,floor2,hand2,seq1,p3t1,p5t1,p3t2,p5t2")
    parser.add_argument("--base", default="floor1", help="the variant CPU is compared with")
    args = parser.parse_args(argv)

    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame
    from sonoedge.runtime.service import bench as B
    from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
    from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig
    from sonoedge.runtime.stream.sinks import NullSink

    clip, n = args.input, args.frames
    models = {t: load_model(EnhancerConfig(region="auto", threads=t)) for t in (1, 2)}
    enhancers = {t: Enhancer(m, EnhancerConfig(region="auto")) for t, m in models.items()}
    jobs = [enhancers[1].prepare(Frame(im, i)) for i, im in enumerate(B.opencv_frames(clip, 16, "fast"))]
    tensors = [job.tensor.copy() for job in jobs]
    bbox, mask, stride = jobs[0].bbox, jobs[0].mask, models[1].stride

    def seq(t: int):
        def run() -> None:
            enhancer = enhancers[t]
            for frame in B._LoopedFile(clip, n, "fast"):
                enhancer.finish(enhancer.infer(enhancer.prepare(frame)))
        return run

    def pipe(layout: int, t: int):
        return lambda: Pipeline(lambda: B._LoopedFile(clip, n, "fast"), enhancers[t], NullSink(),
                                PipelineConfig(mode="blocking", threads=layout)).run()

    every = {
        "floor1": lambda: B.bare_loop(clip, n, "fast", models[1].backend, tensors),
        "floor2": lambda: B.bare_loop(clip, n, "fast", models[2].backend, tensors),
        "hand2": lambda: B.hand_loop(clip, n, "fast", models[2].backend, bbox, mask, stride),
        "seq1": seq(1), "seq2": seq(2), "p3t1": pipe(3, 1), "p5t1": pipe(5, 1), "p3t2": pipe(3, 2), "p5t2": pipe(5, 2),
    }
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in every]
    if unknown or args.base not in names:
        raise SystemExit(f"--variants: unknown {unknown}; include the --base {args.base}; choose from {', '.join(every)}")
    cpu: dict[str, list[float]] = {k: [] for k in names}
    wall: dict[str, list[float]] = {k: [] for k in names}
    load_start = os.getloadavg()[0]
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            every[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)

    def q(values: list[float]) -> list[float]:
        return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3

    print(f"{clip}: {n} frames x {args.repeats} interleaved repeats; load average {load_start:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end")
    print(f"| variant | CPU ms/frame | fps | CPU vs {args.base} [quartiles] | fps / hand2 [quartiles] |\n|---|---:|---:|---|---|")
    for name in names:
        rc = [a / b for a, b in zip(cpu[name], cpu[args.base])]
        fps = "-"
        if "hand2" in names:
            rf = [b / a for a, b in zip(wall[name], wall["hand2"])]
            fps = f"{statistics.median(rf):.2f} [{q(rf)[0]:.2f}, {q(rf)[2]:.2f}]"
        print(f"| {name} | {1000 * statistics.median(cpu[name]) / n:.2f} | {n / statistics.median(wall[name]):.1f} | "
              f"{100 * (statistics.median(rc) - 1):+.1f}% [{100 * (q(rc)[0] - 1):+.1f}, {100 * (q(rc)[2] - 1):+.1f}] | {fps} |")
    for m in models.values():
        m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
