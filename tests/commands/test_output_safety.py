"""Output safety of every command that writes: no command deletes or overwrites what it did not create.

For each writing command (enhance to an image, a video and a folder, export, demo, data phantom, sr,
evaluate --out, curves, bench --json, train --out; report and verify write nothing):

- an existing output (a file, or a folder that is not empty) is refused without --overwrite and
  left byte for byte as it was;
- the output is never the input, nor inside an input folder;
- ``-o .`` is refused and nothing is left behind (no ``..xxx.partial`` folder);
- an output path that cannot be made (a file where a folder should be) ends in one sentence, exit 2,
  no traceback. This machine runs tests as root, where chmod 0500 does not stop a write, so a file
  in place of the folder stands in for an unwritable place.

Refusals happen before any heavy work, so most cases run in milliseconds; where a command needs an
input it gets a small real one (the ``tiny_bundle`` of conftest, a few phantom frames).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.runtime.readers import probe


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``, hidden ones included (folders as '/')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``sonoedge ARGV`` in this process; any traceback fails the test."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_sentence(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    assert any(all(w in line for w in words) for line in lines), err


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A working folder with an input image, an input folder of images, a clip and a foreign folder."""
    rng = np.random.default_rng(0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    for name in ("scan_a.png", "scan_b.png"):
        cv2.imwrite(str(tmp_path / "in" / name), rng.integers(0, 255, (72, 96), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "image.png"), rng.integers(0, 255, (72, 96), dtype=np.uint8))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72), False)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (72, 96), dtype=np.uint8))
    writer.release()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("unrelated work, keep me")
    (tmp_path / "mine" / "sub").mkdir()
    (tmp_path / "mine" / "sub" / "data.bin").write_bytes(b"\x00\x01" * 100)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "ckpt.pt").write_bytes(b"not really a checkpoint")  # refusals come before it is read
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 1, "val_ssim": 0.5,
                                                            "val_lncc": 0.4, "val_psnr": 20.0}) + "\n")
    return tmp_path


# --- the writing commands: argv for (input, output), the output kind ----------------------------
def enhance_image(w, out, bundle):
    return ["enhance", w / "image.png", "-o", out, "--bundle", bundle]


def enhance_video(w, out, bundle):
    return ["enhance", w / "clip.avi", "-o", out, "--bundle", bundle]


def enhance_folder(w, out, bundle):
    return ["enhance", w / "in", "-o", out, "--bundle", bundle]


def export(w, out, bundle):
    return ["export", w / "ckpt.pt", "-o", out, "--target", "cpu"]


def demo(w, out, bundle):
    return ["demo", "--input", w / "clip.avi", "--out", out, "--bundle", bundle]


def phantom(w, out, bundle):
    return ["data", "phantom", "--pairs", "1", "--size", "32", "--out", out, "--quiet", "--workers", "1"]


def sr(w, out, bundle):
    return ["sr", w / "image.png", "-o", out, "--zero-shot", "--set", "max_iters=1"]


def evaluate(w, out, bundle):
    return ["evaluate", "--reference", w / "in", "--low", w / "in", "--out", out, "--no-lpips", "--quiet"]


def curves(w, out, bundle):
    return ["curves", w / "run", out]


def bench(w, out, bundle):
    return ["bench", bundle, "--input", w / "clip.avi", "--frames", "2", "--repeats", "1", "--json", out]


def train(w, out, bundle):
    return ["train", "--preset", "liu2021-sr", "--data", w / "in", "--out", out]


def style_file(w, out, bundle):
    return ["style", w / "image.png", "--style", w / "image.png", "-o", out, "--vgg-trunk", "random", "--iterations", "1"]


def style_folder(w, out, bundle):
    return ["style", w / "in", "--style", w / "image.png", "-o", out, "--vgg-trunk", "random", "--iterations", "1"]


# command -> (argv builder, output kind, suffix of a file output, the input an output may collide with)
COMMANDS = {
    "enhance-image": (enhance_image, "file", ".png", "image.png"),
    "enhance-video": (enhance_video, "file", ".mp4", "clip.avi"),
    "enhance-folder": (enhance_folder, "folder", "", "in"),
    "export": (export, "folder", "", "ckpt.pt"),
    "demo": (demo, "folder", "", "clip.avi"),
    "data-phantom": (phantom, "folder", "", None),
    "sr": (sr, "file", ".png", "image.png"),
    "evaluate": (evaluate, "folder", "", "in"),
    "curves": (curves, "file", ".png", "run/log.jsonl"),
    "bench-json": (bench, "file", ".json", "clip.avi"),
    "train": (train, "folder", "", "in"),
    "style-file": (style_file, "file", ".png", "image.png"),
    "style-folder": (style_folder, "folder", "", "in"),
}
NEEDS = {"sr": "torch", "train": "torch", "curves": "matplotlib", "style-file": "torch", "style-folder": "torch"}


