"""Re-run the command behind every CPU row of docs/BENCHMARKS.md, one named item at a time (not run in CI).

    python tools/remeasure_benchmarks.py --list                       # the items, their rows, estimated minutes
    python tools/remeasure_benchmarks.py --out remeasure-out          # every item (about 50 min, quiet 2-core CPU)
    python tools/remeasure_benchmarks.py --out OUT --only pipeline-butterfly-guard-on,guard-cost-sonosite
    python tools/remeasure_benchmarks.py --out OUT --tiny             # each item at toy sizes: does it run?

Every row of docs/BENCHMARKS.md that can run on a CPU is an item here (the GPU rows are not: they
need CUDA). Items that took long when they were measured are run shorter and labelled so in their
``note`` (the 60-minute daemon soak runs 5 minutes, the daemon's memory is read at 3 000 frames
instead of 10 000, ...): a shorter run of the same command beats a skipped one. The pipeline
benchmark (``sonoedge bench``) runs on every clip of ``realus/clips`` (the two mp4s and the three
PLUS MetaImage sequences; ``plus_toolkit/frames_png`` holds PNG exports of those sequences, two frame
sizes in one folder, which the floor and hand loop cannot crop alike) and on a generated phantom
clip, each with the structure guard on (the default) and off.

Items that need an artefact (a random-weights checkpoint of a paper preset, an exported bundle, a
copy of the default bundle) get it from a ``setup-*`` item, run first when needed and kept under
``OUT/_setup``: such artefacts are speed stand-ins, not trained models (the rows say so too).

Writes, under ``--out`` only (a new or empty folder, or one this tool wrote before: an item is
re-run and its files replaced): ``NAME.log`` (the command's stdout and stderr), ``NAME.json``
(the command, exit code, wall and CPU seconds of the child, its peak RSS, ``uptime`` before and
after, the estimate and the note) and, where the command writes one, ``NAME.result.json``;
``summary.json`` lists every item run. Nothing is written inside the repository.
Needs the package's venv (torch for the training, SR and export items) and ``../shared/data/realus``;
stdlib otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALUS = REPO.parent / "shared" / "data" / "realus"
MARKER = ".remeasure-benchmarks"  # marks an --out folder as this tool's, so a re-run may write into it

# the clips `sonoedge bench` reads (runtime/readers.py), short names for the item names. Not
# plus_toolkit/frames_png: PNG exports of the three MetaImage sequences below (1 BK, 21 Bone, 5
# Ultrasonix frames), of two frame sizes in one folder; the floor and the hand loop crop every frame
# with the first frame's region, so on it they would not do the pipeline's work (the .mha items do)
CLIPS = {
    "butterfly": "clips/itkpocus/butterfly-ocular-phantom.mp4",
    "sonosite": "clips/itkpocus/sonosite-anon-eye1-video.mp4",
    "bk": "clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha",
    "bone": "clips/plus_toolkit/BoneUltrasound_L14.igs.mha",
    "ultrasonix": "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha",
}
PHANTOM = "phantom"  # no --input: `sonoedge bench` generates a 256x256 phantom clip


@dataclasses.dataclass
class Item:
    name: str
    row: str  # the docs/BENCHMARKS.md row ("area | figure") it re-measures
    minutes: float  # estimated wall minutes on a quiet 2-core CPU (setup items it needs not included)
    argv: Callable[["Ctx"], list[str]]  # the command, built from the context (paths, --tiny)
    needs: tuple[str, ...] = ()  # setup items whose artefacts the command reads
    note: str = ""  # how it differs from the row's run (shorter, a stand-in, ...)
    result_json: bool = False  # the command writes NAME.result.json (its --json / --out)


@dataclasses.dataclass
class Ctx:
    out: Path
    realus: Path
    tiny: bool
    py: str = sys.executable

    def clip(self, key: str) -> str:
        return str(self.realus / CLIPS[key])

    def setup(self, name: str) -> Path:
        return self.out / "_setup" / name

    def n(self, full: int, tiny: int) -> str:
        """``full`` normally, ``tiny`` with --tiny (a check that the command runs)."""
        return str(tiny if self.tiny else full)

    def sonoedge(self, *args: str) -> list[str]:
        return [self.py, "-m", "sonoedge", *args]

    def tool(self, name: str, *args: str) -> list[str]:
        return [self.py, str(REPO / "tools" / name), *args]

    def result(self, item: str) -> str:
        return str(self.out / f"{item}.result.json")


# frames per pipeline item and wall minutes per item (floor, hand loop and pipeline, 7 repeats each,
# plus about 5 s to start and load) on the quiet 2-core CPU, from its 2026-11-30 fps of each clip:
# the contract is judged on ONE `sonoedge bench` run per clip and guard setting, so every
# run is long enough (1-3 s per alternative and repeat) and repeated often enough (7) for the
# per-repeat ratios' quartiles to be narrow: at 30-40 frames x 3 they spanned up to 15 points.
BENCH_REPEATS = 7
BENCH_SIZES = {"butterfly": (150, 1.1), "sonosite": (150, 0.6), "bk": (150, 0.6), "bone": (150, 0.9),
               "ultrasonix": (150, 1.0), PHANTOM: (400, 0.5)}


def _bench_item(clip: str, guard: str) -> Item:
    name = f"pipeline-{clip}-guard-{guard}"
    frames, minutes = BENCH_SIZES[clip]

    def argv(c: Ctx) -> list[str]:
        inp = [] if clip == PHANTOM else ["--input", c.clip(clip)]
        return c.sonoedge("bench", "default", *inp, "--frames", c.n(frames, 4), "--repeats", c.n(BENCH_REPEATS, 1),
                          "--region", "auto", "--guard", guard, "--json", c.result(name), "--overwrite")

    return Item(name, "runtime: pipeline vs careful hand loop (re-measured); runtime: pipeline vs careful hand loop; "
                      "runtime: pipeline overhead (previous bench, frames in memory)", minutes, argv,
                note=f"{frames} frames x {BENCH_REPEATS} interleaved repeats (before 2026-11-30 second pass: 30-40 x 3)",
                result_json=True)


def _guard_cost_item(clip: str) -> Item:
    name = f"guard-cost-{clip}"

    def argv(c: Ctx) -> list[str]:
        return c.sonoedge("bench", "default", "--input", c.clip(clip), "--guard-cost", "--frames", c.n(40, 3),
                          "--repeats", c.n(3, 1), "--json", c.result(name), "--overwrite")

    return Item(name, "runtime: structure guard", 0.25, argv, note="40 frames x 3 repeats (the row: 60-100 x 5-7)",
                result_json=True)


def _steady_item(clip: str) -> Item:
    def argv(c: Ctx) -> list[str]:
        n = c.n(20, 3)
        # the generated phantom clip has as many frames as --frames (at most 32): enough for --temporal
        inp, frames = ([], n) if clip == PHANTOM else (["--input", c.clip(clip)], "2")
        return c.sonoedge("bench", "default", *inp, "--frames", frames, "--repeats", "1", "--region", "auto",
                          "--temporal", n)

    return Item(f"steadying-{clip}", "edge: steadying cost", 0.3, argv, note="20 frames (the row: 40)")


def _joined(commands: list[list[str]]) -> list[str]:
    """Commands run in turn, each only if the one before exited 0."""
    out: list[str] = []
    for cmd in commands:
        out += [*(["&&"] if out else []), *cmd]
    return out


def items() -> list[Item]:
    """Every item, in the order they run (setup items first where they are needed)."""
    it: list[Item] = [
        # -- setup: artefacts other items read (speed stand-ins: random or barely trained weights)
        Item("setup-unet-journal", "(setup) journal U-Net at full width, random weights", 0.2,
             lambda c: c.tool("remeasure_benchmarks.py", "--make-checkpoint", "unet", str(c.setup("unet-journal.pt")))),
        Item("setup-resnet15", "(setup) conference ResNet-15 at full width, a few identity steps", 2.0,
             lambda c: c.tool("brief_resnet.py", "--frames", str(c.realus.parent / "realtrain" / "hc18"), "--steps", c.n(100, 1),
                              "--out", str(c.setup("resnet15.pt"))),
             note="100 identity steps at the defaults, as the row's checkpoint: essentially random weights"),
        Item("setup-sr-bundle", "(setup) Liu SR generator, random weights, exported fp32", 0.7,
             lambda c: [*c.tool("remeasure_benchmarks.py", "--make-checkpoint", "liu_sr", str(c.setup("liu-sr.pt"))), "&&",
                        *c.sonoedge("export", str(c.setup("liu-sr.pt")), "--target", "cpu", "--precisions", "fp32",
                                    "-o", str(c.setup("liu-sr-bundle")), "--frames", str(c.realus / "hc18"),
                                    "--reference-frames", "2", "--no-lpips", "--allow-degraded", "--overwrite")]),
        Item("setup-edge-onnx", "(setup) teacher ResNet ngf 16 and edge-small student, random weights, exported fp32", 0.7,
             lambda c: [*c.tool("remeasure_benchmarks.py", "--make-checkpoint", "teacher", str(c.setup("teacher.pt"))), "&&",
                        *c.tool("remeasure_benchmarks.py", "--make-checkpoint", "edge-small", str(c.setup("student.pt"))), "&&",
                        *c.sonoedge("export", str(c.setup("teacher.pt")), "--target", "cpu", "--precisions", "fp32",
                                    "-o", str(c.setup("teacher-bundle")), "--frames", str(c.realus / "hc18"),
                                    "--reference-frames", "2", "--no-lpips", "--allow-degraded", "--overwrite"), "&&",
                        *c.sonoedge("export", str(c.setup("student.pt")), "--target", "cpu", "--precisions", "fp32",
                                    "-o", str(c.setup("student-bundle")), "--frames", str(c.realus / "hc18"),
                                    "--reference-frames", "2", "--no-lpips", "--allow-degraded", "--overwrite")]),
        Item("setup-edge-nano", "(setup) edge-nano student, random weights, exported fp32 + INT8", 0.5,
             lambda c: [*c.tool("remeasure_benchmarks.py", "--make-checkpoint", "edge-nano", str(c.setup("nano.pt"))), "&&",
                        *c.sonoedge("export", str(c.setup("nano.pt")), "--target", "jetson-orin-nano-8gb",
                                    "-o", str(c.setup("nano-bundle")), "--frames", str(c.realus / "hc18"),
                                    "--calib", f"{c.realus / 'clips'},{c.realus / 'hip_spj'}", "--calib-frames", c.n(20, 2),
                                    "--reference-frames", "2", "--no-lpips", "--allow-degraded", "--overwrite")]),
        # -- phantom simulator
        Item("phantom-per-pair", "phantom simulator, speed-up", 0.7,
             lambda c: c.tool("remeasure_benchmarks.py", "--phantom-cpu", c.n(8, 1)),
             note="the previous simulator is gone: CPU per pair at 256 and 512 and per clip frame, now"),
        Item("phantom-200-pairs", "phantom simulator", 0.5,
             lambda c: c.sonoedge("data", "phantom", "--pairs", c.n(200, 4), "--size", "256",
                                  "--out", str(c.out / "phantom-200-pairs.data"), "--workers", "2", "--quiet")),
        # -- region detection
        Item("region-detection", "region detection", 0.4,
             lambda c: _joined([c.sonoedge("data", "inspect", path, "--bench", c.n(100, 3))
                                for path in (c.clip("butterfly"), c.clip("sonosite"), c.clip("ultrasonix"),
                                             str(c.realus / "hc18" / "000_HC.png"))]),
             note="four sizes: 1080x776, 720x960, 616x820, an HC18 still"),
        # -- training
        Item("train-journal", "training, journal preset; training, loss shares", 1.8,
             lambda c: c.sonoedge("bench-train", "--size", "256", "--batch", "1", "--steps", "1",
                                  "--warmup", c.n(1, 0), "--threads", "1", "--preset", "athreya2024-journal"),
             note="1 timed step after 1 warm-up (the row: 2); its loss shares are the loss-shares row's (same command, "
                  "--warmup 0 there)"),
        Item("train-conference", "training, conference preset", 1.5,
             lambda c: c.sonoedge("bench-train", "--preset", "athreya2024-conference", "--steps", "1", "--warmup", "0",
                                  "--threads", "1", *(["--size", "64"] if c.tiny else []))),
        # -- SR
        Item("sr-pytorch", "SR inference (Liu)", 1.5,
             lambda c: c.sonoedge("bench-sr", "--threads", "1", "--repeats", c.n(2, 1), "--iters", c.n(10, 1)),
             note="2 repeats (the row: 3)"),
        Item("sr-onnx", "SR inference (Liu)", 0.3,
             lambda c: c.sonoedge("bench-sr", "--onnx", str(c.setup("liu-sr-bundle") / "model.onnx"), "--threads", "1",
                                  "--repeats", c.n(3, 1)),
             needs=("setup-sr-bundle",), note="random weights (speed does not depend on them)"),
        Item("sr-blind", "SR inference (blind, the default); SR zero-shot (blind, the default)", 0.5,
             lambda c: c.sonoedge("bench-sr", "--blind", "--threads", "1", "--repeats", c.n(3, 1), "--iters", c.n(30, 1)),
             note="the shipped blind generator: CPU per output and per zero-shot iteration"),
        Item("sr-zero-shot", "SR zero-shot (Liu)", 1.0,
             lambda c: c.sonoedge("sr-eval", "--realus", str(c.realus), "--out", str(c.out / "sr-zero-shot.data"),
                                  "--methods", "zero-shot", "--frames", "000_HC", "--threads", "1",
                                  "--set", f"max_iters={c.n(60, 2)}"),
             note="one frame (000_HC), 60 iterations (the row's per-iteration figure)"),
        # -- export
        Item("export-memory-journal", "export memory, paper presets at full width", 4.5,
             lambda c: c.sonoedge("export", str(c.setup("unet-journal.pt")), "--target", "jetson-orin-nano-8gb",
                                  "-o", str(c.out / "export-memory-journal.bundle"), "--frames", str(c.realus / "hc18"),
                                  "--calib", f"{c.realus / 'clips'},{c.realus / 'hip_spj'}", "--calib-frames", c.n(8, 2),
                                  "--no-lpips", "--allow-degraded", "--overwrite"),
             needs=("setup-unet-journal",),
             note="journal U-Net only, 8 calibration frames (peak RSS was flat in the frame count); peak RSS in NAME.json"),
        Item("export-precisions-cpu", "export precisions, CPU time (re-measured)", 0.3,
             lambda c: c.sonoedge("bench-export", str(REPO / "runtime" / "default_bundle"), "--no-torch", "--threads", "1",
                                  "--rounds", c.n(10, 1)),
             note="also the 'export precisions' row without PyTorch eager (its checkpoint is not in the repository)"),
        Item("export-cpu-precision-choice", "export: CPU precision choice", 0.4,
             lambda c: [c.py, "-c", "import shutil, sys; shutil.rmtree(sys.argv[2], ignore_errors=True); "
                                    "shutil.copytree(sys.argv[1], sys.argv[2])",
                        str(REPO / "runtime" / "default_bundle"), str(c.out / "export-cpu-precision-choice.bundle"), "&&",
                        *c.sonoedge("export", "--choose-cpu-precision", str(c.out / "export-cpu-precision-choice.bundle"),
                                    "--cpu-timing-rounds", c.n(10, 1))]),
        Item("int8-resnet15-bundle", "INT8 on the CPU, conference ResNet-15 at full width", 4.0,
             lambda c: [*c.sonoedge("export", str(c.setup("resnet15.pt")), "--target", "cpu", "--precisions", "fp32,int8",
                                    "-o", str(c.out / "int8-resnet15.bundle"), "--frames", str(c.realus / "hc18"),
                                    "--calib", f"{c.realus / 'clips'},{c.realus / 'hip_spj'}", "--calib-frames", c.n(4, 2),
                                    "--no-lpips", "--int8-quantize-outputs", "--int8-remainder", "fp32",
                                    # a speed stand-in, not an enhancer: its fidelity failure is recorded, not fatal
                                    "--allow-degraded", *(["--calib-size", "64x64"] if c.tiny else []), "--overwrite"), "&&",
                        *c.sonoedge("bench-export", str(c.out / "int8-resnet15.bundle"), "--no-torch", "--threads", "1",
                                    "--rounds", c.n(3, 1))],
             needs=("setup-resnet15",), note="4 calibration frames (the row: 8); the INT8 layer search can take longer on other weights"),
        Item("int8-resnet15-direct", "INT8 on the CPU, conference ResNet-15 at full width", 1.5,
             lambda c: c.tool("int8_cpu_check.py", str(c.setup("resnet15.pt")), str(c.out / "int8-resnet15-direct.data"),
                              "--realus", str(c.realus), "--calib-frames", c.n(4, 2), "--rounds", c.n(3, 1)),
             needs=("setup-resnet15",), note="4 calibration frames, 3 rounds (the row: 8, 5)"),
        # -- runtime: the pipeline against the hand loop and the floor, every clip, guard on and off
        *[_bench_item(clip, guard) for clip in (*CLIPS, PHANTOM) for guard in ("on", "off")],
        Item("pipeline-layout-threads", "runtime: pipeline layout x intra-op threads", 0.7,
             lambda c: c.tool("pipeline_ab.py", "--input", c.clip("sonosite"), "--frames", c.n(30, 3),
                              "--repeats", c.n(4, 1), "--variants", "floor1,floor2,par1,hand2,p3t1,p3t2,p5t2,p3t1w2,p5t1w2"),
             note="30 frames x 4 repeats (the row: 40 x 6); w2: frame-parallel inference, par1: its floor"),
        Item("pipeline-guard-ab", "runtime: pipeline layout x intra-op threads; runtime: structure guard", 1.0,
             lambda c: c.tool("pipeline_ab.py", "--input", c.clip("butterfly"), "--frames", c.n(30, 3),
                              "--repeats", c.n(5, 1), "--variants",
                              "floor2,par1,hand2,seq2n,p2t2n,p3t2n,p5t2n,p2t2g,p3t2g,p3t1w2n,p3t1w2g,p3t1w2gu",
                              "--base", "floor2"),
             note="the work in one thread, the three layouts (2: only decoding beside the model) on 2 intra-op threads, "
                  "frame-parallel inference (w2) on 1, the guard on and off, the native kernels against the numpy "
                  "passes (u), per-step thread CPU (docs/benchmarks/runtime.md, section 0)"),
        Item("grey-conversion", "runtime: grey conversion", 0.3,
             lambda c: c.tool("remeasure_benchmarks.py", "--grey-ab", c.clip("butterfly"), c.clip("sonosite"),
                              "--grey-frames", c.n(60, 3), "--grey-repeats", c.n(5, 1)),
             note="cvtColor against the bit-exact table (the float32 matrix product before both is gone)"),
        Item("daemon-memory", "runtime: daemon memory; runtime: cold start", 1.5,
             lambda c: c.sonoedge("bench", "default", "--input", c.clip("sonosite"), "--daemon",
                                  "500,1000,1500" if not c.tiny else "20", "--fps", "1000", "--region", "auto",
                                  "--json", c.result("daemon-memory"), "--overwrite"),
             note="RSS after 500 / 1 000 / 1 500 frames (the row: 1 000 / 5 000 / 10 000)", result_json=True),
        Item("daemon-live-latency", "runtime: live latency", 0.6,
             lambda c: c.sonoedge("bench", "default", "--input", c.clip("sonosite"), "--daemon",
                                  "100,400" if not c.tiny else "10", "--fps", "25", "--region", "auto",
                                  "--json", c.result("daemon-live-latency"), "--overwrite"), result_json=True),
        Item("daemon-reloads", "runtime: daemon memory over reloads", 1.0,
             lambda c: c.tool("soak.py", "--reloads", c.n(10, 2), "--fps", "10", "--out", str(c.out / "daemon-reloads.data")),
             note="10 back-to-back reloads (the row: 40; RSS was flat after 5)"),
        Item("daemon-soak-5min", "runtime: daemon soak", 5.5,
             lambda c: c.tool("soak.py", "--minutes", "5" if not c.tiny else "0.3", "--fps", "10", "--good-every",
                              "60" if not c.tiny else "5", "--bad-every", "150" if not c.tiny else "8",
                              "--out", str(c.out / "daemon-soak-5min.data")),
             note="a 5-minute soak, NOT the row's 60 minutes: same settings otherwise"),
        Item("cpp-bridge", "C++ bridge", 1.5,
             lambda c: [c.py, "-c", "import shutil, sys; shutil.rmtree(sys.argv[2], ignore_errors=True); "
                                    "shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns('build*'))",
                        str(REPO / "cpp_bridge"), str(c.out / "cpp-bridge.data" / "cpp_bridge"), "&&",
                        "env", f"PYTHON={c.py}", "sh", str(c.out / "cpp-bridge.data" / "cpp_bridge" / "tools" / "bench.sh"),
                        c.n(5000, 50)],
             note="built and run from a copy under --out (bench.sh builds beside itself)"),
        # -- edge
        Item("edge-latency-check", "edge: latency estimate vs a published Jetson figure", 0.3,
             lambda c: c.tool("latency_check.py", "--out", str(c.out / "edge-latency-check.data"))),
        *[_steady_item(clip) for clip in (PHANTOM, "bone", "butterfly")],
        Item("edge-student-teacher", "edge: student vs teacher, ONNX Runtime", 0.8,
             lambda c: c.tool("onnx_speed.py", str(c.setup("teacher-bundle") / "model.onnx"),
                              str(c.setup("student-bundle") / "model.onnx"), str(REPO / "runtime" / "default_bundle" / "model.onnx"),
                              "--size", c.n(256, 64), "--rounds", c.n(10, 1), "--threads", "1"),
             needs=("setup-edge-onnx",), note="random-weights teacher and student (speed does not depend on weights); 10 rounds (the row: 15)"),
        Item("edge-orin-estimate", "edge: Orin Nano INT8 512x512, ESTIMATE", 0.2,
             lambda c: c.sonoedge("devices", "--estimate", str(REPO / "runtime" / "default_bundle"), "jetson-orin-nano-8gb"),
             note="an estimate (roofline), not a measurement"),
        Item("edge-nano-default", "edge: edge-nano vs the shipped default (its teacher), ONNX Runtime", 0.6,
             lambda c: c.tool("onnx_speed.py", str(REPO / "runtime" / "default_bundle" / "model.onnx"),
                              str(c.setup("nano-bundle") / "model.onnx"), "--size", c.n(512, 64),
                              "--rounds", c.n(15, 1), "--threads", "1"),
             needs=("setup-edge-nano",), note="random-weights edge-nano (speed does not depend on weights); 15 rounds (the row: 30)"),
        Item("edge-nano-estimate", "edge: edge-nano Orin Nano INT8 512x512, ESTIMATE", 0.2,
             lambda c: c.sonoedge("devices", "--estimate", str(c.setup("nano-bundle")), "jetson-orin-nano-8gb"),
             needs=("setup-edge-nano",), note="an estimate (roofline), not a measurement"),
        Item("edge-distill-cost", "edge: distillation cost", 0.8,
             lambda c: c.sonoedge("distill", "--teacher", "default", "--student", "edge-nano",
                                  "--data", str(c.realus.parent / "realtrain" / "hc18"), "-o", str(c.out / "edge-distill-cost.data"),
                                  "--set", f"steps={c.n(400, 4)}", "--set", f"qat_steps={c.n(40, 1)}", "--set", "batch_size=16",
                                  "--set", "threads=1", "--set", "lambda_adv=0", "--overwrite", "--quiet"),
             note="400 steps of 16 crops (the row: 4 000) on realtrain/hc18 (training frames): seconds per step"),
        *[_guard_cost_item(clip) for clip in ("butterfly", "sonosite", "bone", "ultrasonix")],
    ]
    return it


GPU_ROWS = "training, GPU setting (6 rows): need CUDA; run `sonoedge bench-train --preset NAME --steps 20 --warmup 5` on a GPU"


# -- helpers run as items' commands (so an item is always a separate process) ------------------------
def make_checkpoint(kind: str, path: Path) -> None:
    """A random-weights checkpoint of a paper preset at full width (docs/benchmarks/export.md: the
    export-memory rows), or of the edge teacher / student (docs/results/edge.md), for speed items."""
    import torch

    from sonoedge.train.checkpoint import model_info, save_checkpoint
    from sonoedge.train.registries import GENERATORS, load_all

    load_all()
    torch.manual_seed(0)
    kwargs = {"unet": {"ngf": 64, "depth": 8}, "resnet": {"ngf": 64, "n_blocks": 15, "n_down": 2},
              "teacher": {"ngf": 16, "n_blocks": 6, "n_down": 2}, "liu_sr": {"width": 1.0}, "edge-small": {},
              "edge-nano": {}}[kind]
    generator = "resnet" if kind == "teacher" else kind
    args = dict(kwargs) if kind == "liu_sr" else {"in_channels": 1, "out_channels": 1, **kwargs}  # as the trainers write them
    g = GENERATORS.create(generator, **args)
    if kind == "liu_sr":  # zero-initialised detail convs get small weights, so INT8 has something to quantize
        with torch.no_grad():
            for p in g.parameters():
                if p.dim() > 1 and not p.abs().sum():
                    p.normal_(0.0, 0.02)
    scale = int(getattr(g, "scale", 1))
    info = model_info(generator, args, task="sr" if scale > 1 else "enhance", scale=scale, stride=int(g.stride))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model_info=info, state_dicts={"G_H": g.state_dict()}, config={},
                    meta={"note": "random weights: a speed stand-in (tools/remeasure_benchmarks.py)"})
    print(f"wrote {path}: {generator} {kwargs}, {sum(p.numel() for p in g.parameters())} parameters, random weights")


def phantom_cpu(pairs: int) -> None:
    """CPU per simulated pair at 256 and 512 and per clip frame, caches warm (docs/benchmarks/phantom.md)."""
    from sonoedge.train.phantom import PhantomConfig, simulate_clip, simulate_pair

    for size in (256, 512):
        cfg = PhantomConfig(size=(size, size))
        simulate_pair(0, cfg)  # caches warm
        t = time.process_time()
        for seed in range(1, pairs + 1):
            simulate_pair(seed, cfg)
        print(json.dumps({"what": "simulate_pair", "size": size, "pairs": pairs,
                          "cpu_s_per_pair": round((time.process_time() - t) / pairs, 4)}), flush=True)
    frames = max(2, pairs)
    t = time.process_time()
    simulate_clip(0, PhantomConfig(), frames=frames)
    print(json.dumps({"what": "simulate_clip", "size": 256, "frames": frames,
                      "cpu_s_per_frame": round((time.process_time() - t) / frames, 4)}))


def grey_ab(clips: list[str], frames: int, repeats: int) -> None:
    """Decode + grey per frame, cvtColor (``fast``) against the bit-exact table (``exact``), swapped in
    turn in one process (docs/benchmarks/runtime.md, grey conversion)."""
    import statistics

    from sonoedge.runtime.readers import iter_frames

    for clip in clips:
        cpu: dict[str, list[float]] = {"fast": [], "exact": []}
        list(iter_frames(clip, "exact"))[:1]  # builds the exact table once, untimed
        for r in range(repeats):
            for method in (("fast", "exact") if r % 2 == 0 else ("exact", "fast")):
                t, n = time.process_time(), 0
                for _ in iter_frames(clip, method):
                    n += 1
                    if n >= frames:
                        break
                cpu[method].append(1000 * (time.process_time() - t) / n)
        fast, exact = statistics.median(cpu["fast"]), statistics.median(cpu["exact"])
        print(json.dumps({"clip": clip, "frames": frames, "repeats": repeats, "fast_cpu_ms": round(fast, 3),
                          "exact_cpu_ms": round(exact, 3), "fast_over_exact": round(fast / exact, 3)}))


# -- running ------------------------------------------------------------------------------------------
def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _commands(argv: list[str]) -> list[list[str]]:
    """An item's argv split at "&&" into commands run in turn (the next only if the last succeeded)."""
    out: list[list[str]] = [[]]
    for part in argv:
        if part == "&&":
            out.append([])
        else:
            out[-1].append(part)
    return [c for c in out if c]


