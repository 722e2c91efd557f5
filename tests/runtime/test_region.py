"""sonoedge.runtime.region: the imaging region of every realus file, of unseen sizes, of synthetic
sectors and rectangles drawn here, and the per-stream tracker.

Expected boxes and the inside/outside points below were read off the frames by eye (grid overlays
of each file), not copied from the detector: inside points sit on tissue or anechoic areas of the
image, outside points on vendor text, logos, rulers and screen black. Set
SONOEDGE_REGION_OVERLAYS=DIR to write every tested frame with its region drawn on it."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime import readers
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import to_grey
from sonoedge.runtime.region import KINDS, Region, RegionTracker, detect_region, full_region

# file -> (kind, approximate image box (x0, y0, x1, y1) or None, inside points, outside points)
SONOSITE = ("rectangle", (387, 40, 725, 640), [(500, 450), (550, 250)],
            [(200, 660), (900, 615), (850, 20), (60, 90)])
BONE = ("rectangle", (176, 1, 643, 615), [(400, 300), (300, 50)], [(50, 300), (760, 300)])
ULTRASONIX = ("sector", (0, 42, 820, 566), [(410, 300), (100, 150), (700, 450)],
              [(410, 60), (20, 600), (800, 600), (20, 20), (800, 20)])
EXPECTED = {
    "itkpocus_handheld/butterfly_axial-lateral-resolution-2020.png": (
        "rectangle", (600, 28, 1322, 1070), [(960, 600), (700, 300)], [(960, 12), (1850, 400), (100, 100)]),
    "itkpocus_handheld/clarius-ocular-image.png": (
        "rectangle", (262, 85, 1013, 875), [(640, 700), (300, 200), (560, 300)], [(293, 69), (939, 890), (100, 500)]),
    "itkpocus_handheld/clarius_axial-lateral-resolution-2020.png": (
        "rectangle", (344, 160, 936, 800), [(640, 450)], [(100, 100), (1200, 900)]),
    "itkpocus_handheld/interson-image.jpg": (
        "rectangle", (387, 60, 913, 850), [(650, 500)], [(1300, 500), (60, 400), (1300, 30)]),
    "itkpocus_handheld/interson-phantom.png": (
        "rectangle", (443, 52, 1003, 895), [(700, 300), (700, 700)], [(260, 40), (1400, 60), (70, 400)]),
    "itkpocus_handheld/sonivate-anechoic_1-1.nrrd": (
        "rectangle", (132, 4, 380, 512), [(256, 256), (256, 30)], [(50, 256), (450, 256)]),
    "itkpocus_handheld/sonoque_anechoic-3mm-3mm.dcm": (
        "rectangle", (372, 47, 1711, 1414), [(1000, 700)], [(150, 60), (1750, 80), (1950, 1400), (60, 1400), (2050, 600)]),
    "itkpocus_handheld/sonoque_axial-lateral-resolution-2020.dcm": (
        "rectangle", (372, 47, 1711, 1414), [(1000, 700)], [(150, 60), (1750, 80), (1950, 1400), (60, 1400), (2050, 600)]),
    "itkpocus_handheld/sonosite-anon-eye1.jpg": SONOSITE,
    "clips/itkpocus/sonosite-anon-eye1-video.mp4@0": SONOSITE,
    "clips/itkpocus/sonosite-anon-eye1-video.mp4@50": SONOSITE,
    "clips/itkpocus/butterfly-ocular-phantom.mp4@0": (
        "rectangle", (79, 196, 673, 870), [(400, 600), (400, 400)], [(370, 10), (120, 45), (740, 400)]),
    "clips/itkpocus/butterfly-ocular-phantom.mp4@184": (
        "rectangle", (79, 196, 673, 870), [(400, 600), (400, 400)], [(370, 10), (120, 45), (740, 400)]),
    "clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha@0": (
        "sector", (0, 8, 600, 388), [(300, 180), (50, 150), (550, 150)], [(290, 20), (20, 385), (580, 385)]),
    "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha@0": ULTRASONIX,
    "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha@2": ULTRASONIX,
    "clips/plus_toolkit/frames_png/UltrasonixCurvilinearScanConvertedData_frame004.png": ULTRASONIX,
    "clips/plus_toolkit/BoneUltrasound_L14.igs.mha@0": BONE,
    "clips/plus_toolkit/BoneUltrasound_L14.igs.mha@10": BONE,
    "clips/plus_toolkit/frames_png/BoneUltrasound_L14_frame020.png": BONE,
    "clips/plus_toolkit/frames_png/BkCurvilinearScanConvertedData_frame000.png": (
        "sector", (0, 8, 600, 388), [(300, 180)], [(290, 20), (20, 385), (580, 385)]),
}
# HC18 frames are crops of a console's sector that the frame cuts on most sides; hip_spj frames are
# crops of linear images that fill the frame: both are mostly or entirely image.
CROPPED = {"hc18": ({"sector", "full"}, 0.6), "hip_spj": ({"full", "rectangle"}, 0.75)}


def _frame(realus, key: str) -> np.ndarray:
    """Frame ``index`` of ``name`` for a key ``name@index``, decoded once per session."""
    return _decoded(str(realus), key).copy()


@functools.lru_cache(maxsize=64)
def _decoded(root: str, key: str) -> np.ndarray:
    name, _, index = key.partition("@")
    if name.endswith(".mp4") and int(index or 0) > 0:  # seek rather than decode every frame before it
        capture = cv2.VideoCapture(f"{root}/{name}")
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, bgr = capture.read()
        capture.release()
        assert ok, f"{key}: cannot seek"
        return to_grey(np.ascontiguousarray(bgr[:, :, ::-1]))
    frames = readers.iter_frames(f"{root}/{name}")
    for i, frame in enumerate(frames):
        if i == int(index or 0):
            frames.close()
            return frame
    raise AssertionError(f"{key}: frame not found")


def _save_overlay(key: str, frame: np.ndarray, region: Region) -> None:
    """With SONOEDGE_REGION_OVERLAYS=DIR, write the frame with its region drawn, to look at."""
    folder = os.environ.get("SONOEDGE_REGION_OVERLAYS")
    if folder:
        from sonoedge.runtime.region import write_overlay

        write_overlay(Path(folder) / (key.replace("/", "__").replace("@", "_f") + ".png"), frame, region)


def _box_close(got, want, shape, tolerance=0.025):
    h, w = shape
    limits = (tolerance * w, tolerance * h) * 2
    return all(abs(g - e) <= t for g, e, t in zip(got, want, limits))


def _check_sane(region: Region, shape) -> None:
    h, w = shape
    assert region.kind in KINDS and region.mask.shape == (h, w) and region.mask.dtype == bool
    x0, y0, x1, y1 = region.bbox
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    rows, cols = np.flatnonzero(region.mask.any(axis=1)), np.flatnonzero(region.mask.any(axis=0))
    assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == region.bbox  # bbox is the mask's
    assert region.area_fraction == pytest.approx(region.mask.mean())


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_realus_region(realus, key):
    kind, box, inside, outside = EXPECTED[key]
    frame = _frame(realus, key)
    region = detect_region(frame)
    _save_overlay(key, frame, region)
    _check_sane(region, frame.shape)
    assert region.kind == kind
    assert _box_close(region.bbox, box, frame.shape), f"bbox {region.bbox}, expected about {box}"
    for x, y in inside:
        assert region.mask[y, x], f"image point {(x, y)} left out"
    for x, y in outside:
        assert not region.mask[y, x], f"overlay/screen point {(x, y)} taken as image"
    # the region holds the image's bright tissue: the top 10% of pixels inside the expected box
    x0, y0, x1, y1 = box
    patch = frame[y0:y1, x0:x1]
    bright = patch > np.percentile(patch, 90)
    assert region.mask[y0:y1, x0:x1][bright].mean() > 0.95


@pytest.mark.parametrize("group", sorted(CROPPED))
def test_realus_cropped_sets(realus, group):
    kinds, min_area = CROPPED[group]
    files = sorted(p for p in (realus / group).rglob("*.png"))
    assert files
    for path in files:
        frame = readers.read_image(path)
        region = detect_region(frame)
        _check_sane(region, frame.shape)
        assert region.kind in kinds, f"{path.name}: {region.kind}"
        assert region.area_fraction >= min_area, f"{path.name}: {region.area_fraction:.2f}"
        h, w = frame.shape
        assert region.mask[h // 2, w // 2]
        bright = frame > np.percentile(frame, 90)
        assert region.mask[bright].mean() > 0.9, path.name


def test_realus_every_file_has_a_region(realus):
    """Every file of realus (first frame, and the middle frame of sequences) gives a sane region."""
    for path in sorted(p for p in realus.rglob("*") if p.is_file() and p.name != "SOURCES.md"):
        info = readers.probe(path)
        wanted = {0, (info.frames or 1) // 2} if path.suffix in (".mha", ".mp4") else {0}
        for index in sorted(wanted):
            frame = _frame(realus, f"{path.relative_to(realus).as_posix()}@{index}")
            region = detect_region(frame)
            _check_sane(region, frame.shape)
            assert 0.15 < region.area_fraction <= 1.0, f"{path.name}@{index}: {region.area_fraction}"


# --------------------------------------------------------------------------------------------
# unseen sizes


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("key", [
    "itkpocus_handheld/clarius-ocular-image.png",
    "itkpocus_handheld/sonosite-anon-eye1.jpg",
    "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha@0",
    "clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha@0",
    "itkpocus_handheld/interson-phantom.png",
])
@pytest.mark.parametrize("factor", [0.5, 1.7])
def test_resized_frames_give_the_same_region(realus, key, factor):
    frame = _frame(realus, key)
    reference = detect_region(frame)
    h, w = frame.shape
    size = (round(w * factor), round(h * factor))
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    region = detect_region(resized)
    expected = cv2.resize(reference.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    assert region.kind == reference.kind
    assert _iou(region.mask, expected) > 0.93


@pytest.mark.parametrize("key", [
    "itkpocus_handheld/sonosite-anon-eye1.jpg",
    "clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha@0",
    "hip_spj/standard_ultrasound/standard_3.png",
])
def test_padded_frames_give_the_shifted_region(realus, key):
    frame = _frame(realus, key)
    reference = detect_region(frame)
    top, bottom, left, right = 40, 90, 130, 10
    padded = cv2.copyMakeBorder(frame, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    region = detect_region(padded)
    expected = np.zeros(padded.shape, bool)
    expected[top : top + frame.shape[0], left : left + frame.shape[1]] = reference.mask
    assert _iou(region.mask, expected) > 0.93
    if reference.kind == "full":  # a full frame on a black screen is a rectangle
        assert region.kind == "rectangle"
        assert region.bbox == (left, top, left + frame.shape[1], top + frame.shape[0])
    else:
        assert region.kind == reference.kind


# --------------------------------------------------------------------------------------------
# synthetic frames drawn here


def _speckle_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Rayleigh-like speckle at a B-mode brightness (values ~10..200)."""
    rng = np.random.default_rng(seed)
    amplitude = np.hypot(rng.normal(size=(h, w)), rng.normal(size=(h, w)))
    image = 40 * amplitude + 20
    return np.clip(cv2.GaussianBlur(image, (0, 0), 1.0), 0, 255).astype(np.uint8)


