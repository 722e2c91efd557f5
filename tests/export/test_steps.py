"""The export steps one by one: frame sampling, ONNX export/check, the two-pass InstanceNorm, fp16,
the int8 calibration reader and config."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.export import frames as frames_mod
from sonoedge.export.int8 import Int8Config, TileReader, weighted_nodes
from sonoedge.runtime.errors import InputError


def test_collect_frames_is_deterministic_and_bounded(speckle_dir):
    a = frames_mod.collect_frames(speckle_dir, 6, (40, 64))
    b = frames_mod.collect_frames(speckle_dir, 6, (40, 64))
    assert len(a.images) == 6 and a.sha256 == b.sha256
    assert all(im.dtype == np.uint8 and im.shape[0] <= 40 and im.shape[1] <= 64 for im in a.images)
    # the black border is outside the imaging region: crops hold only image
    assert min(int(im.min()) for im in a.images) >= 30
    skipped = frames_mod.collect_frames(speckle_dir, 6, (40, 64), skip_first=6)
    assert skipped.sha256 != a.sha256 and not set(skipped.sources) & set(a.sources)
    tiles = frames_mod.calibration_tiles(a, (44, 64), stride=8)
    assert {t.shape for t in tiles} == {(48, 64)}


def test_frame_source_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        frames_mod.collect_frames(tmp_path / "nope", 4, (32, 32))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no readable"):
        frames_mod.collect_frames(tmp_path, 4, (32, 32))


def test_onnx_export_checks_and_two_pass_instance_norm(tmp_path, tiny_checkpoints):
    import onnxruntime as ort
    import torch

    import sonoedge.train.generators  # noqa: F401
    from sonoedge.export.onnx_export import check_onnx, export_onnx, stable_instance_norm
    from sonoedge.train.registries import GENERATORS

    torch.manual_seed(0)
    g = GENERATORS.create("resnet", ngf=4, n_blocks=1, n_down=1).eval()
    path = export_onnx(g, tmp_path / "m.onnx", channels=1, stride=g.stride)
    info = check_onnx(path)
    assert info["opset"] >= 17 and "InstanceNormalization" in info["op_types"]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 24, 40)).astype(np.float32)  # dynamic N, H, W
    with torch.no_grad():
        ref = g(torch.from_numpy(x)).numpy()
    assert stable_instance_norm(path) == 5
    info = check_onnx(path)
    assert "InstanceNormalization" not in info["op_types"] and "ReduceMean" in info["op_types"]
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-4


def test_fp16_keeps_io_float32_and_norms_in_fp32(tmp_path, tiny_checkpoints):
    import onnx

    import sonoedge.train.generators  # noqa: F401
    from sonoedge.export.fp16 import convert_fp16
    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.train.registries import GENERATORS

    g = GENERATORS.create("unet", ngf=4, depth=3, dropout=0.0).eval()
    export_onnx(g, tmp_path / "m.onnx", channels=1, stride=g.stride)
    info = convert_fp16(tmp_path / "m.onnx", tmp_path / "m16.onnx")
    model = onnx.load(str(tmp_path / "m16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert "InstanceNormalization" in info["fp32_ops"] and info["casts"] > 2
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def test_int8_pieces(tmp_path):
    with pytest.raises(InputError, match="calibration method"):
        Int8Config(method="mse")
    with pytest.raises(InputError, match="bins"):
        Int8Config(hist_bins=128)
    tiles = [np.full((16, 16), v, np.uint8) for v in (0, 255, 128)]
    reader = TileReader(tiles, "input")
    first = [b["input"] for b in reader]
    assert len(first) == 3 and first[0].shape == (1, 1, 16, 16) and first[1].max() == pytest.approx(1.0)
    reader.set_range(1, 2)
    assert len(list(iter(reader.get_next, None))) == 1
    assert len([b for b in reader]) == 1  # iter rewinds within the range
    reader.set_range(0, len(reader))
    assert len([b for b in reader]) == 3
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"], name="")], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 4, 4])])
    onnx.save(helper.make_model(graph), str(tmp_path / "r.onnx"))
    assert weighted_nodes(tmp_path / "r.onnx", ("Conv",)) == []
    with pytest.raises(InputError, match="unique non-empty names"):
        weighted_nodes(tmp_path / "r.onnx", ("Relu",))


def test_quota_allocation_is_water_filling():
    assert frames_mod.allocate_quotas([1, 1, 1, 100, 369], 300) == [1, 1, 1, 100, 197]
    assert frames_mod.allocate_quotas([5, 5], 4) == [2, 2]
    assert frames_mod.allocate_quotas([2, 3], 100) == [2, 3]
    assert sum(frames_mod.allocate_quotas([1] * 10 + [369, 100, 21, 5], 300)) == 300


@pytest.mark.parametrize("method", ["entropy", "percentile", "minmax"])
def test_int8_calibration_methods(tmp_path, tiny_checkpoints, speckle_dir, method):
    from sonoedge.export.int8 import search_int8
    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.runtime.frames import normalise, pad_to_stride
    from sonoedge.train.checkpoint import load_generator

    g, info = load_generator(tiny_checkpoints["resnet"])
    fp32 = export_onnx(g, tmp_path / "m.onnx", 1, info["stride"])
    frames = frames_mod.collect_frames(speckle_dir, 10, (32, 32))
    tiles = frames_mod.calibration_tiles(frames, (32, 32), info["stride"])
    search = [pad_to_stride(normalise(t), info["stride"])[0] for t in tiles[-2:]]
    result = search_int8(fp32, tmp_path / "q.onnx", tiles[:-2], search, Int8Config(method=method, hist_bins=256),
                         tmp_path / "ranges.json", progress=lambda s: None)
    assert result.passed_search and result.quantized + len(result.excluded) == 8  # stem, 2 down, 2 block, 2 up, head
    assert (tmp_path / "ranges.json").is_file() and (tmp_path / "q.onnx").is_file()
    assert result.calibrator["symmetric"] is True
    if method == "entropy":
        assert result.calibrator["num_bins"] == 256 and result.calibrator["num_quantized_bins"] == 128
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    zero_points = [n for n in onnx.load(str(tmp_path / "q.onnx")).graph.initializer if "zero_point" in n.name]
    assert zero_points and all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)  # symmetric


def test_int8_search_keeps_the_most_sensitive_layers_in_float(tmp_path, speckle_dir, monkeypatch):
    """With a gate the fully quantized model misses, the search must measure every layer and exclude
    them most-sensitive first, either passing or failing with the best candidate reported."""
    import torch

    from sonoedge.runtime.bundle import gates

    monkeypatch.setitem(gates.GATES, "int8", gates.Gate(psnr_min=47.0, ssim_min=0.97))  # above full-int8 (~38-40 dB)

    import sonoedge.train.generators  # noqa: F401
    from sonoedge.export.int8 import Int8SearchError, search_int8
    from sonoedge.export.onnx_export import export_onnx
    from sonoedge.runtime.frames import normalise, pad_to_stride
    from sonoedge.train.registries import GENERATORS

    torch.manual_seed(0)
    g = GENERATORS.create("resnet", ngf=8, n_blocks=2, n_down=2).eval()
    fp32 = export_onnx(g, tmp_path / "m.onnx", 1, g.stride)
    frames = frames_mod.collect_frames(speckle_dir, 10, (32, 32))
    tiles = frames_mod.calibration_tiles(frames, (32, 32), g.stride)
    search = [pad_to_stride(normalise(t), g.stride)[0] for t in tiles[-2:]]
    cfg = Int8Config(method="minmax", max_excluded_fraction=0.5)
    try:
        result = search_int8(fp32, tmp_path / "q.onnx", tiles[:-2], search, cfg, tmp_path / "r.json", progress=lambda s: None)
    except Int8SearchError as exc:
        result = exc.result
        assert not result.passed_search and "best PSNR" in str(exc)
    assert result.sensitivity, "the fully quantized model passed a gate set above its PSNR"
    order = sorted(result.sensitivity, key=result.sensitivity.get)
    assert len(result.sensitivity) == 10
    assert result.excluded == order[:len(result.excluded)] and 1 <= len(result.excluded) <= 5
    assert result.trace[0]["excluded"] == 0 and len(result.trace) >= 2
