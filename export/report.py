"""The accuracy table of a bundle (docs/results/export.md), straight from its manifest.

    sonoedge report BUNDLE

Per precision: gate, pass/fail, max and p99 absolute error, PSNR, SSIM and LPIPS against the
PyTorch fp32 reference on the bundle's reference frames; then the INT8 calibration set and the
layers the sensitivity search kept out of INT8.
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
    if "int8" in manifest.precisions:
        lines += _int8_lines(manifest.precisions["int8"].extra)
    return "\n".join(lines)


def _int8_lines(e: dict) -> list[str]:
    """The INT8 calibration and layer-search lines, from the int8 entry's export diagnostics (free-form JSON)."""
    c, q = e["calibration"], e["quantization"]
    lines = ["", f"INT8: {q['format']}, activations {q['activations']}, weights "
                 f"{q['weights']}; calibration {c['method']} on {c['frames']} frames "
                 f"({', '.join(c['shapes'])}) from {c['source']}, sha256 {c['sha256'][:16]}.",
             f"Layers kept in float ({len(e['excluded_nodes'])} of {len(e['excluded_nodes']) + e['quantized_nodes']}): "
             + (", ".join(f"`{n}`" for n in e["excluded_nodes"]) or "none"),
             "Search trace (worst-frame PSNR/SSIM vs fp32 on held-out calibration frames + reference frames): "
             + "; ".join(f"{t['excluded']} out: {t['psnr']:.2f} dB / {t['ssim']:.4f}" for t in e["search"]["trace"])]
    if e["search"]["most_sensitive"]:
        lines.append("Most sensitive layers (PSNR with that layer alone in INT8): "
                     + ", ".join(f"`{s['node']}` {s['psnr_alone']:.1f} dB" for s in e["search"]["most_sensitive"]))
    return lines
