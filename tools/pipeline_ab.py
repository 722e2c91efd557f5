"""Pipeline thread layout x ONNX Runtime intra-op threads, in ONE interleaved run (not run in CI).

    python tools/pipeline_ab.py --input ../shared/data/realus/clips/itkpocus/sonosite-anon-eye1-video.mp4 \
        --frames 40 --repeats 8 [--variants floor1,floor2,hand2,seq1,seq2,p3t1,p5t1,p3t2,p5t2] [--base floor1]

The embedded default bundle, region auto, the clip read from the file in every variant (as
``sonoedge bench``: runtime/service/bench.py). Variants:

- ``floorT``: decode + model (``bench.bare_loop``) with T intra-op threads (``floor1``, ``floor2``);
- ``handT``: the careful hand loop (``bench.hand_loop``) with T intra-op threads;
- ``seqT``: the enhancer's prepare, infer, finish called in one thread on the file source's frames
  (pasting in place, as the pipeline does for a file), T intra-op threads;
- ``p2tT``, ``p3tT``, ``p5tT``: the pipeline with 2, 3 or 5 threads (``PipelineConfig.threads``) and T intra-op
  threads; ``wN`` right after T: N infer workers (``PipelineConfig.infer_workers``; ``p3t1w2``: the
  frame-parallel default of a blocking run on 2 cores);
- ``parT``: ``bench.bare_parallel``, decode + model as 2 loops at once, T intra-op threads each
  (the floor of ``p3t1w2``).

``seq`` and pipeline variants run the structure guard as ``--guard`` says (default on, the runtime's
default); a suffix ``g`` or ``n`` turns it on or off for that variant alone (``p3t2g,p3t2n``: the
guard's cost, interleaved). A last suffix ``u`` runs that variant's pre/post-processing with the numpy
passes instead of the native kernels (``p3t2,p3t2u``: what the kernels save, interleaved).

Prints a Markdown table: process CPU ms per frame and fps (medians over repeats), the pipeline
variants' thread CPU per step (medians), the CPU of every thread that is not one of the variant's
Python threads (ONNX Runtime's intra-op workers, the decoder's threads; medians), CPU against
``--base`` (default ``floor1``) and fps against ``--hand`` (default ``hand2``, when run) (medians of per-repeat ratios, quartiles), and the load average.
The order of the variants rotates each repeat.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from typing import Any, Callable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--variants", default="floor1,floor2,hand2,seq1,p3t1,p5t1,p3t2,p5t2")
    parser.add_argument("--base", default="floor1", help="the variant CPU is compared with")
    parser.add_argument("--guard", choices=("on", "off"), default="on",
                        help="the structure guard in seq and pipeline variants without a g/n suffix (default on)")
    parser.add_argument("--hand", default="hand2", help="the variant fps is compared with (when run)")
    args = parser.parse_args(argv)

    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame
    from sonoedge.runtime.service import bench as B
    from sonoedge.runtime.stream import enhancer as E
    from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
    from sonoedge.runtime.stream.guard import GuardConfig
    from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig
    from sonoedge.runtime.stream.sinks import NullSink

    clip, n = args.input, args.frames
    names = [v for v in args.variants.split(",") if v]
    pattern = re.compile(r"^(floor|par|hand|seq|p2t|p3t|p5t)(\d+)(?:w(\d+))?([gn]?)(u?)$")
    parsed = {v: pattern.match(v) for v in names}
    unknown = [v for v, m in parsed.items() if m is None or int(m.group(2)) < 1]
    if unknown or args.base not in names:
        raise SystemExit(f"--variants: unknown {unknown} (floorT, parT, handT, seqT, p2tT, p3tT, p5tT with T intra-op "
                         f"threads, then wN: N infer workers, g/n: guard on/off, u: numpy passes); include the --base {args.base}")
    default_guard = args.guard == "on"
    models = {t: load_model(EnhancerConfig(region="auto", threads=t)) for t in sorted({int(m.group(2)) for m in parsed.values()})}
    enhancers: dict[tuple[int, bool], Enhancer] = {}

    def enhancer(t: int, guard: bool) -> Enhancer:
        if (t, guard) not in enhancers:
            enhancers[t, guard] = Enhancer(models[t], EnhancerConfig(region="auto", guard=GuardConfig(enabled=guard)))
        return enhancers[t, guard]

    first = next(iter(models))
    jobs = [enhancer(first, False).prepare(Frame(im, i)) for i, im in enumerate(B.opencv_frames(clip, 16, "fast"))]
    tensors = [job.tensor.copy() for job in jobs]
    bbox, mask, stride = jobs[0].bbox, jobs[0].mask, models[first].stride

    def seq(e: Enhancer):
        def run() -> None:
            for frame in B._LoopedFile(clip, n, "fast"):
                e.finish(e.infer(e.prepare(frame)), in_place=True)
        return run

    def pipe(layout: int, e: Enhancer, workers: int):
        return lambda: Pipeline(lambda: B._LoopedFile(clip, n, "fast"), e, NullSink(),
                                PipelineConfig(mode="blocking", threads=layout, infer_workers=workers)).run()

    def numpy_passes(run: Callable[[], Any]) -> Callable[[], Any]:
        def wrapped() -> Any:
            saved, E._kernels = E._kernels, None
            try:
                return run()
            finally:
                E._kernels = saved
        return wrapped

    every = {}
    for v, m in parsed.items():
        kind, t, workers, flag = m.group(1), int(m.group(2)), int(m.group(3) or 1), m.group(4)
        guard = default_guard if not flag else flag == "g"
        if kind == "floor":
            every[v] = (lambda t: lambda: B.bare_loop(clip, n, "fast", models[t].backend, tensors))(t)
        elif kind == "par":
            every[v] = (lambda t: lambda: B.bare_parallel(clip, n, "fast", models[t].backend, tensors, 2))(t)
        elif kind == "hand":
            every[v] = (lambda t: lambda: B.hand_loop(clip, n, "fast", models[t].backend, bbox, mask, stride))(t)
        elif kind == "seq":
            every[v] = seq(enhancer(t, guard))
        else:
            every[v] = pipe(int(kind[1]), enhancer(t, guard), workers)
        if m.group(5):
            every[v] = numpy_passes(every[v])
    cpu: dict[str, list[float]] = {k: [] for k in names}
    wall: dict[str, list[float]] = {k: [] for k in names}
    other: dict[str, list[float]] = {k: [] for k in names}  # CPU outside the Python threads (ORT workers, decoder)
    steps: dict[str, list[dict[str, float]]] = {}
    load_start = os.getloadavg()[0]
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
            result = every[name]()
            cpu[name].append(time.process_time() - c0)
            python = time.thread_time() - m0 + (result if isinstance(result, float) else 0.0)  # par: its loops' threads
            if isinstance(result, dict):  # a pipeline run: its steps' thread CPU, its threads' whole CPU
                steps.setdefault(name, []).append(result["cpu_ms_per_frame"])
                python += sum(result["thread_cpu_ms_per_frame"].values()) * result["frames_in"] / 1000
            other[name].append(cpu[name][-1] - python)
            wall[name].append(time.perf_counter() - t0)

    def q(values: list[float]) -> list[float]:
        return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3

    print(f"{clip}: {n} frames x {args.repeats} interleaved repeats; load average {load_start:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end")
    print(f"| variant | CPU ms/frame | fps | CPU vs {args.base} [quartiles] | fps / {args.hand} [quartiles] | "
          f"pipeline thread CPU ms/frame: capture, prepare, infer, finish | other threads CPU ms/frame |\n"
          f"|---|---:|---:|---|---|---|---:|")
    for name in names:
        rc = [a / b for a, b in zip(cpu[name], cpu[args.base])]
        fps = "-"
        if args.hand in names:
            rf = [b / a for a, b in zip(wall[name], wall[args.hand])]
            fps = f"{statistics.median(rf):.2f} [{q(rf)[0]:.2f}, {q(rf)[2]:.2f}]"
        print(f"| {name} | {1000 * statistics.median(cpu[name]) / n:.2f} | {n / statistics.median(wall[name]):.1f} | "
              f"{100 * (statistics.median(rc) - 1):+.1f}% [{100 * (q(rc)[0] - 1):+.1f}, {100 * (q(rc)[2] - 1):+.1f}] | {fps} | "
              + (", ".join(f"{statistics.median(x[k] for x in steps[name]):.3f}" for k in ("capture", "prepare", "infer", "finish"))
                 if name in steps else "-") + f" | {1000 * statistics.median(other[name]) / n:.3f} |")
    for m in models.values():
        m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
