"""Everything TensorRT in one folder, as Polygraphy keeps it: the backend, the builder, the
legacy INT8 calibrator, the engine cache and the CUDA calls. ``tensorrt`` and ``cuda-python`` are imported inside the
functions that need them, so importing this package registers the backend and nothing more.
"""
from sonoedge.runtime.backends.tensorrt import backend as _backend  # noqa: F401  (registers "tensorrt")
