"""Realism statistics and the phantom structure check (train/realism.py), `sonoedge style` and
`sonoedge evaluate --real`."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from sonoedge.runtime.errors import InputError
from sonoedge.train import realism as R


def test_histogram_distance_is_the_shift_of_a_distribution():
    p = np.zeros(256)
    p[100:110] = 0.1
    assert R.wasserstein_1(p, np.roll(p, 7)) == pytest.approx(7.0)
    assert R.wasserstein_1(p, p) == 0.0


def test_speckle_snr_of_rayleigh_speckle_is_1_91():
    rng = np.random.default_rng(0)
    image = np.clip(rng.rayleigh(40, (200, 200)), 0, 255).astype(np.uint8)
    # fully developed speckle: mean / sd of a Rayleigh envelope = sqrt(pi / (4 - pi)) = 1.91
    assert R.speckle_snr(image, np.ones_like(image, bool)) == pytest.approx(1.91, rel=0.1)


def test_grain_size_follows_the_speckle_cell():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (160, 160)).astype(np.float32)
    mask = np.ones((160, 160), bool)

    def image(sy, sx):
        x = cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sy)
        return np.clip(128 + 40 * x / x.std(), 0, 255).astype(np.uint8)

    fine, coarse, tall = R.grain_size(image(1, 1), mask), R.grain_size(image(2, 2), mask), R.grain_size(image(3, 1), mask)
    assert coarse[0] > 1.5 * fine[0] and coarse[1] > 1.5 * fine[1]
    assert tall[0] > 1.8 * tall[1]  # axial (rows) longer than lateral


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from sonoedge.train.phantom import PhantomConfig, write_pairs

    out = tmp_path_factory.mktemp("ph") / "ph"
    write_pairs(out, 6, PhantomConfig(size=(96, 96), geometry="convex"), seed=3)
    return out


def _highs(phantom):
    return {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((phantom / "high").glob("*.png"))}


def test_structure_check_passes_the_phantom_itself_and_catches_harm(phantom):
    highs = _highs(phantom)
    same = R.structure_check(phantom, highs)["summary"]
    assert same["shift_px_max"] < 0.5 and same["structure_corr_median"] > 0.99 and same["cysts_lost"] == 0
    assert same["cysts_visible_before"] >= 1, "the test phantom should hold at least one visible cyst"
    moved = {k: np.roll(v, 6, axis=1) for k, v in highs.items()}
    assert R.structure_check(phantom, moved)["summary"]["shift_px_median"] > 3.5  # the sector edge stays: a lower bound
    # erase every cyst: fill it with its background's mean grey
    truth = R._phantom_truth(phantom)
    erased = {}
    for k, v in highs.items():
        v = v.copy()
        regions = truth[k]["regions"]
        if "cyst" in regions:
            v[regions["cyst"]] = int(v[regions["cyst_background"]].mean())
        erased[k] = v
    lost = R.structure_check(phantom, erased)["summary"]
    assert lost["cysts_lost"] == lost["cysts_visible_before"]
    painted = {k: np.maximum(v, 60).astype(np.uint8) for k, v in highs.items()}
    assert R.structure_check(phantom, painted)["summary"]["painted_outside_max"] > 0.9
    with pytest.raises(InputError, match="phantom.json"):
        R.structure_check(phantom / "high", highs)


def test_evaluate_real_writes_the_realism_table(phantom, tmp_path, capsys):
    from sonoedge.cli import main

    real = tmp_path / "real"
    real.mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):  # stand-in "real" frames: a bright speckled sector-free rectangle
        cv2.imwrite(str(real / f"r{i}.png"), np.clip(rng.rayleigh(50, (80, 100)), 0, 255).astype(np.uint8))
    out = tmp_path / "ev"
    args = ["evaluate", "--real", str(real), "--images", f"phantom={phantom / 'high'}", "--images", f"low={phantom / 'low'}",
            "--size", "64", "--inception-trunk", "random", "--phantom", str(phantom), "--out", str(out), "--quiet"]
    assert main(args) == 0
    table = (out / "realism.md").read_text()
    assert "RANDOM" in table and "| phantom | 6 |" in table and "cysts visible before" in table
    assert json.loads((out / "structure.json").read_text())["phantom"]["summary"]["images"] == 6
    assert "random (seed 0)" in (out / "realism.csv").read_text()
    assert main(args) != 0 and "not empty" in capsys.readouterr().err


def test_style_command_optimises_and_translates_with_a_checkpoint(phantom, tmp_path, capsys):
    from sonoedge.cli import main

    styles = phantom / "high"
    out = tmp_path / "styled"
    assert main(["style", str(phantom / "low"), "--style", str(styles), "--size", "32", "--iterations", "2",
                 "--vgg-trunk", "random", "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (phantom / "low").iterdir())
    assert "random" in capsys.readouterr().out
    assert main(["style", str(phantom / "low"), "--style", str(styles), "-o", str(out), "--vgg-trunk", "random"]) != 0
    one = sorted((phantom / "low").glob("*.png"))[0]
    assert main(["style", str(one), "--style", str(styles), "--size", "32", "--iterations", "2", "--average", "gram",
                 "--vgg-trunk", "random", "-o", str(tmp_path / "one.png"), "--quiet"]) == 0
    assert cv2.imread(str(tmp_path / "one.png"), cv2.IMREAD_GRAYSCALE).shape == (32, 32)
    # a trained translator: one step of the NST trainer on the phantom, then --checkpoint
    assert main(["train", "--preset", "menini2021-nst", "--data", str(phantom), "--out", str(tmp_path / "run"),
                 "--set", "model.generator_kwargs={ngf=4, n_blocks=1, noise=true}", "--set", "loss.vgg_trunk='random'",
                 "--set", "data.size=32", "--set", "train.max_steps=1", "--set", "data.ratios=[0.7, 0.15, 0.15]"]) == 0
    assert main(["style", str(phantom / "high"), "--checkpoint", str(tmp_path / "run" / "last.pt"), "-o",
                 str(tmp_path / "tr"), "--quiet"]) == 0
    translated = cv2.imread(str(sorted((tmp_path / "tr").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    assert translated.shape == (96, 96)  # padded to the stride and cropped back


def test_style_with_a_checkpoint_keeps_the_surround_exactly(phantom, tmp_path, capsys):
    """A translator trained one step paints everywhere; applied by `sonoedge style` the pixels outside
    the phantom's sector are the input's, inside they are translated; --outside translate shows the paint."""
    from sonoedge.cli import main

    run = tmp_path / "run"
    assert main(["train", "--preset", "menini2021-nst", "--data", str(phantom), "--out", str(run),
                 "--set", "model.generator_kwargs={ngf=4, n_blocks=1, noise=true}", "--set", "loss.vgg_trunk='random'",
                 "--set", "data.size=32", "--set", "train.max_steps=1", "--set", "data.ratios=[0.7, 0.15, 0.15]"]) == 0
    ckpt = str(run / "last.pt")
    assert main(["style", str(phantom / "high"), "--checkpoint", ckpt, "--size", "64", "-o", str(tmp_path / "kept"),
                 "--quiet"]) == 0
    assert "outside the phantom sector kept" in capsys.readouterr().out
    assert main(["style", str(phantom / "high"), "--checkpoint", ckpt, "--size", "64", "--outside", "translate",
                 "-o", str(tmp_path / "painted"), "--quiet"]) == 0
    truth = R._phantom_truth(phantom)
    for path in sorted((phantom / "high").glob("*.png")):
        source = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (64, 64), interpolation=cv2.INTER_AREA)
        kept = cv2.imread(str(tmp_path / "kept" / path.name), cv2.IMREAD_GRAYSCALE)
        painted = cv2.imread(str(tmp_path / "painted" / path.name), cv2.IMREAD_GRAYSCALE)
        sector = cv2.resize(truth[path.stem]["regions"]["sector"].astype(np.uint8), (64, 64),
                            interpolation=cv2.INTER_NEAREST).astype(bool)
        assert np.array_equal(kept[~sector], source[~sector])  # the surround exactly as it was
        assert np.array_equal(kept[sector], painted[sector])  # the sector translated as without the option
        assert not np.array_equal(painted[~sector], source[~sector])  # the untreated net does paint it
    kept = {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (tmp_path / "kept").glob("*.png")}
    painted = {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (tmp_path / "painted").glob("*.png")}
    assert R.structure_check(phantom, kept)["summary"]["painted_outside_max"] == 0.0
    assert R.structure_check(phantom, painted)["summary"]["painted_outside_max"] > 0.0
    # outside a phantom folder the region is detected on each image
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in sorted((phantom / "high").glob("*.png"))[:2]:
        (loose / path.name).write_bytes(path.read_bytes())
    assert main(["style", str(loose), "--checkpoint", ckpt, "-o", str(tmp_path / "loose_out"), "--quiet"]) == 0
    assert "outside the detected region kept" in capsys.readouterr().out


def _sector_frame(rng) -> np.ndarray:
    """A 'screen capture': a speckled fan on black, a bright bar in the top-right corner outside it."""
    frame = np.zeros((120, 180), np.uint8)
    fan = np.zeros_like(frame)
    cv2.ellipse(fan, (90, -20), (130, 130), 0, 55, 125, 1, -1)
    frame[fan.astype(bool)] = np.clip(rng.rayleigh(60, int(fan.sum())), 1, 255).astype(np.uint8)
    frame[4:10, 160:176] = 250
    return frame


def test_data_region_masks_or_crops_real_frames_without_squeezing(tmp_path):
    from sonoedge.train.augment import AugmentConfig
    from sonoedge.train.datasets import DataConfig, apply_region, build_datasets

    rng = np.random.default_rng(4)
    frame = _sector_frame(rng)
    masked, = apply_region([frame], "mask")
    assert masked[4:10, 160:176].max() == 0  # the bar outside the fan is gone
    inside = masked > 0
    assert np.array_equal(masked[inside], frame[inside]) and inside.sum() > 0.9 * (frame[20:] > 0).sum()
    cropped, = apply_region([frame], "crop")
    assert cropped.shape[0] == cropped.shape[1] and cropped.shape[0] <= 180  # a square, nothing resized
    assert (cropped > 0).sum() == inside.sum()  # every region pixel kept, no pixel invented
    with pytest.raises(InputError, match="data.region"):
        apply_region([frame], "blur")
    root = tmp_path / "s2r"
    for folder in ("A", "B"):
        (root / folder).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / folder / f"{folder}{i}.png"), _sector_frame(rng))
    cfg = DataConfig(root=str(root), layout="unpaired", size=0, ratios=(1.0, 0.0, 0.0), region="mask",
                     augment=AugmentConfig(enabled=False))
    item = build_datasets(cfg)["train"][0]
    to_grey = lambda t: np.round((t[0].numpy() + 1) * 127.5)  # noqa: E731
    assert to_grey(item["B"])[4:10, 160:176].max() == 0  # B (the real frames) masked
    assert to_grey(item["A"])[4:10, 160:176].min() == 250  # A untouched (region_folders = ("B",))
    with pytest.raises(InputError, match="data.region"):
        build_datasets(DataConfig(root=str(root), layout="unpaired", region="blur"))
