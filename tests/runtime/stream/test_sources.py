"""Every frame source on real files (realus clips, .mha sequences, PNG folders, phantom clips)."""
from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError, UnknownNameError
from sonoedge.runtime.stream.base import SOURCES, open_source

# Every registered source is exercised here (or by its owner's tests): a new entry must be added.
COVERED = {"file", "replay", "v4l2", "rtsp", "shm"}  # shm: tests/cpp_bridge


def test_every_registered_source_is_covered():
    assert set(SOURCES.names()) <= COVERED, set(SOURCES.names()) - COVERED


def _take(uri, n=None, **options):
    with open_source(uri, **options) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if n is not None and len(frames) >= n:
                break
        return source, frames


@pytest.mark.realus
@pytest.mark.parametrize("rel, count, shape", [
    ("clips/itkpocus/sonosite-anon-eye1-video.mp4", 100, (720, 960)),
    ("clips/plus_toolkit/BoneUltrasound_L14.igs.mha", 21, (616, 820)),
    ("clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha", 5, None),
    ("clips/plus_toolkit/frames_png", 27, None),
])
def test_file_source_reads_every_frame(realus, rel, count, shape):
    source, frames = _take(str(realus / rel))
    assert len(frames) == count
    assert [f.frame_id for f in frames] == list(range(count))
    assert all(f.image.dtype == np.uint8 and f.image.ndim == 2 for f in frames)
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    if shape:
        assert frames[0].image.shape == shape
    assert source.live is False


@pytest.mark.realus
def test_file_uri_and_bare_path_agree(realus):
    path = realus / "clips" / "plus_toolkit" / "BkCurvilinearScanConvertedData.igs.mha"
    _, a = _take(str(path))
    _, b = _take(f"file://{path}")
    assert len(a) == len(b) == 1 and np.array_equal(a[0].image, b[0].image)


@pytest.mark.realus
def test_folder_with_a_truncated_png_yields_a_malformed_frame(realus, tmp_path):
    src = sorted((realus / "clips" / "plus_toolkit" / "frames_png").glob("BoneUltrasound_L14_frame00[0-4].png"))
    for p in src:
        shutil.copy(p, tmp_path / p.name)
    victim = tmp_path / src[2].name
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    _, frames = _take(str(tmp_path))
    assert len(frames) == 5
    assert [bool(f.meta.get("malformed")) for f in frames] == [False, False, True, False, False]
    assert src[2].name in frames[2].meta["malformed"]


def _png_stating(path, width, height):
    """A PNG whose IHDR claims ``width`` x ``height`` (the data is a 32 x 32 image's)."""
    import struct
    import zlib

    import cv2

    cv2.imwrite(str(path), np.zeros((32, 32), np.uint8))
    data = path.read_bytes()
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:])
    return path


@pytest.mark.parametrize("position", [0, 2])
def test_folder_with_a_huge_header_png_counts_it_and_goes_on(tmp_path, position):
    """One PNG claiming 100000 x 100000 is that file's error, not the end of the stream (the daemon
    would restart the source on it until it gave up)."""
    import cv2

    names = [f"f{i}.png" for i in range(4)]
    for i, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), np.full((32, 48), 10 * i, np.uint8))
    _png_stating(tmp_path / names[position], 100000, 100000)
    source, frames = _take(str(tmp_path))
    assert [bool(f.meta.get("malformed")) for f in frames] == [i == position for i in range(4)]
    assert names[position] in frames[position].meta["malformed"] and "100000x100000" in frames[position].meta["malformed"]
    assert source.info.kind == "folder" and source.info.frames == 4 and (source.info.height, source.info.width) == (32, 48)


@pytest.mark.realus
def test_replay_paces_at_the_requested_rate_and_loops(realus):
    folder = realus / "clips" / "plus_toolkit" / "frames_png"
    t0 = time.monotonic()
    source, frames = _take(f"replay://{folder}?fps=100&loop=1", n=30)  # 27 frames, then the loop
    elapsed = time.monotonic() - t0
    assert source.live and source.fps == 100
    assert [f.frame_id for f in frames] == list(range(30))
    assert np.array_equal(frames[27].image, frames[0].image)
    assert elapsed >= 29 / 100  # paced: never faster than the rate (sleep guarantees the lower bound)


