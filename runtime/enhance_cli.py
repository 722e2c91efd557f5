"""``sonoedge enhance INPUT -o OUTPUT``: enhance a file through the real stream runtime.

    sonoedge enhance scan.dcm -o scan_enhanced.png                  # a still (or a 1-frame DICOM)
    sonoedge enhance clip.mp4 -o enhanced.mp4 --side-by-side        # input | enhanced, side by side
    sonoedge enhance sequence.igs.mha -o frames/ --bundle bundle/ --precision int8

INPUT is anything the readers read (image, clip, DICOM, NRRD, .mha sequence, folder of images).
OUTPUT: an image (.png/.jpg/.bmp/.tif) for a single frame, a video (.mp4/.avi) or a folder of PNG
frames. The file goes through the same pipeline as the daemon, in blocking mode (no frame is
dropped); the output appears whole or not at all.
"""
from __future__ import annotations

import argparse
from pathlib import Path

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="image, clip, DICOM, NRRD, .mha sequence or folder of images")
    parser.add_argument("-o", "--output", required=True, help="output image, .mp4/.avi video, or folder for PNG frames")
    add_model_arguments(parser)
    parser.add_argument("--side-by-side", action="store_true", help="write input and enhanced frames side by side")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", default="", help="bundle directory or .tar (default: the embedded default bundle)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"), help="model precision (default fp32)")
    parser.add_argument("--backend", default="auto", help="auto | onnxruntime | tensorrt (default auto)")
    parser.add_argument("--region", default="bundle", choices=("bundle", "auto", "full"),
                        help="imaging region: detect it (auto), the whole frame (full), or as the bundle says")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = one per core)")


def enhancer_config(args: argparse.Namespace):
    from sonoedge.runtime.enhancer import EnhancerConfig

    return EnhancerConfig(bundle=args.bundle, precision=args.precision, backend=args.backend, region=args.region,
                          threads=args.threads)


def run(args: argparse.Namespace) -> int:
    import json

    from sonoedge.runtime.daemon import setup_logging
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.readers import probe

    setup_logging("warning", json_lines=False)
    info = probe(args.input)  # names the file when it is missing or unsupported
    out = Path(args.output)
    if out.suffix.lower() in IMAGE_OUTPUTS and (info.frames or 0) > 1:
        raise InputError(f"{args.input} has {info.frames} frames but {out} is a single image; "
                         "write a video (.mp4/.avi) or a folder for PNG frames")
    stats = enhance_file(args.input, out, enhancer_config(args), side_by_side=args.side_by_side, fps=info.fps)
    summary = {k: stats[k] for k in ("frames_in", "frames_out", "enhanced", "passthrough", "frames_dropped")}
    summary["fps"] = round(stats["fps"], 2)
    summary["latency_p50_ms"] = round(stats["latency_ms"]["end_to_end"]["p50"], 2)
    print(f"wrote {out}  " + json.dumps(summary))
    return 0 if stats["frames_out"] == stats["frames_in"] else 1


def enhance_file(input_path: str | Path, output: Path, cfg, side_by_side: bool = False, fps: float | None = None,
                 model=None) -> dict:
    """Run ``input_path`` through the pipeline (blocking) into ``output``; returns the stats snapshot."""
    from sonoedge.runtime.enhancer import Enhancer, load_model
    from sonoedge.runtime.pipeline import Pipeline, PipelineConfig, load_plugins
    from sonoedge.runtime.streams import TappedSource, open_source

    load_plugins()
    own = model is None
    model = model or load_model(cfg)
    try:
        enhancer = Enhancer(model, cfg)
        sink = open_output(output, fps, scale=model.scale, side_by_side=side_by_side)
        source = open_source(str(input_path))
        if side_by_side:  # the sink pairs each output with its input
            source = TappedSource(source, lambda frame: sink.inputs.__setitem__(frame.frame_id, frame.image))
        with sink:
            stats = Pipeline(lambda: source, enhancer, sink, PipelineConfig(mode="blocking")).run()
        return stats
    finally:
        if own:
            model.close()


def open_output(output: Path, fps: float | None, scale: int = 1, side_by_side: bool = False):
    from sonoedge.runtime.streams import open_sink

    sink = _ImageSink(output) if output.suffix.lower() in IMAGE_OUTPUTS else open_sink(str(output), fps=fps)
    return SideBySide(sink, scale) if side_by_side else sink


class SideBySide:
    """A sink wrapper writing ``input | output`` (the input upscaled plainly for SR bundles)."""

    def __init__(self, inner, scale: int = 1):
        self.inner, self.scale = inner, scale
        self.uri = inner.uri
        self.inputs: dict[int, object] = {}

    def open(self) -> None:
        self.inner.open()

    def write(self, frame) -> None:
        import dataclasses

        import numpy as np

        from sonoedge.runtime.frames import to_grey

        source = self.inputs.pop(frame.frame_id)
        if self.scale > 1:
            source = np.repeat(np.repeat(source, self.scale, axis=0), self.scale, axis=1)
        left, right = source, frame.image
        if left.ndim != right.ndim:
            left, right = to_grey(left), to_grey(right)
        self.inner.write(dataclasses.replace(frame, image=np.concatenate([left, right], axis=1)))

    def close(self) -> None:
        self.inner.close()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.inner.__exit__(*exc)


class _ImageSink:
    """One output image, written atomically; a second frame is an error."""

    def __init__(self, path: Path):
        self.path, self.uri, self.frame = Path(path), str(path), None

    def open(self) -> None:
        pass

    def write(self, frame) -> None:
        from sonoedge.runtime.errors import InputError

        if self.frame is not None:
            raise InputError(f"{self.path} is a single image but the input has more than one frame")
        self.frame = frame

    def close(self) -> None:
        import cv2

        from sonoedge.runtime.atomic import atomic_path
        from sonoedge.runtime.errors import SonoedgeError

        if self.frame is None:
            return
        image = self.frame.image
        if image.ndim == 3:
            image = image[:, :, 2::-1]  # RGB -> BGR for OpenCV
        with atomic_path(self.path) as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise SonoedgeError(f"OpenCV cannot write {self.path} (unsupported image extension?)")
        self.path.chmod(0o644)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
