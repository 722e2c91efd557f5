"""SR evaluated over degradations it was not told about, on real high-end frames (docs/results/sr.md).

Each real frame is the ground truth HR; its 4x LR input is made by each degradation of
degrade.EVAL_DEGRADATIONS (anti-aliased bicubic, plain cubic decimation, area averaging, Gaussian
blur of two widths then decimation; each clean and with speckle-like multiplicative noise). Frames:
the 10 of realus/hc18 (GE Voluson, 800 x 540) and CONSOLE_FRAMES of realus/clips/plus_toolkit
(Ultrasonix and BK curvilinear, Ultrasonix linear): none is in realtrain. Methods:

    bicubic     4x bicubic up-scaling (no learning, no operator)
    bicubic-bp  bicubic + 8 back-projection steps through the assumed anti-aliased bicubic (the
                baseline of the earlier evaluation: what inference alone gave when the operator is right)
    bp-est      bicubic + back-projection through the operator estimated from the LR input, stopped at
                its noise level: the untrained generator through the same inference as ``dataset``,
                so dataset - bp-est is what the learning adds
    dataset     the blind generator of blind.py (default: the shipped checkpoint, trained on
                realtrain/hc18 only), one pass; a Liu checkpoint (liu2021-sr) gets the Liu inference
                (one view + back-projection through the estimate)
    zero-shot   the same blind generator fine-tuned on the LR input's own sons (blind.zero_shot) for the
                default budget of ``sonoedge sr`` (ZERO_SHOT_BUDGET_S); ZERO_SHOT_FRAMES only (CPU)
    liu-zero-shot  Liu et al.'s CycleGAN trained on the LR input from scratch for the same budget
                (sons by the estimated operator), then one view + back-projection

Outputs ``OUT/<method>/<degradation>/<frame>.png`` (+ ``.json``): existing ones are kept, so runs
resume and split across processes. ``report`` scores what exists: PSNR and SSIM against the original
per degradation and overall, and the one-sided Wilcoxon signed-rank p-value (train/evaluate.py) that
a method beats each baseline.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.errors import InputError
from sonoedge.train.sr.degrade import EVAL_DEGRADATIONS

METHODS = ("bicubic", "bicubic-bp", "bp-est", "dataset", "zero-shot", "liu-zero-shot")
BASELINES = ("bicubic", "bicubic-bp", "bp-est", "dataset")
CONSOLE_FRAMES = ("UltrasonixCurvilinearScanConvertedData_frame000", "BkCurvilinearScanConvertedData_frame000",
                  "BoneUltrasound_L14_frame000")
ZERO_SHOT_FRAMES = ("050_HC", "UltrasonixCurvilinearScanConvertedData_frame000")
ZERO_SHOT_BUDGET_S = 15.0  # sonoedge/commands/sr.py DEFAULT_BUDGET_S (tests check the two match)
# zero-shot in the budget: the paper's loss weights except the perceptual term (no ImageNet VGG16 here),
# the ZSSR policy windows scaled to the ~100 iterations a budget gives; inference: one view + BP
ZERO_SHOT_OVERRIDES = ["weights.perceptual=0.0", "policy.check_every=10", "policy.window=30",
                       "policy.min_iters=30", "ensemble.transforms=1"]
INFERENCE_OVERRIDES = ["ensemble.transforms=1"]


def load_frames(realus: Path) -> dict[str, np.ndarray]:
    """name -> uint8 (H, W) cropped to multiples of 4: realus/hc18/*.png and CONSOLE_FRAMES."""
    from sonoedge.train.sr.evaluate_hc18 import read_cropped

    realus = Path(realus)
    files = sorted((realus / "hc18").glob("*.png"))
    console = realus / "clips" / "plus_toolkit" / "frames_png"
    files += [console / f"{name}.png" for name in CONSOLE_FRAMES if (console / f"{name}.png").is_file()]
    if not files:
        raise InputError(f"no frames in {realus}/hc18 or {console}; pass --realus pointing at the realus folder")
    return read_cropped(files)


def lr_input(frames: dict[str, np.ndarray], name: str, degradation: str) -> np.ndarray:
    """The LR input of frame ``name`` under ``degradation`` (speckle seeded per frame and degradation)."""
    from sonoedge.train.sr.degrade import degrade_for_eval

    seed = sorted(frames).index(name) * 100 + EVAL_DEGRADATIONS.index(degradation)
    return degrade_for_eval(frames[name], degradation, seed=seed)


def _config(overrides: Sequence[str], mode: str = "zero-shot"):
    from sonoedge.runtime.config import load_config
    from sonoedge.train.sr.config import SRConfig

    return load_config(SRConfig, None, [f"mode='{mode}'", *overrides]).validate()


def _write(folder: Path, name: str, image: np.ndarray, info: dict) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}.png") as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise InputError(f"could not write {folder / name}.png")
    with atomic_path(folder / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str))


def run_method(method: str, frames: dict[str, np.ndarray], out: Path, degradations: Sequence[str],
               checkpoint: str | Path | None = None, budget: float = ZERO_SHOT_BUDGET_S,
               zero_shot_frames: Sequence[str] = ZERO_SHOT_FRAMES, progress=None,
               only: Sequence[str] | None = None) -> None:
    """Write the outputs of ``method`` that do not exist yet (module docstring); ``only``: these frames."""
    import torch

    from sonoedge.train.sr import blind
    from sonoedge.train.sr import trainer as T
    from sonoedge.train.sr.ensemble import back_project
    from sonoedge.train.sr.resize import resize, resize_image

    G = None
    if method in ("dataset", "zero-shot"):
        G, _ = blind.load(checkpoint)  # default: the shipped blind checkpoint
    if method == "zero-shot" and not isinstance(G, blind.BlindSRNet):
        raise InputError(f"method 'zero-shot' fine-tunes a blind-sr checkpoint; {checkpoint} holds another generator")
    names = [n for n in sorted(frames) if ("zero-shot" not in method or n in zero_shot_frames)
             and (not only or n in only)]
    # one frame in every degradation before the next frame, so a stopped run covers them all
    jobs = [(d, n) for n in names for d in degradations]
    for degradation, name in jobs:
        folder = out / method / degradation
        if (folder / f"{name}.png").exists():
            continue
        lr = lr_input(frames, name, degradation)
        start = time.monotonic()
        info: dict = {"lr_shape": list(lr.shape)}
        if method == "bicubic":
            sr = resize_image(lr, 4)
        elif method == "bicubic-bp":
            x = T.to_tensor(lr)
            sr = T.to_image(back_project(resize(x, scale=4), x, 8))
        elif method == "bp-est":
            identity = _Bicubic()
            sr = T.super_resolve(identity, lr, _config(INFERENCE_OVERRIDES), info=info)
        elif method == "dataset" and isinstance(G, blind.BlindSRNet):
            sr = blind.infer(G, lr)
            info["generator"] = blind.describe(G)
        elif method == "dataset":
            sr = T.super_resolve(G, lr, _config(INFERENCE_OVERRIDES, "dataset"), info=info)
        elif method == "zero-shot":
            sr, zlog = blind.zero_shot(G, lr, blind.ZeroShotConfig(budget_s=float(budget)))
            info["train_log"] = {"iterations": zlog.iterations, "seconds": zlog.seconds,
                                 "stop_reason": zlog.stop_reason, "sons": zlog.sons,
                                 "probe_first_last": [zlog.probe[0], zlog.probe[-1]],
                                 "cleanliness": zlog.cleanliness, "speckle_level": zlog.speckle,
                                 "drift_grey_levels": zlog.drift}
            info["estimate"] = zlog.estimate
        elif method == "liu-zero-shot":
            cfg = _config([*ZERO_SHOT_OVERRIDES, f"time_budget_s={float(budget)}"])
            sr, log = T.zero_shot(lr, cfg, info=info)
            info["train_log"] = {"iterations": log.iterations, "seconds": log.seconds,
                                 "stop_reason": log.stop_reason, "sons": log.sons,
                                 "probe_first_last": [log.probe[0], log.probe[-1]] if log.probe else []}
        else:
            raise InputError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
        info["seconds"] = time.monotonic() - start
        info["threads"] = torch.get_num_threads()
        _write(folder, name, sr, info)
        if progress is not None:
            progress(method, degradation, name, info)


class _Bicubic:
    """The untrained generator's function (networks.py: G starts as exactly bicubic up-sampling), as a
    model for super_resolve; no weights, so bp-est costs no network pass."""

    def __call__(self, x):
        from sonoedge.train.sr.resize import resize

        return resize(x, scale=4)

    def eval(self):
        return self

    def parameters(self):
        import torch

        yield torch.zeros(())


# ----------------------------------------------------------------------------------------- report

def report(frames: dict[str, np.ndarray], out: Path, degradations: Sequence[str] = EVAL_DEGRADATIONS) -> dict:
    """Score every output under ``out``: {method: {degradation: {frame: {"psnr", "ssim"}}}}; also
    writes OUT/results.json and OUT/results.md."""
    import cv2

    from sonoedge.runtime.metrics import psnr, ssim

    scores: dict = {}
    for method in METHODS:
        for degradation in degradations:
            for name, hr in sorted(frames.items()):
                path = out / method / degradation / f"{name}.png"
                if not path.exists():
                    continue
                sr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                if sr is None or sr.shape != hr.shape:
                    raise InputError(f"{path} is unreadable or not {hr.shape}; delete it and re-run the method")
                meta = json.loads(path.with_suffix(".json").read_text())
                row = {"psnr": psnr(sr, hr), "ssim": ssim(sr, hr)}
                for key in ("back_projection_operator", "noise_grey_levels"):
                    if key in meta:
                        row[key] = meta[key]
                if "train_log" in meta:
                    row["iterations"] = meta["train_log"]["iterations"]
                    row["train_seconds"] = meta["train_log"]["seconds"]
                scores.setdefault(method, {}).setdefault(degradation, {})[name] = row
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(scores, indent=1))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(scores, degradations))
    return scores


def _paired(scores: dict, method: str, base: str, degradation: str | None, metric: str):
    """(method values, base values) over the (degradation, frame) pairs both have."""
    a, b = [], []
    for deg in ([degradation] if degradation else list(scores.get(method, {}))):
        rows_m, rows_b = scores.get(method, {}).get(deg, {}), scores.get(base, {}).get(deg, {})
        for name in sorted(set(rows_m) & set(rows_b)):
            a.append(rows_m[name][metric])
            b.append(rows_b[name][metric])
    return np.array(a), np.array(b)


def markdown(scores: dict, degradations: Sequence[str] = EVAL_DEGRADATIONS) -> str:
    from sonoedge.train.evaluate import wilcoxon_p

    lines = ["PSNR dB (SSIM) mean over the frames; 'vs X' = mean PSNR difference to X on the same inputs, "
             "wins/n, one-sided Wilcoxon p that the method is higher.", "",
             "| degradation | method | n | PSNR | SSIM | vs bicubic | vs bicubic-bp | vs bp-est | vs dataset |",
             "|---|---|---|---|---|---|---|---|---|"]
    for degradation in [*degradations, None]:
        for method in METHODS:
            a_all, _ = _paired(scores, method, method, degradation, "psnr")
            if not len(a_all):
                continue
            s_all, _ = _paired(scores, method, method, degradation, "ssim")
            cells = []
            for base in BASELINES:
                if base == method:
                    cells.append("")
                    continue
                a, b = _paired(scores, method, base, degradation, "psnr")
                if not len(a):
                    cells.append("-")
                    continue
                d = a - b
                cells.append(f"{d.mean():+.3f} ({int((d > 0).sum())}/{len(d)}, p={wilcoxon_p(a, b, True):.2g})")
            label = degradation or "**all**"
            lines.append(f"| {label} | {method} | {len(a_all)} | {a_all.mean():.3f} | {s_all.mean():.4f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate(realus: str | Path, out: str | Path, methods: Sequence[str] = METHODS,
             degradations: Sequence[str] = EVAL_DEGRADATIONS, checkpoint: str | Path | None = None,
             budget: float = ZERO_SHOT_BUDGET_S, zero_shot_frames: Sequence[str] = ZERO_SHOT_FRAMES,
             threads: int = 1, report_only: bool = False, progress=None, frames: Sequence[str] = ()) -> str:
    """Run ``methods`` (unless ``report_only``), score everything under ``out``; returns the table."""
    import torch

    torch.set_num_threads(threads)
    unknown = sorted(set(degradations) - set(EVAL_DEGRADATIONS))
    if unknown:
        raise InputError(f"unknown degradation(s) {', '.join(unknown)}; valid: {', '.join(EVAL_DEGRADATIONS)}")
    only = list(frames)
    frames = load_frames(Path(realus))
    missing = sorted(set(only) - set(frames))
    if missing:
        raise InputError(f"unknown frame(s) {', '.join(missing)}; the evaluation has {', '.join(sorted(frames))}")
    out = Path(out)
    if not report_only:
        for method in methods:
            if method not in METHODS:
                raise InputError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
            run_method(method, frames, out, degradations, checkpoint, budget, zero_shot_frames, progress, only)
    scored = {k: v for k, v in frames.items() if not only or k in only}
    return markdown(report(scored, out, degradations), degradations)


# ------------------------------------------------------------------ the real case, no ground truth

HANDHELD_CROP = 192  # LR side of the crop super-resolved per handheld frame (768 x 768 output)
HANDHELD_METHODS = ("bicubic-bp", "bp-est", "dataset")


def handheld_crops(realus: Path) -> dict[str, np.ndarray]:
    """name -> uint8 crop (at most HANDHELD_CROP square) at the centre of the imaging region
    (runtime/region.py) of each realus/itkpocus_handheld still: the native handheld frame is the LR
    input; there is no higher-resolution original to score against."""
    from sonoedge.runtime.readers import read_image
    from sonoedge.runtime.region import detect_region

    folder = Path(realus) / "itkpocus_handheld"
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    if not files:
        raise InputError(f"no handheld frames in {folder}; pass --realus pointing at the realus folder")
    crops = {}
    for f in files:
        image = read_image(f)
        x0, y0, x1, y1 = detect_region(image).bbox
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        side = min(HANDHELD_CROP, x1 - x0, y1 - y0) // 4 * 4
        top, left = max(0, cy - side // 2), max(0, cx - side // 2)
        crops[f.stem] = np.ascontiguousarray(image[top:top + side, left:left + side])
    return crops


def handheld_fidelity(realus: str | Path, out: str | Path, checkpoint: str | Path | None) -> str:
    """Super-resolve the handheld crops with HANDHELD_METHODS and measure each output's fidelity
    (runtime/fidelity.py) to the bicubic up-scaling of its input: what the SR changed beyond plain
    interpolation (erased or invented structures, echogenicity r and bias, contrast kept). Writes
    OUT/handheld/<method>/<frame>.png and OUT/handheld/fidelity.json / .md; returns the table."""
    import torch

    from sonoedge.runtime.fidelity import measure
    from sonoedge.train.sr import trainer as T
    from sonoedge.train.sr.ensemble import back_project
    from sonoedge.train.sr.resize import resize, resize_image

    out = Path(out) / "handheld"
    crops = handheld_crops(Path(realus))
    from sonoedge.train.sr import blind

    G = blind.load(checkpoint)[0]  # default: the shipped blind checkpoint
    rows: dict = {}
    for name, lr in crops.items():
        base = resize_image(lr, 4)
        for method in HANDHELD_METHODS:
            path = out / method / f"{name}.png"
            info: dict = {}
            if path.exists():
                import cv2

                sr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                info = json.loads(path.with_suffix(".json").read_text())
            elif method == "bicubic-bp":
                x = T.to_tensor(lr)
                sr = T.to_image(back_project(resize(x, scale=4), x, 8))
                _write(path.parent, name, sr, info)
            elif method == "bp-est":
                sr = T.super_resolve(_Bicubic(), lr, _config(INFERENCE_OVERRIDES), info=info)
                _write(path.parent, name, sr, info)
            else:
                if isinstance(G, blind.BlindSRNet):
                    sr = blind.infer(G, lr)
                else:
                    sr = T.super_resolve(G, lr, _config(INFERENCE_OVERRIDES, "dataset"), info=info)
                _write(path.parent, name, sr, info)
            with torch.no_grad():
                report = measure(base, sr)
            rows.setdefault(method, {})[name] = {**report.to_dict(structures=False),
                                                 "lr_shape": list(lr.shape),
                                                 "estimate": info.get("estimate", "")}
    with atomic_path(out / "fidelity.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
    lines = ["| method | frame | LR crop | low-pass r | bias | erased | invented | bright kept | estimate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, per in rows.items():
        for name, r in per.items():
            kept = "-" if r["bright_kept"] is None else f"{r['bright_kept']:.3f}"
            lines.append(f"| {method} | {name} | {r['lr_shape'][1]}x{r['lr_shape'][0]} | {r['lowpass_corr']:.4f} | "
                         f"{r['lowpass_bias']:+.2f} | {r['erased']} | {r['invented']} | {kept} | "
                         f"{r['estimate'].split(' (')[0]} |")
    table = "\n".join(lines) + "\n"
    with atomic_path(out / "fidelity.md") as tmp:
        tmp.write_text(table)
    return table
