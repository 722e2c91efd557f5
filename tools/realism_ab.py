"""The enhancer trained on plain vs translated phantom pairs, measured where it matters (not run in CI).

    python tools/realism_ab.py prep ../shared/data/realus/hc18 ../shared/data/realus/itkpocus_handheld \
        ../shared/data/realus/hip_spj --short 96 --out realin
    python tools/realism_ab.py measure --run phantom:0=run_ph_s0 --run phantom:1=run_ph_s1 \
        --run translated:0=run_tr_s0 --run translated:1=run_tr_s1 --real realin --phantom ph_train --out ab

``prep`` writes every still of the given folders and their sub-folders (the first frame of a multi-frame file) as an 8-bit
PNG resized with its aspect kept (INTER_AREA, shorter side ``--short`` px), named ``folder__stem.png``:
the real frames the enhancers never saw, at the scale they were trained at, not squeezed to a square.
Exact duplicates (same pixels) are written once. ``--region crop`` first cuts each frame to its
detected imaging region padded to a square (``data.region = "crop"``), for a realism reference.

``measure`` runs, for each ``ARM:SEED=RUN`` (a run folder of ``sonoedge train``, its ``last.pt``):

- ``sonoedge style REAL --checkpoint RUN/last.pt`` (the generator on each real frame; outside the
  detected imaging region the frame is kept, as the runtime does) and ``sonoedge fidelity REAL
  ENHANCED --region auto``: frames failing the no-reference fidelity gate, structures erased and
  invented, low-pass correlation with the input;
- ``sonoedge evaluate --checkpoint RUN/last.pt PHANTOM --no-lpips``: SSIM, PSNR, LNCC on the phantom
  test split (the split of training, never trained on).

and prints a Markdown table per run and per arm (mean and sd over seeds), then the difference between
the two arms in frames failing the gate with a 95 % bootstrap interval over frames (frames resampled
with replacement, the per-frame failure averaged over the arm's seeds; 4000 resamples, seed 0).
Everything it writes goes under ``--out`` (new or empty).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _sonoedge(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    cmd = [sys.executable, "-m", "sonoedge", *args]
    print("$ sonoedge " + " ".join(args), flush=True)
    code = subprocess.run(cmd).returncode
    if code not in ok:
        raise SystemExit(f"sonoedge {args[0]} exited with {code}")


def prep(folders: list[str], short: int, out: Path, region: str = "none", plain_names: bool = False) -> int:
    import cv2

    from sonoedge.runtime.readers import IMAGE_EXTENSIONS, read_image

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    seen, written = set(), 0
    for folder in map(Path, folders):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise SystemExit(f"{folder} holds no images")
        for path in files:
            try:
                image = read_image(path)
            except Exception as exc:  # a file the readers cannot open is reported, not fatal
                print(f"skip {path}: {exc}")
                continue
            key = (image.shape, hash(image.tobytes()))
            if key in seen:
                print(f"skip {path}: same pixels as an earlier frame")
                continue
            seen.add(key)
            if region != "none":
                from sonoedge.train.datasets import apply_region

                image = apply_region([image], region)[0]
            h, w = image.shape
            scale = short / min(h, w)
            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            stem = path.stem.replace(" ", "_")
            cv2.imwrite(str(out / (f"{stem}.png" if plain_names else f"{folder.name}__{stem}.png")), small)
            written += 1
    print(f"wrote {written} frames to {out}")
    return 0


def _measure_run(name: str, run: Path, real: Path, phantom: Path, out: Path) -> dict:
    tag = name.replace(":", "_s")
    enhanced, fid, ev = out / f"enh_{tag}", out / f"fid_{tag}", out / f"ev_{tag}"
    _sonoedge("style", str(real), "--checkpoint", str(run / "last.pt"), "-o", str(enhanced), "--quiet")
    # exit status 3: frames fail the gate, which is what is being counted here
    _sonoedge("fidelity", str(real), str(enhanced), "--region", "auto", "--out", str(fid), ok=(0, 3))
    _sonoedge("evaluate", "--checkpoint", str(run / "last.pt"), str(phantom), "--no-lpips", "--out", str(ev), "--quiet")
    frames = json.loads((fid / "fidelity.json").read_text())["frames"]
    with open(ev / "table.csv") as f:
        rows = {(r["organ"], r["method"] == "reference low"): r for r in csv.DictReader(f)}
    model = rows[("all", False)]
    low = rows[("all", True)]
    return {
        "frames": {fr["frame"]: fr for fr in frames},
        "failing": sum(fr["verdict"] != "pass" for fr in frames),
        "erased": sum(fr["erased"] for fr in frames),
        "invented": sum(fr["invented"] for fr in frames),
        "lowpass_median": float(np.median([fr["lowpass_corr"] for fr in frames])),
        "lowpass_min": float(np.min([fr["lowpass_corr"] for fr in frames])),
        "ssim": float(model["SSIM_mean"]), "psnr": float(model["PSNR_mean"]), "lncc": float(model["LNCC_mean"]),
        "low": (float(low["SSIM_mean"]), float(low["PSNR_mean"]), float(low["LNCC_mean"])),
        "n_test": int(model["n"]),
    }


def measure(runs: list[str], real: Path, phantom: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    results: dict[str, dict] = {}
    for spec in runs:
        name, _, run = spec.partition("=")
        if ":" not in name or not run:
            raise SystemExit(f"--run {spec}: give ARM:SEED=RUN_FOLDER")
        results[name] = _measure_run(name, Path(run), real, phantom, out)
    arms: dict[str, list[str]] = {}
    for name in results:
        arms.setdefault(name.split(":")[0], []).append(name)
    n = len(next(iter(results.values()))["frames"])
    low = next(iter(results.values()))["low"]
    lines = [f"Real frames: {n} ({real}); phantom test split: {next(iter(results.values()))['n_test']} pairs ({phantom}).",
             f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| run | real frames failing the gate | erased | invented | low-pass r median (min) | phantom SSIM | PSNR | LNCC |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| (reference low) | – | – | – | – | {low[0]:.4f} | {low[1]:.2f} | {low[2]:.4f} |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['failing']} of {n} | {r['erased']} | {r['invented']} | {r['lowpass_median']:.3f} "
                     f"({r['lowpass_min']:.3f}) | {r['ssim']:.4f} | {r['psnr']:.2f} | {r['lncc']:.4f} |")
    lines += ["", "| arm | seeds | failing, mean (sd) | erased | invented | low-pass r median | phantom SSIM | PSNR |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    keys = ("failing", "erased", "invented", "lowpass_median", "ssim", "psnr")
    for arm, names in arms.items():
        cells = []
        for k in keys:
            v = np.array([results[x][k] for x in names], float)
            cells.append(f"{v.mean():.4g} ({v.std(ddof=1) if len(v) > 1 else float('nan'):.2g})")
        lines.append(f"| {arm} | {len(names)} | " + " | ".join(cells) + " |")
    if len(arms) == 2:
        (a, a_names), (b, b_names) = arms.items()
        frames = sorted(results[a_names[0]]["frames"])

        def fail_rate(names: list[str]) -> np.ndarray:
            return np.array([[results[x]["frames"][f]["verdict"] != "pass" for f in frames] for x in names], float).mean(0)

        diff = fail_rate(b_names) - fail_rate(a_names)  # per frame, + = arm b fails more often
        rng = np.random.default_rng(0)
        boots = diff[rng.integers(0, len(diff), (4000, len(diff)))].sum(1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        lines += ["", f"Frames failing, {b} minus {a} (mean over seeds): {diff.sum():+.1f} of {len(diff)} "
                  f"(95 % bootstrap interval over frames {lo:+.1f} to {hi:+.1f})."]
    text = "\n".join(lines) + "\n"
    (out / "ab.md").write_text(text)
    (out / "ab.json").write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "frames"} for k, v in results.items()},
                                            indent=1))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("folders", nargs="+")
    p.add_argument("--short", type=int, default=96)
    p.add_argument("--out", required=True)
    p.add_argument("--region", choices=("none", "mask", "crop"), default="none",
                   help="apply the detected imaging region first, as data.region does in training (crop: a square, "
                        "the region padded with black, so the frames of a realism reference are not squeezed)")
    p.add_argument("--plain-names", action="store_true", help="name outputs by the file's stem alone (one folder, "
                   "e.g. phantom images to pair with their translations in `sonoedge fidelity`)")
    m = sub.add_parser("measure")
    m.add_argument("--run", action="append", required=True, metavar="ARM:SEED=RUN")
    m.add_argument("--real", required=True)
    m.add_argument("--phantom", required=True)
    m.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "prep":
        return prep(args.folders, args.short, Path(args.out), args.region, args.plain_names)
    return measure(args.run, Path(args.real), Path(args.phantom), Path(args.out))


if __name__ == "__main__":
    raise SystemExit(main())
