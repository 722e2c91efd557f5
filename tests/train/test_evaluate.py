"""train/evaluate.py and `sonoedge evaluate`: Table 2 numbers, one-sided tests, layout, refusals."""
from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest
from scipy.stats import wilcoxon

from sonoedge.cli import main
from sonoedge.runtime import metrics
from sonoedge.runtime.errors import InputError
from sonoedge.train.evaluate import BASELINE, evaluate_methods, infer_organs, wilcoxon_p
from sonoedge.train.phantom import PhantomConfig, simulate_pair, write_pairs


@pytest.fixture(scope="module")
def pairs():
    """Six phantom pairs (64 x 64) named like the USenhance organs."""
    low, high = {}, {}
    for seed in range(6):
        lo, hi, info = simulate_pair(seed, PhantomConfig(size=(64, 64)))
        name = f"{info['organ']}_{seed:04d}"
        low[name], high[name] = lo, hi
    return low, high


def _median(images):
    return {name: cv2.medianBlur(image, 5) for name, image in images.items()}


def test_scores_and_one_sided_tests(pairs):
    low, high = pairs
    report = evaluate_methods(high, low, {"median": _median(low), "copy of low": dict(low), "high": dict(high)})
    assert report.methods == [BASELINE, "median", "copy of low", "high"]
    assert report.metric_names == ["LNCC", "SSIM", "PSNR"]  # no LPIPS metric given
    name = report.names[0]
    # per-image values are the library metrics, in name order
    assert report.scores[BASELINE]["SSIM"][0] == pytest.approx(metrics.ssim(low[name], high[name]))
    assert report.scores["median"]["LNCC"][0] == pytest.approx(metrics.lncc(_median(low)[name], high[name]))
    rows = {row.method: row for row in report.rows()}
    assert rows[BASELINE].p["SSIM"] is None
    assert rows["copy of low"].p["PSNR"] == 1.0  # identical to the baseline: no improvement
    expected = wilcoxon(report.scores["median"]["SSIM"] - report.scores[BASELINE]["SSIM"], alternative="greater").pvalue
    assert rows["median"].p["SSIM"] == pytest.approx(expected)
    assert rows["high"].p["LNCC"] < 0.05 and rows["high"].mean["SSIM"] == pytest.approx(1.0)
    assert rows["median"].sd["PSNR"] == pytest.approx(np.std(report.scores["median"]["PSNR"], ddof=1))
    wide = evaluate_methods(high, low, {}, lncc_window=21, keep_images=False)
    assert wide.scores[BASELINE]["LNCC"][0] == pytest.approx(metrics.lncc(low[name], high[name], window=21))
    assert "LNCC window 21 x 21" in wide.markdown() and not wide.images


def test_wilcoxon_direction_per_metric():
    better = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    worse = better - np.array([0.1, 0.2, 0.05, 0.3, 0.15, 0.25])
    assert wilcoxon_p(better, worse, higher_is_better=True) < 0.05
    assert wilcoxon_p(worse, better, higher_is_better=True) > 0.9
    assert wilcoxon_p(worse, better, higher_is_better=False) < 0.05  # LPIPS: lower is better
    assert np.isnan(wilcoxon_p(better[:1], worse[:1], True))


def test_lpips_column_and_trunk_line(pairs):
    from sonoedge.train.lpips_offline import build_lpips

    pytest.importorskip("lpips")
    low, high = pairs
    metric = build_lpips("alex", trunk="random")
    report = evaluate_methods(high, low, {"high": dict(high)}, lpips_metric=metric)
    rows = {row.method: row for row in report.rows()}
    assert rows["high"].mean["LPIPS"] == pytest.approx(0.0, abs=1e-6)
    assert rows["high"].p["LPIPS"] < 0.05  # one-sided "less"
    assert rows[BASELINE].mean["LPIPS"] > 0.0
    assert "LPIPS trunk: random (seed 0) - not comparable to published LPIPS." in report.markdown()


def test_organs_from_names_and_tables(pairs, tmp_path):
    low, high = pairs
    assert infer_organs(["thyroid_1.png", "liver-2.png"]) == {"thyroid_1.png": "thyroid", "liver-2.png": "liver"}
    assert infer_organs(["thyroid_1.png", "scan_2.png"]) is None
    report = evaluate_methods(high, low, {"median": _median(low)})
    organs = sorted(set(report.organs.values()))
    assert report.groups() == ["all", *organs]
    text = report.markdown()
    assert "### All images (n = 6)" in text and f"### Organ: {organs[0]}" in text
    assert "| reference low |" in text and "LNCC ↑ mean (sd)" in text and "LPIPS trunk: not computed" in text
    table = list(csv.DictReader(io.StringIO(report.csv_text())))
    assert {r["organ"] for r in table} == {"all", *organs}
    assert [r["method"] for r in table if r["organ"] == "all"] == [BASELINE, "median"]
    assert float(table[1]["SSIM_p"]) == pytest.approx(report.rows()[1].p["SSIM"])
    written = report.write(tmp_path / "out", figure_rows=3)
    assert set(written) == {"table.md", "table.csv", "scores_per_image.csv", "figure.png"}
    figure = cv2.imread(str(written["figure.png"]))
    assert figure is not None and min(figure.shape[:2]) > 200
    per_image = list(csv.DictReader(io.StringIO(report.per_image_csv_text())))
    assert len(per_image) == 12


