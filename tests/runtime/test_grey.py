"""Colour to grey: the fast (OpenCV) and exact (float32 reference, tabulated) methods, and where they are chosen."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import GREY_METHODS, grey_reference, to_grey


def _colours(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    ties = np.array([[83, 123, 13], [128, 254, 45], [227, 55, 3], [217, 119, 226], [40, 186, 47]], np.uint8)
    return np.concatenate([ties, rgb, np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)])


def test_exact_is_the_reference_bit_for_bit_in_rgb_and_bgr_order():
    rgb = _colours(200_000).reshape(-1, 1, 3)
    want = grey_reference(rgb)
    assert np.array_equal(to_grey(rgb, "exact"), want)
    assert np.array_equal(to_grey(np.ascontiguousarray(rgb[:, :, ::-1]), "exact", bgr=True), want)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert np.array_equal(to_grey(rgba, "exact"), want)


def test_reference_does_not_depend_on_the_array_shape():
    rgb = _colours(50_000)
    flat = grey_reference(rgb)
    assert np.array_equal(grey_reference(rgb.reshape(-1, 1, 3)).ravel(), flat)
    assert np.array_equal(grey_reference(rgb[: 50_000].reshape(200, 250, 3)).ravel(), flat[: 50_000])


def test_fast_is_opencv_and_within_one_level_of_exact_and_equal_on_grey_pixels():
    rgb = _colours(200_000).reshape(-1, 1, 3)
    fast, exact = to_grey(rgb), to_grey(rgb, "exact")
    assert np.array_equal(fast, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert np.abs(fast.astype(int) - exact).max() <= 1 and (fast != exact).mean() < 0.01
    grey_pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    assert np.array_equal(to_grey(grey_pixels)[:, 0], np.arange(256)) and np.array_equal(
        to_grey(grey_pixels, "exact")[:, 0], np.arange(256))
    assert np.array_equal(to_grey(rgb[:, :, ::-1].copy(), bgr=True), fast)


def test_grey_and_single_channel_images_pass_and_bad_input_is_refused():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for method in GREY_METHODS:
        assert to_grey(grey, method) is grey and np.array_equal(to_grey(grey[:, :, None], method), grey)
    with pytest.raises(InputError, match="not one of"):
        to_grey(np.zeros((2, 2, 3), np.uint8), "fastest")
    with pytest.raises(InputError, match="expected an"):
        to_grey(np.zeros((2, 2, 5), np.uint8))


@pytest.mark.parametrize("method", GREY_METHODS)
def test_readers_and_file_source_take_the_method(tmp_path, method):
    from sonoedge.runtime.readers import iter_frames, read_image
    from sonoedge.runtime.stream.base import open_source

    rgb = _colours(64 * 80 - 261, seed=3)[: 64 * 80].reshape(64, 80, 3)
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    want = to_grey(rgb, method)
    assert np.array_equal(read_image(path, method), want)
    assert np.array_equal(next(iter_frames(path, grey=method)), want)
    for source in (open_source(str(path), grey=method), open_source(f"file://{path}?grey={method}")):
        with source:
            assert np.array_equal(next(iter(source)).image, want)


def test_unknown_method_in_a_reader_or_source_is_one_clear_error(tmp_path):
    from sonoedge.runtime.readers import iter_frames
    from sonoedge.runtime.stream.base import open_source

    path = tmp_path / "c.png"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="grey method 'luma'"):
        next(iter_frames(path, grey="luma"))
    with pytest.raises(InputError, match="grey 'luma' is not one of fast, exact"):
        open_source(f"file://{path}?grey=luma")
