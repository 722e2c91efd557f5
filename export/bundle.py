"""Checkpoint -> device bundle (DESIGN.md, Contracts: Bundle).

    cfg = ExportConfig(target="jetson", precisions=("fp32", "fp16", "int8"), frames="recordings/")
    manifest = export_bundle("best.pt", "bundle/", cfg)

Steps, each reported on ``progress``:
1. resolve the target (one device profile or a family) and check the requested precisions;
2. load the generator (eval mode) and export model.onnx (opset 17, dynamic N/H/W, checker,
   shape inference, optional onnxslim);
3. reference frames (real frames from ``frames``; imaging regions cropped, padded to the stride on
   the fly) and the PyTorch outputs for them -> reference/;
4. per precision: build the model (fp16 conversion; int8 calibration + sensitivity search), run the
   references with ONNX Runtime and apply the gate of runtime/bundle/gates.py (plus LPIPS, reported);
   then the fidelity gate: the precision's ONNX model run as deployed on real frames
   (``fidelity_frames``, default the realus recordings) and measured against its input
   (runtime/bundle/fidelity_check.py). A model that erases or invents structure is refused, naming
   the frames and the measures; without real frames the manifest says ``fidelity: not checked``;
5. device profiles, calibration artefacts, engine_plan.json (TensorRT 10/11 builds and trtexec
   lines), manifest.json with the sha256 of every file, and bundle.sha256 over all of them and the
   manifest (runtime/bundle/manifest.py).

The bundle is written into a temporary directory and moved into place only when every requested
precision passed its gates (or ``allow_degraded`` keeps the failures, flagged ``degraded: true``);
otherwise GateError and no bundle. The output is checked before any work: a folder that is not
empty (or an existing BUNDLE.tar) is refused unless ``overwrite``, and even then a folder is replaced
only when it is an earlier bundle (every file in it listed in its manifest); it is never the
checkpoint or a frames folder, nor inside one.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import tarfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from sonoedge.devices.profiles import PROFILE_DIR, Target, resolve_target
from sonoedge.export import fp16 as fp16_mod
from sonoedge.export import int8 as int8_mod
from sonoedge.export.config import ExportConfig
from sonoedge.export.cpu_choice import measure_cpu_choice
from sonoedge.export.frames import FrameSet, calibration_tiles, collect_frames, phantom_frames
from sonoedge.export.onnx_export import (
    DYNAMIC_AXES,
    INPUT_NAME,
    OUTPUT_NAME,
    check_onnx,
    export_onnx,
    simplify_onnx,
    stable_instance_norm,
)
from sonoedge.runtime.atomic import atomic_dir, atomic_path
from sonoedge.runtime.bundle.engine import CALIBRATION_TILES, engine_plan
from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
from sonoedge.runtime.bundle.manifest import (
    PRECISION_FILES,
    FidelityEntry,
    Manifest,
    ModelInfo,
    PrecisionEntry,
    Reference,
    SizeRange,
    SourceCheckpoint,
    write_manifest,
)
from sonoedge.runtime.bundle.manifest import Target as ManifestTarget
from sonoedge.runtime.bundle.verify import run_frame
from sonoedge.runtime.digest import sha256_file
from sonoedge.runtime.errors import GateError, InputError
from sonoedge.runtime.frames import normalise, pad_to_stride
from sonoedge.runtime.outputs import check_file, check_whole_folder
from sonoedge.runtime.precision import PRECISIONS

Progress = Callable[[str], None]
TOOLS = ("sonoedge", "torch", "onnx", "onnxruntime", "onnxconverter-common", "onnxslim", "numpy", "opencv-python-headless")


def check_precisions(target: Target, precisions: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise InputError(f"unknown precision(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PRECISIONS)}")
    unsupported = [p for p in precisions if p not in target.precisions]
    if unsupported:
        raise InputError(f"target '{target.name}' does not run {', '.join(unsupported)} "
                         f"(its profiles list {', '.join(target.precisions)}); drop it from --precisions")
    if "fp32" not in precisions:
        precisions = ("fp32", *precisions)  # the fp32 graph is the parity anchor and the legacy TRT input
    return tuple(p for p in PRECISIONS if p in precisions)


def _tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _torch_infer(generator: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return infer


def _ort_infer(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    sess = int8_mod._session(path)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _write_references(root: Path, frames: FrameSet, outputs: list[np.ndarray]) -> Reference:
    (root / "reference").mkdir()
    inputs, torch_outputs = [], []
    for i, (image, out) in enumerate(zip(frames.images, outputs)):
        png, npy = f"reference/frame_{i:03d}.png", f"reference/frame_{i:03d}.torch.npy"
        if not cv2.imwrite(str(root / png), image):
            raise InputError(f"cannot write reference frame {root / png}")
        np.save(root / npy, out.astype(np.float32), allow_pickle=False)
        inputs.append(png)
        torch_outputs.append(npy)
    return Reference(inputs=tuple(inputs), torch_outputs=tuple(torch_outputs), outputs={},
                     source=frames.description, sources=tuple(frames.sources), sha256=frames.sha256)


def _calibration_sets(cfg: ExportConfig, target: Target, stride: int, ref_source: str,
                      progress: Progress) -> tuple[FrameSet, list[np.ndarray], list[np.ndarray], tuple[int, int]]:
    """(calibration frames, their tiles, held-out search inputs (1,1,H,W) float32, tile size)."""
    size = cfg.calib_size or tuple(min(v, 256) for v in target.input.opt)
    source = cfg.calib or ref_source
    skip = cfg.reference_frames if source == ref_source else 0
    total = cfg.calib_frames + cfg.search_frames
    frames = (collect_frames(source, total, size, skip_first=skip) if source is not None
              else phantom_frames(total, size, skip_first=skip))
    source = source or frames.description
    if len(frames.images) < 2:
        raise InputError(f"calibration source {source} gave {len(frames.images)} usable frame(s); need at least 2")
    n_search = min(cfg.search_frames, max(1, len(frames.images) // 4))
    calib = FrameSet(frames.images[:-n_search], frames.sources[:-n_search], frames.description)
    held = frames.images[-n_search:]
    tiles = calibration_tiles(calib, size, stride)
    search_inputs = [pad_to_stride(normalise(im), stride)[0] for im in held]
    progress(f"export: calibration set: {len(tiles)} frames of {tiles[0].shape[0]}x{tiles[0].shape[1]} from {source} "
             f"(+{len(held)} held out for the layer search), sha256 {calib.sha256[:12]}")
    return calib, tiles, search_inputs, size


def _gate_entry(precision: str, metrics: dict[str, float], file: str, allow_degraded: bool,
                progress: Progress, lpips_trunk: str, extra: dict[str, Any]) -> PrecisionEntry:
    result = check_gate(precision, metrics)
    # an INT8 model that fails as TensorRT computes it fails its precision, whatever ONNX Runtime says
    failures = (*result.failures, *extra.get("tensorrt_emulation", {}).get("failures", ()))
    passed = not failures
    degraded = not passed and allow_degraded
    status = "PASS" if passed else ("DEGRADED (kept by --allow-degraded)" if degraded else "FAIL")
    progress(f"export: {precision:5} {status}: max {metrics['max_abs']:.3g}, p99 {metrics['p99_abs']:.3g}, "
             f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.5f}, LPIPS {metrics.get('lpips', float('nan')):.4f}")
    return PrecisionEntry(file=file, passed=passed, failures=failures, gate=dict(result.thresholds),
                          results=dict(result.metrics), degraded=degraded, reference="pytorch fp32",
                          lpips_trunk=lpips_trunk, extra=extra)


@dataclasses.dataclass
class _FidelityRun:
    """The fidelity gate of an export: the real frames (or why there are none) and the model's geometry."""

    frames: list[Any] | None
    source: str | None
    reason: str | None
    stride: int
    allow_degraded: bool
    progress: Progress

    @classmethod
    def prepare(cls, cfg: ExportConfig, info: dict[str, Any], progress: Progress) -> "_FidelityRun":
        from sonoedge.runtime.bundle.fidelity_check import Hc18Annotations, default_realus, load_frames

        stride = int(info["stride"])
        if info.get("task", "enhance") != "enhance":
            return cls(None, None, f"not an enhancement model (task {info.get('task')}): the fidelity measures compare "
                                   "frames of one geometry", stride, cfg.allow_degraded, progress)
        if cfg.fidelity_frames == "none":
            reason = "--fidelity-frames none: not checked on purpose"
            progress(f"export: WARNING: the fidelity gate is NOT checked ({reason}); the manifest says so")
            return cls(None, None, reason, stride, cfg.allow_degraded, progress)
        source = default_realus() if cfg.fidelity_frames in ("auto", "") else Path(cfg.fidelity_frames)
        if source is None:
            reason = ("no real frames: pass --fidelity-frames DIR (the realus recordings were not found at "
                      "$SONOEDGE_REALUS or ../shared/data/realus)")
            progress("export: WARNING: " + "!" * 8 + f" the fidelity gate is NOT checked: {reason}; the manifest says "
                     "'fidelity: not checked' " + "!" * 8)
            return cls(None, None, reason, stride, cfg.allow_degraded, progress)
        notes = (Hc18Annotations(cfg.fidelity_annotations) if cfg.fidelity_annotations
                 else Hc18Annotations.beside(source))
        frames = load_frames(source, cfg.fidelity_per_group, notes)
        outlines = sum(f.outline is not None for f in frames)
        progress(f"export: fidelity gate on {len(frames)} real frame(s) from {source} ({outlines} with an expert "
                 "skull outline)")
        return cls(frames, str(source), None, stride, cfg.allow_degraded, progress)

    def check(self, precision: str, infer: Callable[[np.ndarray], np.ndarray]) -> FidelityEntry:
        """Run the gate for one precision; GateError naming frames and measures unless allow_degraded."""
        from sonoedge.runtime.bundle.fidelity_check import check_model

        if self.frames is None:
            return FidelityEntry(status="not checked", reason=self.reason)
        result = check_model(infer, self.frames, self.stride)
        status = "pass" if result.passed else "fail"
        kept = "" if result.passed else (" (kept by --allow-degraded)" if self.allow_degraded else "")
        worst = result.worst
        self.progress(f"export: {precision:5} fidelity {status.upper()}{kept}: worst of {len(result.frames)} frames: "
                      f"erased {worst.get('erased', 0):g}, invented {worst.get('invented', 0):g}, "
                      f"low-pass r {worst.get('lowpass_corr', float('nan')):.3f}, "
                      f"bright->black {100 * worst.get('bright_to_black', float('nan')):.1f} %")
        if not result.passed and not self.allow_degraded:
            shown = "; ".join(result.failures[:6]) + (f"; ... {len(result.failures) - 6} more" if len(result.failures) > 6 else "")
            raise GateError(f"{precision}: the model fails the fidelity gate on real frames from {self.source}: {shown} "
                            "(pass --allow-degraded to export it with the failure recorded)")
        return FidelityEntry(status=status, degraded=not result.passed, failures=result.failures,
                             gate=result.thresholds, results=worst, frames=tuple(f["frame"] for f in result.frames),
                             source=self.source, per_frame=result.frames)