def run_item(item: Item, ctx: Ctx) -> dict:
    """Run one item's commands (cwd: the repository, output to OUT/NAME.log); return and write its record."""
    argv = item.argv(ctx)
    log_path = ctx.out / f"{item.name}.log"
    record = {"name": item.name, "row": item.row, "estimate_min": item.minutes, "note": item.note, "tiny": ctx.tiny,
              "commands": [" ".join(c) for c in _commands(argv)], "uptime_before": uptime(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    t0, rc, cpu_s, peak_kib = time.monotonic(), 0, 0.0, 0
    with open(log_path, "w") as log:
        for cmd in _commands(argv):
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): the item's command stops too
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            cpu_s += usage.ru_utime + usage.ru_stime
            peak_kib = max(peak_kib, usage.ru_maxrss)
            if rc != 0:
                break
    record.update({"exit_code": rc, "wall_s": round(time.monotonic() - t0, 2), "child_cpu_s": round(cpu_s, 2),
                   "peak_rss_mib": round(peak_kib / 1024, 1), "uptime_after": uptime(), "log": log_path.name})
    if item.result_json:
        record["result"] = f"{item.name}.result.json"
    (ctx.out / f"{item.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def select(names: str | None, every: list[Item]) -> list[Item]:
    """The items named in ``--only`` (comma-separated; a prefix ending in '*' selects all that start with
    it), in the table's order, with the setup items they need first; all items when None."""
    by_name = {i.name: i for i in every}
    if names is None:
        wanted = [i.name for i in every if not i.name.startswith("setup-")]
    else:
        wanted = []
        for name in (n.strip() for n in names.split(",")):
            if not name:
                continue
            hits = [i.name for i in every if i.name.startswith(name[:-1])] if name.endswith("*") else \
                [name] if name in by_name else []
            if not hits:
                raise SystemExit(f"--only: no item '{name}'; see --list")
            wanted += hits
    needed = {s for n in wanted for s in by_name[n].needs} | {n for n in wanted}
    return [i for i in every if i.name in needed]


def check_out(out: Path) -> None:
    """--out must be new, empty, or a folder this tool wrote before; never inside the repository."""
    out = out.resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"--out {out} is inside the repository; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise SystemExit(f"--out {out} holds files this tool did not write; choose a new or empty folder")


def format_list(chosen: list[Item], ctx: Ctx | None = None) -> str:
    lines = [f"{'item':34s} {'est. min':>8s}  row (docs/BENCHMARKS.md) / note"]
    for i in chosen:
        row = i.row if len(i.row) <= 80 else i.row[:77] + "..."
        lines.append(f"{i.name:34s} {i.minutes:8.1f}  {row}" + (f"  [needs {', '.join(i.needs)}]" if i.needs else ""))
        if i.note:
            lines.append(f"{'':44s}{i.note}")
    lines.append(f"{'total':34s} {sum(i.minutes for i in chosen):8.1f}  (a quiet 2-core CPU; --tiny: toy sizes, but the training, export and INT8 items still take minutes)")
    lines.append(f"not run here: {GPU_ROWS}")
    return "\n".join(lines)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the items (name, estimated minutes, row) and exit")
    parser.add_argument("--only", help="comma-separated item names (NAME* for a prefix); default: every item")
    parser.add_argument("--out", type=Path, help="folder for the logs and JSON (new, empty, or this tool's)")
    parser.add_argument("--realus", type=Path, default=DEFAULT_REALUS, help="the realus data folder")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: check that every item runs (no figures)")
    parser.add_argument("--make-checkpoint", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--phantom-cpu", type=int, metavar="PAIRS", help=argparse.SUPPRESS)
    parser.add_argument("--grey-ab", nargs="+", metavar="CLIP", help=argparse.SUPPRESS)
    parser.add_argument("--grey-frames", type=int, default=60, help=argparse.SUPPRESS)
    parser.add_argument("--grey-repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.make_checkpoint:
        make_checkpoint(args.make_checkpoint[0], Path(args.make_checkpoint[1]))
        return 0
    if args.phantom_cpu:
        phantom_cpu(args.phantom_cpu)
        return 0
    if args.grey_ab:
        grey_ab(args.grey_ab, args.grey_frames, args.grey_repeats)
        return 0
    chosen = select(args.only, items())
    signal.signal(signal.SIGTERM, _interrupted)  # stop the running item's command, not only this process
    if args.list:
        print(format_list(chosen))
        return 0
    if args.out is None:
        parser.error("--out is required to run items (or --list)")
    if not args.realus.is_dir():
        raise SystemExit(f"--realus {args.realus} is not a folder (../shared/data/realus holds the real clips)")
    check_out(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MARKER).write_text("written by tools/remeasure_benchmarks.py\n")
    ctx = Ctx(args.out.resolve(), args.realus.resolve(), args.tiny)
    ctx.setup("").mkdir(parents=True, exist_ok=True)
    print(format_list(chosen), flush=True)
    records, t0 = [], time.monotonic()
    for n, item in enumerate(chosen, 1):
        failed = [s for s in item.needs if any(r["name"] == s and r["exit_code"] for r in records)]
        if failed:
            record = {"name": item.name, "exit_code": None, "skipped": f"setup failed: {', '.join(failed)}"}
        else:
            print(f"[{n}/{len(chosen)}] {item.name} (about {item.minutes:g} min) ...", flush=True)
            record = run_item(item, ctx)
        records.append(record)
        print(f"[{n}/{len(chosen)}] {item.name}: exit {record['exit_code']}, {record.get('wall_s', 0):.0f} s "
              f"(elapsed {(time.monotonic() - t0) / 60:.1f} min)", flush=True)
    summary = {"items": records, "tiny": args.tiny, "total_wall_s": round(time.monotonic() - t0, 1),
               "not_run": GPU_ROWS, "python": sys.executable}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    bad = [r["name"] for r in records if r["exit_code"] != 0]
    print(f"done in {(time.monotonic() - t0) / 60:.1f} min; {len(records) - len(bad)} of {len(records)} items exit 0"
          + (f"; failed or skipped: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
