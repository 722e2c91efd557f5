"""INT8 with integer kernels on the CPU, checked directly: gate on real frames and speed against fp32 (not run in CI).

    python tools/int8_cpu_check.py CKPT OUT_DIR [--calib-frames 8] [--exclude NODE,...] [--rounds 4]

The export's own steps, without the bundle and without the per-layer search (so one run takes
minutes, not the search's tens of minutes for a full-width generator): the checkpoint's generator
to fp32 ONNX (export/onnx_export.py), calibration on real frames of ``$R/clips,$R/hip_spj`` (entropy,
one 256 x 256 tile per call: export/int8.py ``calibrate_ranges``), every Conv quantized with its
OUTPUT quantized too (``Int8Config(quantize_outputs=True, remainder="fp32")``: the layout ONNX
Runtime's CPU provider fuses into integer kernels) except ``--exclude``, then:

- the int8 gate (runtime/bundle/gates.py: PSNR >= 35 dB and SSIM >= 0.97 against the fp32 ONNX
  output) on 4 real HC18 evaluation frames (``$R/hc18``) and on 4 frames of the calibration
  sources held out of calibration;
- ONNX Runtime CPU latency, fp32 and int8 sessions with 1 intra-op thread, interleaved round by
  round on the HC18 frames: median wall and process CPU ms per frame and their ratios.

``R`` is ``../shared/data/realus`` (``--realus``). The ONNX files and the calibration ranges are kept
in OUT_DIR and reused by a second run of the SAME checkpoint (so ``--exclude`` variants cost no new
calibration); ``checkpoint.sha256`` there says which, and for a different checkpoint the tool
rebuilds its own files instead of measuring the old one's.
``sonoedge export CKPT --target cpu --precisions fp32,int8 --int8-quantize-outputs --int8-remainder fp32``
then ``sonoedge bench-export BUNDLE CKPT`` is the full path (with the layer search when the gate fails).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--realus", default="../shared/data/realus")
    parser.add_argument("--calib-frames", type=int, default=8)
    parser.add_argument("--exclude", default="", help="Conv node names kept in float, comma-separated")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from sonoedge.export import int8 as q
    from sonoedge.export.frames import calibration_tiles, collect_frames
    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
    from sonoedge.runtime.digest import sha256_file
    from sonoedge.runtime.frames import normalise
    from sonoedge.train.checkpoint import load_generator

    out, r = Path(args.out), args.realus
    out.mkdir(parents=True, exist_ok=True)
    digest, stamp = sha256_file(args.checkpoint), out / "checkpoint.sha256"
    if stamp.is_file() and stamp.read_text().strip() != digest:  # this tool's files of another checkpoint
        for name in ("model.onnx", "ranges.json", "model.int8.onnx"):
            (out / name).unlink(missing_ok=True)
    stamp.write_text(digest + "\n")
    generator, _ = load_generator(args.checkpoint)
    fp32 = out / "model.onnx"
    if not fp32.exists():
        export_onnx(generator.eval(), fp32, 1, generator.stride)
    sources = f"{r}/clips,{r}/hip_spj"
    tiles = calibration_tiles(collect_frames(sources, args.calib_frames, (256, 256)), (256, 256), generator.stride)

    def tensor(image):
        x = normalise(image)
        return x if x.ndim == 4 else x[None, None]

    hc18 = [tensor(f) for f in collect_frames(f"{r}/hc18", 4, (256, 256)).images]
    held = [tensor(f) for f in collect_frames(sources, 4, (256, 256), skip_first=args.calib_frames).images]
    cfg = q.Int8Config(quantize_outputs=True, remainder="fp32")
    cache = out / "ranges.json"
    if not cache.exists():
        q.calibrate_ranges(fp32, q.TileReader(tiles, "input"), cfg, cache)
    exclude = [n for n in args.exclude.split(",") if n]
    int8 = q.quantize(fp32, out / "model.int8.onnx", cfg, q.TileReader(tiles, "input"), cache, exclude=exclude)
    print(f"{args.checkpoint}: {len(q.weighted_nodes(fp32, cfg.op_types)) - len(exclude)} of "
          f"{len(q.weighted_nodes(fp32, cfg.op_types))} Conv layers int8 with quantized outputs; "
          f"calibration {len(tiles)} tiles of {sources}")
    for label, frames in (("hc18 evaluation frames", hc18), ("held-out calibration-source frames", held)):
        metrics = compare_outputs(q.run_onnx(int8, frames), q.run_onnx(fp32, frames))
        verdict = "pass" if check_gate("int8", metrics).passed else "FAIL"
        print(f"int8 gate on {len(frames)} {label}: {verdict}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}, "
              f"max abs {metrics['max_abs']:.3f}")

    def session(path: Path):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    sessions = {"fp32": session(fp32), "int8": session(int8)}
    for s in sessions.values():
        s.run(None, {"input": hc18[0]})
    wall: dict[str, list[float]] = {k: [] for k in sessions}
    cpu: dict[str, list[float]] = {k: [] for k in sessions}
    load = os.getloadavg()[0]
    for i in range(args.rounds):
        for name in (("fp32", "int8") if i % 2 == 0 else ("int8", "fp32")):
            for x in hc18:
                t0, c0 = time.perf_counter(), time.process_time()
                sessions[name].run(None, {"input": x})
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    med = {k: (statistics.median(wall[k]) * 1e3, statistics.median(cpu[k]) * 1e3) for k in sessions}
    for k, (w, c) in med.items():
        print(f"onnxruntime {k}, 1 thread, 1x1x256x256: {w:.1f} ms wall, {c:.1f} ms CPU per frame (median)")
    print(f"int8 speed-up over fp32: {med['fp32'][1] / med['int8'][1]:.2f}x CPU, {med['fp32'][0] / med['int8'][0]:.2f}x wall; "
          f"{len(hc18)} frames x {args.rounds} rounds interleaved; load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
