"""The measurement behind the structure guard's thresholds, and how often it trips on a bundle.

    python tools/guard_thresholds.py                      # ../shared/data/realus, the embedded default
    python tools/guard_thresholds.py --realus DIR --bundle BUNDLE --json out.json

Part 1 (the table in runtime/stream/guard.py): every still of the realus folder and about 20 frames
spread over each clip, cropped to its imaging region as the runtime crops it, are compared by the
guard with (a) the bundle's output and (b) transforms of the input a faithful enhancer may apply
(identity, speckle smoothing, CLAHE, gamma, contrast, brightness) or that break it (gamma 2.2, a black
disc, inversion); and 60 simulated phantom clips (2 frames each, seeds 2000-2059) with their
high-end frame as the output: what a perfect enhancer would show. Printed per output: the
low-resolution correlation (min / median), the largest dark-over-tissue and bright-over-dark shares,
and how many frames trip; then the frames tripped at other settings of the guard.

Part 2: EVERY frame of every realus clip and every still through the enhancer with the guard on
(the runtime path: region per stream or per still, the bundle's model): frames tripped per file and
reason. None of these frames trained or calibrated the default, but the hc18 stills are console
frames of the same kind as the default's next training set (../shared/data/realtrain/hc18): the
frames here are the realus copies, never the training ones.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import SonoedgeError
from sonoedge.runtime.frames import Frame, crop
from sonoedge.runtime.readers import iter_frames, probe
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig, from_model
from sonoedge.runtime.stream.guard import REASONS, GuardConfig, StructureGuard

REPO = Path(__file__).resolve().parents[1]
CLIP_SAMPLES = 20  # frames spread over each clip in part 1
PHANTOM_SEEDS = range(2000, 2060)  # phantom clips (2 frames each) for the perfect-enhancer row
PERFECT = "phantom pairs: the high-end frame (a perfect enhancer)"
# alternative settings, each tried on SWEEP_OUTPUTS (frames tripped, any reason)
SWEEP = {
    "defaults": {},
    "tissue_level 20": {"tissue_level": 20.0}, "tissue_level 30": {"tissue_level": 30.0},
    "tissue_level 50": {"tissue_level": 50.0},
    "absolute tissue (tissue_contrast 0), no hole size (hole_cells 1)": {"tissue_contrast": 0.0, "hole_cells": 1},
    "tissue_contrast 0": {"tissue_contrast": 0.0}, "tissue_contrast 0.9": {"tissue_contrast": 0.9},
    "hole_cells 1": {"hole_cells": 1}, "hole_cells 2": {"hole_cells": 2},
    "context_cells 7": {"context_cells": 7}, "context_cells 9": {"context_cells": 9},
}
SWEEP_OUTPUTS = ("bundle output", "gamma 1.6", "brightness -30", "black disc (breaks)", PERFECT)


def _disc(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    cv2.circle(out, (x.shape[1] // 2, x.shape[0] // 2), min(x.shape) // 6, 0, -1)
    return out


def _gamma(g: float):
    table = np.clip(np.rint(255 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lambda x: cv2.LUT(x, table)


def _linear(gain: float, offset: float):
    return lambda x: np.clip((x.astype(np.float32) - x.mean()) * gain + x.mean() + offset, 0, 255).astype(np.uint8)


TRANSFORMS = {
    "identity": lambda x: x,
    "median 5": lambda x: cv2.medianBlur(x, 5),
    "Gaussian sigma 3": lambda x: cv2.GaussianBlur(x, (0, 0), 3),
    "CLAHE clip 2, 8x8": lambda x: cv2.createCLAHE(2.0, (8, 8)).apply(x),
    "gamma 0.6": _gamma(0.6),
    "gamma 1.6": _gamma(1.6),
    "contrast x1.5": _linear(1.5, 0.0),
    "brightness -30": _linear(1.0, -30.0),
    "gamma 2.2 (breaks)": _gamma(2.2),
    "black disc (breaks)": _disc,
    "inverted (breaks)": lambda x: 255 - x,
}


def _files(realus: Path) -> list[Path]:
    return sorted(p for p in realus.rglob("*") if p.is_file() and p.name != "SOURCES.md" and p.parent.name != "frames_png")


def _samples(path: Path) -> list[np.ndarray]:
    n = probe(path).frames or 1
    every = max(1, n // CLIP_SAMPLES)
    return [im for i, im in enumerate(iter_frames(path)) if i % every == 0][:CLIP_SAMPLES]


def _with_guard(cfg: EnhancerConfig, **changes) -> EnhancerConfig:
    return dataclasses.replace(cfg, guard=dataclasses.replace(cfg.guard, **changes))


def _comparisons(realus: Path, model, cfg: EnhancerConfig):
    """(name, input crop, output, region mask, scale) for every sampled realus frame (the bundle's
    output and each transform) and every phantom pair (the high-end frame: a perfect enhancer)."""
    for path in _files(realus):
        enhancer = Enhancer(model, _with_guard(cfg, enabled=False))
        for i, image in enumerate(_samples(path)):
            try:
                job = enhancer.prepare(Frame(image, i))
            except SonoedgeError as exc:  # a region the model cannot take (its size range): not compared
                print(f"  skipped {path.name} frame {i}: {exc}", file=sys.stderr)
                continue
            enhancer.infer(job)
            yield "bundle output", job.grey, from_model(crop(job.output, job.size, model.scale)), job.mask, model.scale
            for name, f in TRANSFORMS.items():
                yield name, job.grey, f(job.grey), job.mask, 1
        print(f"  part 1: {path.relative_to(realus)}", file=sys.stderr)
    from sonoedge.train.phantom import PhantomConfig, simulate_clip

    for seed in PHANTOM_SEEDS:
        low, high = simulate_clip(seed, PhantomConfig(size=(256, 256)), frames=2)
        enhancer = Enhancer(model, _with_guard(cfg, enabled=False))
        for i, (lo, hi) in enumerate(zip(low, high)):
            job = enhancer.prepare(Frame(lo, i))
            x0, y0, x1, y1 = job.bbox
            yield PERFECT, job.grey, np.ascontiguousarray(hi[y0:y1, x0:x1]), job.mask, 1
    print(f"  part 1: {len(PHANTOM_SEEDS)} phantom clips", file=sys.stderr)


def part1(realus: Path, model, cfg: EnhancerConfig) -> dict:
    """Guard statistics of each output (bundle, transforms, perfect enhancer on phantom pairs) at
    the defaults, and frames tripped at the alternative settings of :data:`SWEEP`."""
    guard = StructureGuard(cfg.guard)
    sweep = {label: StructureGuard(dataclasses.replace(cfg.guard, **changes)) for label, changes in SWEEP.items()}
    swept: dict[tuple[str, str], int] = collections.Counter()
    rows: dict[str, list] = collections.defaultdict(list)
    for name, grey, out, mask, scale in _comparisons(realus, model, cfg):
        v = guard.check(grey, out, mask, scale)
        rows[name].append((v.correlation, v.dark_share, v.bright_share, v.reason))
        if name in SWEEP_OUTPUTS:
            for label, g in sweep.items():
                swept[name, label] += g.check(grey, out, mask, scale).tripped
    table = {}
    for name, vs in rows.items():
        corr = np.array([v[0] for v in vs], float)
        table[name] = {"frames": len(vs), "corr_min": float(np.nanmin(corr)), "corr_median": float(np.nanmedian(corr)),
                       "dark_share_max": max(v[1] for v in vs), "bright_share_max": max(v[2] for v in vs),
                       "tripped": dict(collections.Counter(v[3] for v in vs if v[3]))}
    table["sweep"] = {label: {name: swept[name, label] for name in SWEEP_OUTPUTS} for label in SWEEP}
    return table


def part2(realus: Path, model, cfg: EnhancerConfig) -> dict:
    """Every frame of every file through the enhancer with the guard on: trips per file and reason."""
    out = {}
    for path in _files(realus):
        enhancer = Enhancer(model, cfg)
        n = 0
        for i, image in enumerate(iter_frames(path)):
            enhancer(Frame(image, i))
            n += 1
        counts = enhancer.guard.counts()
        out[str(path.relative_to(realus))] = {"frames": n, "checked": counts["checked"],
                                               "tripped": {k: v for k, v in counts["tripped"].items() if v}}
        print(f"  part 2: {path.relative_to(realus)}: {sum(counts['tripped'].values())} of {n}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realus", default=str(REPO.parent / "shared" / "data" / "realus"))
    parser.add_argument("--bundle", default="", help="bundle to measure ('' = the embedded default)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    realus = Path(args.realus)
    if not realus.is_dir():
        print(f"real ultrasound data not found at {realus}; pass --realus", file=sys.stderr)
        return 0
    import logging

    logging.getLogger("sonoedge.runtime.stream.guard").setLevel(logging.ERROR)  # part 2 trips are counted, not logged
    cfg = EnhancerConfig(bundle=args.bundle, region="auto", guard=GuardConfig())
    model = load_model(cfg)
    t0 = time.perf_counter()
    try:
        table, per_file = part1(realus, model, cfg), part2(realus, model, cfg)
    finally:
        model.close()
    print(f"bundle {model.name} ({model.model_sha256[:12]}), guard defaults, {time.perf_counter() - t0:.0f} s\n")
    print("| output | frames | correlation min / median | dark-over-tissue share max | bright-over-dark share max | tripped |")
    print("|---|---|---|---|---|---|")
    sweep = table.pop("sweep")
    for name, r in table.items():
        tripped = ", ".join(f"{k} {v}" for k, v in r["tripped"].items()) or "0"
        print(f"| {name} | {r['frames']} | {r['corr_min']:.3f} / {r['corr_median']:.3f} | {r['dark_share_max']:.4f} | "
              f"{r['bright_share_max']:.4f} | {tripped} |")
    print("\nframes tripped (any reason) at other settings:\n")
    print("| setting | " + " | ".join(SWEEP_OUTPUTS) + " |\n|---|" + "---|" * len(SWEEP_OUTPUTS))
    for label, counts in sweep.items():
        print(f"| {label} | " + " | ".join(str(counts[name]) for name in SWEEP_OUTPUTS) + " |")
    table["sweep"] = sweep
    print("\n| file | frames | checked (enhanced by the model) | tripped (by reason) |\n|---|---|---|---|")
    groups: dict[str, list] = collections.defaultdict(lambda: [0, 0, collections.Counter()])
    for name, r in per_file.items():
        key = name if name.startswith("clips/") else name.split("/")[0] + "/ (stills)"
        groups[key][0] += r["frames"]
        groups[key][1] += r["checked"]
        groups[key][2].update(r["tripped"])
    for key, (frames, checked, tripped) in groups.items():
        text = ", ".join(f"{reason} {tripped[reason]}" for reason in REASONS if tripped[reason]) or "none"
        print(f"| {key} | {frames} | {checked} | {sum(tripped.values())} ({text}) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"bundle": model.name, "sha256": model.model_sha256, "transforms": table,
                                               "per_file": per_file}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
