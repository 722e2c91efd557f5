"""The edge student family (train/students.py): sizes, shapes, folding, and full INT8 export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sonoedge.train.distill import fold_batchnorm
from sonoedge.train.generators import count_parameters
from sonoedge.train.registries import GENERATORS, load_all
from sonoedge.train.students import SIZES, macs_per_pixel

load_all()
PARAMS = {"edge-nano": (1_000, 5_000), "edge-tiny": (15_000, 40_000), "edge-small": (80_000, 200_000), "edge-base": (350_000, 600_000)}


@pytest.mark.parametrize("name", [*sorted(SIZES), "edge-nano"])
def test_sizes_shapes_and_identity_start(name):
    g = GENERATORS.create(name).eval()
    lo, hi = PARAMS[name]
    assert lo <= count_parameters(g) <= hi
    x = torch.rand(2, 1, 2 * g.stride, 3 * g.stride) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and g.scale == 1
    assert torch.equal(y, x)  # zero-initialised head: the untrained student is the identity
    if name in SIZES:  # edge-nano trades tile-friendly widths for its MAC budget (students.py)
        assert all(w % 16 == 0 for w in SIZES[name][0])  # tensor-core friendly widths


def test_sr_student_has_the_teacher_scale():
    g = GENERATORS.create("edge-tiny", scale=4).eval()
    with torch.no_grad():
        assert g(torch.zeros(1, 1, 16, 24)).shape == (1, 1, 64, 96)


def test_macs_grow_with_size_and_stay_far_below_the_paper_generator():
    macs = {n: macs_per_pixel(GENERATORS.create(n)) for n in ("edge-tiny", "edge-small", "edge-base")}
    assert macs["edge-tiny"] < macs["edge-small"] < macs["edge-base"]
    resnet = macs_per_pixel(GENERATORS.create("resnet", ngf=16, n_blocks=4, n_down=2))
    assert resnet / macs["edge-small"] > 10


def test_nano_costs_under_a_tenth_of_the_shipped_default():
    """edge-nano is distilled from the embedded default (U-Net ngf 8, depth 6; docs/results/edge.md)."""
    nano = macs_per_pixel(GENERATORS.create("edge-nano"))
    default = macs_per_pixel(GENERATORS.create("unet", ngf=8, depth=6, dropout=0.0))
    assert nano <= 147 and default / nano >= 10
    g = GENERATORS.create("edge-nano").eval()
    assert g.stride == 8
    with torch.no_grad():  # every size that is a multiple of the stride, odd multiples included
        assert g(torch.zeros(1, 1, 24, 40)).shape == (1, 1, 24, 40)
    full_res = GENERATORS.create("edge-tiny", widths=(4, 8, 8), n_blocks=0, full_res=True)  # the variant it replaced
    assert macs_per_pixel(full_res) == 135


def test_nano_has_no_full_resolution_layer_but_the_output_shuffle(tmp_path):
    """Every conv of edge-nano runs at half resolution or below (the CPU and memory cost of a tiny net
    is its full-resolution tensors); the only full-resolution ops are DepthToSpace, Add and Clip."""
    from sonoedge.export.onnx_export import check_onnx, export_onnx

    g = GENERATORS.create("edge-nano").eval()
    sizes = []
    for m in g.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1]))
    with torch.no_grad():
        g(torch.zeros(1, 1, 64, 64))
    assert max(sizes) == 32
    ops = set(check_onnx(export_onnx(g, tmp_path / "m.onnx", channels=1, stride=g.stride))["op_types"])
    assert ops <= {"Conv", "Relu", "Add", "Resize", "DepthToSpace", "Clip", "Constant", "Identity"}


def test_batchnorm_folds_exactly_and_the_state_dict_keeps_its_keys():
    torch.manual_seed(0)
    g = GENERATORS.create("edge-small")
    g.train()
    for _ in range(3):  # give BatchNorm non-trivial statistics
        g(torch.randn(4, 1, 32, 32))
    for p in g.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    g.eval()
    x = torch.rand(1, 1, 32, 40) * 2 - 1
    with torch.no_grad():
        before = g(x)
        keys = set(g.state_dict())
        assert fold_batchnorm(g) == 7  # 3 encoder + 2 in the residual block + 2 decoder convs
        after = g(x)
    assert set(g.state_dict()) == keys
    assert torch.allclose(before, after, atol=1e-5)
    fresh = GENERATORS.create("edge-small").eval()
    fresh.load_state_dict(g.state_dict())
    with torch.no_grad():
        assert torch.allclose(fresh(x), after, atol=1e-6)


@pytest.mark.parametrize("name", ["edge-tiny", "edge-nano"])
def test_exports_to_full_int8_with_no_layer_in_float(tmp_path, name):
    from sonoedge.export.int8 import Int8Config, search_int8, weighted_nodes
    from sonoedge.export.onnx_export import check_onnx, export_onnx
    from sonoedge.export.qdq_rules import check_qdq

    torch.manual_seed(1)
    g = GENERATORS.create(name)
    g.train()
    g(torch.randn(8, 1, 32, 32))
    for p in g.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    onnx_path = export_onnx(g.eval(), tmp_path / "model.onnx", channels=1, stride=g.stride)
    ops = set(check_onnx(onnx_path)["op_types"])
    assert not ops & {"InstanceNormalization", "ConvTranspose", "BatchNormalization"}  # folded, nothing float-only
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(6)]
    inputs = [(t.astype(np.float32) / 127.5 - 1)[None, None] for t in tiles[:2]]
    result = search_int8(onnx_path, tmp_path / "model.int8.qdq.onnx", tiles[2:], inputs,
                         Int8Config(method="minmax"), tmp_path / "ranges.json", progress=lambda s: None)
    assert result.excluded == [] and result.quantized == len(weighted_nodes(onnx_path, ("Conv",)))
    check_qdq(result.path)
