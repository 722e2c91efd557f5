"""Rebuild the INT8 model of an existing bundle from its own fp32 ONNX, without the checkpoint.

    cfg = RequantizeConfig(calib="realus/clips,realus/hip_spj", holdout="realus/hc18,realus/itkpocus_handheld")
    manifest = requantize_bundle("runtime/default_bundle", cfg)

Steps: check the bundle (bundle.sha256, manifest); calibrate on ``calib`` (imaging-region crops,
one tile at a time) and run the INT8 search of export/int8.py on held-out calibration frames plus the
bundle's reference frames; check the Q/DQ graph against the TensorRT parser rules and gate it as
TensorRT computes it (export/bundle.py, :func:`tensorrt_checks`); re-gate EVERY precision of the bundle
against its stored PyTorch reference outputs (reference/*.torch.npy: the reference the checkpoint
made, so nothing here needs torch); measure INT8 against fp32 ONNX on ``holdout`` frames (refused
when one of them is also a calibration frame); rewrite manifest.json and bundle.sha256 with
runtime/bundle/manifest.py's writer. The new bundle replaces the old one only when everything passed.
The fp16 model and the references are kept as they are; LPIPS is not recomputed (it needs torch) and
the entries say so.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sonoedge.export import int8 as int8_mod
from sonoedge.export.bundle import _gate_entry, _ort_infer, int8_extra, tensorrt_checks
from sonoedge.export.config import RequantizeConfig
from sonoedge.export.frames import FrameSet, calibration_tiles, collect_frames, hash_frames
from sonoedge.runtime.atomic import atomic_dir
from sonoedge.runtime.bundle.engine import CALIBRATION_TILES
from sonoedge.runtime.bundle.gates import compare_outputs
from sonoedge.runtime.bundle.manifest import PRECISION_FILES, FidelityEntry, Manifest, load_manifest, write_manifest
from sonoedge.runtime.bundle.verify import load_references, run_frame
from sonoedge.runtime.errors import GateError, InputError
from sonoedge.runtime.frames import normalise, pad_to_stride

Progress = Callable[[str], None]
LPIPS_NOTE = "not recomputed by requantize (needs torch); see the export's value in git history"


def requantize_bundle(bundle: str | Path, cfg: RequantizeConfig, progress: Progress = print) -> Manifest:
    """Rebuild ``bundle``'s INT8 model in place (module doc); returns the new manifest."""
    if not cfg.calib:
        raise InputError("requantize needs calibration frames; pass --calib with real recordings")
    root, manifest = load_manifest(bundle)
    if Path(bundle).resolve() != root.resolve():
        raise InputError(f"bundle {bundle} is an archive; requantize a bundle directory (unpack the .tar first)")
    if "fp32" not in manifest.precisions:
        raise InputError(f"bundle {root} has no fp32 model to requantize from; re-export it with 'sonoedge export'")
    model = manifest.model
    size = cfg.calib_size or tuple(min(v, 256) for v in model.size_range.opt)
    refs = load_references(root, manifest)
    frames = collect_frames(cfg.calib, cfg.calib_frames + cfg.search_frames, size)
    if len(frames.images) < 2:
        raise InputError(f"calibration source {cfg.calib} gave {len(frames.images)} usable frame(s); need at least 2")
    n_search = min(cfg.search_frames, max(1, len(frames.images) // 4))
    calib = FrameSet(frames.images[:-n_search], frames.sources[:-n_search], frames.description)
    tiles = calibration_tiles(calib, size, model.stride)
    search = [pad_to_stride(normalise(im), model.stride)[0] for im in frames.images[-n_search:]]
    search += [pad_to_stride(normalise(image), model.stride)[0] for image, _ in refs]
    holdout = _holdout(cfg, size, frames) if cfg.holdout else None
    progress(f"requantize: {root}: {len(tiles)} calibration tiles of {tiles[0].shape[0]}x{tiles[0].shape[1]} from "
             f"{frames.description}, +{n_search} held out for the search, {len(refs)} reference frames")
    qcfg = int8_mod.Int8Config(method=cfg.calib_method, hist_bins=cfg.calib_bins, remainder=cfg.int8_remainder,
                               min_psnr=cfg.min_psnr, min_ssim=cfg.min_ssim)
    # replace: the new folder starts as a copy of every file of the old one (listed or not), so
    # nothing the user keeps there is lost; it takes the old one's place only when all gates pass
    with atomic_dir(root, replace=True) as new:
        shutil.copytree(root, new, dirs_exist_ok=True)
        manifest = _rebuild(new, manifest, cfg, qcfg, calib, tiles, search, refs, holdout, progress)
    progress(f"requantize: {root} rewritten (manifest.json, bundle.sha256)")
    return manifest


NEAR_DUPLICATE = 2.0  # grey levels: mean |difference| of 32 x 32 thumbnails below which two crops are one frame


def _holdout(cfg: RequantizeConfig, size: tuple[int, int], calib: FrameSet) -> FrameSet:
    """The holdout frames; refused when one is a calibration frame, exactly or re-encoded (a JPEG
    still cut from a calibration clip differs by a fraction of a grey level, not by its hash)."""
    held = collect_frames(cfg.holdout, cfg.holdout_frames, size)
    shared = {hash_frames([im]) for im in held.images} & {hash_frames([im]) for im in calib.images}
    near = _near_duplicates(held, calib)
    if shared or near:
        example = f" (e.g. {near[0][0]} ~ {near[0][1]})" if near else ""
        raise InputError(f"{max(len(shared), len(near))} holdout frame(s) from {cfg.holdout} are also calibration "
                         f"frames{example}; pass a holdout source that does not overlap --calib")
    return held


def _near_duplicates(held: FrameSet, calib: FrameSet) -> list[tuple[str, str]]:
    import cv2

    def thumbs(frames: FrameSet) -> np.ndarray:
        return np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in frames.images]).astype(np.float32)

    a, b = thumbs(held), thumbs(calib)
    out = []
    for i in range(len(a)):
        diff = np.abs(b - a[i]).mean(axis=(1, 2))
        j = int(diff.argmin())
        if diff[j] < NEAR_DUPLICATE:
            out.append((held.sources[i], calib.sources[j]))
    return out


