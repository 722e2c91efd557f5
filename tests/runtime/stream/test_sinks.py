"""Every frame sink on real frames: video files, PNG folders, null, window."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.runtime.errors import InputError, SonoedgeError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.readers import iter_frames, probe
from sonoedge.runtime.stream.base import SINKS, open_sink

COVERED = {"file", "null", "window", "shm"}  # shm: tests/cpp_bridge


def test_every_registered_sink_is_covered():
    assert set(SINKS.names()) <= COVERED, set(SINKS.names()) - COVERED


@pytest.fixture(scope="module")
def real_frames(realus):
    frames = iter_frames(realus / "clips" / "plus_toolkit" / "BoneUltrasound_L14.igs.mha")
    return [Frame(next(frames), i) for i in range(8)]


@pytest.mark.realus
@pytest.mark.parametrize("name", ["out.mp4", "out.avi"])
def test_video_sink_writes_a_readable_clip(real_frames, tmp_path, name):
    target = tmp_path / "sub" / name
    with open_sink(str(target), fps=20) as sink:
        for f in real_frames:
            sink.write(f)
        assert not target.exists()  # written to a temporary name until close
    info = probe(target)
    assert (info.frames, info.height, info.width) == (8, 616, 820)
    decoded = list(iter_frames(target))
    assert len(decoded) == 8
    err = np.abs(decoded[3].astype(int) - real_frames[3].image.astype(int)).mean()
    assert err < 6  # lossy codec, but the same picture
    assert [p.name for p in target.parent.iterdir()] == [name]  # no temporary left behind


@pytest.mark.realus
def test_png_folder_sink_is_lossless(real_frames, tmp_path):
    target = tmp_path / "frames"
    with open_sink(f"file://{target}") as sink:
        for f in real_frames:
            sink.write(f)
    files = sorted(p for p in target.iterdir() if not p.name.startswith("."))  # .sonoedge-output.json: the marker
    assert [p.name for p in files][:2] == ["frame_000000.png", "frame_000001.png"] and len(files) == 8
    back = list(iter_frames(target))
    assert all(np.array_equal(a, b.image) for a, b in zip(back, real_frames))


@pytest.mark.realus
def test_colour_frames_are_written_in_rgb_order(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # red
    with open_sink(str(tmp_path / "c")) as sink:
        sink.write(Frame(rgb, 0))
    import cv2

    bgr = cv2.imread(str(tmp_path / "c" / "frame_000000.png"))
    assert bgr[0, 0, 2] == 200 and bgr[0, 0, 0] == 0


@pytest.mark.realus
def test_failed_stream_leaves_no_output(real_frames, tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with open_sink(str(target)) as sink:
            sink.write(real_frames[0])
            raise RuntimeError("pipeline died")
    assert list(tmp_path.iterdir()) == []


def test_no_frames_means_no_file(tmp_path):
    with open_sink(str(tmp_path / "empty.mp4")):
        pass
    assert list(tmp_path.iterdir()) == []


def test_video_size_change_is_refused_per_frame(tmp_path):
    sink = open_sink(str(tmp_path / "v.avi"))
    sink.open()
    sink.write(Frame(np.zeros((64, 64), np.uint8), 0))
    with pytest.raises(InputError, match="write a folder of PNG frames"):
        sink.write(Frame(np.zeros((32, 64), np.uint8), 1))
    sink.close()
    assert probe(tmp_path / "v.avi").frames == 1


def test_unsupported_extension():
    with pytest.raises(InputError, match="unsupported extension '.gif'"):
        open_sink("out.gif")


def test_null_sink_counts():
    sink = open_sink("null://")
    for i in range(5):
        sink.write(Frame(np.zeros((4, 4), np.uint8), i))
    assert sink.count == 5 and sink.last.frame_id == 4


def test_window_sink_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SonoedgeError, match="needs a display"):
        open_sink("window://Enhanced").open()
