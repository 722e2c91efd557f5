"""``sonoedge bench-export``: every precision timed in one interleaved run, speed against ONNX Runtime
fp32 (wall and CPU time), and the INT8 model's layout named (integer kernels need quantized outputs)."""
from __future__ import annotations

import re

from sonoedge.export.bench import bench_bundle
from sonoedge.export.bundle import ExportConfig, export_bundle


def _export(out, checkpoint, frames, quantize_outputs):
    cfg = ExportConfig(target="cpu", precisions=("fp32", "int8"), frames=str(frames), calib_frames=8, search_frames=4,
                       reference_frames=2, reference_size=(48, 48), calib_size=(48, 48), bundle_calib_tiles=2,
                       lpips=False, calib_bins=256, int8_quantize_outputs=quantize_outputs, int8_remainder="fp32",
                       allow_degraded=True)
    export_bundle(checkpoint, out, cfg, lambda line: None)
    return out


def _row(table, name):
    line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_cpu_int8_layout_is_named_and_timed_against_fp32(tmp_path, tiny_checkpoints, speckle_dir):
    ckpt = tiny_checkpoints["resnet"]
    cpu_layout = _export(tmp_path / "cpu", ckpt, speckle_dir, quantize_outputs=True)
    table = bench_bundle(str(cpu_layout), str(ckpt), rounds=2, threads=1, torch_eager=True)
    assert re.search(r"load average [\d.]+ at start, [\d.]+ at end", table)
    layout = re.search(r"INT8 model: .*; (\d+) of (\d+) weighted layers have quantized inputs AND outputs", table)
    assert layout and int(layout.group(1)) > 0, table
    fp32, int8, torch = _row(table, "onnxruntime fp32"), _row(table, "onnxruntime int8"), _row(table, "pytorch eager fp32")
    assert fp32[5] == fp32[6] == "1.00x" and torch[5] == "-"
    assert float(int8[3]) > 0 and int8[5].endswith("x") and int8[6].endswith("x")

    trt_layout = _export(tmp_path / "trt", ckpt, speckle_dir, quantize_outputs=False)
    table = bench_bundle(str(trt_layout), str(ckpt), rounds=1, threads=1, torch_eager=False)
    assert "pytorch" not in table
    assert re.search(r"INT8 model: .*; 0 of \d+ weighted layers have quantized inputs AND outputs", table), table


def test_export_records_the_fastest_passing_cpu_precision_and_auto_runs_it(tmp_path, tiny_checkpoints, speckle_dir):
    from sonoedge.runtime.bundle.manifest import load_manifest
    from sonoedge.runtime.bundle.model import ModelConfig, load_model

    out = tmp_path / "cpu"
    cfg = ExportConfig(target="cpu", precisions=("fp32", "int8"), frames=str(speckle_dir), calib_frames=8, search_frames=4,
                       reference_frames=2, reference_size=(48, 48), calib_size=(48, 48), bundle_calib_tiles=2,
                       lpips=False, calib_bins=256, int8_quantize_outputs=True, int8_remainder="fp32",
                       allow_degraded=True, fidelity_frames="none")
    export_bundle(tiny_checkpoints["resnet"], out, cfg, lambda line: None)
    _, manifest = load_manifest(out)
    choice = manifest.cpu_choice
    assert set(choice.cpu_ms) == {"fp32", "int8"} and choice.rounds == 5 and choice.frames == 2
    candidates = [p for p in choice.cpu_ms if p not in choice.excluded]
    assert choice.precision == min(candidates, key=choice.cpu_ms.get)
    assert all(not manifest.precisions[p].passed for p in choice.excluded)  # excluded = failed a gate
    assert re.match(r"\d+ QuantizeLinear", choice.int8_layout) and " 0 of " not in choice.int8_layout
    model = load_model(ModelConfig(bundle=str(out), providers=["CPUExecutionProvider"]))
    try:
        assert model.precision == choice.precision and "fastest passing" in model.precision_reason
    finally:
        model.close()
    skipped = tmp_path / "none"
    cfg = ExportConfig(target="cpu", precisions=("fp32",), frames=str(speckle_dir), reference_frames=1,
                       reference_size=(48, 48), lpips=False, choose_cpu_precision=False,
                       fidelity_frames="none")
    export_bundle(tiny_checkpoints["resnet"], skipped, cfg, lambda line: None)
    assert load_manifest(skipped)[1].cpu_choice is None
