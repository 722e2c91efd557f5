"""`sonoedge train --preset liu2021-sr` and `sonoedge sr` (progress, atomic output, clear errors)."""
import cv2
import numpy as np
import pytest

from sonoedge.cli import main
from tests.train.sr.test_trainer import textured

SMALL = ["--set", "net.width=0.25", "--set", "net.degrade_channels=8", "--set", "net.disc_channels=8",
         "--set", "data.crop=16", "--set", "data.batch=2", "--set", "weights.perceptual=0.0",
         "--set", "max_iters=2", "--set", "ensemble.transforms=1", "--set", "ensemble.back_projection=1"]


def _write_images(folder, n=2, shape=(40, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 255, shape, dtype=np.uint8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr")
    _write_images(root / "data" / "sub")
    assert main(["train", "--preset", "liu2021-sr", "--data", str(root / "data"), "--out", str(root / "run"), *SMALL]) == 0
    assert (root / "run" / "config.toml").is_file()
    return root / "run" / "last.pt"


def test_preset_is_registered_with_paper_defaults():
    from sonoedge.train.registries import PRESETS, load_all

    load_all()
    preset = PRESETS.get("liu2021-sr")
    assert preset.config.mode == "dataset" and preset.config.weights.adversarial == 5.0


def test_sr_with_checkpoint_writes_4x_image(checkpoint, tmp_path):
    _write_images(tmp_path, 1, (20, 24))
    out = tmp_path / "out" / "x4.png"
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--checkpoint", str(checkpoint), *SMALL]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (80, 96)


def test_sr_zero_shot_writes_4x_image(tmp_path):
    _write_images(tmp_path, 1, (36, 40))
    out = tmp_path / "z.png"
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--zero-shot", "--generator", "liu", *SMALL]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (144, 160)


def test_errors_are_one_line_and_leave_no_output(tmp_path, capsys, checkpoint):
    out = tmp_path / "never.png"
    assert main(["sr", str(tmp_path / "missing.png"), "-o", str(out), "--checkpoint", str(checkpoint)]) == 2
    assert main(["sr", str(checkpoint), "-o", str(tmp_path / "x.xyz"), "--checkpoint", str(checkpoint)]) == 2
    _write_images(tmp_path, 1)
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--checkpoint", str(tmp_path / "f0.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("sonoedge sr: error:") for line in err)
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    with pytest.raises(SystemExit):
        main(["sr", str(tmp_path / "f0.png"), "-o", str(out)])  # neither --zero-shot nor --checkpoint
    assert main(["train", "--preset", "liu2021-sr", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2


def test_sr_zero_shot_on_a_too_small_image_is_one_sentence(tmp_path, capsys):
    _write_images(tmp_path, 1, (24, 40))
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(tmp_path / "z.png"), "--zero-shot", "--generator", "liu"]) == 2
    err = capsys.readouterr().err
    assert "40x24 pixels" in err and "64x64" in err and "Traceback" not in err
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(tmp_path / "z.png"), "--zero-shot"]) == 2
    err = capsys.readouterr().err
    assert "40x24 pixels" in err and "96x96" in err and "--dataset" in err and "Traceback" not in err
    assert not (tmp_path / "z.png").exists()


def test_sr_has_the_lpips_trunk_option_its_message_names():
    import argparse

    from sonoedge.commands import sr

    parser = argparse.ArgumentParser()
    sr.add_arguments(parser)
    args = parser.parse_args(["in.png", "-o", "out.png", "--zero-shot", "--lpips-trunk", "random"])
    assert sr._config(args).perceptual.trunk == "random"


def test_sr_zero_shot_budget_stops_and_reports_what_it_reached(tmp_path, capsys):
    _write_images(tmp_path, 1, (36, 40))
    out = tmp_path / "b.png"
    small = [a if a != "max_iters=2" else "max_iters=100000" for a in SMALL]
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--zero-shot", "--generator", "liu", "--budget", "1",
                 "--degradation", "area", *small]) == 0
    text = capsys.readouterr().out
    assert "stopped by time budget 1 s" in text and "reconstruction error" in text
    assert "sons: area" in text and "back-projection through area" in text
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (144, 160)


