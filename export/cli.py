"""``sonoedge export CKPT --target jetson -o BUNDLE``: checkpoint -> device bundle with accuracy gates.

Exit 0: every requested precision passed its gate. Exit 3 (GateError): one failed and
``--allow-degraded`` was not given (no bundle is written). Exit 2: a user error (unknown target,
missing file, ...), one line naming the thing.
"""
from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' must look like 256 or 256x320") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size '{text}' must be at least 16x16")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint .pt written by 'sonoedge train'")
    parser.add_argument("--target", default="jetson",
                        help="device profile, family or 'all' (jetson, x86, cpu, jetson-orin-nano-8gb, ...; see 'sonoedge devices')")
    parser.add_argument("-o", "--output", required=True, help="bundle directory to write")
    parser.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated subset of fp32,fp16,int8")
    parser.add_argument("--frames", help="real ultrasound frames for the parity references (folder, video, DICOM, ...); "
                        "default: phantom simulator frames (said so in the manifest)")
    parser.add_argument("--calib", help="INT8 calibration frames (folder, video, dataset); default: --frames")
    parser.add_argument("--calib-method", default="entropy", choices=["entropy", "percentile", "minmax"])
    parser.add_argument("--calib-bins", type=int, default=2048,
                        help="histogram bins for entropy/percentile calibration (default 2048, as TensorRT)")
    parser.add_argument("--calib-frames", type=int, default=300, help="calibration frames (default 300)")
    parser.add_argument("--calib-size", type=_size, help="calibration tile HxW (default: target opt size, at most 256)")
    parser.add_argument("--reference-frames", type=int, default=4, help="reference frames stored in the bundle")
    parser.add_argument("--reference-size", type=_size, default=(256, 256), help="largest reference crop HxW")
    parser.add_argument("--bundle-calib-tiles", type=int, default=16,
                        help="calibration tiles carried in the bundle for the legacy TensorRT calibrator (default 16)")
    parser.add_argument("--allow-degraded", action="store_true", help="keep precisions that fail their gate, flagged degraded")
    parser.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    parser.add_argument("--stable-instance-norm", action="store_true",
                        help="rewrite InstanceNormalization as its two-pass form (exact on every runtime; see onnx_export.py)")
    parser.add_argument("--lpips-trunk", help="VGG16 trunk weights file for LPIPS, or 'random' (flagged; default: $SONOEDGE_LPIPS_TRUNK, then the torchvision cache; none found is an error)")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported only, never gated; saves the VGG16 cost)")
    parser.add_argument("--int8-quantize-outputs", action="store_true",
                        help="also quantize conv outputs (faster ONNX Runtime CPU int8; TensorRT prefers inputs only)")
    parser.add_argument("--tar", action="store_true", help="also write BUNDLE.tar")


def run(args: argparse.Namespace) -> int:
    from .bundle import ExportConfig, export_bundle

    cfg = ExportConfig(
        target=args.target, precisions=tuple(p.strip() for p in args.precisions.split(",") if p.strip()),
        frames=args.frames, calib=args.calib, calib_method=args.calib_method, calib_bins=args.calib_bins, calib_frames=args.calib_frames,
        calib_size=args.calib_size, reference_frames=args.reference_frames, reference_size=args.reference_size,
        bundle_calib_tiles=args.bundle_calib_tiles,
        allow_degraded=args.allow_degraded, simplify=args.simplify, stable_instance_norm=args.stable_instance_norm, lpips=not args.no_lpips, lpips_trunk=args.lpips_trunk,
        int8_quantize_outputs=args.int8_quantize_outputs, tar=args.tar,
    )
    export_bundle(args.checkpoint, args.output, cfg, progress=lambda line: print(line, flush=True))
    return 0
