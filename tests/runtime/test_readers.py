"""sonoedge.runtime.readers: every kind written for real into tmp_path, every file of realus read,
and every kind of bad input refused with one sentence naming the file."""
from __future__ import annotations

import os
import re
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime import readers
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import to_grey

RNG = np.random.default_rng(0)


def _speckle(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# stills


def test_png_grey_round_trip(tmp_path):
    image = _speckle()
    cv2.imwrite(str(tmp_path / "a.png"), image)
    info = readers.probe(tmp_path / "a.png")
    assert (info.kind, info.frames, info.height, info.width, info.channels) == ("image", 1, 48, 64, 1)
    np.testing.assert_array_equal(readers.read_image(tmp_path / "a.png"), image)


def test_colour_png_is_converted_with_to_grey_in_rgb_order(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16, 0] = 255  # left half pure red, right half pure blue
    rgb[:, 16:, 2] = 255
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])  # OpenCV writes BGR
    grey = readers.read_image(tmp_path / "c.png")
    np.testing.assert_array_equal(grey, to_grey(rgb))
    assert grey[0, 0] == 76 and grey[0, 31] == 29  # 0.299 * 255 and 0.114 * 255 (BT.601)
    assert readers.probe(tmp_path / "c.png").channels == 3


def test_rgba_png_and_bmp_and_jpeg(tmp_path):
    rgba = np.dstack([_speckle(), _speckle(seed=1), _speckle(seed=2), np.full((48, 64), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert readers.probe(tmp_path / "a.png").channels == 4
    np.testing.assert_array_equal(readers.read_image(tmp_path / "a.png"), to_grey(rgba[:, :, [2, 1, 0, 3]]))
    cv2.imwrite(str(tmp_path / "b.bmp"), _speckle())
    np.testing.assert_array_equal(readers.read_image(tmp_path / "b.bmp"), _speckle())
    smooth = cv2.GaussianBlur(_speckle(64, 64), (9, 9), 3)
    cv2.imwrite(str(tmp_path / "c.jpg"), smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert np.abs(readers.read_image(tmp_path / "c.jpg").astype(int) - smooth).max() < 12


def test_16bit_png_is_windowed_min_max(tmp_path):
    ramp = np.tile(np.linspace(1000, 3000, 64).astype(np.uint16), (32, 1))
    cv2.imwrite(str(tmp_path / "deep.png"), ramp)
    grey = readers.read_image(tmp_path / "deep.png")
    assert grey.dtype == np.uint8 and grey[0, 0] == 0 and grey[0, -1] == 255
    assert np.all(np.diff(grey[0].astype(int)) >= 0)


def test_multipage_tiff_gives_one_frame_per_page(tmp_path):
    pages = [_speckle(seed=i) for i in range(3)]
    assert cv2.imwritemulti(str(tmp_path / "stack.tif"), pages)
    assert readers.probe(tmp_path / "stack.tif").frames == 3
    for got, want in zip(readers.iter_frames(tmp_path / "stack.tif"), pages, strict=True):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# DICOM


def _dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", frames: int | None = None,
           syntax=None, **attributes) -> Path:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    colour = pixels.ndim == (4 if frames else 3)
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    if frames:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless)
    elif syntax is not None:  # an encapsulated syntax with a stand-in codestream
        from pydicom.encaps import encapsulate

        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)] * (frames or 1))
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).Rows == ds.Rows
    return path


def test_dicom_16bit_uses_its_window(tmp_path):
    values = np.tile(np.arange(0, 4000, 62.5).astype(np.uint16), (32, 1))  # 0..3937
    path = _dicom(tmp_path / "w.dcm", values, WindowCenter=2000, WindowWidth=1001,
                  PixelSpacing=[0.2, 0.25], FrameTime=40)
    grey = readers.read_image(path)
    # DICOM PS3.3 C.11.2.1.2: below c - 0.5 - (w-1)/2 = 1499.5 -> 0, above 2499.5 -> 255
    assert grey[0, values[0] < 1499].max() == 0 and grey[0, values[0] > 2500].min() == 255
    middle = (values[0] > 1600) & (values[0] < 2400)
    assert 0 < grey[0, middle].min() and grey[0, middle].max() < 255
    info = readers.probe(path)
    assert (info.kind, info.frames, info.height, info.width) == ("dicom", 1, 32, 64)
    assert info.spacing == (0.2, 0.25) and info.fps == pytest.approx(25.0)