def _fan_mask(h, w, centre, r0, r1, half_angle_deg):
    yy, xx = np.mgrid[:h, :w]
    cx, cy = centre
    radius = np.hypot(xx - cx, yy - cy)
    angle = np.degrees(np.arctan2(xx - cx, yy - cy))
    return (radius >= r0) & (radius <= r1) & (np.abs(angle) <= half_angle_deg)


def _draw_ui(frame: np.ndarray) -> list[tuple[int, int]]:
    """Vendor-like overlays on the black screen; returns points on them."""
    h, w = frame.shape[:2]
    colour = 230 if frame.ndim == 2 else (230, 230, 230)
    cv2.putText(frame, "MI 0.9 TIS 0.2", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    cv2.putText(frame, "12 cm  FREEZE", (5, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    for y in range(40, h - 40, 20):  # a depth ruler
        cv2.line(frame, (w - 18, y), (w - 8, y), colour, 1)
    return [(10, 15), (10, h - 10), (w - 12, 60)]


@pytest.mark.parametrize(("h", "w", "centre", "r0", "r1", "half"), [
    (480, 640, (320, -60), 90, 470, 35),  # convex probe: apex above the frame
    (600, 800, (400, 30), 0, 540, 42),  # phased array: apex at the top
    (330, 260, (130, -20), 40, 300, 28),  # small and portrait, the fan cut by both sides
])
def test_synthetic_sector_with_ui(h, w, centre, r0, r1, half):
    fan = _fan_mask(h, w, centre, r0, r1, half)
    frame = np.where(fan, _speckle_frame(h, w), 0).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    frame[fan & (np.hypot(xx - w / 2, yy - h * 0.6) < min(h, w) / 10)] = 0  # an anechoic cyst
    ui = _draw_ui(frame)
    region = detect_region(frame)
    _check_sane(region, frame.shape)
    assert region.kind == "sector"
    assert _iou(region.mask, fan) > 0.93
    for x, y in ui:
        assert not region.mask[y, x]


def test_synthetic_rectangle_grey_and_rgb_with_colour_overlay():
    h, w = 420, 560
    frame = np.zeros((h, w), np.uint8)
    frame[50:390, 140:420] = _speckle_frame(340, 280, seed=3)
    frame[150:230, 200:300] = 0  # an anechoic vessel
    ui = _draw_ui(frame)
    region = detect_region(frame)
    assert region.kind == "rectangle"
    assert _box_close(region.bbox, (140, 50, 420, 390), frame.shape, tolerance=0.01)
    for x, y in ui:
        assert not region.mask[y, x]
    rgb = np.dstack([frame] * 3)
    cv2.rectangle(rgb, (440, 100), (470, 300), (255, 40, 0), -1)  # a saturated colour bar beside it
    coloured = detect_region(rgb)
    assert coloured.kind == "rectangle" and _iou(coloured.mask, region.mask) > 0.98
    assert not coloured.mask[200, 455]


def test_full_frames_and_degenerate_input():
    speckle = _speckle_frame(240, 320, seed=5)
    assert detect_region(speckle).kind == "full"
    assert detect_region(np.dstack([speckle] * 3)).kind == "full"
    black = np.zeros((64, 64), np.uint8)
    region = detect_region(black)  # nothing stands out from black: treated as all image
    assert region.kind == "full" and region.mask.all() and region.bbox == (0, 0, 64, 64)
    small = detect_region(_speckle_frame(16, 16))
    assert small.kind == "full"
    assert full_region((5, 7)).area_fraction == 1.0
    with pytest.raises(InputError, match="uint8"):
        detect_region(speckle.astype(np.float32))
    with pytest.raises(InputError, match="shape"):
        detect_region(np.zeros((4, 4, 2), np.uint8))


def test_large_frame_is_detected_at_full_size():
    h, w = 1440, 2560  # a QHD capture of a convex sector
    fan = _fan_mask(h, w, (1280, -200), 330, 1530, 33)
    speckle = np.random.default_rng(7).integers(20, 200, (h, w), dtype=np.uint8)
    frame = np.where(fan, speckle, 0).astype(np.uint8)
    region = detect_region(frame)
    assert region.kind == "sector" and region.mask.shape == (h, w) and _iou(region.mask, fan) > 0.95


def test_deterministic():
    frame = np.zeros((300, 400), np.uint8)
    frame[30:280, 100:300] = _speckle_frame(250, 200, seed=9)
    a, b = detect_region(frame), detect_region(frame.copy())
    assert a.bbox == b.bbox and a.kind == b.kind and np.array_equal(a.mask, b.mask)


# --------------------------------------------------------------------------------------------
# tracker


def test_tracker_caches_and_redetects():
    frame = np.zeros((200, 300), np.uint8)
    frame[20:180, 60:240] = _speckle_frame(160, 180)
    tracker = RegionTracker(every=5)
    first = tracker.region_for(frame)
    for _ in range(4):
        assert tracker.region_for(frame) is first
    assert tracker.detections == 1
    tracker.region_for(frame)  # the 6th frame: periodic re-detection
    assert tracker.detections == 2
    bigger = cv2.resize(frame, (600, 400))
    region = tracker.region_for(bigger)  # geometry changed: detect at once
    assert tracker.detections == 3 and region.mask.shape == (400, 600)
    tracker.invalidate()
    assert tracker.region is None
    tracker.region_for(bigger)
    assert tracker.detections == 4
    never = RegionTracker()
    for _ in range(50):
        never.region_for(frame)
    assert never.detections == 1
    with pytest.raises(ValueError):
        RegionTracker(every=-1)


def test_hard_synthetic_cases():
    h, w = 600, 800

    # a phased array with a title line just above its apex
    fan = _fan_mask(h, w, (400, 60), 0, 520, 40)
    frame = np.where(fan, _speckle_frame(h, w), 0).astype(np.uint8)
    cv2.putText(frame, "C5-2  12cm  45Hz  MI 1.1", (240, 45), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    region = detect_region(frame)
    assert region.kind == "sector" and _iou(region.mask, fan) > 0.97 and not region.mask[35, 300]
    # a low-gain convex image (tissue around 8 grey levels)
    convex = _fan_mask(h, w, (400, -80), 120, 640, 35)
    dark = np.where(convex, (_speckle_frame(h, w, 4) * 0.12).astype(np.uint8), 0).astype(np.uint8)
    assert _iou(detect_region(dark).mask, convex) > 0.97
    # a frame grabber's noisy, limited-range black (16 +- 2) through JPEG: not a full frame
    noisy = np.where(convex, _speckle_frame(h, w, 5), 16).astype(np.int32)
    noisy += np.random.default_rng(0).integers(-2, 3, (h, w))
    _, encoded = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 70])
    region = detect_region(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE))
    assert region.kind == "sector" and _iou(region.mask, convex) > 0.97
    # a linear image beside a flat grey UI panel with a label
    linear = np.zeros((h, w), np.uint8)
    linear[50:550, 150:550] = _speckle_frame(500, 400, 6)
    linear[:, 700:] = 60
    cv2.putText(linear, "Freeze", (705, 300), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1)
    region = detect_region(linear)
    assert region.kind == "rectangle" and region.bbox == (150, 50, 550, 550)



def test_tracker_notices_a_stale_region():
    h, w = 300, 400
    screen = np.zeros((h, w), np.uint8)
    cv2.putText(screen, "L12-4  4cm  FREEZE", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)  # UI only
    shallow = screen.copy()
    shallow[40:200, 100:300] = _speckle_frame(160, 200, seed=1)
    deep = screen.copy()
    deep[40:280, 60:340] = _speckle_frame(240, 280, seed=2)  # the operator changed depth: same frame size
    tracker = RegionTracker(check_every=5)
    blank = tracker.region_for(screen)  # probe in the air: nothing but UI on black
    assert blank.kind == "full" and not blank.found
    regions = [tracker.region_for(shallow) for _ in range(10)]
    assert tracker.detections == 2 and regions[-1].kind == "rectangle" and regions[-1].bbox == (100, 40, 300, 200)
    for _ in range(20):
        region = tracker.region_for(shallow)
    assert tracker.detections == 2  # a steady stream is not re-detected
    for _ in range(6):
        region = tracker.region_for(deep)
    assert tracker.detections == 3 and region.bbox == (60, 40, 340, 280)
    off = RegionTracker(check_every=0)
    off.region_for(shallow)
    for _ in range(12):
        off.region_for(deep)
    assert off.detections == 1
    with pytest.raises(ValueError):
        RegionTracker(check_every=-1)
