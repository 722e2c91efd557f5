"""``sonoedge export CKPT --target jetson -o BUNDLE``: checkpoint -> device bundle with accuracy gates.

Exit 0: every requested precision passed its accuracy gate and the fidelity gate on real frames
(or fidelity was not checked: no real frames, said loudly and in the manifest). Exit 3 (GateError):
one failed and ``--allow-degraded`` was not given (no bundle is written; the message names the
frames and the measures). Exit 2: a user error (unknown target,
missing file, ...), one line naming the thing.

``sonoedge export --choose-cpu-precision BUNDLE`` (no checkpoint, no -o) times an existing bundle's
precisions on this machine's CPU and records the fastest that passed its gates in its manifest
(export/cpu_choice.py); only manifest.json and bundle.sha256 are rewritten.
"""
from __future__ import annotations

import argparse

from sonoedge.commands._args import add_config_arguments, config_from_args, csv_list, size
from sonoedge.export.config import CALIB_METHODS
from sonoedge.runtime.precision import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sonoedge.export.config import ExportConfig

    parser.add_argument("checkpoint", nargs="?", help="checkpoint .pt written by 'sonoedge train'")
    parser.add_argument("-o", "--output", help="bundle directory to write (new or empty); required with a checkpoint")
    parser.add_argument("--choose-cpu-precision", metavar="BUNDLE", dest="record_bundle",
                        help="instead of exporting: time BUNDLE's precisions on this CPU and record the fastest that "
                             "passed its gates in its manifest (rewrites manifest.json and bundle.sha256 only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier bundle at --output (and its .tar); never a folder holding other files")
    add_config_arguments(parser, ExportConfig, {
        "target": "device profile, family or 'all' (jetson, x86, cpu, jetson-orin-nano-8gb, ...; see 'sonoedge devices')",
        "precisions": f"comma-separated subset of {','.join(PRECISIONS)}",
        "frames": "real ultrasound frames for the parity references (folder, video, DICOM, ...); "
                  "none: --calib, else phantom simulator frames (said so in the manifest)",
        "calib": "INT8 calibration frames (folder, video, dataset; several joined by commas); none: --frames",
        "calib_method": "INT8 calibration method",
        "calib_bins": "histogram bins for entropy/percentile calibration (2048 as TensorRT)",
        "calib_frames": "calibration frames",
        "calib_size": "calibration tile HxW (none: the target's opt size, at most 256)",
        "reference_frames": "reference frames stored in the bundle",
        "reference_size": "largest reference crop HxW",
        "bundle_calib_tiles": "calibration tiles carried in the bundle for the legacy TensorRT calibrator",
        "fidelity_frames": "real frames for the fidelity gate: a folder or file; 'auto': the realus recordings "
                           "($SONOEDGE_REALUS or ../shared/data/realus) when present, else not checked with a warning; "
                           "'none': not checked, on purpose",
        "fidelity_per_group": "fidelity frames: files per sub-folder (kind of recording)",
        "fidelity_annotations": "HC18 annotations folder for the skull measures (none: annotations/hc18 beside the frames)",
        "allow_degraded": "keep precisions that fail their accuracy or fidelity gate, flagged degraded",
        "simplify": "simplify the ONNX graph with onnxslim",
        "stable_instance_norm": "rewrite InstanceNormalization as its two-pass form (exact on every runtime; see onnx_export.py)",
        "lpips_trunk": "VGG16 trunk weights file for LPIPS, or 'random' (flagged; none: $SONOEDGE_LPIPS_TRUNK, then the "
                       "torchvision cache; none found is an error)",
        "lpips": "skip LPIPS (reported only, never gated; saves the VGG16 cost)",
        "int8_quantize_outputs": "also quantize conv outputs (faster ONNX Runtime CPU int8; TensorRT prefers inputs only)",
        "int8_remainder": "type of the INT8 model's non-quantized layers: fp16 where the gate allows (TensorRT strongly typed "
                          "runs them as typed), or fp32",
        "choose_cpu_precision": "time every precision on ONNX Runtime's CPU provider here and record the fastest "
                                "that passed its gates (what 'auto' precision runs on a CPU)",
        "cpu_timing_rounds": "interleaved timing rounds over the reference frames for --choose-cpu-precision",
        "tar": "also write BUNDLE.tar",
    }, types={"precisions": csv_list, "calib_size": size, "reference_size": size},
       choices={"calib_method": CALIB_METHODS, "int8_remainder": ("fp16", "fp32")})


def run(args: argparse.Namespace) -> int:
    from sonoedge.export.bundle import export_bundle
    from sonoedge.export.config import ExportConfig
    from sonoedge.runtime.errors import InputError

    cfg = config_from_args(ExportConfig, args)
    if args.record_bundle:
        if args.checkpoint or args.output:
            raise InputError("--choose-cpu-precision BUNDLE takes no checkpoint and no -o; it rewrites BUNDLE's manifest")
        from sonoedge.export.cpu_choice import record_cpu_choice

        record_cpu_choice(args.record_bundle, cfg.cpu_timing_rounds, progress=lambda line: print(line, flush=True))
        return 0
    if not args.checkpoint or not args.output:
        raise InputError("sonoedge export needs a CHECKPOINT and -o BUNDLE (or --choose-cpu-precision BUNDLE)")
    export_bundle(args.checkpoint, args.output, cfg, progress=lambda line: print(line, flush=True),
                  overwrite=args.overwrite)
    return 0