def test_dicom_16bit_without_window_uses_min_max_and_monochrome1_inverts(tmp_path):
    values = np.tile(np.linspace(100, 900, 64).astype(np.uint16), (32, 1))
    grey = readers.read_image(_dicom(tmp_path / "m2.dcm", values))
    assert grey[0, 0] == 0 and grey[0, -1] == 255
    inverted = readers.read_image(_dicom(tmp_path / "m1.dcm", values, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(inverted, 255 - grey)


def test_dicom_16bit_multiframe_window_and_shared_min_max(tmp_path):
    stack = np.stack([np.full((20, 24), v, np.uint16) for v in (1000, 2000, 3000)])
    stack[:, 0, 0] = 500  # one darker pixel per frame
    windowed = list(readers.iter_frames(_dicom(tmp_path / "w.dcm", stack, frames=3, WindowCenter=2000, WindowWidth=2001)))
    assert [int(f[5, 5]) for f in windowed] == [0, 128, 255] and len(windowed) == 3
    plain = list(readers.iter_frames(_dicom(tmp_path / "p.dcm", stack, frames=3)))
    # no window: one min/max over the whole file (500..3000), so the frames keep their relation
    assert [int(f[5, 5]) for f in plain] == [51, 153, 255] and all(int(f[0, 0]) == 0 for f in plain)


def test_dicom_multiframe_grey_and_rle(tmp_path):
    from pydicom.uid import RLELossless

    stack = np.stack([_speckle(seed=i) for i in range(5)])
    plain = _dicom(tmp_path / "multi.dcm", stack, frames=5)
    rle = _dicom(tmp_path / "rle.dcm", stack, frames=5, syntax=RLELossless)
    for path in (plain, rle):
        assert readers.probe(path).frames == 5
        frames = list(readers.iter_frames(path))
        assert len(frames) == 5
        for got, want in zip(frames, stack, strict=True):
            np.testing.assert_array_equal(got, want)


def test_dicom_rgb_and_ybr_multiframe(tmp_path):
    from pydicom.pixels import convert_color_space

    rgb = np.stack([np.dstack([_speckle(seed=i), _speckle(seed=i + 10), _speckle(seed=i + 20)]) for i in range(3)])
    for got, want in zip(readers.iter_frames(_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB", frames=3)), rgb, strict=True):
        np.testing.assert_array_equal(got, to_grey(want))
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    frames = list(readers.iter_frames(_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL", frames=3)))
    assert len(frames) == 3 and readers.probe(tmp_path / "ybr.dcm").channels == 3
    for got, want in zip(frames, rgb, strict=True):  # decoded back to RGB, then luma: +-2 levels of rounding
        assert np.abs(got.astype(int) - to_grey(want)).max() <= 2


def test_dicom_without_decoder_names_file_and_syntax(tmp_path):
    from pydicom.uid import JPEGLSLossless

    path = _dicom(tmp_path / "jls.dcm", _speckle(), syntax=JPEGLSLossless)
    with pytest.raises(InputError, match=r"jls\.dcm.*JPEG-LS"):
        readers.read_image(path)


def _jpeg_dicom(path: Path, image: np.ndarray, photometric: str) -> Path:
    """A JPEG Baseline DICOM whose frame is OpenCV's JPEG of ``image`` (grey, or RGB)."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ok, jpeg = cv2.imencode(".jpg", image if image.ndim == 2 else image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    path = _dicom(path, image, photometric=photometric)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


NO_PILLOW = """
import sys
sys.modules["PIL"] = None  # a base install: Pillow comes only with the training extras
from sonoedge.runtime import readers
print(readers.read_image(sys.argv[1]).tobytes().hex())
"""


@pytest.mark.parametrize("colour", [False, True])
def test_jpeg_dicom_reads_without_pillow(tmp_path, colour):
    """JPEG Baseline DICOM (the Sonoque files) decodes with OpenCV, the same pixels OpenCV gives the
    JPEG itself, on an install without Pillow."""
    import subprocess
    import sys

    base = cv2.GaussianBlur(_speckle(48, 64), (5, 5), 1)
    image = np.dstack([base, base // 2, 255 - base]) if colour else base
    path = _jpeg_dicom(tmp_path / "jpeg.dcm", image, "YBR_FULL_422" if colour else "MONOCHROME2")
    ok, jpeg = cv2.imencode(".jpg", image if image.ndim == 2 else image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    want = to_grey(decoded[:, :, ::-1]) if colour else decoded
    out = subprocess.run([sys.executable, "-c", NO_PILLOW, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(out.stdout.strip()), np.uint8).reshape(48, 64), want)


@pytest.mark.realus
def test_realus_jpeg_dicom_equals_pydicom_pillow(realus):
    """OpenCV's decode of the Sonoque JPEG frames is bit-identical to pydicom's Pillow decoder."""
    pytest.importorskip("PIL")
    import pydicom

    for name in ("sonoque_anechoic-3mm-3mm.dcm", "sonoque_axial-lateral-resolution-2020.dcm"):
        path = realus / "itkpocus_handheld" / name
        with pytest.warns(UserWarning):  # the files' nonconformant charset and photometric values
            reference = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(readers.read_image(path), to_grey(reference))


def test_dicom_truncated_and_without_pixels(tmp_path):
    path = _dicom(tmp_path / "full.dcm", _speckle(64, 64))
    data = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 2000])
    with pytest.raises(InputError, match=r"cut\.dcm"):
        readers.read_image(tmp_path / "cut.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(InputError, match=r"nopix\.dcm.*without readable pixel data"):
        readers.read_image(tmp_path / "nopix.dcm")


# --------------------------------------------------------------------------------------------
# NRRD and MetaImage


def test_nrrd_2d_and_float_stack(tmp_path):
    import nrrd

    image = _speckle()
    nrrd.write(str(tmp_path / "a.nrrd"), image, {"spacings": [0.1, 0.2]}, index_order="C")
    info = readers.probe(tmp_path / "a.nrrd")
    assert (info.kind, info.frames, info.height, info.width) == ("nrrd", 1, 48, 64)
    assert info.spacing == pytest.approx((0.2, 0.1))  # NRRD lists axes x first; spacing is (row, column)
    np.testing.assert_array_equal(readers.read_image(tmp_path / "a.nrrd"), image)
    stack = np.stack([np.full((20, 30), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    nrrd.write(str(tmp_path / "s.nrrd"), stack, index_order="C")
    frames = list(readers.iter_frames(tmp_path / "s.nrrd"))
    assert [int(f[0, 0]) for f in frames] == [0, 128, 255]  # one window over the whole file


def _write_mha(path: Path, frames: np.ndarray, *, compressed: bool = False, detached: bool = False,
               element: str = "MET_UCHAR", msb: bool = False, channels: int = 1) -> Path:
    dims = [frames.shape[2], frames.shape[1]] + ([frames.shape[0]] if frames.shape[0] > 1 else [])
    data = frames.astype(frames.dtype.newbyteorder(">" if msb else "<")).tobytes()
    if compressed:
        data = zlib.compress(data)
    header = [
        "ObjectType = Image", f"NDims = {len(dims)}", f"BinaryDataByteOrderMSB = {msb}",
        f"CompressedData = {compressed}", f"DimSize = {' '.join(map(str, dims))}",
        f"ElementNumberOfChannels = {channels}", "ElementSpacing = 0.25 0.5 1", f"ElementType = {element}",
    ] + [f"Seq_Frame{i:04d}_Timestamp = {i * 0.05:.6f}" for i in range(frames.shape[0])]
    if detached:
        raw = path.with_suffix(".raw")
        raw.write_bytes(data)
        path.write_text("\n".join(header + [f"ElementDataFile = {raw.name}"]) + "\n")
    else:
        path.write_bytes(("\n".join(header + ["ElementDataFile = LOCAL"]) + "\n").encode() + data)
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_metaimage_sequence_raw_and_zlib(tmp_path, compressed):
    stack = np.stack([_speckle(seed=i) for i in range(4)])
    path = _write_mha(tmp_path / "seq.igs.mha", stack, compressed=compressed)
    info = readers.probe(path)
    assert (info.kind, info.frames, info.height, info.width) == ("metaimage", 4, 48, 64)
    assert info.spacing == (0.5, 0.25) and info.fps == pytest.approx(20.0)
    for got, want in zip(readers.iter_frames(path), stack, strict=True):
        np.testing.assert_array_equal(got, want)


def test_metaimage_detached_16bit_msb_and_rgb(tmp_path):
    ramp = np.tile(np.linspace(0, 60000, 64).astype(np.uint16), (32, 1))[None]
    path = _write_mha(tmp_path / "a.mhd", ramp, detached=True, element="MET_USHORT", msb=True)
    grey = readers.read_image(path)
    assert grey[0, 0] == 0 and grey[0, -1] == 255 and np.all(np.diff(grey[0].astype(int)) >= 0)
    rgb = np.dstack([_speckle(), _speckle(seed=1), _speckle(seed=2)])[None]
    path = _write_mha(tmp_path / "rgb.mha", rgb, channels=3)
    np.testing.assert_array_equal(readers.read_image(path), to_grey(rgb[0]))


def test_metaimage_truncated_and_corrupt(tmp_path):
    stack = np.stack([_speckle(seed=i) for i in range(3)])
    for compressed in (False, True):
        path = _write_mha(tmp_path / f"c{compressed}.mha", stack, compressed=compressed)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 500])
        with pytest.raises(InputError, match=rf"c{compressed}\.mha.*(truncated|corrupt)"):
            list(readers.iter_frames(path))
    (tmp_path / "junk.mha").write_bytes(b"\x00\x01 not a header" * 40)
    with pytest.raises(InputError, match=r"junk\.mha.*not a MetaImage"):
        readers.probe(tmp_path / "junk.mha")
    missing = tmp_path / "lost.mhd"
    missing.write_text("NDims = 2\nDimSize = 20 20\nElementType = MET_UCHAR\nElementDataFile = lost.raw\n")
    with pytest.raises(InputError, match=r"lost\.raw.*does not exist"):
        readers.read_image(missing)


# --------------------------------------------------------------------------------------------
# video and folders


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def _moving_frames(n: int = 12, h: int = 64, w: int = 80) -> list[np.ndarray]:
    base = cv2.GaussianBlur(_speckle(h, w + n * 2), (7, 7), 2)
    return [np.ascontiguousarray(base[:, 2 * i : 2 * i + w]) for i in range(n)]


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_video_mp4_and_avi(tmp_path, name, fourcc):
    frames = _moving_frames()
    path = _write_video(tmp_path / name, frames, fourcc)
    info = readers.probe(path)
    assert (info.kind, info.frames, info.height, info.width, info.fps) == ("video", 12, 64, 80, 10.0)
    decoded = list(readers.iter_frames(path))
    assert len(decoded) == 12
    assert np.mean([np.abs(d.astype(int) - f).mean() for d, f in zip(decoded, frames)]) < 6  # lossy codecs


def test_video_reads_silence_opencv_only_while_reading(tmp_path, monkeypatch):
    """Every frame's read runs with OpenCV's log silenced (a corrupt frame must not print into the
    daemon's JSON log) and leaves the caller's level and environment as they were."""
    for name in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL", "OPENCV_FFMPEG_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    path = _write_video(tmp_path / "clip.avi", _moving_frames(4), "MJPG")
    seen = []
    real = cv2.VideoCapture.read

    class Spy:
        def __init__(self, capture):
            self.capture = capture

        def read(self):
            seen.append(cv2.utils.logging.getLogLevel())
            return real(self.capture)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    opened = readers._open_video
    monkeypatch.setattr(readers, "_open_video", lambda p: Spy(opened(p)))
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
    try:
        assert len(list(readers.iter_frames(path))) == 4
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_WARNING
    finally:
        cv2.utils.logging.setLogLevel(before)
    assert seen and set(seen) == {cv2.utils.logging.LOG_LEVEL_SILENT}
    assert "OPENCV_FFMPEG_LOGLEVEL" not in os.environ  # set for the opening only


def test_raw_h264_stream(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.h264"
    frames = _moving_frames(10, 64, 96)
    with av.open(str(path), "w", format="h264") as container:
        try:
            stream = container.add_stream("libx264", rate=10)
        except (ValueError, av.error.FFmpegError) as exc:  # PyAV built without x264
            pytest.skip(f"PyAV cannot encode H.264 here: {exc}")
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray").reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = readers.probe(path)
    assert (info.kind, info.frames, info.height, info.width) == ("video", None, 64, 96)
    decoded = list(readers.iter_frames(path))
    assert len(decoded) == 10 and np.abs(decoded[5].astype(int) - frames[5]).mean() < 6


def test_empty_and_truncated_video(tmp_path):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()  # no frame written
    if not empty.exists():
        empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.avi"):
        readers.probe(empty)
    with pytest.raises(InputError, match=r"empty\.avi"):
        list(readers.iter_frames(empty))
    good = _write_video(tmp_path / "good.mp4", _moving_frames(), "mp4v")
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.mp4"):
        list(readers.iter_frames(tmp_path / "cut.mp4"))


def test_folder_is_sorted_naturally_and_skips_other_files(tmp_path):
    for index in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"f{index}.png"), np.full((20, 20), index, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    info = readers.probe(tmp_path)
    assert (info.kind, info.frames, info.height, info.width) == ("folder", 3, 20, 20)
    assert [int(f[0, 0]) for f in readers.iter_frames(tmp_path)] == [1, 2, 10]


# --------------------------------------------------------------------------------------------
# bad input: one InputError naming the file


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.png does not exist"):
        readers.probe(tmp_path / "nowhere.png")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"empty_dir contains no images"):
        list(readers.iter_frames(tmp_path / "empty_dir"))
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(InputError, match=r"table\.csv has an unsupported file type '\.csv'"):
        readers.probe(tmp_path / "table.csv")
    cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1), np.uint8))
    with pytest.raises(InputError, match=rf"dot\.png is 1x1 pixels; the smallest usable frame is {readers.MIN_SIDE}x"):
        readers.read_image(tmp_path / "dot.png")
    with pytest.raises(InputError, match=r"dot\.png is 1x1"):
        readers.probe(tmp_path / "dot.png")
    cv2.imwrite(str(tmp_path / "thin.png"), np.zeros((100, readers.MIN_SIDE - 1), np.uint8))
    with pytest.raises(InputError, match=r"thin\.png"):
        readers.read_image(tmp_path / "thin.png")
    (tmp_path / "noise.png").write_bytes(RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"noise\.png"):
        readers.read_image(tmp_path / "noise.png")
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"zero\.jpg is empty"):
        readers.read_image(tmp_path / "zero.jpg")


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_stills(tmp_path, name):
    image = cv2.GaussianBlur(_speckle(128, 128), (5, 5), 1)
    cv2.imwrite(str(tmp_path / ("whole" + Path(name).suffix)), image)
    data = (tmp_path / ("whole" + Path(name).suffix)).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match=re.escape(name) + ".*truncated"):
        readers.read_image(tmp_path / name)


def test_cli_error_is_one_line(tmp_path, capsys):
    from sonoedge.cli import main

    code = main(["data", "inspect", str(tmp_path / "missing.dcm")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "missing.dcm does not exist" in err


# --------------------------------------------------------------------------------------------
# every file of realus: (relative path) -> (kind, frames, height, width, channels)

REALUS = {
    "itkpocus_handheld/butterfly_axial-lateral-resolution-2020.png": ("image", 1, 1080, 1928, 3),
    "itkpocus_handheld/clarius-ocular-image.png": ("image", 1, 960, 1280, 3),
    "itkpocus_handheld/clarius_axial-lateral-resolution-2020.png": ("image", 1, 960, 1280, 3),
    "itkpocus_handheld/interson-image.jpg": ("image", 1, 870, 1357, 3),
    "itkpocus_handheld/interson-phantom.png": ("image", 1, 912, 1469, 4),
    "itkpocus_handheld/sonivate-anechoic_1-1.nrrd": ("nrrd", 1, 512, 512, 1),
    "itkpocus_handheld/sonoque_anechoic-3mm-3mm.dcm": ("dicom", 1, 1455, 2083, 3),
    "itkpocus_handheld/sonoque_axial-lateral-resolution-2020.dcm": ("dicom", 1, 1455, 2083, 3),
    "itkpocus_handheld/sonosite-anon-eye1.jpg": ("image", 1, 720, 960, 3),
    "clips/itkpocus/butterfly-ocular-phantom.mp4": ("video", 369, 1080, 776, 3),
    "clips/itkpocus/sonosite-anon-eye1-video.mp4": ("video", 100, 720, 960, 3),
    "clips/plus_toolkit/BkCurvilinearScanConvertedData.igs.mha": ("metaimage", 1, 400, 600, 1),
    "clips/plus_toolkit/BoneUltrasound_L14.igs.mha": ("metaimage", 21, 616, 820, 1),
    "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha": ("metaimage", 5, 616, 820, 1),
}
REALUS.update({f"hc18/{n:03d}_HC.png": ("image", 1, 540, 800, 1) for n in (0, 25, 50, 75, 100, 125, 150, 200, 250, 300)})
REALUS.update({f"clips/plus_toolkit/frames_png/BkCurvilinearScanConvertedData_frame{i:03d}.png": ("image", 1, 400, 600, 1) for i in range(1)})
REALUS.update({f"clips/plus_toolkit/frames_png/BoneUltrasound_L14_frame{i:03d}.png": ("image", 1, 616, 820, 1) for i in range(21)})
REALUS.update({f"clips/plus_toolkit/frames_png/UltrasonixCurvilinearScanConvertedData_frame{i:03d}.png": ("image", 1, 616, 820, 1) for i in range(5)})
HIP = {  # hip_spj: folder -> file numbers (256 x 256 RGB with grey content)
    "standard_ultrasound": range(26),
    "substandard_ultrasound/incomplete bony roof or poor display of the lower limb of the os ilium": (0, 15, 19, 20, 24),
    "substandard_ultrasound/poor display of the joint capsule and perichondrium synovial plica": (4, 9, 11, 17, 18),
    "substandard_ultrasound/lack of a chondro-osseous border": (2, 5, 6, 7, 8),
    "substandard_ultrasound/nonmiddle plane": (1, 3, 10, 12, 22),
    "substandard_ultrasound/poor labrum display": (13, 14, 16, 21, 23),
}
for _folder, _numbers in HIP.items():
    _prefix = "standard" if _folder == "standard_ultrasound" else "substandard"
    REALUS.update({f"hip_spj/{_folder}/{_prefix}_{n}.png": ("image", 1, 256, 256, 3) for n in _numbers})
REALUS_FULL_DECODE_SLOW = {"clips/itkpocus/butterfly-ocular-phantom.mp4"}  # 369 frames at 776 x 1080


def test_realus_table_lists_every_file(realus):
    on_disk = {p.relative_to(realus).as_posix() for p in realus.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert on_disk == set(REALUS), f"unlisted: {sorted(on_disk - set(REALUS))}, missing: {sorted(set(REALUS) - on_disk)}"


@pytest.mark.parametrize("name", sorted(REALUS))
def test_every_realus_file_probes_and_reads(realus, name):
    kind, frames, height, width, channels = REALUS[name]
    info = readers.probe(realus / name)
    assert (info.kind, info.frames, info.height, info.width, info.channels) == (kind, frames, height, width, channels)
    limit = 8 if name in REALUS_FULL_DECODE_SLOW else None
    count = 0
    for frame in readers.iter_frames(realus / name):
        assert frame.dtype == np.uint8 and frame.shape == (height, width)
        count += 1
        if count == limit:
            break
    assert count == (limit or frames)
    first = readers.read_image(realus / name)
    assert first.std() > 5, "a real ultrasound frame has contrast"


@pytest.mark.slow
def test_realus_long_clip_decodes_every_frame(realus):
    for name in REALUS_FULL_DECODE_SLOW:
        assert sum(1 for _ in readers.iter_frames(realus / name)) == REALUS[name][1]


def test_realus_metadata(realus):
    dicom = readers.probe(realus / "itkpocus_handheld/sonoque_anechoic-3mm-3mm.dcm")
    assert dicom.spacing is not None and 0.01 < dicom.spacing[0] < 0.1  # mm per pixel from the US region
    nrrd_info = readers.probe(realus / "itkpocus_handheld/sonivate-anechoic_1-1.nrrd")
    assert nrrd_info.spacing == pytest.approx((0.0776, 0.0776), abs=1e-4)
    clip = readers.probe(realus / "clips/itkpocus/sonosite-anon-eye1-video.mp4")
    assert clip.fps == pytest.approx(25.0)
    folder = readers.probe(realus / "clips/plus_toolkit/frames_png")
    assert (folder.kind, folder.frames) == ("folder", 27)
    # the PNG frames are the .mha frames with pixel values unchanged (SOURCES.md)
    mha = list(readers.iter_frames(realus / "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha"))
    png = readers.read_image(realus / "clips/plus_toolkit/frames_png/UltrasonixCurvilinearScanConvertedData_frame003.png")
    np.testing.assert_array_equal(mha[3], png)


def test_realus_truncated_copies_fail_cleanly(realus, tmp_path):
    for name in ("hc18/000_HC.png", "itkpocus_handheld/sonosite-anon-eye1.jpg",
                 "itkpocus_handheld/sonoque_anechoic-3mm-3mm.dcm", "itkpocus_handheld/sonivate-anechoic_1-1.nrrd",
                 "clips/plus_toolkit/BoneUltrasound_L14.igs.mha", "clips/itkpocus/sonosite-anon-eye1-video.mp4"):
        data = (realus / name).read_bytes()
        cut = tmp_path / ("cut_" + Path(name).name)
        cut.write_bytes(data[: len(data) // 3])
        with pytest.raises(InputError, match=re.escape(cut.name)):
            for _ in readers.iter_frames(cut):
                pass


def test_realus_copy_with_unsupported_extension(realus, tmp_path):
    copy = tmp_path / "frame.xyz"
    shutil.copy(realus / "hc18/000_HC.png", copy)
    with pytest.raises(InputError, match=r"frame\.xyz has an unsupported file type"):
        readers.probe(copy)


def test_video_cut_mid_stream_reports_truncation(tmp_path):
    """An mp4 whose index comes first (faststart) still opens when cut; the missing frames are an error."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    import subprocess

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (96, 128), dtype=np.uint8) for _ in range(40)]  # noise: big frames
    source = _write_video(tmp_path / "source.mp4", frames, "mp4v")
    fast = tmp_path / "fast.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True)
    assert sum(1 for _ in readers.iter_frames(fast)) == 40
    data = fast.read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    decoded = []
    with pytest.raises(InputError, match=r"half\.mp4 ended after \d+ of its 40 frames"):
        for frame in readers.iter_frames(tmp_path / "half.mp4"):
            decoded.append(frame)
    assert 5 < len(decoded) < 40
