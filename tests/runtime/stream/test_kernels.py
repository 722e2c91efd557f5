"""The native pre/post-processing kernels (cpp_bridge/python/kernels_py.cpp): bit for bit the
contract of runtime/frames.py, every argument checked before a pointer is used, and the enhancer's
output the same with them as with the numpy passes."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.frames import Frame, denormalise, normalise, pad_to_stride
from sonoedge.runtime.stream.enhancer import EnhancerConfig

kernels = pytest.importorskip("sonoedge.runtime._kernels",
                              reason="the native kernels are not built (no C++ compiler or pybind11 at install); "
                                     "the enhancer runs the numpy passes instead")


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    yield model
    model.close()


@pytest.mark.parametrize("h,w,stride", [(1, 1, 4), (1, 5, 4), (2, 3, 64), (5, 3, 8), (17, 31, 4), (381, 600, 32),
                                        (16, 16, 64), (600, 336, 64)])
def test_normalise_pad_is_bit_identical_to_normalise_of_the_reflect_pad(h, w, stride):
    rng = np.random.default_rng(h * 1000 + w)
    frame = rng.integers(0, 256, (h + 4, w + 9), dtype=np.uint8)
    crop = frame[3:3 + h, 5:5 + w]  # a view with a row stride wider than the crop, as the enhancer's
    ref = normalise(pad_to_stride(crop, stride)[0])[0, 0]
    out = np.full(ref.shape, np.nan, np.float32)
    kernels.normalise_pad(crop, out)
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))


def test_normalise_pad_writes_into_a_row_strided_buffer_and_nothing_beyond():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (10, 13), dtype=np.uint8)
    big = np.full((16, 24), 7.0, np.float32)
    kernels.normalise_pad(image, big[:, :16])
    assert np.array_equal(big[:, :16], normalise(pad_to_stride(image, 16)[0])[0, 0][:, :16])
    assert (big[:, 16:] == 7.0).all()


def test_denormalise_is_bit_identical_on_a_dense_sweep_and_every_rounding_tie():
    sweep = np.linspace(-1.01, 1.01, 3_000_000, dtype=np.float32)
    ties = (np.arange(-2, 258, dtype=np.float32) + np.float32(0.5)) / np.float32(127.5) - np.float32(1.0)
    edges = np.array([-3e38, -2.0, -1.0, -0.0, 0.0, 1.0, 1.0000001, 2.0, 3e38, 1e-40, -1e-40], np.float32)
    for values in (sweep, ties, edges, np.nextafter(ties, np.float32(2)), np.nextafter(ties, np.float32(-2))):
        for width in (1, 15, 16, 17, 37):  # the vector loop, its tail and a row of the tail alone
            n = values.size // width * width or width
            plane = np.resize(values, n).reshape(-1, width)
            out = np.empty(plane.shape, np.uint8)
            kernels.denormalise(plane, out)
            with np.errstate(over="ignore"):  # the reference's product overflows to inf at +-3e38: 255 / 0 all the same
                assert np.array_equal(out, denormalise(plane)), width


def test_a_single_row_is_taken_whatever_stride_numpy_gives_its_axis():
    row = np.arange(40, dtype=np.uint8)[None, :]
    zero_stride = np.lib.stride_tricks.as_strided(row, shape=(1, 40), strides=(0, 1))
    out = np.empty((4, 48), np.float32)
    kernels.normalise_pad(zero_stride, out)
    assert np.array_equal(out, normalise(pad_to_stride(row, 16)[0])[0, 0][:4])
    u8 = np.empty((1, 40), np.uint8)
    kernels.denormalise(out[:1, :40], u8)
    assert np.array_equal(u8, row)


def test_denormalise_reads_a_crop_of_the_model_output_and_leaves_it_as_it_was():
    rng = np.random.default_rng(2)
    y = rng.uniform(-1.1, 1.1, (1, 1, 64, 96)).astype(np.float32)
    before = y.copy()
    out = np.empty((50, 77), np.uint8)
    kernels.denormalise(y[0, 0, :50, :77], out)
    assert np.array_equal(out, denormalise(y[..., :50, :77])) and np.array_equal(y, before)


@pytest.mark.parametrize("call,message", [
    (lambda: kernels.normalise_pad(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)), "src: expected dtype uint8"),
    (lambda: kernels.normalise_pad(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float64)), "dst: expected dtype float32"),
    (lambda: kernels.normalise_pad(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)), r"src: expected a 2-D array, got shape \(4, 4, 3\)"),
    (lambda: kernels.normalise_pad(np.zeros((8, 8), np.uint8), np.zeros((4, 8), np.float32)), "smaller than src"),
    (lambda: kernels.normalise_pad(np.zeros((8, 8), np.uint8)[:, ::2], np.zeros((8, 8), np.float32)), "rows must be contiguous"),
    (lambda: kernels.normalise_pad(np.zeros((0, 8), np.uint8), np.zeros((4, 8), np.float32)), "out of range"),
    (lambda: kernels.denormalise(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.uint8)), "not the shape of src"),
    (lambda: kernels.denormalise(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8)[::-1]), "rows must be contiguous"),
    (lambda: kernels.denormalise(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8).T), "rows must be contiguous"),
])
def test_a_wrong_argument_is_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_read_only_destination_is_refused():
    out = np.zeros((4, 4), np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="dst: read-only"):
        kernels.denormalise(np.zeros((4, 4), np.float32), out)


def test_the_enhancer_gives_the_same_frames_with_the_kernels_as_with_the_numpy_passes(tiny_model, monkeypatch):
    from sonoedge.runtime.stream import enhancer as E

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (70 + 9 * i, 90 + 7 * i), dtype=np.uint8) for i in range(4)]
    assert E.kernels_in_use() == "native"
    native = [E.Enhancer(tiny_model, E.EnhancerConfig(region="full"))(Frame(im.copy(), i)).image for i, im in enumerate(images)]
    monkeypatch.setattr(E, "_kernels", None)
    assert E.kernels_in_use() == "numpy"
    numpy = [E.Enhancer(tiny_model, E.EnhancerConfig(region="full"))(Frame(im.copy(), i)).image for i, im in enumerate(images)]
    for a, b in zip(native, numpy):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, im) for a, im in zip(native, images))  # the model did change the frames


def test_sonoedge_kernels_numpy_forces_the_numpy_passes(monkeypatch):
    from sonoedge.runtime.stream import enhancer as E

    monkeypatch.setenv("SONOEDGE_KERNELS", "numpy")
    assert E._native_kernels() is None
    monkeypatch.setenv("SONOEDGE_KERNELS", "native")
    assert E._native_kernels() is kernels