def _skip_missing(name: str) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])


@pytest.mark.parametrize("name", COMMANDS)
def test_existing_output_is_refused_and_untouched(name, world, tiny_bundle, capsys):
    _skip_missing(name)
    build, kind, suffix, _ = COMMANDS[name]
    if kind == "folder":
        target = world / "mine"
    else:
        target = world / "mine" / f"existing{suffix}"
        target.write_bytes(b"someone else's file")
    before = snapshot(world)
    code, err = run(build(world, target, tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, str(target), "--overwrite")
    assert snapshot(world) == before


@pytest.mark.parametrize("name", [n for n, c in COMMANDS.items() if c[3]])
def test_output_onto_the_input_is_refused(name, world, tiny_bundle, capsys):
    _skip_missing(name)
    build, kind, suffix, given = COMMANDS[name]
    target = world / given
    before = snapshot(world)
    code, err = run(build(world, target, tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, str(target))
    assert snapshot(world) == before


# commands that read a folder, with that folder (in/) as the input and the output inside it
INSIDE = {
    "enhance-image": lambda w, b: ["enhance", w / "in", "-o", w / "in" / "out.png", "--bundle", b],
    "enhance-video": lambda w, b: ["enhance", w / "in", "-o", w / "in" / "out.mp4", "--bundle", b],
    "enhance-folder": lambda w, b: enhance_folder(w, w / "in" / "enhanced", b),
    "export": lambda w, b: ["export", w / "ckpt.pt", "--frames", w / "in", "-o", w / "in" / "bundle", "--target", "cpu"],
    "demo": lambda w, b: ["demo", "--input", w / "in", "--out", w / "in" / "demo", "--bundle", b],
    "evaluate": lambda w, b: evaluate(w, w / "in" / "eval", b),
    "bench-json": lambda w, b: ["bench", b, "--input", w / "in", "--json", w / "in" / "b.json"],
    "train": lambda w, b: train(w, w / "in" / "run", b),
    "style-folder": lambda w, b: style_folder(w, w / "in" / "styled", b),
}


@pytest.mark.parametrize("name", INSIDE)
def test_output_inside_an_input_folder_is_refused(name, world, tiny_bundle, capsys):
    """(curves reads only RUN_DIR/log.jsonl, so its PNG may go in the run folder; phantom reads nothing.)"""
    _skip_missing(name)
    before = snapshot(world)
    code, err = run(INSIDE[name](world, tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, "inside the input folder")
    assert snapshot(world) == before


@pytest.mark.parametrize("name", COMMANDS)
def test_dot_is_refused_and_nothing_is_left_behind(name, world, tiny_bundle, capsys):
    _skip_missing(name)
    build, kind, suffix, _ = COMMANDS[name]
    before, hidden = snapshot(world), sorted(p.name for p in world.parent.iterdir() if p.name.startswith("."))
    code, err = run(build(world, Path("."), tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, ".")
    assert snapshot(world) == before
    assert sorted(p.name for p in world.parent.iterdir() if p.name.startswith(".")) == hidden  # no ..x.partial


@pytest.mark.parametrize("name", COMMANDS)
def test_unwritable_place_is_one_sentence(name, world, tiny_bundle, capsys):
    _skip_missing(name)
    build, kind, suffix, _ = COMMANDS[name]
    target = world / "blocker" / "deeper" / f"out{suffix}"
    before = snapshot(world)
    code, err = run(build(world, target, tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, "blocker", "is a file")
    assert snapshot(world) == before


def test_read_only_filesystem_is_one_sentence(world, tiny_bundle, capsys):
    """A real read-only place where the machine has one (/sys or /proc mounted read-only)."""
    ro = next((Path(p) for p in ("/sys", "/proc/sys") if Path(p).is_dir() and os.statvfs(p).f_flag & os.ST_RDONLY), None)
    if ro is None:
        pytest.skip("no read-only file system mounted here")
    code, err = run(enhance_image(world, ro / "sonoedge-out.png", tiny_bundle), capsys)
    assert code == 2
    one_sentence(err, str(ro), "read-only")


# --- what --overwrite may and may not replace ----------------------------------------------------
def test_overwrite_replaces_an_earlier_frame_folder_but_never_a_foreign_one(world, tiny_bundle, capsys):
    out = world / "frames"
    assert run(enhance_folder(world, out, tiny_bundle), capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["scan_a.png", "scan_b.png"]
    assert run([*enhance_folder(world, out, tiny_bundle), "--overwrite"], capsys)[0] == 0
    (out / "my_notes.txt").write_text("added by the user")
    before = snapshot(world)
    code, err = run([*enhance_folder(world, out, tiny_bundle), "--overwrite"], capsys)
    assert code == 2 and snapshot(world) == before
    one_sentence(err, "did not write", "my_notes.txt")
    code, err = run([*enhance_folder(world, world / "mine", tiny_bundle), "--overwrite"], capsys)
    assert code == 2 and (world / "mine" / "notes.txt").read_text() == "unrelated work, keep me"


def test_overwrite_replaces_only_the_demo_files(world, tiny_bundle, capsys):
    out = world / "mine"
    assert run([*demo(world, out, tiny_bundle), "--overwrite"], capsys)[0] == 0
    assert (out / "notes.txt").read_text() == "unrelated work, keep me" and (out / "sub" / "data.bin").is_file()
    assert probe(out / "enhanced.mp4").frames == 3


def test_overwrite_never_replaces_a_folder_that_is_not_a_bundle(world, capsys):
    code, err = run([*export(world, world / "mine", None), "--overwrite"], capsys)
    assert code == 2 and (world / "mine" / "notes.txt").is_file()
    one_sentence(err, "did not write")


def test_overwrite_of_an_existing_file(world, tiny_bundle, capsys):
    target = world / "result.png"
    target.write_bytes(b"old")
    assert run([*enhance_image(world, target, tiny_bundle), "--overwrite"], capsys)[0] == 0
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).shape == (72, 96)


# --- enhance: names, sizes, honest exit codes ----------------------------------------------------
def test_folder_output_keeps_the_input_names(world, tiny_bundle, capsys):
    assert run(enhance_folder(world, world / "frames", tiny_bundle), capsys)[0] == 0
    assert sorted(p.name for p in (world / "frames").iterdir()) == [".sonoedge-output.json", "scan_a.png", "scan_b.png"]


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_odd_sized_frames_keep_every_pixel_in_a_video(world, tiny_bundle, capsys, suffix):
    rng = np.random.default_rng(1)
    odd = rng.integers(0, 255, (73, 99), dtype=np.uint8)
    cv2.imwrite(str(world / "odd.png"), odd)
    out = world / f"odd{suffix}"
    code, err = run(["enhance", world / "odd.png", "-o", out, "--bundle", tiny_bundle, "--region", "full"], capsys)
    assert code == 0
    info = probe(out)
    assert (info.height, info.width) == (74, 100)  # padded to even: the last row and column repeated
    assert "73" in err and "even" in err  # said once


def test_too_small_image_writes_nothing_and_says_why(world, capsys):
    """The embedded default bundle takes 64x64 and up: a 40x40 still is refused frame by frame."""
    cv2.imwrite(str(world / "tiny.png"), np.full((40, 40), 128, np.uint8))
    code = main(["enhance", str(world / "tiny.png"), "-o", str(world / "tiny_out.png")])
    out, err = capsys.readouterr()
    assert code == 1 and "wrote" not in out and not (world / "tiny_out.png").exists()
    one_sentence(err, "nothing was written", "40x40")


def test_frames_passed_through_exit_non_zero_with_the_reason(world, tiny_bundle, capsys, monkeypatch):
    from sonoedge.runtime.stream.enhancer import Enhancer

    def failing(self, job):  # the backend fails on every frame: the fail-safe passes frames through
        self._fail("inference failed: RuntimeError: no accelerator", job)
        return job

    monkeypatch.setattr(Enhancer, "infer", failing)
    code = main(["enhance", str(world / "clip.avi"), "-o", str(world / "o.mp4"), "--bundle", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1 and (world / "o.mp4").is_file()  # the frames are written, unenhanced, and it says so
    one_sentence(err, "3 of 3 frame(s) passed through unenhanced", "no accelerator")


# --- Ctrl-C and SIGTERM --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """A clip long enough that enhancing it takes several seconds here."""
    path = tmp_path_factory.mktemp("long") / "long.avi"
    rng = np.random.default_rng(2)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (384, 384), dtype=np.uint8), (0, 0), 3) for _ in range(8)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (384, 384), False)
    for i in range(900):
        writer.write(frames[i % 8])
    writer.release()
    return path


@pytest.mark.parametrize("sig,output", [(signal.SIGINT, "out.mp4"), (signal.SIGINT, "out.avi"),
                                        (signal.SIGINT, "frames"), (signal.SIGINT, "out.mp4"),
                                        (signal.SIGTERM, "out.mp4")])
def test_interrupt_ends_enhance_cleanly(long_clip, tmp_path, sig, output):
    """A real process, signalled once its partial output exists: exit 130, no crash, nothing left."""
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sonoedge.cli", "enhance", str(long_clip), "-o",
                             str(out_dir / output), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not any(".partial" in p.name for p in out_dir.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)  # a few frames into the partial output
    assert proc.poll() is None, "enhance finished before it could be interrupted; make the clip longer"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "interrupted" in err and "Traceback" not in err and "Fatal Python error" not in err, err
    assert list(out_dir.iterdir()) == []
