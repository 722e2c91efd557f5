"""``sonoedge requantize BUNDLE --calib FRAMES``: rebuild a bundle's INT8 model from its own fp32 ONNX.

For a bundle whose checkpoint is gone (the embedded default bundle): calibrate on real frames,
re-run the INT8 search, the TensorRT parser check and the emulated-TensorRT gate, re-gate every
precision against the bundle's stored PyTorch outputs, and rewrite manifest.json and bundle.sha256
(export/requantize.py). Exit 0 when everything passed; exit 3 (GateError) leaves the bundle as it
was; exit 2 on a user error, one line naming the thing.
"""
from __future__ import annotations

import argparse

from sonoedge.commands._args import add_config_arguments, config_from_args, size
from sonoedge.export.config import CALIB_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sonoedge.export.config import RequantizeConfig

    parser.add_argument("bundle", help="bundle directory written by 'sonoedge export'")
    add_config_arguments(parser, RequantizeConfig, {
        "calib": "INT8 calibration frames (folder, video, dataset; several joined by commas)",
        "holdout": "real frames for the INT8-vs-fp32 report (never calibration frames; several joined by commas)",
        "calib_method": "INT8 calibration method",
        "calib_bins": "histogram bins for entropy/percentile calibration",
        "calib_frames": "calibration frames",
        "calib_size": "calibration tile HxW (none: the bundle's opt size, at most 256)",
        "search_frames": "calibration frames held out to drive the layer search",
        "holdout_frames": "holdout frames to report on",
        "bundle_calib_tiles": "calibration tiles carried in the bundle for the legacy TensorRT calibrator",
        "min_psnr": "INT8 search target in dB above the gate (none: the gate)",
        "min_ssim": "INT8 search target SSIM above the gate (none: the gate)",
        "int8_remainder": "type of the INT8 model's non-quantized layers (fp16 where the gate allows, or fp32)",
        "allow_degraded": "keep precisions that fail their gate, flagged degraded",
    }, types={"calib_size": size, "min_psnr": float, "min_ssim": float},
       choices={"calib_method": CALIB_METHODS, "int8_remainder": ("fp16", "fp32")})


def run(args: argparse.Namespace) -> int:
    from sonoedge.export.config import RequantizeConfig
    from sonoedge.export.requantize import requantize_bundle

    requantize_bundle(args.bundle, config_from_args(RequantizeConfig, args), progress=lambda line: print(line, flush=True))
    return 0
