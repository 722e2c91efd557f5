"""Fault suite for sonoedge.runtime.readers: hostile and broken inputs of every kind it reads.

For each format (stills, videos, raw H.264, DICOM plain and JPEG, MetaImage .mha/.mhd+raw, NRRD
raw/gzip/bzip2/ascii, folders) seeded generators write valid files, random bytes, truncations of a
valid file at many offsets, byte flips, header lies (huge, zero, negative sizes; wrong channel
counts; data files outside the header's folder), compression bombs, FIFOs, symlinks to /dev/zero
and empty files. Every case goes through ``probe`` and ``iter_frames`` and must end in either an
error of sonoedge naming the file or valid frames within the bounds; never another exception, never
a hang. Every case also goes through ``sonoedge data inspect`` (one process, stdout and stderr caught
at the file-descriptor level, so OpenCV/FFmpeg/pydicom chatter counts): a bad file exits 2 with one
line naming it, a good one exits 0. Bombs run in a subprocess that measures its peak memory.

    python -m pytest -q -s tests/runtime/test_readers_fuzz.py   # -s prints the counts per format
"""
from __future__ import annotations

import bz2
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime import readers
from sonoedge.runtime.errors import SonoedgeError
from sonoedge.runtime.frames import MAX_FRAME_SIDE

SEED = 20261129
CASE_SECONDS = 10.0  # a generous bound per case on a slow shared core; a hang is far beyond it
pytestmark = pytest.mark.timeout(180)

RESULTS: dict[str, Counter] = {}


# --------------------------------------------------------------------------------------------
# valid files to start from


def _image(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (5, 5), 1)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_stating(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose IHDR (CRC valid) states the size; the data is a small image's."""
    data = cv2.imencode(".png", _image())[1].tobytes()
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width % 2**32, height % 2**32, depth, colour, 0, 0, 0))
    return data[:8] + ihdr + data[33:]


def _png_bomb(side: int) -> bytes:
    """A valid grey PNG of side x side zeros: a few KB inflating to side^2 bytes."""
    raw = zlib.compress(b"\x00" * ((side + 1) * side), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b""))


def _jpeg_stating(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", _image())[1].tobytes())
    i = 2
    while data[i + 1] not in (0xC0, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    data[i + 5:i + 9] = struct.pack(">HH", height % 2**16, width % 2**16)
    return bytes(data)


def _bmp_stating(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".bmp", _image())[1].tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _dicom_bytes(path: Path, image: np.ndarray | None = None, jpeg: bool = False, **attributes) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

    image = _image() if image is None else image
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if jpeg:
        ds.PixelData = encapsulate([cv2.imencode(".jpg", image)[1].tobytes()])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = image.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def _dicom_lie(path: Path, jpeg: bool, **attributes) -> None:
    """A DICOM file whose header values are set raw (any text, even nonsense)."""
    import warnings

    import pydicom
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    _dicom_bytes(path, jpeg=jpeg)
    ds = pydicom.dcmread(path)
    vrs = {"Rows": "US", "Columns": "US", "SamplesPerPixel": "US", "BitsAllocated": "US", "NumberOfFrames": "IS",
           "WindowCenter": "DS", "WindowWidth": "DS", "PixelSpacing": "DS", "FrameTime": "DS"}
    for key, value in attributes.items():
        tag, vr = Tag(tag_for_keyword(key)), vrs[key]
        raw = struct.pack("<H", value) if vr == "US" else str(value).encode()
        raw += b" " * (len(raw) % 2)
        ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)  # written as is, however wrong
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False)


MHA_BASE = {"ObjectType": "Image", "NDims": "3", "BinaryDataByteOrderMSB": "False", "CompressedData": "False",
            "DimSize": "32 24 3", "ElementNumberOfChannels": "1", "ElementSpacing": "0.2 0.2 1",
            "ElementType": "MET_UCHAR", "ElementDataFile": "LOCAL"}


