"""``sonoedge enhance INPUT -o OUTPUT``: enhance a file through the real stream runtime.

    sonoedge enhance scan.dcm -o scan_enhanced.png                  # a still (or a 1-frame DICOM)
    sonoedge enhance clip.mp4 -o enhanced.mp4 --side-by-side        # input | enhanced, side by side
    sonoedge enhance sequence.igs.mha -o frames/ --bundle bundle/ --precision int8

INPUT is anything the readers read (image, clip, DICOM, NRRD, .mha sequence, folder of images).
OUTPUT: an image (.png/.jpg/.bmp/.tif) for a single frame, a video (.mp4/.avi) or a folder of PNG
frames (a folder input keeps its file names). The file goes through the same pipeline as the daemon,
in blocking mode (no frame is dropped); the output appears whole or not at all. An existing output
is refused unless ``--overwrite`` (a folder is then replaced only when it is an earlier frame folder
of sonoedge); the output is never the input or inside an input folder.

Exit 0: every frame was enhanced. Exit 1: some frames came out unenhanced (passed through) or were
dropped, said in one sentence with the reason. Exit 130: interrupted; nothing half-written is left.

The structure guard (``--guard on``, the default; :mod:`sonoedge.runtime.stream.guard`) passes a
frame through unenhanced when the model's output erased or invented structure; such frames count as
passed through (exit 1, with the guard's reason) and ``guard_tripped`` in the summary counts them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sonoedge.commands._args import add_model_arguments, enhancer_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="image, clip, DICOM, NRRD, .mha sequence or folder of images")
    parser.add_argument("-o", "--output", required=True, help="output image, .mp4/.avi video, or folder for PNG frames")
    add_model_arguments(parser)
    parser.add_argument("--side-by-side", action="store_true", help="write input and enhanced frames side by side")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file, or an earlier frame folder written by sonoedge")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import probe
    from sonoedge.runtime.service.logs import setup_logging
    from sonoedge.runtime.stream.files import IMAGE_OUTPUTS, check_output, enhance_file

    setup_logging("warning", json_lines=False)
    info = probe(args.input)  # names the file when it is missing or unsupported
    out = Path(args.output)
    check_output(out, [args.input, args.bundle or None], args.overwrite)  # before anything else is said about it
    if out.suffix.lower() in IMAGE_OUTPUTS and (info.frames or 0) > 1:
        raise InputError(f"{args.input} has {info.frames} frames but {out} is a single image; "
                         "write a video (.mp4/.avi) or a folder for PNG frames")
    stats = enhance_file(args.input, out, enhancer_config(args), side_by_side=args.side_by_side, fps=info.fps,
                         overwrite=args.overwrite)
    summary = {k: stats[k] for k in ("frames_in", "frames_out", "enhanced", "passthrough", "frames_dropped")}
    guard = stats.get("guard", {})
    summary["guard_tripped"] = sum(guard.get("tripped", {}).values()) if guard.get("enabled") else "off"
    summary["fps"] = round(stats["fps"], 2)
    summary["latency_p50_ms"] = round(stats["latency_ms"]["end_to_end"]["p50"], 2)
    if stats["frames_out"] == 0:
        print(f"sonoedge enhance: error: nothing was written to {out}: none of the {stats['frames_in']} input frame(s) "
              f"came out ({_why(stats)})", file=sys.stderr)
        return 1
    print(f"wrote {out}  " + json.dumps(summary))
    if stats["frames_out"] != stats["frames_in"]:
        print(f"sonoedge enhance: {stats['frames_in'] - stats['frames_out']} of {stats['frames_in']} frame(s) were dropped "
              f"({_why(stats)})", file=sys.stderr)
        return 1
    if stats["passthrough"]:
        print(f"sonoedge enhance: {stats['passthrough']} of {stats['frames_out']} frame(s) passed through unenhanced "
              f"({_why(stats)})", file=sys.stderr)
        return 1
    return 0


def _why(stats: dict) -> str:
    """The reasons frames were dropped or passed through: counts and the first frame's reason of each kind."""
    first = stats.get("first_reasons", {})
    kinds = [(kind, n) for kind, n in sorted(stats.get("dropped", {}).items()) if n]
    if stats.get("passthrough"):
        kinds.append(("passthrough", stats["passthrough"]))
    parts = [f"{n} {kind}" + (f", first: {first[kind]}" if first.get(kind) else "") for kind, n in kinds]
    return "; ".join(parts) or "no reason recorded"
