"""sonoedge.runtime: what runs on the device. numpy, OpenCV and one inference engine; never torch.

The root of this package is the kernel every stage imports: ``errors``, ``atomic``, ``digest``, ``registry``,
``config``, ``precision``, ``frames`` (the frame contract), ``metrics``, ``readers`` and ``region``.
The wings stand on the kernel in one direction (DESIGN.md, Layout; tests/test_layout.py):

    backends/   ONNX Runtime and, in backends/tensorrt/, everything TensorRT
    bundle/     the bundle contract: manifest, gates, verify, model loading, engine plans and builds
    stream/     sources, sinks, shm, the pipeline and the enhancer
    service/    the daemon, health and metrics, logging, the runtime benchmark, unit and example config

A wing imports the kernel and the wings listed above it, never one below.
"""