def _mha(fields: dict[str, str], data: bytes) -> bytes:
    header = {**MHA_BASE, **fields}
    data_file = header.pop("ElementDataFile")
    lines = [f"{k} = {v}" for k, v in header.items()] + [f"ElementDataFile = {data_file}"]
    return ("\n".join(lines) + "\n").encode() + data


def _stack_bytes() -> bytes:
    return np.stack([_image(24, 32, seed=i) for i in range(3)]).tobytes()


def _nrrd(fields: dict[str, str], data: bytes, sizes: str = "32 24 3", type_: str = "uint8") -> bytes:
    header = {"type": type_, "dimension": str(len(sizes.split())), "sizes": sizes, "encoding": "raw", "endian": "little", **fields}
    return ("NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in header.items()) + "\n").encode() + data


def _zeros_stream(nbytes: int, method: str) -> bytes:
    """``nbytes`` of zeros compressed (the bomb's payload), built without holding them."""
    if method == "bz2":
        return bz2.compress(b"\x00" * nbytes, 9)
    encoder = zlib.compressobj(9, zlib.DEFLATED, 31 if method == "gzip" else 15)
    chunk, out = b"\x00" * (1 << 22), []
    for _ in range(nbytes // len(chunk)):
        out.append(encoder.compress(chunk))
    return b"".join(out) + encoder.flush()


def _video(path: Path, fourcc: str, n: int = 6) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (48, 32))
    for i in range(n):
        writer.write(cv2.cvtColor(_image(32, 48, seed=i), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path.read_bytes()


def _h264(path: Path) -> bytes | None:
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path), "w", format="h264") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(_image(32, 48, seed=i), format="gray").reformat(format="yuv420p")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except Exception:  # PyAV without x264: the raw-bytes cases still run
        return None
    return path.read_bytes()


# --------------------------------------------------------------------------------------------
# case generators: each writes files under ``root`` and returns the paths to read


def _mutations(rng: random.Random, data: bytes, cuts: int = 12, flips: int = 8) -> list[bytes]:
    """Truncations at spread and random offsets, byte flips, and random bytes of the same size."""
    out = [data[:k] for k in sorted({0, 1, 2, 8, len(data) // 2, len(data) - 1, *(rng.randrange(1, len(data)) for _ in range(cuts))})]
    for _ in range(flips):
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        out.append(bytes(buf))
    out.append(rng.randbytes(len(data)))
    out.append(rng.randbytes(rng.randrange(1, 64)))
    return out


def _special(root: Path, name: str) -> list[Path]:
    """An empty file, a FIFO, a symlink to /dev/zero, a symlink to a FIFO, a broken symlink, a folder, all named ``name``."""
    paths = []
    for tag in ("empty", "fifo", "zero", "tofifo", "broken", "dir"):
        path = root / f"{tag}_{name}"
        if tag == "empty":
            path.write_bytes(b"")
        elif tag == "fifo":
            os.mkfifo(path)
        elif tag == "zero":
            path.symlink_to("/dev/zero")
        elif tag == "tofifo":
            path.symlink_to(root / f"fifo_{name}")
        elif tag == "broken":
            path.symlink_to(root / "nowhere")
        else:
            path.mkdir()
        paths.append(path)
    return paths


def _write_all(root: Path, stem: str, suffix: str, blobs: list[bytes]) -> list[Path]:
    paths = []
    for i, blob in enumerate(blobs):
        path = root / f"{stem}{i:03d}{suffix}"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def cases_still(root: Path, rng: random.Random) -> list[Path]:
    paths = []
    for suffix in (".png", ".jpg", ".bmp", ".tif"):
        valid = cv2.imencode(suffix, _image())[1].tobytes()
        paths += _write_all(root, "mut", suffix, [valid] + _mutations(rng, valid, cuts=8, flips=6))
        paths += _special(root, "x" + suffix)
    lies = [_png_stating(w, h) for w, h in ((100000, 100000), (0, 0), (2**32 - 1, 1), (MAX_FRAME_SIDE + 1, 32),
                                             (32, MAX_FRAME_SIDE + 1), (1, 1), (40, 48))]
    lies += [_png_stating(48, 40, depth, colour) for depth, colour in ((3, 0), (8, 5), (16, 7), (8, 4), (1, 2))]
    lies += [_jpeg_stating(w, h) for w, h in ((0, 0), (65535, 65535), (9000, 10), (48, 40), (47, 40))]
    lies += [_bmp_stating(w, h) for w, h in ((-48, 40), (48, -40), (100000, 100000), (0, 0), (2**31 - 1, -(2**31)))]
    lies += [_png_bomb(MAX_FRAME_SIDE + 8), b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00\x08\x00\x00\x00",
             cv2.imencode(".jpg", _image())[1].tobytes()]  # the last one: a JPEG named .png
    return paths + _write_all(root, "lie", ".png", lies)


def cases_video(root: Path, rng: random.Random) -> list[Path]:
    paths = []
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        valid = _video(root / f"valid{suffix}", fourcc)
        paths += [root / f"valid{suffix}"] + _write_all(root, "mut", suffix, _mutations(rng, valid, cuts=6, flips=3))
        paths += _special(root, "x" + suffix)
    return paths


def cases_h264(root: Path, rng: random.Random) -> list[Path]:
    valid = _h264(root / "valid.h264")
    blobs = [b"\x00\x00\x00\x01" + rng.randbytes(rng.randrange(10, 4000)) for _ in range(4)]
    if valid is not None:
        blobs += _mutations(rng, valid, cuts=6, flips=3)
    return ([root / "valid.h264"] if valid else []) + _write_all(root, "mut", ".h264", blobs) + _special(root, "x.h264")


def cases_dicom(root: Path, rng: random.Random) -> list[Path]:
    paths = []
    for jpeg in (False, True):
        valid = _dicom_bytes(root / f"valid_{jpeg}.dcm", jpeg=jpeg)
        paths += [root / f"valid_{jpeg}.dcm"] + _write_all(root, f"mut{int(jpeg)}_", ".dcm", _mutations(rng, valid, cuts=10, flips=6))
        lies = [{"Rows": 0}, {"Rows": 65535, "Columns": 65535}, {"Columns": 1}, {"NumberOfFrames": "99999999"},
                {"NumberOfFrames": "-1"}, {"NumberOfFrames": "abc"}, {"NumberOfFrames": "3"}, {"SamplesPerPixel": 0},
                {"SamplesPerPixel": 4}, {"BitsAllocated": 7}, {"BitsAllocated": 0}, {"WindowCenter": "abc", "WindowWidth": "x"},
                {"PixelSpacing": "a\\b"}, {"FrameTime": "-5"}]
        for i, lie in enumerate(lies):
            path = root / f"lie{int(jpeg)}_{i:02d}.dcm"
            _dicom_lie(path, jpeg, **lie)
            paths.append(path)
    paths += _special(root, "x.dcm")
    (root / "preamble_only").write_bytes(b"\x00" * 128 + b"DICM")
    return paths + [root / "preamble_only"]


def cases_metaimage(root: Path, rng: random.Random) -> list[Path]:
    data = _stack_bytes()
    paths = []
    for compressed in (False, True):
        payload = zlib.compress(data) if compressed else data
        valid = _mha({"CompressedData": str(compressed)}, payload)
        paths += _write_all(root, f"mut{int(compressed)}_", ".mha", [valid] + _mutations(rng, valid, cuts=10, flips=6))
    lies = [{"DimSize": "0 0 0"}, {"DimSize": "-1 24 3"}, {"DimSize": "100000 100000 1"}, {"DimSize": "8192 8192 99999"},
            {"DimSize": "32 24"}, {"DimSize": "a b c"}, {"NDims": "5"}, {"NDims": "x"}, {"NDims": "0"},
            {"ElementNumberOfChannels": "0"}, {"ElementNumberOfChannels": "-3"}, {"ElementNumberOfChannels": "5"},
            {"ElementNumberOfChannels": "3"}, {"ElementNumberOfChannels": "a"}, {"ElementType": "MET_BOGUS"},
            {"ElementType": "MET_DOUBLE"}, {"ElementSpacing": "a b"}, {"ElementSpacing": "0 -1"}, {"ElementSpacing": ""},
            {"HeaderSize": "abc"}, {"CompressedData": "True"}, {"BinaryDataByteOrderMSB": "maybe"},
            {"ElementDataFile": "../../../../etc/passwd"}, {"ElementDataFile": "/etc/passwd"}, {"ElementDataFile": "LIST"},
            {"ElementDataFile": "frame%03d.raw 0 2 1"}, {"Seq_Frame0000_Timestamp": "x", "Seq_Frame0001_Timestamp": "1"}]
    paths += _write_all(root, "lie", ".mha", [_mha(lie, data) for lie in lies])
    # detached: .mhd + .raw, and data files that are not what they should be
    (root / "data.raw").write_bytes(data)
    (root / "zero.raw").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.raw")
    (root / "link.raw").symlink_to(root / "data.raw")
    (root / "sub").mkdir()
    (root / "sub" / "d.raw").write_bytes(data)
    for i, (name, extra) in enumerate((("data.raw", {}), ("zero.raw", {}), ("fifo.raw", {}), ("link.raw", {}),
                                       ("sub/d.raw", {}), ("missing.raw", {}), ("sub", {}), ("data.raw", {"HeaderSize": "-5"}),
                                       ("data.raw", {"HeaderSize": "-1"}), ("data.raw", {"HeaderSize": "99999999999"}),
                                       ("data.raw", {"HeaderSize": "2000"}))):
        path = root / f"detached{i:02d}.mhd"
        path.write_bytes(_mha({"ElementDataFile": name, **extra}, b""))
        paths.append(path)
    return paths + _special(root, "x.mha")


def cases_nrrd(root: Path, rng: random.Random) -> list[Path]:
    data = _stack_bytes()
    paths = []
    for encoding, payload in (("raw", data), ("gzip", gzip.compress(data)), ("bzip2", bz2.compress(data)),
                              ("ascii", " ".join(map(str, data)).encode())):
        valid = _nrrd({"encoding": encoding}, payload)
        paths += _write_all(root, f"mut_{encoding}_", ".nrrd", [valid] + _mutations(rng, valid, cuts=8, flips=4))
    lies = [({}, "0 24 3"), ({}, "-1 24 3"), ({}, "100000 100000"), ({}, "8192 8192 99999"), ({}, "32"), ({}, "a b c"),
            ({"type": "bogus"}, "32 24 3"), ({"type": "block", "block size": "4"}, "32 24 3"), ({"encoding": "zip7"}, "32 24 3"),
            ({"dimension": "5"}, "32 24 3"), ({"kinds": "RGB-color domain domain"}, "5 32 24"),
            ({"kinds": "vector domain domain"}, "2 32 24"), ({"data file": "../../../../etc/passwd"}, "32 24 3"),
            ({"data file": "/etc/passwd"}, "32 24 3"), ({"data file": "LIST"}, "32 24 3"), ({"line skip": "-3"}, "32 24 3"),
            ({"byte skip": "-7"}, "32 24 3"), ({"byte skip": "99999999999"}, "32 24 3"), ({"byte skip": "x"}, "32 24 3"),
            ({"space directions": "(1,0) (0,a)"}, "32 24 3"), ({"spacings": "x y z"}, "32 24 3"), ({"endian": "middle"}, "32 24 3")]
    paths += _write_all(root, "lie", ".nrrd", [_nrrd(fields, data, sizes) for fields, sizes in lies])
    paths += _write_all(root, "text", ".nrrd", [b"NRRD0004\n" + b"x" * (2 << 20), b"NRRD0004\n", b"NRRD", b"\n\n\n",
                                                 b"NRRD0004\ntype: uint8\n\n"])
    (root / "data.raw").write_bytes(data)
    (root / "zero.raw").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.raw")
    for i, name in enumerate(("data.raw", "zero.raw", "fifo.raw", "missing.raw")):
        path = root / f"detached{i}.nhdr"
        path.write_bytes(_nrrd({"data file": name}, b"")[:-1])  # a detached header ends with the file
        paths.append(path)
    return paths + _special(root, "x.nrrd")


def cases_folder(root: Path, rng: random.Random) -> list[Path]:
    good = cv2.imencode(".png", _image())[1].tobytes()
    folders = []
    for i, bad in enumerate((_png_stating(100000, 100000), good[: len(good) // 2], rng.randbytes(300), b"", None, "zero", "fifo")):
        folder = root / f"folder{i}"
        folder.mkdir()
        (folder / "a1.png").write_bytes(good)
        target = folder / f"a{2 + i % 2}.png"
        if bad == "zero":
            target.symlink_to("/dev/zero")
        elif bad == "fifo":
            os.mkfifo(target)
        elif bad is not None:
            target.write_bytes(bad)
        (folder / "a9.png").write_bytes(good)
        folders.append(folder)
    (root / "empty_folder").mkdir()
    (root / "only_bad").mkdir()
    (root / "only_bad" / "x.png").write_bytes(_png_stating(0, 0))
    (root / "only_bad" / "y.jpg").write_bytes(b"\xff\xd8\xff")
    return folders + [root / "empty_folder", root / "only_bad"]


GENERATORS = {"still": cases_still, "video": cases_video, "h264": cases_h264, "dicom": cases_dicom,
              "metaimage": cases_metaimage, "nrrd": cases_nrrd, "folder": cases_folder}


# --------------------------------------------------------------------------------------------
# the checks


def _names(path: Path) -> set[str]:
    """Names an error about ``path`` may carry: its own, or (a folder) any of its entries'."""
    names = {path.name}
    if path.is_dir() and not path.is_symlink():
        names |= {p.name for p in path.iterdir()}
    return names


def read_case(path: Path) -> tuple[str, str]:
    """("ok" | "error" | "traceback" | "slow", detail) of probing and reading ``path``."""
    start = time.monotonic()
    outcome = ("ok", "")
    for step in ("probe", "frames"):
        try:
            if step == "probe":
                readers.probe(path)
            else:
                for frame in readers.iter_frames(path):  # every frame: the cases are a few frames long
                    ok = frame.dtype == np.uint8 and frame.ndim == 2 and readers.MIN_SIDE <= min(frame.shape)
                    if not ok or max(frame.shape) > MAX_FRAME_SIDE:
                        return "traceback", f"{step}: invalid frame {frame.dtype} {frame.shape}"
        except SonoedgeError as exc:
            text = str(exc)
            if not any(name in text for name in _names(path)) or "\n" in text.strip():
                return "traceback", f"{step}: error does not name the file in one line: {text!r}"
            outcome = ("error", text)
        except Exception as exc:  # the thing this suite exists to catch
            return "traceback", f"{step}: {type(exc).__name__}: {exc}"
    if time.monotonic() - start > CASE_SECONDS:
        return "slow", f"took {time.monotonic() - start:.1f} s"
    return outcome


CLI_RUNNER = r"""
import json, os, sys, tempfile
from sonoedge.cli import main
out = []
for path in sys.argv[1:]:
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(capture.fileno(), 1); os.dup2(capture.fileno(), 2)
        try:
            code = main(["data", "inspect", path])
        except BaseException as exc:
            code = f"escaped: {type(exc).__name__}: {exc}"
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2)
        os.close(saved[0]); os.close(saved[1])
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
    out.append({"path": path, "code": code, "output": text})
print(json.dumps(out))
"""


def run_cli(paths: list[Path]) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-c", CLI_RUNNER, *map(str, paths)], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    return {item["path"]: item for item in json.loads(done.stdout.strip().splitlines()[-1])}


def check_cli(path: Path, outcome: str, item: dict) -> str | None:
    """None when `sonoedge data inspect` agrees with the library, else what is wrong."""
    code, lines = item["code"], item["output"].strip().splitlines()
    if outcome == "ok":
        return None if code == 0 and not any("error" in line.lower() or "warn" in line.lower() for line in lines) \
            else f"good file, exit {code}: {item['output'][-300:]!r}"
    if code != 2 or len(lines) != 1 or not lines[0].startswith("sonoedge data: error: "):
        return f"bad file, exit {code}, output {item['output'][-400:]!r}"
    return None if any(name in lines[0] for name in _names(path)) else f"error does not name the file: {lines[0]!r}"


@pytest.mark.parametrize("fmt", sorted(GENERATORS))
def test_reader_faults(fmt, tmp_path):
    paths = GENERATORS[fmt](tmp_path, random.Random(f"{SEED}-{fmt}"))
    counts, failures = Counter(), []
    outcomes = {}
    for path in paths:
        outcome, detail = read_case(path)
        counts[outcome] += 1
        outcomes[path] = outcome
        if outcome in ("traceback", "slow"):
            failures.append(f"{path.name}: {detail}")
    cli = run_cli(paths)
    for path in paths:
        problem = check_cli(path, outcomes[path], cli[str(path)])
        counts["cli_ok" if problem is None else "cli_bad"] += 1
        if problem:
            failures.append(f"{path.name} (sonoedge data inspect): {problem}")
    counts["cases"] = len(paths)
    RESULTS[fmt] = counts
    print(f"\n{fmt}: {dict(counts)}")
    assert not failures, f"{len(failures)} of {len(paths)} {fmt} cases failed:\n" + "\n".join(failures[:40])
    assert counts["error"] > 0 and counts["ok"] + counts["error"] == len(paths)


# --------------------------------------------------------------------------------------------
# bombs: bounded memory, measured in a subprocess

BOMB_BYTES = 256 << 20  # what each bomb would inflate to without the bound
MEMORY_RUNNER = r"""
import resource, sys
from sonoedge.runtime import readers
from sonoedge.runtime.errors import SonoedgeError
import cv2, nrrd, pydicom  # imported before the baseline: their size is not the reader's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        for frame in readers.iter_frames(path):
            pass
        print("ok", path)
    except SonoedgeError as exc:
        print("error", exc)
print("peak_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_bombs_stay_within_bounded_memory(tmp_path):
    small = _stack_bytes()
    zlib_bomb, gzip_bomb = _zeros_stream(BOMB_BYTES, "zlib"), _zeros_stream(BOMB_BYTES, "gzip")
    files = {
        "zlib_small_header.mha": _mha({"CompressedData": "True"}, zlib_bomb),  # states 2 KB, inflates to 256 MB
        "zlib_huge_header.mha": _mha({"CompressedData": "True", "DimSize": "8192 8192 64"}, zlib_bomb),
        "gzip_small_header.nrrd": _nrrd({"encoding": "gzip"}, gzip_bomb),
        "gzip_huge_header.nrrd": _nrrd({"encoding": "gzip"}, gzip_bomb, sizes="8192 8192 64"),
        "bzip2_small_header.nrrd": _nrrd({"encoding": "bzip2"}, _zeros_stream(32 << 20, "bz2")),
        "png_beyond_bound.png": _png_bomb(MAX_FRAME_SIDE + 8),
        "ok.mha": _mha({}, small),
    }
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "devzero.png").symlink_to("/dev/zero")
    (tmp_path / "devzero.raw").symlink_to("/dev/zero")
    (tmp_path / "devzero.mhd").write_bytes(_mha({"ElementDataFile": "devzero.raw"}, b""))
    paths = [tmp_path / name for name in [*files, "devzero.png", "devzero.mhd"]]
    done = subprocess.run([sys.executable, "-c", MEMORY_RUNNER, *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    results = lines[:-1]
    # a stream that inflates past the size its header states is read to that size and no further
    assert [r.split()[0] for r in results] == ["ok", "error", "ok", "error", "ok", "error", "ok", "error", "error"], done.stdout
    peak = float(lines[-1].split()[1])
    print(f"\nbombs: {len(paths)} files, peak memory growth {peak:.0f} MB (each would inflate to {BOMB_BYTES >> 20} MB)")
    assert peak < 64, f"reading the bombs grew the process by {peak:.0f} MB"
