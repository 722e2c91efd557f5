"""``sonoedge device-check BUNDLE``: everything a device owes a bundle, measured on the device.

For every precision the device profile prefers and the bundle holds: build (or reuse) the TensorRT
engine through :func:`.engine.build_engine` (the one build), load it through the TensorRT backend,
check the bundle's reference frames against the stored PyTorch outputs under the precision's gate
(:mod:`.gates`, the same as ``sonoedge verify``), time pure inference at the profile's OPT shape
(p50/p99 over ``runs`` after ``warmup``), and read the DLA placement the build recorded. One JSON
and one Markdown report are written; nothing is judged by speed.

    report = device_check(DeviceCheckConfig(bundle="bundle/"), progress=print)

Needs TensorRT (and a GPU). Without it the check stops before anything else with one sentence
saying so (:func:`require_tensorrt`).
"""
from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.bundle.manifest import Manifest
from sonoedge.runtime.errors import SonoedgeError

Progress = Callable[[str], None]


@dataclasses.dataclass
class DeviceCheckConfig:
    bundle: str = ""  # bundle directory or .tar
    profile: str = ""  # device profile name; "" = detected
    precisions: tuple[str, ...] = ()  # () = every precision of the profile the bundle holds
    out: str = "device-check"  # folder for device_check.json and device_check.md
    cache: str = ""  # engine cache folder; "" = the default
    runs: int = 50  # timed inferences per precision
    warmup: int = 5
    legacy: bool = False  # TensorRT 10.x: builder flags + calibrator
    dla_core: int = -1  # -1 = GPU only
    allow_gpu_fallback: bool = False


def require_tensorrt() -> Any:
    """The tensorrt module, or SonoedgeError in one sentence saying what this machine lacks."""
    try:
        import tensorrt
    except (ImportError, OSError) as exc:
        raise SonoedgeError(f"no TensorRT on this machine ({exc}); device-check builds and times TensorRT engines, "
                            "so run it on the NVIDIA device (pip install 'sonoedge[tensorrt]' or JetPack), "
                            "or run `sonoedge verify BUNDLE` here to check the bundle with ONNX Runtime") from None
    return tensorrt


def device_check(cfg: DeviceCheckConfig, progress: Progress = print) -> dict[str, Any]:
    trt = require_tensorrt()
    from sonoedge.runtime.bundle.engine import build_engine, device_profile
    from sonoedge.runtime.bundle.manifest import load_manifest

    root, manifest = load_manifest(cfg.bundle or _default_bundle())
    profile = device_profile(root, manifest, cfg.profile or None, progress)
    wanted = cfg.precisions or tuple(p for p in profile.precisions if p in manifest.kept_precisions())
    dla = None if cfg.dla_core < 0 else cfg.dla_core
    results = {}
    for precision in wanted:
        progress(f"device-check: {precision}")
        started = time.perf_counter()
        plan = build_engine(root, precision, profile.name, cfg.cache or None, None, cfg.legacy, dla, False,
                            cfg.allow_gpu_fallback, progress)
        results[precision] = {"build_s": round(time.perf_counter() - started, 1), "plan": str(plan),
                              **_run_checks(root, manifest, precision, plan, dla, cfg, profile)}
    report = {"bundle": str(root), "model": manifest.model.name, "profile": profile.name,
              "tensorrt": str(trt.__version__), "machine": platform.node(), "runs": cfg.runs, "precisions": results}
    write_report(report, Path(cfg.out))
    return report


def _default_bundle() -> Path:
    from sonoedge.runtime.bundle import default_bundle_path

    return default_bundle_path()


def _run_checks(root: Path, manifest: Manifest, precision: str, plan: Path, dla: int | None,
                cfg: DeviceCheckConfig, profile: Any) -> dict[str, Any]:
    """Gate on the reference frames, latency at the profile's OPT, DLA placement from the sidecar."""
    from sonoedge.runtime.backends import create_backend
    from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
    from sonoedge.runtime.bundle.manifest import model_file
    from sonoedge.runtime.bundle.verify import load_references, run_frame

    stride = manifest.model.stride
    shape = (1, manifest.model.channels, *(-(-v // stride) * stride for v in profile.input.opt))
    with create_backend("tensorrt", model_file(root, manifest, precision), precision=precision, dla_core=dla,
                        cache_root=cfg.cache or None, bundle=root) as backend:
        pairs = load_references(root, manifest)
        outputs = [run_frame(backend.infer, image, stride) for image, _ in pairs]
        gate = check_gate(precision, compare_outputs(outputs, [expected for _, expected in pairs]))
        x = np.zeros(shape, np.float32)
        for _ in range(cfg.warmup):
            backend.infer(x)
        times = []
        for _ in range(cfg.runs):
            start = time.perf_counter()
            backend.infer(x)
            times.append((time.perf_counter() - start) * 1e3)
    sidecar = json.loads(plan.with_suffix(".json").read_text())
    return {"gate": gate.to_dict(), "shape": list(shape), "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)), "dla": sidecar.get("dla")}


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """device_check.json and device_check.md in ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "device_check.json", out / "device_check.md"
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(markdown(report))
    return paths


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# device-check: {report['model']} on {report['profile']}", "",
             f"TensorRT {report['tensorrt']}, machine `{report['machine']}`, bundle `{report['bundle']}`, "
             f"{report['runs']} timed runs per precision.", "",
             "| precision | gate | metrics | p50 ms | p99 ms | build s | DLA |", "|---|---|---|---|---|---|---|"]
    for precision, r in report["precisions"].items():
        gate = r["gate"]
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in gate["results"].items() if k != "frames")
        dla = "GPU only" if not r.get("dla") else (f"core {r['dla']['core']}: {len(r['dla']['on_dla'])} on DLA, "
                                                   f"{len(r['dla']['gpu_fallback'])} on GPU")
        status = "PASS" if gate["passed"] else "FAIL: " + "; ".join(gate["failures"])
        lines.append(f"| {precision} | {status} | {metrics} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['build_s']} | {dla} |")
    return "\n".join(lines) + "\n"
