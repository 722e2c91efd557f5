"""``sonoedge data inspect PATH``: read any ultrasound file (still, DICOM, NRRD, MetaImage, video,
folder) and print what it holds and where its imaging region is; optionally save an overlay PNG.
Every frame is decoded, so a file that is bad anywhere ends in one error line naming it (exit 2).

    sonoedge data inspect clip.mp4 --overlay region.png

Only runtime modules are used (no torch), so this works on a device with the base install.
"""
from __future__ import annotations

import argparse
from pathlib import Path

OVERLAY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="an image, DICOM, NRRD, .mha/.mhd, video file or a folder of images")
    parser.add_argument("--overlay", type=Path, metavar="OUT.png", help="write the frame with its imaging region drawn on it")
    parser.add_argument("--frame", type=int, default=0, metavar="N", help="which frame to analyse (default: 0, the first)")
    parser.add_argument("--bench", type=int, default=0, metavar="N",
                        help="also time region detection on the frame N times (median, p90) against a cached tracker lookup")


def run(args: argparse.Namespace) -> int:
    from sonoedge.runtime import readers
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.region import bench_region, detect_region, write_overlay

    if args.overlay is not None and args.overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        raise InputError(f"--overlay {args.overlay} must end in one of {' '.join(OVERLAY_SUFFIXES)}.")
    if args.frame < 0:
        raise InputError(f"--frame {args.frame} must be 0 or more.")
    info = readers.probe(args.path)
    frame = _nth_frame(readers.iter_frames(args.path), args.frame, args.path)
    region = detect_region(frame)
    for line in describe(info, region, args.frame):
        print(line)
    if args.overlay is not None:
        write_overlay(args.overlay, frame, region)
        print(f"overlay: {args.overlay}")
    if args.bench > 0:
        print(bench_region(frame, args.bench))
    return 0


def _nth_frame(frames, index: int, path: Path):
    """Frame ``index``, after decoding every frame: a file or folder that is bad further on (a
    truncated clip, a corrupt still among good ones) is an error here, never a description."""
    from sonoedge.runtime.errors import InputError

    chosen = None
    for i, frame in enumerate(frames):
        if i == index:
            chosen = frame
    if chosen is None:
        raise InputError(f"{path} has fewer than {index + 1} frames; choose a smaller --frame.")
    return chosen


def describe(info, region, frame_index: int = 0) -> list[str]:
    """Human-readable lines for a MediaInfo and the Region of one of its frames."""
    fps = f"{info.fps:.2f}" if info.fps else "unknown"
    spacing = f"{info.spacing[0]:.4g} x {info.spacing[1]:.4g} mm/pixel (row x column)" if info.spacing else "unknown"
    x0, y0, x1, y1 = region.bbox
    return [
        f"path:     {info.path}",
        f"kind:     {info.kind}",
        f"frames:   {info.frames if info.frames is not None else 'unknown (stream without a count)'}",
        f"size:     {info.width} x {info.height} (W x H), {info.channels} channel(s) stored, read as uint8 grey",
        f"fps:      {fps}",
        f"spacing:  {spacing}",
        f"region:   {region.kind}, bbox x {x0}..{x1} y {y0}..{y1} (end exclusive), "
        f"{100 * region.area_fraction:.1f}% of frame {frame_index}",
    ]