def test_sr_default_budget_and_bad_options(tmp_path, capsys):
    import argparse

    from sonoedge.commands import sr

    parser = argparse.ArgumentParser()
    sr.add_arguments(parser)
    assert sr._config(parser.parse_args(["i.png", "-o", "o.png", "--zero-shot"])).time_budget_s == sr.DEFAULT_BUDGET_S
    _write_images(tmp_path, 1, (36, 40))
    for bad, words in ((["--degradation", "lanczos"], "degradation.operator"), (["--budget", "-1"], "--budget")):
        assert main(["sr", str(tmp_path / "f0.png"), "-o", str(tmp_path / "o.png"), "--zero-shot", *bad]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_sr_with_checkpoint_on_tiny_inputs(checkpoint, tmp_path, capsys):
    for shape in ((16, 16), (17, 21)):
        cv2.imwrite(str(tmp_path / "t.png"), np.full(shape, 100, np.uint8))
        out = tmp_path / f"t{shape[0]}.png"
        assert main(["sr", str(tmp_path / "t.png"), "-o", str(out), "--checkpoint", str(checkpoint), *SMALL]) == 0
        assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (4 * shape[0], 4 * shape[1])
    capsys.readouterr()  # the progress bars so far
    cv2.imwrite(str(tmp_path / "t.png"), np.full((3, 9), 100, np.uint8))
    assert main(["sr", str(tmp_path / "t.png"), "-o", str(tmp_path / "t3.png"), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "9x3 pixels" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------ the blind generator (default)

@pytest.fixture(scope="module")
def blind_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("blind")
    _write_images(root / "data", n=4, shape=(120, 128))
    assert main(["train", "--preset", "blind-sr", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--set", "max_iters=3", "--set", "check_every=2", "--set", "data.val_every=2",
                 "--set", "data.lr_crop=8", "--set", "data.batch=2", "--set", "net.channels=4",
                 "--set", "net.layers=2"]) == 0
    return root / "run" / "last.pt"


def test_blind_checkpoint_runs_through_sr(blind_checkpoint, tmp_path, capsys):
    _write_images(tmp_path, 1, (100, 104))
    out = tmp_path / "c.png"
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--checkpoint", str(blind_checkpoint)]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (400, 416)
    assert "BlindSRNet 2 x 4 channels" in capsys.readouterr().out


def test_shipped_blind_generator_dataset_and_zero_shot(tmp_path, capsys):
    from sonoedge.train.sr import blind

    if not blind.WEIGHTS.is_file():
        pytest.skip(f"{blind.WEIGHTS} is not there")
    _write_images(tmp_path, 1, (100, 104))
    out = tmp_path / "d.png"
    assert main(["sr", str(tmp_path / "f0.png"), "-o", str(out), "--dataset", "--threads", "1"]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (400, 416)
    capsys.readouterr()
    out = tmp_path / "z.png"
    # a clean (unspeckled) input, so there is something to fit: on a speckled one zero-shot returns at once
    cv2.imwrite(str(tmp_path / "clean.png"), textured(0, (100, 104), periods=(6.0, 9.0), noise=3))
    assert main(["sr", str(tmp_path / "clean.png"), "-o", str(out), "--zero-shot", "--budget", "1",
                 "--degradation", "cubic", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "stopped by time budget 1 s" in text and "through cubic" in text and "cleanliness" in text
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (400, 416)


def test_sr_eval_validation_compares_the_choices_on_the_training_folder(blind_checkpoint, tmp_path, capsys):
    _write_images(tmp_path / "train", n=12, shape=(120, 128))
    assert main(["sr-eval", "--validation", str(tmp_path / "train"), "--checkpoint", str(blind_checkpoint),
                 "--validation-frames", "1", "--methods", "dataset,dataset-bp"]) == 0
    table = capsys.readouterr().out.splitlines()
    rows = [line for line in table if line.startswith("| dataset")]
    assert len(rows) == 2 and all(line.count("|") == 14 for line in rows)  # 10 degradations, mean, min


def test_sr_eval_degradations_with_the_blind_generator(blind_checkpoint, tmp_path):
    import json

    from sonoedge.train.sr import evaluate_degradations as E

    (tmp_path / "realus" / "hc18").mkdir(parents=True)
    # clean after cubic decimation (zero-shot fits it for the budget), speckled after area+speckle (it returns at once)
    cv2.imwrite(str(tmp_path / "realus" / "hc18" / "050_HC.png"), textured(0, (400, 400), periods=(12.0, 17.0), noise=3))
    table = E.evaluate(tmp_path / "realus", tmp_path / "out", ["bicubic", "dataset", "zero-shot"],
                       ["cubic", "area+speckle"], checkpoint=blind_checkpoint, budget=0.5)
    assert "| **all** | zero-shot | 2 |" in table and "| **all** | dataset | 2 |" in table
    meta = json.loads((tmp_path / "out" / "zero-shot" / "cubic" / "050_HC.json").read_text())
    assert meta["train_log"]["stop_reason"] == "time budget 0.5 s" and "estimate" in meta
    speckled = json.loads((tmp_path / "out" / "zero-shot" / "area+speckle" / "050_HC.json").read_text())
    assert speckled["train_log"]["iterations"] == 0 and "nothing to fit" in speckled["train_log"]["stop_reason"]
    assert "BlindSRNet" in json.loads((tmp_path / "out" / "dataset" / "cubic" / "050_HC.json").read_text())["generator"]


def test_sr_eval_validation_from_a_later_frame_on_chosen_degradations(blind_checkpoint, tmp_path, capsys):
    from sonoedge.runtime.errors import InputError
    from sonoedge.train.sr import blind

    _write_images(tmp_path / "train", n=20, shape=(120, 128))
    assert main(["sr-eval", "--validation", str(tmp_path / "train"), "--checkpoint", str(blind_checkpoint),
                 "--validation-first", "1", "--validation-frames", "1", "--degradations", "cubic,area+speckle",
                 "--methods", "dataset,zero-shot", "--budget", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "frame 1:" in out and "frame 0:" not in out  # the second validation frame only
    rows = [line for line in out.splitlines() if line.startswith("| dataset") or line.startswith("| zero-shot")]
    assert len(rows) == 2 and all(line.count("|") == 6 for line in rows)  # 2 degradations, mean, min
    with pytest.raises(InputError, match="zero-shot-magic"):
        blind.compare_on_validation(tmp_path / "train", blind_checkpoint, 1, variants=("zero-shot-magic",))
