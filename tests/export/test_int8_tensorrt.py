"""The INT8 model is what TensorRT wants: no INT32 bias dequantize, the parser's rules, an fp16
float remainder, chunked calibration, the emulated-TensorRT gate, real references, and the
requantize path (also on the shipped default bundle)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.export import frames as frames_mod
from sonoedge.export.bundle import ExportConfig, export_bundle
from sonoedge.export.int8 import Int8Config, TileReader, calibrate_ranges, search_int8
from sonoedge.export.qdq_rules import check_qdq, qdq_problems
from sonoedge.runtime.errors import InputError

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "runtime" / "default_bundle"


def _quiet(line: str) -> None:
    pass


def _dq_input_types(path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path))
    inits = {t.name: t.data_type for t in model.graph.initializer}
    zps = {n.output[0]: inits.get(n.input[2]) for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return {n.name: inits.get(n.input[0], zps.get(n.input[0])) for n in model.graph.node if n.op_type == "DequantizeLinear"}


@pytest.fixture(scope="module")
def resnet_int8(tmp_path_factory, tiny_checkpoints, speckle_dir):
    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.runtime.frames import normalise, pad_to_stride
    from sonoedge.train.checkpoint import load_generator

    root = tmp_path_factory.mktemp("int8")
    g, info = load_generator(tiny_checkpoints["resnet"])
    fp32 = export_onnx(g, root / "m.onnx", 1, info["stride"])
    frames = frames_mod.collect_frames(speckle_dir, 10, (32, 32))
    tiles = frames_mod.calibration_tiles(frames, (32, 32), info["stride"])
    search = [pad_to_stride(normalise(t), info["stride"])[0] for t in tiles[-2:]]
    result = search_int8(fp32, root / "q.onnx", tiles[:-2], search, Int8Config(method="minmax"), root / "r.json", _quiet)
    return fp32, result, tiles


def test_int8_model_has_no_int32_dequantize_and_passes_the_parser_rules(resnet_int8):
    _, result, _ = resnet_int8
    types = _dq_input_types(result.path)
    assert types and set(types.values()) == {3}, {k: v for k, v in types.items() if v != 3}  # 3 = INT8 only
    assert qdq_problems(result.path) == []
    assert check_qdq(result.path)["passed"]


def test_int8_float_remainder_is_fp16_with_fp16_scales(resnet_int8):
    import onnx

    _, result, _ = resnet_int8
    model = onnx.load(str(result.path))
    assert result.remainder["dtype"] == "fp16" and result.remainder["opset"] == 19
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 19
    inits = {t.name: t.data_type for t in model.graph.initializer}
    scales = {inits[n.input[1]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert scales == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    assert result.trace[-1]["remainder"].startswith("fp16") and result.trace[-1]["passed"]


def _graph(tmp_path: Path, zp=np.int8(0), scale=0.1, w_scale=(0.1, 0.2), axis=0, weight_dtype=np.int8, extra=()):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"), numpy_helper.from_array(np.array(zp), "zp"),
             numpy_helper.from_array(np.ones((2, 1, 3, 3), weight_dtype), "w_q"),
             numpy_helper.from_array(np.array(w_scale, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(len(w_scale), weight_dtype), "wzp")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "zp"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "ws", "wzp"], ["w"], name="dq_w", axis=axis),
             helper.make_node("Conv", ["xd", "w"], ["output"], name="conv", pads=[1, 1, 1, 1]), *extra]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_parser_rules_name_the_node(tmp_path):
    from onnx import helper

    assert qdq_problems(_graph(tmp_path)) == []
    cases = {
        "INT32": dict(w_scale=(0.1, 0.2), weight_dtype=np.int32),
        "must be INT8 and 0": dict(zp=np.int8(3)),
        "zero, negative or non-finite": dict(scale=-0.1),
        "output-channel axis 0": dict(axis=2, w_scale=(0.1, 0.2, 0.3)),
        "2 scales for 1 channels": dict(axis=1, w_scale=(0.1, 0.2)),
        "not in sonoedge's TensorRT 10 parser table": dict(extra=[helper.make_node("Det", ["w"], ["d"], name="det")]),
    }
    for needle, kwargs in cases.items():
        problems = qdq_problems(_graph(tmp_path, **kwargs))
        assert any(needle in p for p in problems), (needle, problems)
    with pytest.raises(InputError, match="node 'dq_w'"):
        check_qdq(_graph(tmp_path, weight_dtype=np.int32))


def test_calibration_feeds_one_tile_per_call_with_the_same_ranges(resnet_int8, tmp_path, monkeypatch):
    """ONNX Runtime's calibrators keep every output of every input one collect_data call reads:
    the calibration must call it once per tile, and accumulating across calls must give the ranges
    of the whole set."""
    import json

    from onnxruntime.quantization import calibrate

    fp32, _, tiles = resnet_int8
    seen = []
    original = calibrate.MinMaxCalibrater.collect_data

    def spy(self, reader):
        before = len(seen)
        inner = reader.get_next

        def counting():
            item = inner()
            if item is not None:
                seen.append(before)
            return item

        reader.get_next = counting
        original(self, reader)
        assert len(seen) - before <= 1, "more than one tile held in one collect_data call"

    cfg = Int8Config(method="minmax")
    monkeypatch.setattr(calibrate.MinMaxCalibrater, "collect_data", spy)
    calibrate_ranges(fp32, TileReader(tiles, "input"), cfg, tmp_path / "chunked.json")
    assert len(seen) == len(tiles)
    monkeypatch.setattr(calibrate.MinMaxCalibrater, "collect_data", original)
    calibrator = calibrate.create_calibrator(fp32, list(cfg.op_types), augmented_model_path=str(tmp_path / "a.onnx"),
                                             calibrate_method=calibrate.CalibrationMethod.MinMax,
                                             extra_options={"symmetric": True})
    calibrator.collect_data(TileReader(tiles, "input"))  # the whole set in one call
    calibrate.save_tensors_data(calibrator.compute_data(), tmp_path / "whole.json")
    chunked, whole = (json.loads((tmp_path / n).read_text()) for n in ("chunked.json", "whole.json"))
    assert chunked == whole


def test_emulated_tensorrt_casts_an_fp32_remainder_and_keeps_an_fp16_one(resnet_int8, tmp_path):
    import onnx

    from sonoedge.export.int8 import quantize
    from sonoedge.export.trt_emulate import emulate_tensorrt, emulated_metrics, has_fp16_remainder
    from sonoedge.runtime.frames import normalise, pad_to_stride

    fp32, result, tiles = resnet_int8
    assert has_fp16_remainder(result.path) and not has_fp16_remainder(fp32)
    assert "as typed" in emulate_tensorrt(result.path, tmp_path / "e1.onnx")["remainder"]
    plain = quantize(fp32, tmp_path / "plain.onnx", Int8Config(method="minmax"), TileReader(tiles, "input"),
                     result.path.with_name("r.json"))
    assert not has_fp16_remainder(plain)
    assert "cast to fp16" in emulate_tensorrt(plain, tmp_path / "e2.onnx")["remainder"]
    assert has_fp16_remainder(tmp_path / "e2.onnx") and qdq_problems(tmp_path / "e2.onnx") == []
    from sonoedge.export.int8 import run_onnx

    inputs = [pad_to_stride(normalise(t), 4)[0] for t in tiles[:2]]
    metrics = emulated_metrics(tmp_path / "e2.onnx", inputs, run_onnx(fp32, inputs))
    assert 30 < metrics["psnr"] < 300 and onnx.load(str(tmp_path / "e2.onnx")).graph.input


def _cfg(**over):
    base = dict(target="jetson-orin-nano-8gb", precisions=("fp32", "fp16", "int8"), calib_frames=12, search_frames=4,
                reference_frames=2, reference_size=(48, 48), calib_size=(64, 64), bundle_calib_tiles=4, lpips=False,
                calib_bins=256, fidelity_frames="none")  # accuracy, not fidelity, is tested here
    base.update(over)
    return ExportConfig(**base)


def test_real_calibration_frames_make_real_references(tmp_path, tiny_checkpoints, speckle_dir):
    manifest = export_bundle(tiny_checkpoints["unet"], tmp_path / "b", _cfg(calib=str(speckle_dir)), _quiet)
    assert "phantom" not in manifest.reference.source and speckle_dir.name in manifest.reference.source
    calib = manifest.extra["calibration"]
    assert "phantom" not in calib["source"]
    int8 = manifest.precisions["int8"].extra
    assert int8["tensorrt_parser"]["passed"] and int8["tensorrt_emulation"]["passed"]
    assert int8["quantization"]["bias"].startswith("float") and int8["quantization"]["remainder"]["dtype"] in ("fp16", "fp32")


@pytest.fixture(scope="module")
def other_speckle_dir(tmp_path_factory, speckle_dir) -> Path:
    """Frames that are not the calibration frames: the speckle frames mirrored."""
    root = tmp_path_factory.mktemp("speckle2")
    for i, path in enumerate(sorted(speckle_dir.glob("*.png"))[:12]):
        cv2.imwrite(str(root / f"other_{i:02d}.png"), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)[::-1, ::-1])
    return root


def test_requantize_rebuilds_int8_from_the_bundles_fp32(tmp_path, tiny_checkpoints, speckle_dir, other_speckle_dir, capsys):
    from sonoedge.export.requantize import RequantizeConfig, requantize_bundle
    from sonoedge.runtime.bundle.manifest import load_manifest
    from sonoedge.runtime.bundle.verify import verify_bundle

    out = tmp_path / "b"
    export_bundle(tiny_checkpoints["unet"], out, _cfg(frames=str(speckle_dir), int8_remainder="fp32"), _quiet)
    cfg = RequantizeConfig(calib=str(speckle_dir), holdout=str(other_speckle_dir), calib_frames=10, search_frames=3,
                           holdout_frames=6, calib_size=(64, 64), calib_bins=256, bundle_calib_tiles=3)
    manifest = requantize_bundle(out, cfg, _quiet)
    _, reread = load_manifest(out)
    assert reread.files == manifest.files and set(reread.precisions) == {"fp32", "fp16", "int8"}
    int8 = reread.precisions["int8"]
    assert int8.passed and int8.extra["quantization"]["remainder"]["dtype"] == "fp16"
    assert int8.extra["real_frames"]["frames"] == 6 and int8.extra["real_frames"]["int8"]["psnr_min"] > 35
    assert reread.extra["requantize"]["holdout"] == str(other_speckle_dir)
    # the unchanged precisions keep their fidelity entry; the rebuilt INT8 model says it has none yet
    assert reread.precisions["fp32"].fidelity.status == "not checked" and "none" in reread.precisions["fp32"].fidelity.reason
    assert int8.fidelity.status == "not checked" and "requantize" in int8.fidelity.reason
    assert all(c.ok for c in verify_bundle(out))
    # the CPU choice is kept, re-timed with the rebuilt INT8 model
    assert set(reread.cpu_choice.cpu_ms) == {"fp32", "fp16", "int8"} and reread.cpu_choice.precision in reread.cpu_choice.cpu_ms
    # a holdout that overlaps the calibration frames is refused, and the bundle is left as it was
    before = (out / "bundle.sha256").read_bytes()
    assert main(["requantize", str(out), "--calib", str(speckle_dir), "--holdout", str(speckle_dir),
                 "--calib-size", "64", "--calib-frames", "10"]) == 2
    assert "also calibration frames" in capsys.readouterr().err and (out / "bundle.sha256").read_bytes() == before
    jpegs = tmp_path / "jpeg"  # the calibration frames re-encoded: not bit-identical, still the same frames
    jpegs.mkdir()
    for path in sorted(speckle_dir.glob("*.png"))[:6]:
        cv2.imwrite(str(jpegs / (path.stem + ".jpg")), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_JPEG_QUALITY, 95])
    with pytest.raises(InputError, match="also calibration frames"):
        requantize_bundle(out, RequantizeConfig(calib=str(speckle_dir), holdout=str(jpegs), calib_size=(64, 64),
                                                calib_frames=10, search_frames=3), _quiet)
    assert main(["requantize", str(out)]) == 2
    assert "--calib" in capsys.readouterr().err


def test_shipped_default_bundle_int8_is_tensorrt_ready():
    from sonoedge.runtime.bundle.manifest import load_manifest

    _, manifest = load_manifest(DEFAULT_BUNDLE)
    path = DEFAULT_BUNDLE / manifest.precisions["int8"].file
    assert set(_dq_input_types(path).values()) == {3}
    assert qdq_problems(path) == []
    # the fp16 remainder needs opset 19: TensorRT 8.5/8.6 devices build from model.onnx with flags instead
    assert any("opset 19 is outside TensorRT 8.6" in p for p in qdq_problems(path, ("8.6",)))
    extra = manifest.precisions["int8"].extra
    assert extra["tensorrt_emulation"]["passed"] and "phantom" not in extra["calibration"]["source"]


def test_shipped_default_bundle_int8_on_real_holdout_frames(realus):
    """INT8 vs fp32 ONNX on the real frames the default bundle was NOT calibrated on (README rule)."""
    from sonoedge.export.frames import collect_frames
    from sonoedge.export.requantize import real_frame_report
    from sonoedge.runtime.bundle.manifest import load_manifest

    _, manifest = load_manifest(DEFAULT_BUNDLE)
    holdout = manifest.extra["requantize"]["holdout"].replace("../shared/data/realus", str(realus))
    frames = collect_frames(holdout, 64, (256, 256))
    report = real_frame_report(DEFAULT_BUNDLE / "model.onnx", DEFAULT_BUNDLE / "model.int8.qdq.onnx", frames,
                               manifest.model.stride, _quiet)
    for name in ("int8", "tensorrt_emulation"):
        assert report[name]["psnr_min"] >= 45.0 and report[name]["ssim_min"] >= 0.99, report[name]


def test_int8_failing_as_tensorrt_computes_it_fails_the_export(tmp_path, tiny_checkpoints, speckle_dir, monkeypatch):
    from sonoedge.export import trt_emulate
    from sonoedge.runtime.errors import GateError

    bad = {"max_abs": 1.0, "p99_abs": 0.5, "mean_abs": 0.1, "psnr": 20.0, "ssim": 0.5, "frames": 1.0}
    monkeypatch.setattr(trt_emulate, "emulated_metrics", lambda *a: bad)
    cfg = _cfg(frames=str(speckle_dir), precisions=("fp32", "int8"))
    with pytest.raises(GateError, match="emulated TensorRT int8: PSNR 20"):
        export_bundle(tiny_checkpoints["unet"], tmp_path / "b", cfg, _quiet)
    assert not (tmp_path / "b").exists()
    manifest = export_bundle(tiny_checkpoints["unet"], tmp_path / "d", _cfg(frames=str(speckle_dir), precisions=("fp32", "int8"),
                                                                           allow_degraded=True), _quiet)
    int8 = manifest.precisions["int8"]
    assert not int8.passed and int8.degraded and any("emulated TensorRT" in f for f in int8.failures)
