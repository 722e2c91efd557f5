"""A folder of stills: each file is its own scan, with its own imaging region, and its output keeps
the file's name so ``evaluate`` pairs it with its input."""
from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.readers import folder_files, iter_frames, read_image
from sonoedge.runtime.region import detect_region
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.files import enhance_file


@pytest.fixture(scope="module")
def tiny_model(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    yield model
    model.close()


@pytest.mark.realus
def test_each_still_of_a_folder_gets_its_own_region(realus, tiny_bundle, tiny_model, tmp_path):
    """HC18 fetal-head stills (one size, different scans): the folder's output for each file is the
    output of that file enhanced alone, and nothing outside its own region changes."""
    folder = realus / "hc18"
    files = folder_files(folder)
    boxes = {detect_region(read_image(f)).bbox for f in files}
    assert len(boxes) > 3  # the stills' regions differ: the first one's would be wrong for the others
    cfg = EnhancerConfig(bundle=str(tiny_bundle), region="auto")
    stats = enhance_file(folder, tmp_path / "out", cfg, model=tiny_model)
    assert stats["frames_out"] == stats["enhanced"] == len(files)
    for file in files:
        image = read_image(file)
        written = cv2.imread(str(tmp_path / "out" / f"{file.stem}.png"), cv2.IMREAD_UNCHANGED)
        alone = Enhancer(tiny_model, cfg)(Frame(image, 0)).image
        assert np.array_equal(written, alone), file.name
        outside = ~detect_region(image).mask
        assert np.array_equal(written[outside], image[outside]), file.name


@pytest.mark.realus
def test_a_clip_keeps_its_tracked_region(realus, tiny_model):
    """Frames of one clip carry no file name: the region is detected once and cached."""
    enhancer = Enhancer(tiny_model, EnhancerConfig(region="auto"))
    frames = list(iter_frames(realus / "clips" / "plus_toolkit" / "UltrasonixCurvilinearScanConvertedData.igs.mha"))
    for i, image in enumerate(frames):
        enhancer(Frame(image, i))
    assert len(frames) == 5 and enhancer.region.tracker.detections == 1


@pytest.mark.realus
def test_enhance_then_evaluate_pair_up(realus, tiny_bundle, tmp_path, capsys):
    """``sonoedge enhance FOLDER`` keeps each input's name (stem + .png), so ``sonoedge evaluate``
    pairs the enhanced folder with its inputs, whatever their extensions."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("000_HC.png", "150_HC.png", "300_HC.png"):
        shutil.copy(realus / "hc18" / name, inputs / name)
    shutil.copy(realus / "itkpocus_handheld" / "interson-image.jpg", inputs / "interson-image.jpg")
    cv2.imwrite(str(inputs / "hip.tif"), cv2.imread(str(realus / "hip_spj" / "standard_ultrasound" / "standard_3.png"), cv2.IMREAD_GRAYSCALE))
    out = tmp_path / "enhanced"
    assert main(["enhance", str(inputs), "-o", str(out), "--bundle", str(tiny_bundle), "--guard", "off"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["000_HC.png", "150_HC.png", "300_HC.png", "hip.png", "interson-image.png"]
    report = tmp_path / "report"
    code = main(["evaluate", "--low", str(inputs), "--reference", str(inputs), "--method", f"enhanced={out}",
                 "--no-lpips", "--quiet", "--out", str(report)])
    assert code == 0, capsys.readouterr().err
    with open(report / "scores_per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    names = {row["name"] for row in rows if row["method"] == "enhanced"}
    assert names == {"000_HC", "150_HC", "300_HC", "hip", "interson-image"}


def test_a_file_enhanced_with_frame_parallel_inference_is_the_file_enhanced_one_frame_at_a_time(tiny_bundle, tmp_path, monkeypatch):
    """``enhance_file`` on a CPU with auto intra-op threads runs 2 model calls at once (half the
    cores each); the written frames are those of a caller-loaded model run one call at a time, in order."""
    from sonoedge.runtime.backends import onnxruntime as ortb
    from sonoedge.runtime.readers import iter_frames

    rng = np.random.default_rng(9)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(12):
        cv2.imwrite(str(frames / f"{i:03d}.png"), rng.integers(0, 256, (70, 90), dtype=np.uint8))
    monkeypatch.setattr(ortb, "physical_cores", lambda: 2)
    cfg = EnhancerConfig(bundle=str(tiny_bundle), region="full", threads=0)
    parallel = enhance_file(frames, tmp_path / "parallel", cfg)
    model = load_model(cfg)
    try:
        serial = enhance_file(frames, tmp_path / "serial", cfg, model=model)
    finally:
        model.close()
    assert parallel["infer_workers"] == 2 and serial["infer_workers"] == 1
    assert parallel["frames_out"] == serial["frames_out"] == parallel["enhanced"] == 12
    for a, b in zip(iter_frames(tmp_path / "parallel"), iter_frames(tmp_path / "serial")):
        assert np.array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(iter_frames(tmp_path / "parallel"), iter_frames(frames)))
