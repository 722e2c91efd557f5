"""The device's frame stream (DESIGN.md, Frames in the runtime): sources, sinks, shm, pipeline, enhancer.

Importing this package registers every built-in source and sink, so ``open_source("clip.mp4")``
works after ``import sonoedge.runtime.stream`` with nothing else to call. ``shm://`` registers
too; it reports the missing native extension only when a channel is opened.
"""
from sonoedge.runtime.stream import shm, sinks, sources  # noqa: F401  (register their schemes)
from sonoedge.runtime.stream.base import SINKS, SOURCES, Sink, Source, open_sink, open_source

__all__ = ["SINKS", "SOURCES", "Sink", "Source", "open_sink", "open_source"]
