"""Where the per-frame post-processing costs (not run in CI): the same passes on the model's output
right after inference in the thread that ran it, in another thread, and once more on hot data; and
what one model call with N intra-op threads costs the system (context switches, system CPU).

    python tools/post_costs.py --input ../shared/data/realus/clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha

The embedded default bundle, region auto, the clip's first 16 frames prepared as the enhancer does.
Prints thread CPU ms per frame (medians over ``--frames`` calls) of the NaN/Inf check, de-normalise
(the native kernel when built, else the numpy passes) and the structure guard:

- ``same thread``: right after ``backend.infer`` in the calling thread, 1 intra-op thread (where
  ``Enhancer._judge`` runs them since the third pass);
- ``other thread``: the output handed to a second Python thread first (where the finish step ran
  them before);
- ``again (hot)``: the same call repeated at once on the same data.

Then, per intra-op thread count in ``--threads``: process CPU, system CPU and voluntary plus
involuntary context switches per model call (``getrusage``), the model alone on prepared tensors.
docs/benchmarks/runtime.md, section 0 (third pass), quotes it.
"""
from __future__ import annotations

import argparse
import queue
import resource
import statistics
import threading
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts for the system-cost part")
    args = parser.parse_args(argv)

    import numpy as np

    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame, crop
    from sonoedge.runtime.service import bench as B
    from sonoedge.runtime.stream import enhancer as E

    counts = [int(t) for t in args.threads.split(",") if t]
    models = {t: load_model(E.EnhancerConfig(region="auto", threads=t)) for t in sorted({1, *counts})}
    enhancer = E.Enhancer(models[1], E.EnhancerConfig(region="auto"))
    jobs = [enhancer.prepare(Frame(im, i)) for i, im in enumerate(B.opencv_frames(args.input, 16, "fast"))]
    h, w = jobs[0].size
    u8 = np.empty((h, w), np.uint8)
    guard = enhancer.guard

    def passes(y: np.ndarray, job) -> dict[str, int]:
        out, t = {}, time.thread_time_ns
        t0 = t()
        E._finite(y)
        t1 = t()
        enhancer.denormalise_into(crop(y, (h, w), 1), u8)
        t2 = t()
        guard.check(job.grey, u8, job.mask, 1, job.guard_cells)
        t3 = t()
        out.update(finite=t1 - t0, denormalise=t2 - t1, guard=t3 - t2)
        return out

    rows: dict[str, dict[str, list[int]]] = {k: {} for k in ("same thread", "other thread", "again (hot)")}
    handoff: queue.SimpleQueue = queue.SimpleQueue()
    done: queue.SimpleQueue = queue.SimpleQueue()

    def other() -> None:
        while (item := handoff.get()) is not None:
            for k, v in passes(*item).items():
                rows["other thread"].setdefault(k, []).append(v)
            done.put(None)

    worker = threading.Thread(target=other, daemon=True)
    worker.start()
    for i in range(args.frames):
        job = jobs[i % len(jobs)]
        y = models[1].backend.infer(job.tensor)
        if i % 2:
            handoff.put((y, job))
            done.get()
            continue
        for name in ("same thread", "again (hot)"):
            for k, v in passes(y, job).items():
                rows[name].setdefault(k, []).append(v)
    handoff.put(None)
    print(f"{args.input}: crop {h}x{w}, kernels {E.kernels_in_use()}; thread CPU ms per frame, medians")
    print("| where | NaN/Inf check | de-normalise | structure guard |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{statistics.median(r[k]) / 1e6:.3f}" for k in ("finite", "denormalise", "guard")) + " |")

    print("\n| intra-op threads | process CPU ms/call | system CPU ms/call | context switches/call |\n|---:|---:|---:|---:|")
    for t in counts:
        backend = models[t].backend
        backend.infer(jobs[0].tensor)
        r0, c0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        for i in range(args.frames):
            backend.infer(jobs[i % len(jobs)].tensor)
        r1, c1 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        switches = (r1.ru_nvcsw + r1.ru_nivcsw) - (r0.ru_nvcsw + r0.ru_nivcsw)
        print(f"| {t} | {1000 * (c1 - c0) / args.frames:.2f} | {1000 * (r1.ru_stime - r0.ru_stime) / args.frames:.3f} | "
              f"{switches / args.frames:.1f} |")
    for m in models.values():
        m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