def test_mismatches_name_the_files(pairs):
    low, high = pairs
    names = sorted(high)
    partial = {k: v for k, v in low.items() if k != names[0]}
    with pytest.raises(InputError, match=f"lacks {names[0]}"):
        evaluate_methods(high, partial, {})
    wrong = dict(low)
    wrong[names[1]] = wrong[names[1]][:32]
    with pytest.raises(InputError, match=f"'{names[1]}' is \\(32, 64\\)"):
        evaluate_methods(high, low, {"cut": wrong})
    with pytest.raises(InputError, match="baseline"):
        evaluate_methods(high, low, {BASELINE: low})
    with pytest.raises(InputError, match="no reference"):
        evaluate_methods({}, {}, {})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_pairs(root / "ph", 4, PhantomConfig(size=(64, 64)), seed=1)
    (root / "median").mkdir()
    for file in (root / "ph" / "low").glob("*.png"):
        cv2.imwrite(str(root / "median" / file.name), cv2.medianBlur(cv2.imread(str(file), 0), 5))
    return root


def test_cli_writes_and_prints_the_table(folders, capsys):
    out = folders / "report"
    code = main(["evaluate", "--reference", str(folders / "ph" / "high"), "--low", str(folders / "ph" / "low"),
                 "--method", f"median 5x5={folders / 'median'}", "--out", str(out), "--lpips-trunk", "random",
                 "--lpips-net", "alex", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| median 5x5 |" in printed and "LPIPS ↓" in printed and "LPIPS trunk: random" in printed
    assert (out / "table.md").read_text() in printed
    assert (out / "figure.png").stat().st_size > 1000


def test_cli_errors_are_one_line(folders, capsys, monkeypatch, tmp_path):
    high, low = str(folders / "ph" / "high"), str(folders / "ph" / "low")
    out = str(tmp_path / "o")
    assert main(["evaluate", "--reference", str(folders / "nope"), "--low", low, "--out", out, "--no-lpips"]) == 2
    assert main(["evaluate", "--reference", high, "--low", str(folders / "median"), "--method", "x",
                 "--out", out, "--no-lpips"]) == 2
    assert main(["evaluate", "--reference", high, "--low", str(folders / "median"), "--out", out, "--no-lpips",
                 "--quiet"]) == 0
    out = str(tmp_path / "o2")  # o holds the report now: a second run there needs --overwrite
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--reference", high, "--low", low, "--method", f"m={empty}", "--out", out, "--no-lpips"]) == 2
    monkeypatch.delenv("SONOEDGE_LPIPS_TRUNK", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert main(["evaluate", "--reference", high, "--low", low, "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("sonoedge evaluate: error:") for line in err)
    assert "does not exist" in err[0] and "NAME=DIR" in err[1] and "no images" in err[2]
    assert "vgg16-397923af.pth" in err[3]


def test_as_deployed_pastes_the_region_into_the_untouched_low_frame():
    """The --as-deployed row scores what the runtime shows: model inside the region, input outside."""
    import cv2

    from sonoedge.train.evaluate import as_deployed

    rng = np.random.default_rng(0)
    low = np.zeros((200, 240), np.uint8)
    fan = np.zeros_like(low)
    cv2.ellipse(fan, (120, 10), (180, 180), 0, 55, 125, 255, -1)  # a convex-probe sector on black
    low[fan > 0] = rng.integers(40, 200, int((fan > 0).sum()), dtype=np.uint8)
    enhanced = np.full_like(low, 77)  # a model that also paints the black surround grey
    shown = as_deployed(low, enhanced)
    from sonoedge.runtime.region import detect_region

    mask = detect_region(low).mask
    assert np.array_equal(shown[~mask], low[~mask]), "outside the region the input must pass unchanged"
    assert np.array_equal(shown[mask], enhanced[mask]), "inside the region the model output is shown"
    inside = fan > 0
    assert (shown[~inside] == 0).mean() > 0.9, "most of the black surround stays black"
    assert (shown[inside] == 77).mean() > 0.97, "the imaging region comes from the model"


def test_fidelity_beside_the_paper_metrics(pairs):
    low, high = pairs
    report = evaluate_methods(high, low, {"median": _median(low), "inverted": {k: 255 - v for k, v in low.items()}},
                              keep_images=False)
    f = report.fidelity
    assert f[BASELINE]["lowpass_r_low"].min() == pytest.approx(1.0) and f[BASELINE]["gate_fail"].sum() == 0
    assert f["median"]["gate_fail"].sum() == 0 and f["median"]["erased"].sum() == 0
    assert f["inverted"]["gate_fail"].sum() == len(report.names) and f["inverted"]["lowpass_r_low"].max() < -0.9
    # against the high image, the inversion is as far from it as the input is close
    assert f["inverted"]["lowpass_r_high"].mean() == pytest.approx(-f[BASELINE]["lowpass_r_high"].mean(), abs=0.02)
    text = report.markdown()
    assert "### Fidelity (all images)" in text and "| inverted | 6 of 6 |" in text
    per_image = list(csv.DictReader(io.StringIO(report.per_image_csv_text())))
    assert float(per_image[0]["lowpass_r_low"]) == pytest.approx(1.0) and "gate_fail" in per_image[0]
    assert not evaluate_methods(high, low, {}, fidelity=False, keep_images=False).fidelity
