"""Enhance a whole file through the stream runtime: the library of ``sonoedge enhance``.

    stats = enhance_file("clip.mp4", Path("enhanced.mp4"), EnhancerConfig(bundle="bundle/"))

The file goes through the same pipeline as the daemon, in blocking mode (no frame is dropped), with
frame-parallel inference where it pays (:func:`.pipeline.frame_parallel_plan`: on a CPU with the
intra-op threads on auto, two model calls at once with half the cores each); the output (an image, a video or a folder of PNG frames) appears whole or not at all. The output is
checked before the model loads (:mod:`sonoedge.runtime.outputs`): never the input, never inside an
input folder, never an existing file or non-empty folder unless ``overwrite``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from sonoedge.runtime.bundle.cpu_choice import cpu_provider_only
from sonoedge.runtime.bundle.model import LoadedModel, choose_backend, load_model
from sonoedge.runtime.outputs import check_file, check_whole_folder
from sonoedge.runtime.stream.base import Sink, TappedSource, open_sink, open_source
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig, frame_parallel_plan
from sonoedge.runtime.stream.sinks import VIDEO_CODECS, ImageSink, SideBySide

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # a single-frame output


def enhance_file(input_path: str | Path, output: Path, cfg: EnhancerConfig, side_by_side: bool = False,
                 fps: float | None = None, model: LoadedModel | None = None, overwrite: bool = False) -> dict:
    """Run ``input_path`` through the pipeline (blocking) into ``output``; returns the stats snapshot
    with the structure guard's counts under ``"guard"`` (``{"enabled", "checked", "tripped": {reason: n}}``)
    and the model calls run at once under ``"infer_workers"``. A ``model`` the caller loaded is run one
    call at a time (its intra-op threads were chosen for that)."""
    check_output(output, [input_path, cfg.bundle or None], overwrite)
    own = model is None
    workers = 1
    if own:
        model, workers = load_for_blocking_run(cfg)
    try:
        enhancer = Enhancer(model, cfg)
        sink = open_output(output, fps, scale=model.scale, side_by_side=side_by_side, overwrite=overwrite)
        source = open_source(str(input_path), grey=cfg.grey)
        if side_by_side:  # the sink pairs each output with its input
            source = TappedSource(source, lambda frame: sink.inputs.__setitem__(frame.frame_id, frame.image))
        with sink:
            stats = Pipeline(lambda: source, enhancer, sink, PipelineConfig(mode="blocking", infer_workers=workers)).run()
        stats["guard"] = {"enabled": enhancer.guard.enabled, **enhancer.guard.counts()}
        stats["infer_workers"] = workers
        return stats
    finally:
        if own:
            model.close()


def load_for_blocking_run(cfg: EnhancerConfig) -> tuple[LoadedModel, int]:
    """(the model loaded for a blocking run, its pipeline's infer workers): the backend chosen once,
    then :func:`.pipeline.frame_parallel_plan` (on a CPU with auto intra-op threads: 2 workers, the
    session loaded with half the cores each)."""
    backend = choose_backend(cfg.backend, cfg.precision)
    workers, threads = frame_parallel_plan(cpu_provider_only(backend, cfg.providers), cfg.threads, live=False)
    return load_model(dataclasses.replace(cfg, backend=backend, threads=threads)), workers


def check_output(output: Path, inputs: list, overwrite: bool = False) -> None:
    """Refuse, in one sentence, an output that would overwrite an input or anything not ours."""
    output = Path(output)
    if output.suffix.lower() in IMAGE_OUTPUTS or output.suffix.lower() in VIDEO_CODECS:
        check_file(output, inputs, overwrite)
    elif "://" not in str(output):
        check_whole_folder(output, inputs, overwrite)


def open_output(output: Path, fps: float | None, scale: int = 1, side_by_side: bool = False,
                overwrite: bool = False) -> Sink:
    """The sink for ``output``: one image, or any registered sink (video, folder); wrapped side by side."""
    if output.suffix.lower() in IMAGE_OUTPUTS:
        sink = ImageSink(output, overwrite=overwrite)
    else:
        sink = open_sink(str(output), fps=fps, **({"overwrite": True} if overwrite else {}))
    return SideBySide(sink, scale) if side_by_side else sink
