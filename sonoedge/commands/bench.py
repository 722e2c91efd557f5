"""``sonoedge bench BUNDLE``: the stream runtime against a careful hand loop and decode + model, in ONE run.

    sonoedge bench bundle/ --input clip.mp4 --frames 100 --repeats 3 --json bench.json
    sonoedge bench default --input clip.mp4 --guard-cost      # the structure guard against inference, 512x512

What is measured and how is in :mod:`sonoedge.runtime.service.bench`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from sonoedge.commands._args import add_model_arguments, enhancer_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory or .tar ('default' = the embedded default bundle)")
    parser.add_argument("--input", help="clip or image folder to run (default: a generated phantom clip)")
    parser.add_argument("--frames", type=int, default=100, help="frames per measurement (the input loops; default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each alternative (default 3)")
    parser.add_argument("--queue-size", type=int, default=2, help="pipeline queue size (default 2)")
    parser.add_argument("--infer-workers", type=int, default=0, metavar="N",
                        help="model calls the pipeline runs at once (default 0 = auto: 2 with half the cores each on a "
                             "CPU of 2 or more cores when --threads is auto, else 1; runtime/stream/pipeline.py)")
    parser.add_argument("--json", help="also write the results to this JSON file (new, or --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    parser.add_argument("--daemon", metavar="N1,N2,...",
                        help="instead: run `sonoedge serve` on --input (replayed in a loop) and report the cold start "
                             "to the first frame and the daemon's resident memory after N1, N2, ... frames")
    parser.add_argument("--fps", type=float, default=0.0, help="with --daemon: replay rate (default: the file's own)")
    parser.add_argument("--temporal", type=int, default=0, metavar="N",
                        help="also score flicker on the first N frames: warping error and short-term std of the input, the "
                             "output, the output steadied (strength --steady, or 0.7) and a running average; and the "
                             "steadier's cost per frame (runtime/stream/steady.py)")
    parser.add_argument("--guard-cost", action="store_true",
                        help="instead: the structure guard's time per frame against inference at 512x512, interleaved "
                             "frame by frame on --input's imaging region (the guard must stay under 5%% of inference)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.service.bench import bench, daemon_memory, format_result
    from sonoedge.runtime.service.logs import setup_logging

    setup_logging("warning", json_lines=False)
    if args.frames < 1 or args.repeats < 1:
        raise InputError("--frames and --repeats must be at least 1")
    if args.json:  # before the minutes of measuring
        from sonoedge.runtime.outputs import check_file

        check_file(args.json, [args.bundle if args.bundle != "default" else None, args.input], args.overwrite)
    cfg = enhancer_config(args)
    cfg.bundle = "" if args.bundle == "default" else args.bundle
    if args.daemon:
        if not args.input:
            raise InputError("--daemon needs --input (the clip the daemon replays)")
        marks = [int(v) for v in args.daemon.split(",") if v.strip()]
        result = daemon_memory(cfg, args.input, marks, args.fps)
        print(json.dumps(result, indent=1))
        _write_json(args.json, result)
        return 0
    if args.guard_cost:
        from sonoedge.runtime.service.guard_bench import format_guard_cost, guard_cost

        with tempfile.TemporaryDirectory() as tmp:
            path = args.input or _phantom_clip(Path(tmp), args.frames)
            result = guard_cost(cfg, path, args.frames, args.repeats)
        print(format_guard_cost(result))
        _write_json(args.json, result)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.input or _phantom_clip(Path(tmp), args.frames)
        result = bench(cfg, path, args.frames, args.repeats, args.queue_size, args.infer_workers)
        result["fidelity"] = _fidelity(cfg, path)
        if args.temporal:
            from sonoedge.runtime.stream.steady import STRENGTH, temporal_bench

            result["temporal"] = temporal_bench(cfg, path, args.temporal, args.steady or STRENGTH)
    if not args.input:
        result["input"] = "generated phantom clip (256x256, FFV1)"
    print(format_result(result))
    f = result["fidelity"]
    print(f"fidelity of the enhanced middle frame ({f['frame']}) against its input: {f['verdict'].upper()}, erased "
          f"{f['erased']}, invented {f['invented']}, low-pass r {f['lowpass_corr']:.3f}, bright->black "
          f"{100 * f['bright_to_black']:.1f} % (sonoedge fidelity --run: every frame you choose)")
    if args.temporal:
        print(format_temporal(result["temporal"]))
    _write_json(args.json, result)
    return 0


def format_temporal(t: dict[str, Any]) -> str:
    lines = [f"  temporal stability, first {t['frames']} frames {t['frame_shape']} (flow on the input; grey levels):",
             f"    {'':24s} {'warping error':>14s} {'short-term std':>15s}"]
    for name, row in t["temporal"].items():
        lines.append(f"    {name:24s} {row['warping_error']:14.3f} {row['short_term_std']:15.3f}")
    lines.append(f"    steadier {t['steady_ms_per_frame']:.2f} ms per frame against {t['enhance_ms_per_frame']:.2f} ms "
                 f"for the enhancer ({100 * t['steady_ms_per_frame'] / t['enhance_ms_per_frame']:.1f} %)")
    return "\n".join(lines)


def _fidelity(cfg: Any, path: str) -> dict[str, Any]:
    """The fidelity gate's measures (runtime/fidelity.py) of the input's middle frame, enhanced as
    benchmarked: one frame, so it costs one inference beside the minutes of the benchmark."""
    from sonoedge.runtime.bundle.fidelity_check import FidelityFrame, frame_indices, read_frames, score
    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame, to_grey
    from sonoedge.runtime.stream.enhancer import Enhancer
    from sonoedge.runtime.stream.guard import GuardConfig

    index = frame_indices(path, 1)[0]
    image = read_frames(path, [index])[index]
    cfg = dataclasses.replace(cfg, guard=GuardConfig(enabled=False))  # the model's own output, not the guard's fallback
    model = load_model(cfg)
    try:
        out = Enhancer(model, cfg)(Frame(image, index))
    finally:
        model.close()
    row, _ = score(FidelityFrame(f"{Path(path).name}#{index}", to_grey(image)), to_grey(out.image))
    return {k: v for k, v in row.items() if not k.endswith("_list")}


def _phantom_clip(folder: Path, frames: int) -> str:
    from sonoedge.runtime.service.bench import write_clip
    from sonoedge.train.demo import phantom_frames

    return str(write_clip(phantom_frames(min(frames, 32), seed=0)[0], folder / "phantom.avi"))


def _write_json(path: str | None, result: dict[str, Any]) -> None:
    if path:
        from sonoedge.runtime.atomic import atomic_path

        with atomic_path(Path(path)) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
