"""The export configurations, the single source of ``sonoedge export``'s and ``sonoedge requantize``'s
defaults; light to import, so building the command line costs nothing."""
from __future__ import annotations

import dataclasses

from sonoedge.runtime.precision import PRECISIONS

CALIB_METHODS = ("entropy", "percentile", "minmax")  # ONNX Runtime's CalibrationMethod names, lower case


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What ``sonoedge export`` builds; every default of its command line is here."""

    target: str = "jetson"
    precisions: tuple[str, ...] = PRECISIONS
    frames: str | None = None  # reference frames source (folder, video, DICOM, ...); None = --calib, else phantom
    calib: str | None = None  # calibration source(s), comma-separated; default: the reference source
    calib_method: str = "entropy"
    calib_bins: int = 2048  # histogram bins for entropy/percentile (TensorRT's 2048)
    calib_frames: int = 300  # "several hundred frames", as TensorRT's INT8 calibration guidance asks
    calib_size: tuple[int, int] | None = None  # default: the target's opt size, at most 256 x 256
    search_frames: int = 8  # held out from calibration, drive the int8 sensitivity search
    reference_frames: int = 4
    reference_size: tuple[int, int] = (256, 256)  # output crops of at most this size keep the bundle small
    bundle_calib_tiles: int = 16  # tiles carried for the TensorRT legacy calibrator on the device
    # the fidelity gate (runtime/bundle/gates.py) on real frames: a folder or file; "auto" = the realus
    # recordings when present ($SONOEDGE_REALUS or ../shared/data/realus), else not checked (loud);
    # "none" = not checked, on purpose (said so in the manifest)
    fidelity_frames: str = "auto"
    fidelity_per_group: int = 3  # files per sub-folder (kind of recording) of fidelity_frames
    fidelity_annotations: str | None = None  # HC18 outlines; None = annotations/hc18 beside the frames folder
    allow_degraded: bool = False
    simplify: bool = False
    stable_instance_norm: bool = False  # two-pass InstanceNorm graph (onnx_export.stable_instance_norm)
    lpips: bool = True  # LPIPS is reported (not gated); off only to save the VGG16 cost
    lpips_trunk: str | None = None
    int8_quantize_outputs: bool = False
    int8_remainder: str = "fp16"  # type of the INT8 model's float (non-quantized) part where the gate allows
    # time every kept precision on ONNX Runtime's CPU provider here and record the fastest that passed
    # its gates (export/cpu_choice.py): what the runtime's "auto" precision on the CPU then runs
    choose_cpu_precision: bool = True
    cpu_timing_rounds: int = 5  # interleaved rounds over the reference frames
    tar: bool = False


@dataclasses.dataclass(frozen=True)
class RequantizeConfig:
    """What ``sonoedge requantize`` does; every default of its command line is here."""

    calib: str = ""  # calibration source(s), comma-separated (required)
    holdout: str | None = None  # frames for the INT8-vs-fp32 quality report; never calibration frames
    calib_method: str = "entropy"
    calib_bins: int = 2048
    calib_frames: int = 300
    calib_size: tuple[int, int] | None = None  # default: the bundle's opt size, at most 256 x 256
    search_frames: int = 8
    holdout_frames: int = 64
    bundle_calib_tiles: int = 16
    min_psnr: float | None = None  # INT8 search target above the gate, on the search frames
    min_ssim: float | None = None
    int8_remainder: str = "fp16"
    allow_degraded: bool = False
