"""The accuracy table of a bundle (docs/results/export.md), straight from its manifest.

    sonoedge report BUNDLE

Per precision: gate, pass/fail, max and p99 absolute error, PSNR, SSIM and LPIPS against the
PyTorch fp32 reference on the bundle's reference frames; then the INT8 calibration set and the
layers the sensitivity search kept out of INT8; and each precision's fidelity gate on real frames.
"""
from __future__ import annotations


def report_markdown(bundle: str) -> str:
    """The Markdown accuracy table of ``bundle`` (a directory or .tar), read from its manifest."""
    from sonoedge.runtime.bundle.manifest import load_manifest

    root, manifest = load_manifest(bundle)
    model, ref = manifest.model, manifest.reference
    checkpoint = manifest.source_checkpoint.sha256[:12] if manifest.source_checkpoint else "?"
    target = manifest.target.name if manifest.target else "?"
    inputs, source, sources = (ref.inputs, ref.source, ref.sources) if ref else ((), None, None)
    lines = [f"Bundle `{root.name}`: generator `{model.generator}` {model.kwargs or {}}, task {model.task} "
             f"x{model.scale}, checkpoint sha256 {checkpoint}, target `{target}`.",
             f"Reference: {len(inputs)} frames from {source or '?'} ({', '.join(sources or ())}).",
             "", "| precision | gate | result | max abs | p99 abs | PSNR dB | SSIM | LPIPS |", "|---|---|---|---|---|---|---|---|"]
    trunk = ""
    for name, entry in manifest.precisions.items():
        r = entry.results
        gate = ", ".join(f"{k} {'<=' if k == 'max_abs' else '>='} {v:g}" for k, v in entry.gate.items())
        status = "pass" if entry.passed else ("DEGRADED" if entry.degraded else "FAIL")
        lpips = f"{r['lpips']:.4f}" if "lpips" in r else "-"
        lines.append(f"| {name} | {gate} | {status} | {r['max_abs']:.3g} | {r['p99_abs']:.3g} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.5f} | {lpips} |")
        trunk = entry.lpips_trunk or trunk
    lines += ["", f"LPIPS trunk: {trunk}.", "PSNR/SSIM over [-1, 1] model outputs (data range 2), worst frame."]
    lines += _fidelity_lines(manifest)
    if "int8" in manifest.precisions:
        lines += _int8_lines(manifest.precisions["int8"].extra)
    return "\n".join(lines)


def _fidelity_lines(manifest) -> list[str]:
    """One line per precision: the fidelity gate on real frames (runtime/bundle/gates.py), as recorded."""
    lines = ["", "Fidelity gate (each precision run as deployed on real frames, measured against its input):"]
    for name, entry in manifest.precisions.items():
        f = entry.fidelity
        if f is None:
            lines.append(f"- {name}: not checked (the bundle predates the fidelity gate)")
        elif f.status == "not checked":
            lines.append(f"- {name}: not checked ({f.reason})")
        else:
            w = f.results
            status = "pass" if f.passed else ("DEGRADED" if f.degraded else "FAIL")
            lines.append(f"- {name}: {status} on {len(f.frames)} frames from {f.source}: worst erased {w.get('erased', 0):g}, "
                         f"invented {w.get('invented', 0):g}, low-pass r {w.get('lowpass_corr', float('nan')):.3f}, "
                         f"bright->black {100 * w.get('bright_to_black', float('nan')):.1f} %"
                         + (f"; {len(f.failures)} failure(s), first: {f.failures[0]}" if f.failures else ""))
    return lines


def _int8_lines(e: dict) -> list[str]:
    """The INT8 calibration and layer-search lines, from the int8 entry's export diagnostics (free-form JSON)."""
    c, q = e["calibration"], e["quantization"]
    lines = ["", f"INT8: {q['format']}, activations {q['activations']}, weights "
                 f"{q['weights']}; calibration {c['method']} on {c['frames']} frames "
                 f"({', '.join(c['shapes'])}) from {c['source']}, sha256 {c['sha256'][:16]}.",
             f"Layers kept in float ({len(e['excluded_nodes'])} of {len(e['excluded_nodes']) + e['quantized_nodes']}): "
             + (", ".join(f"`{n}`" for n in e["excluded_nodes"]) or "none"),
             "Search trace (worst-frame PSNR/SSIM vs fp32 on held-out calibration frames + reference frames): "
             + "; ".join(f"{t['excluded']} out{', ' + t['remainder'] + ' remainder' if 'remainder' in t else ''}: "
                         f"{t['psnr']:.2f} dB / {t['ssim']:.4f}" for t in e["search"]["trace"])]
    if "remainder" in q:
        rem = q["remainder"]
        lines.append(f"Bias: {q.get('bias', 'quantized (INT32)')}; float remainder: {rem.get('dtype', '?')}"
                     + (f", kept fp32: {', '.join(rem['fp32_nodes'])}" if rem.get("fp32_nodes") else ""))
    if "tensorrt_emulation" in e:
        t = e["tensorrt_emulation"]
        lines.append(f"TensorRT parser rules ({'/'.join(e['tensorrt_parser']['tensorrt'])}): pass; as TensorRT computes it "
                     f"(emulated, {t['remainder']}): {'pass' if t['passed'] else 'FAIL'}, PSNR {t['results']['psnr']:.2f} dB / "
                     f"SSIM {t['results']['ssim']:.4f} vs fp32 ONNX on {int(t['results']['frames'])} frames.")
    if "real_frames" in e:
        r = e["real_frames"]
        lines.append(f"INT8 vs fp32 ONNX on {r['frames']} holdout frames from {r['source']}: PSNR mean "
                     f"{r['int8']['psnr_mean']:.2f} / worst {r['int8']['psnr_min']:.2f} dB, SSIM mean "
                     f"{r['int8']['ssim_mean']:.4f} / worst {r['int8']['ssim_min']:.4f}.")
    if e["search"]["most_sensitive"]:
        lines.append("Most sensitive layers (PSNR with that layer alone in INT8): "
                     + ", ".join(f"`{s['node']}` {s['psnr_alone']:.1f} dB" for s in e["search"]["most_sensitive"]))
    return lines
