"""Pre/post-processing, region paste-back, SR geometry, the fail-safe and bundle refusal."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime.bundle.manifest import Manifest, write_manifest
from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import BundleError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.readers import iter_frames, read_image
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig, MalformedFrame


def _frame(image: np.ndarray, fid: int = 7) -> Frame:
    return Frame(image, fid, timestamp=123.5, source="test://src", meta={"k": 1})


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    yield model
    model.close()


def test_full_region_matches_the_numpy_reference(tiny_model, tiny_weights, numpy_reference):
    # 61 x 83 is not a multiple of the stride 4: pad to 64 x 84, run, crop back
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (61, 83), dtype=np.uint8)
    out = Enhancer(tiny_model, EnhancerConfig(region="full"))(_frame(image))
    x = (image.astype(np.float32) / 127.5 - 1)[None, None]
    padded = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 1)), mode="reflect")
    ref = numpy_reference(padded, tiny_weights)[..., :61, :83]
    expected = np.clip(np.rint((ref[0, 0] + 1) * 127.5), 0, 255).astype(np.uint8)
    assert out.image.shape == image.shape
    assert np.abs(out.image.astype(int) - expected).max() <= 1  # float rounding at .5 boundaries
    assert out.enhanced and not out.passthrough
    assert (out.frame_id, out.timestamp, out.source, out.meta) == (7, 123.5, "test://src", {"k": 1})


@pytest.mark.realus
def test_pixels_outside_the_region_are_identical(tiny_model, realus):
    """Real screen captures with vendor overlays: only the detected imaging region changes."""
    paths = [realus / "clips" / "itkpocus" / "sonosite-anon-eye1-video.mp4",
             realus / "clips" / "plus_toolkit" / "UltrasonixCurvilinearScanConvertedData.igs.mha"]
    from sonoedge.runtime.region import detect_region

    for path in paths:
        image = next(iter_frames(path))
        enhancer = Enhancer(tiny_model, EnhancerConfig(region="auto"))
        out = enhancer(_frame(image))
        mask = detect_region(image).mask
        assert out.image.shape == image.shape and out.image.dtype == np.uint8
        assert np.array_equal(out.image[~mask], image[~mask]), path.name
        assert (out.image[mask] != image[mask]).mean() > 0.3, path.name  # the region did go through the model
        assert out.enhanced


@pytest.mark.realus
def test_colour_frame_keeps_its_geometry_and_overlays(tiny_model, realus):
    image = cv2.imread(str(realus / "itkpocus_handheld" / "clarius-ocular-image.png"), cv2.IMREAD_COLOR)
    image = np.ascontiguousarray(image[:, :, ::-1])
    image[:20, :20] = (255, 0, 0)  # a colour overlay in a corner
    out = Enhancer(tiny_model, EnhancerConfig(region="auto"))(_frame(image))
    from sonoedge.runtime.region import detect_region

    mask = detect_region(image).mask
    assert out.image.shape == image.shape
    assert np.array_equal(out.image[~mask], image[~mask])
    inside = out.image[mask]
    assert np.array_equal(inside[:, 0], inside[:, 1])  # enhanced pixels are grey in every channel


def test_sr_bundle_outputs_4x_frames(sr_bundle):
    model = load_model(EnhancerConfig(bundle=str(sr_bundle)))
    image = np.zeros((48, 64), np.uint8)
    image[8:40, 16:48] = np.random.default_rng(2).integers(40, 255, (32, 32))
    image[44:, :10] = 200  # an "overlay" outside the region
    region_mask = np.zeros_like(image, bool)
    region_mask[8:40, 16:48] = True

    class Square:
        def region_for(self, frame):
            return type("R", (), {"mask": region_mask, "kind": "rectangle"})()

    enhancer = Enhancer(model, EnhancerConfig(region="full"))
    enhancer.region.tracker = Square()
    out = enhancer(_frame(image))
    assert out.image.shape == (192, 256)
    big_mask = np.repeat(np.repeat(region_mask, 4, 0), 4, 1)
    plain = np.repeat(np.repeat(image, 4, 0), 4, 1)
    assert np.array_equal(out.image[~big_mask], plain[~big_mask])  # outside: plain pixel replication
    assert not np.array_equal(out.image[big_mask], plain[big_mask])  # inside: super-resolved
    model.close()


def test_region_is_cached_and_redetected_on_geometry_change(tiny_model):
    enhancer = Enhancer(tiny_model, EnhancerConfig(region="auto"))
    a = np.zeros((120, 160), np.uint8)
    a[20:100, 30:130] = 128
    for i in range(3):
        enhancer(_frame(a, i))
    assert enhancer.region.tracker.detections == 1
    enhancer(_frame(np.pad(a, 8), 4))
    assert enhancer.region.tracker.detections == 2
    periodic = Enhancer(tiny_model, EnhancerConfig(region="auto", region_every=2))
    for i in range(5):
        periodic(_frame(a, i))
    assert periodic.region.tracker.detections == 3  # frames 0, 2, 4


@pytest.mark.parametrize("image, reason", [
    (np.zeros((64, 64), np.uint16), "dtype"),
    (np.zeros((64, 64), np.float32), "dtype"),
    (np.zeros((64, 64, 2), np.uint8), "shape"),
    (np.zeros((8, 64), np.uint8), "size"),
    (np.zeros((9000, 64), np.uint8), "size"),
])
def test_malformed_frames_raise(tiny_model, image, reason):
    with pytest.raises(MalformedFrame, match=reason):
        Enhancer(tiny_model, EnhancerConfig(region="full")).prepare(_frame(image))


def test_region_over_the_model_size_range_passes_through(tiny_bundle, tmp_path, bundle_factory):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    m = model.manifest
    model.manifest = dataclasses.replace(m, model=dataclasses.replace(
        m.model, size_range=dataclasses.replace(m.model.size_range, max=(64, 64))))
    out = Enhancer(model, EnhancerConfig(region="full"))(_frame(np.full((64, 96), 9, np.uint8)))
    assert out.passthrough and "larger than the model's maximum 64x64" in out.meta["passthrough_reason"]
    model.close()


def test_truncated_frame_marked_by_a_source_raises(tiny_model):
    frame = Frame(np.zeros((0, 0), np.uint8), 3, meta={"malformed": "x.png is truncated"})
    with pytest.raises(MalformedFrame, match="truncated"):
        Enhancer(tiny_model, EnhancerConfig()).prepare(frame)


def test_nan_model_passes_frames_through_and_keeps_retrying(nan_bundle):
    model = load_model(EnhancerConfig(bundle=str(nan_bundle), verify_reference=False))
    cfg = EnhancerConfig(region="full", retry_backoff_s=0.05, marker=False)
    enhancer = Enhancer(model, cfg)
    image = np.full((64, 64), 90, np.uint8)
    outs = [enhancer(_frame(image, i)) for i in range(3)]
    assert all(o.passthrough and not o.enhanced for o in outs)
    assert all(np.array_equal(o.image, image) for o in outs)
    assert "NaN" in outs[0].meta["passthrough_reason"]
    assert enhancer.failures == 1 and enhancer.failed
    time.sleep(0.06)
    job = enhancer.infer(enhancer.prepare(_frame(image, 9)))  # the retry runs the model again
    assert job.infer_s > 0 and job.output is None and enhancer.failed
    model.close()


def test_marker_is_drawn_only_when_configured(nan_bundle):
    model = load_model(EnhancerConfig(bundle=str(nan_bundle), verify_reference=False))
    image = np.full((96, 128), 90, np.uint8)
    out = Enhancer(model, EnhancerConfig(region="full", marker=True))(_frame(image))
    assert out.passthrough and not np.array_equal(out.image, image)
    assert np.array_equal(out.image[60:], image[60:])  # only the corner label
    model.close()


def test_backend_exception_then_recovery(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    enhancer = Enhancer(model, EnhancerConfig(region="full", retry_backoff_s=0.0))
    real = model.backend.infer
    model.backend.infer = lambda x: (_ for _ in ()).throw(RuntimeError("CUDA error: device lost"))
    out = enhancer(_frame(np.full((64, 64), 50, np.uint8)))
    assert out.passthrough and "device lost" in out.meta["passthrough_reason"]
    model.backend.infer = real
    out = enhancer(_frame(np.full((64, 64), 50, np.uint8)))
    assert out.enhanced and not enhancer.failed and enhancer.recoveries == 1
    model.close()


def test_latency_budget_misses_in_a_row_switch_to_passthrough(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    cfg = EnhancerConfig(region="full", latency_budget_ms=1e-6, fail_after=2, retry_backoff_s=30)
    enhancer = Enhancer(model, cfg)
    image = np.full((64, 64), 50, np.uint8)
    first, second, third = (enhancer(_frame(image, i)) for i in range(3))
    assert first.enhanced and second.enhanced  # the second miss tips the fail-safe; its output is still good
    assert "latency" in second.meta["alarm"]
    assert third.passthrough and enhancer.failed
    enhancer.cfg.latency_budget_ms = 0.0  # the model is fast again
    enhancer.next_retry = 0.0
    assert enhancer(_frame(image, 4)).enhanced and not enhancer.failed
    model.close()


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


def test_tampered_model_file_is_refused(tiny_bundle, tmp_path):
    bad = _copy(tiny_bundle, tmp_path)
    with open(bad / "model.onnx", "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="model.onnx does not match its manifest sha256"):
        load_model(EnhancerConfig(bundle=str(bad)))


def test_bundle_that_misses_its_reference_is_refused(tiny_bundle, tmp_path):
    bad = _copy(tiny_bundle, tmp_path)
    ref = np.load(bad / "reference" / "torch_0.npy")
    np.save(bad / "reference" / "torch_0.npy", ref + 0.01)  # a model that no longer matches PyTorch
    write_manifest(bad, Manifest.from_dict(json.loads((bad / "manifest.json").read_text())))  # hashes made consistent again
    with pytest.raises(BundleError, match="max abs error"):
        load_model(EnhancerConfig(bundle=str(bad)))


def test_missing_precision_is_refused(tiny_bundle):
    with pytest.raises(BundleError, match="has no int8 model"):
        load_model(EnhancerConfig(bundle=str(tiny_bundle), precision="int8"))


def test_swap_serves_the_new_model(tiny_bundle, tmp_path, bundle_factory):
    other = bundle_factory(tmp_path / "other", seed=5)
    a = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    b = load_model(EnhancerConfig(bundle=str(other)))
    enhancer = Enhancer(a, EnhancerConfig(region="full"))
    image = np.random.default_rng(3).integers(0, 255, (64, 64), dtype=np.uint8)
    before = enhancer(_frame(image)).image
    assert enhancer.swap(b) is a
    after = enhancer(_frame(image)).image
    assert not np.array_equal(before, after)
    enhancer.close()


@pytest.mark.realus
def test_realus_still_with_overlays_enhances(tiny_model, realus):
    still = sorted((realus / "itkpocus_handheld").iterdir())[0]
    image = read_image(still)
    out = Enhancer(tiny_model, EnhancerConfig(region="auto"))(_frame(image))
    assert out.image.shape == image.shape and out.enhanced


def test_in_place_normalisation_is_bit_identical_to_the_contract():
    from sonoedge.runtime.frames import denormalise, normalise, pad_to_stride
    from sonoedge.runtime.stream.enhancer import from_model, pad_uint8, to_model

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    assert np.array_equal(to_model(image), normalise(image)) and to_model(image).dtype == np.float32
    y = np.concatenate([rng.uniform(-1.2, 1.2, (1, 1, 30, 53)),
                        ((np.arange(7 * 53) - 3) / 127.5 - 1.0).reshape(1, 1, 7, 53)], axis=2).astype(np.float32)
    y[0, 0, 0, :4] = [-1.0, 1.0, -1.0 + 0.5 / 127.5, 0.5 / 127.5]  # exact .5 rounding boundaries
    assert np.array_equal(from_model(y), denormalise(y))
    for h, w, stride in [(1, 5, 4), (2, 3, 64), (17, 31, 4), (600, 336, 64), (16, 16, 64)]:  # pads beyond the side too
        small = rng.integers(0, 256, (h, w), dtype=np.uint8)
        fast, size = pad_uint8(small, stride)
        ref, ref_size = pad_to_stride(small, stride)
        assert np.array_equal(fast, ref) and size == ref_size


def test_buffered_normalisation_is_bit_identical_and_writes_into_the_buffers():
    from sonoedge.runtime.frames import denormalise, normalise, pad_to_stride
    from sonoedge.runtime.stream.enhancer import from_model, pad_uint8, to_model

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    tensor = np.full((1, 1, 37, 53), np.nan, np.float32)
    assert to_model(image, out=tensor) is tensor and np.array_equal(tensor, normalise(image))
    y = rng.uniform(-1.2, 1.2, (1, 1, 37, 53)).astype(np.float32)
    y[0, 0, 0, :3] = [-1.0 + 0.5 / 127.5, 0.5 / 127.5, 1.5 / 127.5 - 1.0]  # .5 ties
    before = y.copy()
    scratch, out = np.empty((37, 53), np.float32), np.empty((37, 53), np.uint8)
    assert from_model(y, scratch, out) is out and np.array_equal(out, denormalise(y)) and np.array_equal(y, before)
    for h, w, stride in [(1, 5, 4), (17, 31, 4), (600, 336, 64)]:
        small = rng.integers(0, 256, (h, w), dtype=np.uint8)
        buf = np.empty((h + (-h) % stride, w + (-w) % stride), np.uint8)
        padded, _ = pad_uint8(small, stride, out=buf)
        assert padded is buf and np.array_equal(buf, pad_to_stride(small, stride)[0])


def test_steady_state_frames_allocate_only_their_output(tiny_model):
    """After the first frames of one geometry, a frame allocates its output image and the backend's
    output, nothing else: the padded crop, the model input and the de-normalised output are reused."""
    import tracemalloc

    enhancer = Enhancer(tiny_model, EnhancerConfig(region="full"))
    rng = np.random.default_rng(6)
    frames = [_frame(rng.integers(0, 256, (250, 330), dtype=np.uint8), i) for i in range(40)]
    for frame in frames[:5]:
        enhancer(frame)
    tracemalloc.start()
    try:
        peaks, kept = [], []
        for frame in frames[5:]:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            out = enhancer(frame)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            kept.append(out)  # outputs are owned by the caller
        growth = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    image = 250 * 330  # the output frame, uint8
    model_out = 4 * 252 * 332  # the backend's float32 output (padded to the stride 4)
    # before the buffers, a frame also allocated the padded crop, the float input, a float and a
    # uint8 de-normalised copy (about 3x this bound)
    assert max(peaks) < image + model_out + 64 * 1024, (max(peaks), image + model_out)
    assert growth < len(kept) * (image + 4096) + 64 * 1024  # only the kept outputs remain


def test_outputs_never_share_a_buffer(tiny_model):
    enhancer = Enhancer(tiny_model, EnhancerConfig(region="full"))
    a = enhancer(_frame(np.full((64, 80), 10, np.uint8), 1)).image
    a_copy = a.copy()
    enhancer(_frame(np.full((64, 80), 200, np.uint8), 2))
    assert np.array_equal(a, a_copy)


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_colour_frames_use_the_configured_grey(tiny_model, method):
    from sonoedge.runtime.frames import to_grey

    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    job = Enhancer(tiny_model, EnhancerConfig(region="full", grey=method)).prepare(_frame(rgb))
    assert np.array_equal(job.grey, to_grey(rgb, method))


def test_unknown_grey_method_is_refused(tiny_model):
    from sonoedge.runtime.errors import InputError

    with pytest.raises(InputError, match="grey 'fastest'"):
        Enhancer(tiny_model, EnhancerConfig(grey="fastest"))


def test_three_pass_denormalisation_equals_the_contract_on_every_tie_and_dense_runs():
    """from_model (add, THRESH_TOZERO, convertScaleAbs) against frames.denormalise: every .5 rounding
    tie of the 256 levels and its float32 neighbours, values outside [-1, 1], and 2**16 consecutive
    float32 values at a few places in the range."""
    from sonoedge.runtime.frames import denormalise
    from sonoedge.runtime.stream.enhancer import from_model

    k = np.arange(-2, 258, dtype=np.float32)
    ties = (k + np.float32(0.5)) / np.float32(127.5) - np.float32(1.0)
    values = [ties, np.nextafter(ties, np.float32(-3)), np.nextafter(ties, np.float32(3)),
              np.array([-1.0, 1.0, -0.0, 0.0, -1.5, 1.5, -40.0, 40.0, 1e-30, -1e-30], np.float32)]
    for start in (-1.01, -1.0, -0.5, 0.0, 0.25, 0.999):
        first = np.float32(start).view(np.int32)
        values.append((np.arange(2 ** 16, dtype=np.int64) + first).astype(np.int32).view(np.float32))
    y = np.concatenate(values).astype(np.float32)
    y = np.concatenate([y, np.zeros((-y.size) % 64, np.float32)]).reshape(1, 1, -1, 64)
    assert np.array_equal(from_model(y), denormalise(y))


def test_finish_in_place_pastes_into_the_frame_and_otherwise_leaves_it_alone(tiny_model):
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (72, 88), dtype=np.uint8)
    enhancer = Enhancer(tiny_model, EnhancerConfig(region="full"))
    copied = enhancer.finish(enhancer.infer(enhancer.prepare(_frame(image))))
    assert copied.image is not image and np.array_equal(image, image.copy())  # input untouched
    frame = _frame(image.copy())
    pasted = enhancer.finish(enhancer.infer(enhancer.prepare(frame)), in_place=True)
    assert pasted.image is frame.image and np.array_equal(pasted.image, copied.image)
    frozen = image.copy()
    frozen.flags.writeable = False  # a read-only frame is copied even when in place is allowed
    out = enhancer.finish(enhancer.infer(enhancer.prepare(_frame(frozen))), in_place=True)
    assert out.image is not frozen and np.array_equal(out.image, copied.image)


def test_the_finite_check_is_exact():
    """_finite (an OpenCV double-accumulated sum of a float32 output, numpy's for other dtypes)
    finds a NaN or Inf anywhere (SIMD lanes and the tail of a row alike) and never calls finite
    values non-finite, also where a float32 sum would overflow."""
    from sonoedge.runtime.stream.enhancer import _finite

    rng = np.random.default_rng(12)
    y = rng.uniform(-1, 1, (1, 1, 37, 53)).astype(np.float32)
    assert _finite(y) and _finite(y.astype(np.float64)) and _finite(y.astype(np.float16))
    assert _finite(np.full((1, 1, 300, 300), np.finfo(np.float32).max, np.float32))  # float32 sum: inf
    for value in (np.nan, np.inf, -np.inf):
        for pos in [(0, 0), (0, 52), (36, 52), (17, 31), (5, 8)]:
            bad = y.copy()
            bad[0, 0][pos] = value
            assert not _finite(bad) and not _finite(bad.astype(np.float64)) and not _finite(bad.astype(np.float16))
    both = y.copy()
    both[0, 0, 0, :2] = [np.inf, -np.inf]
    assert not _finite(both)


def test_opencv_threads_are_set_for_the_process_and_bad_values_are_named(tiny_model):
    from sonoedge.runtime.errors import InputError

    before = cv2.getNumThreads()
    try:
        Enhancer(tiny_model, EnhancerConfig(region="full"))  # the default: 1, no pool beside the calling thread
        assert cv2.getNumThreads() == 1
        Enhancer(tiny_model, EnhancerConfig(region="full", opencv_threads=2))
        assert cv2.getNumThreads() == 2
        Enhancer(tiny_model, EnhancerConfig(region="full", opencv_threads=0))  # 0: left as it is
        assert cv2.getNumThreads() == 2
        for bad in (-1, 1.5, True, "2", 257):
            with pytest.raises(InputError, match="enhancer.opencv_threads"):
                Enhancer(tiny_model, EnhancerConfig(region="full", opencv_threads=bad))
        enhancer = Enhancer(tiny_model, EnhancerConfig(region="full", opencv_threads=3))
        with pytest.raises(InputError, match="enhancer.opencv_threads"):  # a swap checks before it changes anything
            enhancer.swap(tiny_model, EnhancerConfig(region="full", opencv_threads=-2))
        assert enhancer.cfg.opencv_threads == 3 and cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
