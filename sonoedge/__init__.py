"""sonoedge: ultrasound enhancement from workstation training to real-time device inference.

Subpackages (see DESIGN.md): ``sonoedge.train`` (torch), ``sonoedge.export`` (torch + onnx),
``sonoedge.runtime`` (numpy, OpenCV, ONNX Runtime / TensorRT; never torch) and
``sonoedge.devices`` (device profiles).
"""

__version__ = "0.1.0"