def _rebuild(root: Path, manifest: Manifest, cfg: RequantizeConfig, qcfg: Any, calib: FrameSet,
             tiles: list[np.ndarray], search: list[np.ndarray], refs: list[tuple[np.ndarray, np.ndarray]],
             holdout: FrameSet | None, progress: Progress) -> Manifest:
    fp32_path, int8_path = root / PRECISION_FILES["fp32"], root / PRECISION_FILES["int8"]
    (root / "calibration").mkdir(exist_ok=True)
    ranges = root / "calibration" / "ort_ranges.json"
    ranges.unlink(missing_ok=True)  # the old ranges must not be reused as a cache
    try:
        result = int8_mod.search_int8(fp32_path, int8_path, tiles, search, qcfg, ranges, progress)
    except int8_mod.Int8SearchError as exc:
        if not cfg.allow_degraded:
            raise
        result = exc.result
    carried = np.stack(tiles[: cfg.bundle_calib_tiles])
    np.savez_compressed(root / CALIBRATION_TILES, tiles=carried)
    calibration = {"method": cfg.calib_method, "settings": result.calibrator, **calib.to_manifest(),
                   "tile_size": list(tiles[0].shape), "bundle_tiles": int(carried.shape[0]),
                   "ranges": "calibration/ort_ranges.json", "tiles": CALIBRATION_TILES}
    checks = tensorrt_checks(fp32_path, int8_path, search, progress)
    extra = int8_extra(result, qcfg, calibration, checks)
    if holdout is not None:
        extra["real_frames"] = real_frame_report(fp32_path, int8_path, holdout, manifest.model.stride, progress)
    failures: list[str] = []  # the int8 entry carries the emulated-TensorRT failures (_gate_entry)
    entries = {}
    for precision, old in manifest.precisions.items():
        infer = _ort_infer(root / old.file)
        outputs = [run_frame(infer, image, manifest.model.stride, manifest.model.scale) for image, _ in refs]
        metrics = compare_outputs(outputs, [expected for _, expected in refs])
        entry = _gate_entry(precision, metrics, old.file, cfg.allow_degraded, progress, LPIPS_NOTE,
                            extra if precision == "int8" else old.extra)
        # fp32/fp16 files are unchanged: their fidelity result stands; the new INT8 model has none yet
        entry = dataclasses.replace(entry, fidelity=_REBUILT if precision == "int8" else old.fidelity)
        entries[precision] = entry
        failures.extend(entry.failures)
    if "int8" not in entries:
        entries["int8"] = _gate_entry("int8", compare_outputs(
            [run_frame(_ort_infer(int8_path), im, manifest.model.stride, manifest.model.scale) for im, _ in refs],
            [expected for _, expected in refs]), int8_path.name, cfg.allow_degraded, progress, LPIPS_NOTE, extra)
        entries["int8"] = dataclasses.replace(entries["int8"], fidelity=_REBUILT)
        failures.extend(entries["int8"].failures)
    entries = _carry_fidelity(manifest, entries, int8_path, progress)
    failures.extend(f for f in (entries["int8"].fidelity.failures if entries["int8"].fidelity else ())
                    if entries["int8"].fidelity.status == "fail")
    if failures and not cfg.allow_degraded:
        raise GateError("; ".join(failures) + " (the bundle was left unchanged)")
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    new = dataclasses.replace(manifest, precisions=entries,
                              extra={**manifest.extra, "calibration": calibration, "requantize": settings})
    written = write_manifest(root, new)
    if manifest.cpu_choice is None:
        return written
    # the INT8 model changed, so the CPU choice the bundle carried is re-measured, not kept stale
    from sonoedge.export.cpu_choice import measure_cpu_choice

    choice = measure_cpu_choice(root, written, manifest.cpu_choice.rounds or 5, progress=progress)
    return write_manifest(root, dataclasses.replace(written, cpu_choice=choice))