def _foreign(folder: Path) -> list[Path]:
    """Files in ``folder`` that are not part of the bundle its manifest describes (all of them
    when it has no readable manifest): a folder with any is never replaced."""
    try:
        listed = set(json.loads((folder / "manifest.json").read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    return [p for p in sorted(folder.rglob("*")) if not p.is_dir()
            and p.relative_to(folder).as_posix() not in listed | {"manifest.json", "bundle.sha256"}]


def check_output(out: Path, cfg: ExportConfig, checkpoint: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that would replace an input or anything not an earlier bundle."""
    inputs = [checkpoint, cfg.frames, cfg.calib, cfg.lpips_trunk,
              cfg.fidelity_frames if cfg.fidelity_frames not in ("auto", "none", "") else None, cfg.fidelity_annotations]
    check_whole_folder(out, inputs, overwrite, foreign=_foreign)
    if cfg.tar:
        check_file(out.with_name(out.name + ".tar"), inputs, overwrite)


def export_bundle(checkpoint: str | Path, out: str | Path, cfg: ExportConfig, progress: Progress = print,
                  overwrite: bool = False) -> Manifest:
    """Write the bundle at ``out`` (and ``out.tar`` when cfg.tar); returns the manifest."""
    from sonoedge.export.lpips_metric import build_metric, mean_lpips
    from sonoedge.train.checkpoint import load_generator

    check_output(Path(out), cfg, Path(checkpoint), overwrite)
    target = resolve_target(cfg.target)
    precisions = check_precisions(target, tuple(cfg.precisions))
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(f"checkpoint {checkpoint} does not exist; pass the .pt file written by 'sonoedge train'")
    ckpt_sha = sha256_file(checkpoint)
    generator, info = load_generator(checkpoint)
    if sha256_file(checkpoint) != ckpt_sha:  # a training run replaced best.pt while we read it
        raise InputError(f"checkpoint {checkpoint} changed while it was being read; export from a copy of it")
    stride, scale, channels = int(info["stride"]), int(info.get("scale", 1)), int(info.get("channels", 1))
    if channels != 1:
        raise InputError(f"checkpoint {checkpoint} has {channels} channels; sonoedge bundles carry grey (1-channel) models")
    progress(f"export: {checkpoint.name}: generator '{info['generator']}' ({info['task']}, x{scale}, stride {stride}) "
             f"-> target {target.name} ({', '.join(target.profile_names())}), precisions {', '.join(precisions)}")
    ref_size = tuple(max(16, v // scale) for v in cfg.reference_size)  # outputs are scale x larger
    ref_source = cfg.frames or cfg.calib  # real calibration frames make real references too
    if ref_source is None:
        progress("export: no --frames given: parity is measured on phantom frames; pass real recordings for a real check")
        refs = phantom_frames(cfg.reference_frames, ref_size)
    else:
        refs = collect_frames(ref_source, cfg.reference_frames, ref_size)
    progress(f"export: {len(refs.images)} reference frames from {refs.description} "
             f"({', '.join(sorted({f'{i.shape[0]}x{i.shape[1]}' for i in refs.images}))})")
    torch_infer = _torch_infer(generator)
    torch_out = [run_frame(torch_infer, im, stride, scale) for im in refs.images]
    lpips = build_metric(cfg.lpips_trunk, progress) if cfg.lpips else None
    fidelity = _FidelityRun.prepare(cfg, info, progress)
    out = Path(out)
    with atomic_dir(out, replace=overwrite) as root:
        fp32_path = root / PRECISION_FILES["fp32"]
        export_onnx(generator, fp32_path, channels, stride)
        if cfg.simplify:
            simplify_onnx(fp32_path)
        if cfg.stable_instance_norm:
            progress(f"export: {stable_instance_norm(fp32_path)} InstanceNormalization node(s) rewritten as two-pass")
        graph = check_onnx(fp32_path)
        progress(f"export: model.onnx opset {graph['opset']}, {graph['nodes']} nodes, ONNX checker and shape inference OK"
                 + (" (simplified with onnxslim)" if cfg.simplify else ""))
        reference = _write_references(root, refs, torch_out)
        entries: dict[str, PrecisionEntry] = {}
        failures: list[str] = []

        def gate(precision: str, path: Path, extra: dict[str, Any]) -> None:
            infer = _ort_infer(path)
            outputs = [run_frame(infer, im, stride, scale) for im in refs.images]
            metrics = compare_outputs(outputs, torch_out)
            if lpips is not None:
                metrics["lpips"] = mean_lpips(lpips, outputs, torch_out)
            trunk = lpips.trunk_description if lpips is not None else "not computed (--no-lpips)"
            entry = _gate_entry(precision, metrics, path.name, cfg.allow_degraded, progress, trunk, extra)
            entry = dataclasses.replace(entry, fidelity=fidelity.check(precision, infer))  # raises unless allowed
            entries[precision] = entry
            failures.extend(entry.failures)

        gate("fp32", fp32_path, {"onnx": graph, "simplified": cfg.simplify,
                                 "stable_instance_norm": cfg.stable_instance_norm})
        if "fp16" in precisions:
            path = root / PRECISION_FILES["fp16"]
            gate("fp16", path, {"conversion": fp16_mod.convert_fp16(fp32_path, path)})
        calibration: dict[str, Any] | None = None
        if "int8" in precisions:
            calibration = _int8(root, fp32_path, cfg, target, stride, gate, progress, refs, ref_source)
        if failures and not cfg.allow_degraded:
            raise GateError("; ".join(failures) + " (pass --allow-degraded to keep failing precisions, flagged)")
        _copy_profiles(root, target)
        manifest = _manifest(checkpoint, ckpt_sha, info, target, cfg, entries, reference, calibration)
        plan = engine_plan(manifest, target.profiles, list(entries))
        (root / "engine_plan.json").write_text(json.dumps(plan, indent=2) + "\n")
        manifest = write_manifest(root, manifest)
        if cfg.choose_cpu_precision:  # timed on the written bundle (its files hashed), then recorded
            choice = measure_cpu_choice(root, manifest, cfg.cpu_timing_rounds, progress=progress)
            manifest = write_manifest(root, dataclasses.replace(manifest, cpu_choice=choice))
    progress(f"export: bundle written to {out} ({_size_mb(out):.2f} MB)")
    if cfg.tar:
        tar_path = out.with_name(out.name + ".tar")
        with atomic_path(tar_path) as tmp, tarfile.open(tmp, "w") as tar:
            tar.add(out, arcname=out.name)
        progress(f"export: tar written to {tar_path}")
    return manifest


def _int8(root: Path, fp32_path: Path, cfg: ExportConfig, target: Target, stride: int, gate: Callable,
          progress: Progress, refs: FrameSet, ref_source: str | None) -> dict[str, Any]:
    calib, tiles, search_inputs, size = _calibration_sets(cfg, target, stride, ref_source, progress)
    # the search must satisfy the gate on the held-out calibration frames AND on the reference frames
    # the bundle is verified against (a search set from another device can pass while they fail)
    search_inputs = search_inputs + [pad_to_stride(normalise(im), stride)[0] for im in refs.images]
    (root / "calibration").mkdir()
    qcfg = int8_mod.Int8Config(method=cfg.calib_method, quantize_outputs=cfg.int8_quantize_outputs,
                               hist_bins=cfg.calib_bins, remainder=cfg.int8_remainder)
    path = root / PRECISION_FILES["int8"]
    ranges = root / "calibration" / "ort_ranges.json"
    try:
        result = int8_mod.search_int8(fp32_path, path, tiles, search_inputs, qcfg, ranges, progress)
    except int8_mod.Int8SearchError as exc:
        if not cfg.allow_degraded:
            raise
        progress(f"export: {exc} (kept by --allow-degraded)")
        result = exc.result
    carried = np.stack(tiles[: cfg.bundle_calib_tiles])
    np.savez_compressed(root / CALIBRATION_TILES, tiles=carried)
    calibration = {"method": cfg.calib_method, "settings": result.calibrator, **calib.to_manifest(), "tile_size": list(tiles[0].shape),
                   "bundle_tiles": int(carried.shape[0]), "ranges": "calibration/ort_ranges.json",
                   "tiles": CALIBRATION_TILES}
    checks = tensorrt_checks(fp32_path, path, search_inputs, progress)  # emulation failures fail the int8 entry
    gate("int8", path, int8_extra(result, qcfg, calibration, checks))
    return calibration


def int8_extra(result: Any, qcfg: Any, calibration: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """The int8 precision entry's diagnostics (manifest ``extra``; docs/results/export.md reads them)."""
    ranked = sorted(result.sensitivity.items(), key=lambda kv: kv[1])
    return {
        "calibration": calibration,
        "quantization": {"format": "QDQ", "activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel",
                         "bias": "float (not quantized)", "op_types": list(qcfg.op_types),
                         "outputs_quantized": qcfg.quantize_outputs, "remainder": result.remainder},
        "excluded_nodes": result.excluded, "quantized_nodes": result.quantized,
        "search": {"passed": result.passed_search, "metrics": result.search_metrics, "trace": result.trace,
                   "most_sensitive": [{"node": n, "psnr_alone": round(v, 3)} for n, v in ranked[:8]]},
        "tensorrt_parser": checks["parser"], "tensorrt_emulation": checks["emulation"],
    }


def tensorrt_checks(fp32_path: Path, int8_path: Path, inputs: list[np.ndarray], progress: Progress) -> dict[str, Any]:
    """The parser check (InputError naming the node) and the emulated-TensorRT gate on ``inputs``
    (real held-out and reference frames, padded) against the fp32 ONNX model."""
    import tempfile

    from sonoedge.export.qdq_rules import check_qdq
    from sonoedge.export.trt_emulate import emulate_tensorrt, emulated_metrics

    parser = check_qdq(int8_path)
    progress(f"export: int8 Q/DQ graph passes the TensorRT {'/'.join(parser['tensorrt'])} parser rules")
    with tempfile.TemporaryDirectory(prefix="sonoedge-trt-") as tmp:
        emulated = Path(tmp) / "emulated.onnx"
        how = emulate_tensorrt(int8_path, emulated)
        metrics = emulated_metrics(emulated, inputs, int8_mod.run_onnx(fp32_path, inputs))
    result = check_gate("int8", metrics)
    failures = [f"emulated TensorRT {f}" for f in result.failures]
    progress(f"export: int8 as TensorRT computes it (emulated, {how['remainder']}): "
             f"{'PASS' if result.passed else 'FAIL'}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.5f} "
             f"on {len(inputs)} frames vs fp32 ONNX")
    return {"parser": parser, "emulation": {**how, "passed": result.passed, "failures": failures,
                                            "gate": dict(result.thresholds), "results": dict(result.metrics),
                                            "reference": "fp32 onnx", "frames": "held-out calibration + reference frames"}}


def _copy_profiles(root: Path, target: Target) -> None:
    (root / "devices").mkdir()
    for profile in target.profiles:
        shutil.copyfile(PROFILE_DIR / f"{profile.name}.toml", root / "devices" / f"{profile.name}.toml")


def _manifest(checkpoint: Path, ckpt_sha: str, info: dict[str, Any], target: Target, cfg: ExportConfig,
              entries: dict[str, PrecisionEntry], reference: Reference, calibration: dict[str, Any] | None) -> Manifest:
    """The manifest of the bundle (``files`` is filled by write_manifest); preprocess and postprocess
    are the schema's defaults (minus1_1, reflect padding, grey, region auto; crop and paste back)."""
    size = target.input.aligned(int(info["stride"]))
    model = ModelInfo(name=checkpoint.stem, generator=info["generator"], kwargs=info.get("kwargs", {}),
                      task=info["task"], scale=int(info.get("scale", 1)), channels=int(info.get("channels", 1)),
                      stride=int(info["stride"]), input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                      dynamic_axes=tuple(sorted(DYNAMIC_AXES[INPUT_NAME].values())),
                      size_range=SizeRange(min=tuple(size.min), opt=tuple(size.opt), max=tuple(size.max)))
    names = target.profile_names()
    return Manifest(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        model=model, precisions=entries, reference=reference,
        source_checkpoint=SourceCheckpoint(sha256=ckpt_sha, name=checkpoint.name),
        tools=_tool_versions(),
        target=ManifestTarget(name=target.name, profiles=tuple(names), files=tuple(f"devices/{n}.toml" for n in names)),
        engine_plan="engine_plan.json",
        extra={"calibration": calibration,
               "export": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}},
    )


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
