"""Quick fidelity checks of a model on the held-out real frames (``sonoedge.train.realcheck``).

    python tools/realcheck.py --onnx runtime/default_bundle/model.onnx            # a bundle's model
    python tools/realcheck.py --checkpoint runs/default/best.pt --json out.json    # a training checkpoint

Prints per source (HC18 console, handheld stills, clip frames, hip_spj): the largest fraction of
bright input pixels turned black, the low-pass correlation with the input (min / median), the dark
blobs invented in tissue, and on HC18 the skull contrast kept (min / median). Needs
../shared/data/realus (and ../shared/data/annotations/hc18 for the skull); says so when absent.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="an ONNX model (fp32/fp16/int8 of a bundle)")
    parser.add_argument("--checkpoint", help="a training checkpoint (its deployed generator G_H)")
    parser.add_argument("--realus", default=str(ROOT.parent / "shared" / "data" / "realus"))
    parser.add_argument("--annotations", default=str(ROOT.parent / "shared" / "data" / "annotations" / "hc18"))
    parser.add_argument("--sources", default="hc18,handheld,clips,hip_spj")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the per-frame records and the summary here")
    args = parser.parse_args()
    if not Path(args.realus).is_dir():
        print(f"{args.realus} is absent: nothing to check (the real frames are not part of the repository)")
        return 0
    if bool(args.onnx) == bool(args.checkpoint):
        parser.error("give one of --onnx or --checkpoint")
    from sonoedge.train import realcheck

    if args.onnx:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def model(x):
            return session.run(None, {name: x})[0]
    else:
        import torch

        from sonoedge.train.checkpoint import load_generator

        torch.set_num_threads(args.threads)
        net, _ = load_generator(args.checkpoint)

        def model(x):
            with torch.no_grad():
                return net(torch.from_numpy(x)).numpy()
    records = realcheck.check_sources(model, args.realus, args.annotations, tuple(args.sources.split(",")))
    summary = realcheck.summarise(records)
    print(f"{'source':10s} {'frames':>6s} {'erased max':>10s} {'lp corr min/med':>16s} {'blobs':>6s} {'skull kept min/med':>19s}")
    for source, row in summary.items():
        skull = f"{row['skull_kept_min']:.2f}/{row['skull_kept_median']:.2f}" if "skull_kept_min" in row else "-"
        print(f"{source:10s} {row['frames']:6d} {row['erased_max']:10.3f} "
              f"{row['lowpass_corr_min']:7.3f}/{row['lowpass_corr_median']:.3f} {row['blobs']:6d} {skull:>19s}")
    paired = realcheck.degraded_pair_quality(model, args.realus) if "hc18" in args.sources.split(",") else None
    if paired:
        print(f"degraded HC18 pairs ({paired['input']['frames']} held-out console frames, train/degrade.py seed 99): "
              f"SSIM {paired['input']['ssim']:.4f} -> {paired['enhanced']['ssim']:.4f}, "
              f"PSNR {paired['input']['psnr']:.2f} -> {paired['enhanced']['psnr']:.2f} dB")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "degraded_hc18": paired, "frames": records}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