@pytest.mark.realus
def test_replay_uses_the_file_rate_and_stops_without_loop(realus):
    clip = realus / "clips" / "itkpocus" / "sonosite-anon-eye1-video.mp4"
    with open_source(f"replay://{clip}?fps=1000") as source:
        assert source.fps == 1000
        assert sum(1 for _ in source) == 100
    with open_source(f"replay://{clip}") as source:
        assert source.fps == pytest.approx(25, abs=0.5)  # the clip's own rate (SOURCES.md: 25 fps)


def test_phantom_clip_through_the_file_and_replay_sources(tmp_path):
    from sonoedge.train.phantom import PhantomConfig, write_clip

    write_clip(tmp_path / "clip", frames=6, fps=50, cfg=PhantomConfig(size=(96, 128)), seed=3)
    for uri in (str(tmp_path / "clip" / "low.mp4"), f"replay://{tmp_path / 'clip' / 'high.mp4'}"):
        source, frames = _take(uri)
        assert len(frames) == 6 and frames[0].image.shape == (96, 128) and frames[0].image.dtype == np.uint8
        assert source.fps == pytest.approx(50)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere.mp4"):
        open_source(str(tmp_path / "nowhere.mp4")).open()


def test_unknown_scheme_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid names: .*file.*replay"):
        open_source("gopher://x")


def test_v4l2_missing_device_is_a_clear_error():
    with pytest.raises(InputError, match="/dev/video97 does not exist"):
        open_source("v4l2:///dev/video97").open()


def test_rtsp_unreachable_is_a_clear_error():
    source = open_source("rtsp://127.0.0.1:9/nothing", open_timeout_ms=1500)
    with pytest.raises(InputError, match="cannot open the stream rtsp://127.0.0.1:9/nothing"):
        source.open()


def test_replay_rejects_negative_fps(tmp_path):
    with pytest.raises(InputError, match="fps must be positive"):
        open_source(f"replay://{tmp_path}?fps=-3")


def test_sources_and_sinks_are_registered_on_import_of_the_stream_package(tmp_path):
    """A fresh interpreter opens a file source and a sink with nothing to call first."""
    import subprocess
    import sys

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((32, 48), 90, np.uint8))
    code = ("from sonoedge.runtime.stream.base import SINKS, SOURCES, open_sink, open_source\n"
            f"source = open_source({str(image)!r})\n"
            "sink = open_sink('null://')\n"
            "assert {'file', 'replay', 'shm'} <= set(SOURCES.names()) and 'null' in SINKS.names()\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _grey_clip(path, n=5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25, (64, 48), isColor=False)
    for i in range(n):
        writer.write(np.full((48, 64), 20 * i, np.uint8))
    writer.release()
    return path


def test_file_source_decodes_on_from_its_probe_opening(tmp_path, monkeypatch):
    """open() probes the video and the first pass goes on with that decoder: one opening, every frame,
    the frames iter_frames gives; a replay's later passes open the file again."""
    from sonoedge.runtime import readers

    clip = _grey_clip(tmp_path / "c.avi")
    opened = []
    real = readers._open_video
    monkeypatch.setattr(readers, "_open_video", lambda path: opened.append(path) or real(path))
    source = open_source(str(clip))
    source.open()
    frames = [f.image for f in source]
    source.close()
    assert len(opened) == 1 and len(frames) == 5
    assert all(np.array_equal(a, b) for a, b in zip(frames, readers.iter_frames(clip)))
    opened.clear()
    replay = open_source(f"replay://{clip}?fps=1000&loop=1")
    replay.open()
    looped = [f.image for _, f in zip(range(12), replay)]
    replay.close()
    assert len(opened) == 3  # the probe's opening, then one per later pass
    assert all(np.array_equal(a, frames[i % 5]) for i, a in enumerate(looped))


def test_file_source_closed_before_reading_releases_its_decoder(tmp_path):
    clip = _grey_clip(tmp_path / "c.avi")
    source = open_source(str(clip))
    source.open()
    source.close()
    assert source._opened is None
    again = open_source(str(clip))
    assert len(list(again)) == 5  # without open(): __iter__ opens it