_REBUILT = FidelityEntry(status="not checked", reason="INT8 model rebuilt by requantize; check it on real frames with "
                                                     "sonoedge verify BUNDLE --precision int8 --fidelity-frames DIR")


def _carry_fidelity(manifest: Manifest, entries: dict[str, Any], int8_path: Path, progress: Progress) -> dict[str, Any]:
    """The fidelity gate survives a requantize: fp32 and fp16 models are unchanged, so their
    entries are kept; the new INT8 model is run through the gate again on the frames the export's
    entry names the source of (the same pick: runtime/bundle/fidelity_check.load_frames)."""
    from sonoedge.runtime.bundle.fidelity_check import Hc18Annotations, check_model, load_frames

    out = dict(entries)
    for precision, old in manifest.precisions.items():
        if precision != "int8" and old.fidelity is not None and precision in out:
            out[precision] = dataclasses.replace(out[precision], fidelity=old.fidelity)
    old8 = manifest.precisions.get("int8")
    source = old8.fidelity.source if old8 is not None and old8.fidelity is not None else None
    if source and Path(source).exists():
        frames = load_frames(source, annotations=Hc18Annotations.beside(Path(source)))
        result = check_model(_ort_infer(int8_path), frames, manifest.model.stride)
        worst = result.worst
        progress(f"requantize: int8 fidelity {'PASS' if result.passed else 'FAIL'} on {len(result.frames)} real frames: "
                 f"erased {worst.get('erased', 0):g}, invented {worst.get('invented', 0):g}, "
                 f"low-pass r {worst.get('lowpass_corr', float('nan')):.3f}")
        out["int8"] = dataclasses.replace(out["int8"], fidelity=FidelityEntry(
            status="pass" if result.passed else "fail", degraded=not result.passed, failures=result.failures,
            gate=result.thresholds, results=worst, frames=tuple(f["frame"] for f in result.frames), source=source,
            per_frame=result.frames))
    elif old8 is not None and old8.fidelity is not None:
        out["int8"] = dataclasses.replace(out["int8"], fidelity=FidelityEntry(
            status="not checked", reason=f"requantized; the export's fidelity frames ({source}) are not here"))
    return out


def real_frame_report(fp32_path: Path, int8_path: Path, frames: FrameSet, stride: int,
                      progress: Progress) -> dict[str, Any]:
    """INT8 (as shipped, and as TensorRT computes it) against fp32 ONNX on real frames: mean and worst."""
    import tempfile

    from sonoedge.export.trt_emulate import emulate_tensorrt, run_emulated

    inputs = [pad_to_stride(normalise(im), stride)[0] for im in frames.images]
    reference = int8_mod.run_onnx(fp32_path, inputs)
    with tempfile.TemporaryDirectory(prefix="sonoedge-trt-") as tmp:
        emulate_tensorrt(int8_path, Path(tmp) / "emulated.onnx")
        emulated = run_emulated(Path(tmp) / "emulated.onnx", inputs)
    report: dict[str, Any] = {"reference": "fp32 onnx", **frames.to_manifest(), "sources": list(frames.sources)}
    for name, outputs in (("int8", int8_mod.run_onnx(int8_path, inputs)), ("tensorrt_emulation", emulated)):
        per = [compare_outputs([o], [r]) for o, r in zip(outputs, reference)]
        report[name] = {"psnr_mean": float(np.mean([p["psnr"] for p in per])), "psnr_min": min(p["psnr"] for p in per),
                        "ssim_mean": float(np.mean([p["ssim"] for p in per])), "ssim_min": min(p["ssim"] for p in per),
                        "max_abs": max(p["max_abs"] for p in per)}
        progress(f"requantize: {name} vs fp32 on {len(per)} holdout frames: PSNR mean {report[name]['psnr_mean']:.2f} / "
                 f"worst {report[name]['psnr_min']:.2f} dB, SSIM mean {report[name]['ssim_mean']:.4f} / "
                 f"worst {report[name]['ssim_min']:.4f}")
    return report
