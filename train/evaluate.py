"""Score enhancement outputs against references in the layout of Table 2 of Athreya et al. 2024.

The journal paper (Athreya et al., "Ultrasound image enhancement using CycleGAN and perceptual
loss", JMIR Biomed Eng 2024; "Evaluation Metrics" and "Quantitative Results", Table 2) reports, for
each method, LNCC, SSIM ("SSI"), PSNR and LPIPS between its output and the high-quality image as
mean (sd) over the test images, with a "reference low" row (the low-quality input scored against
the high-quality image) and one-sided Wilcoxon signed-rank tests. Here every method is tested
against "reference low" (did it improve on the input?): ``alternative="greater"`` for LNCC, SSIM
and PSNR, ``"less"`` for LPIPS (scipy.stats.wilcoxon, paired by image).

Everything works on in-memory images so a trainer can score a checkpoint without writing files:

    report = evaluate_methods(reference, low, {"median 5x5": outputs}, organs, lpips_metric)
    print(report.markdown()); report.write(out_dir)

Beside them, the fidelity measures (runtime/fidelity.py): each method's output against its own
low input with no reference (structures erased and invented, low-pass echogenicity correlation,
bright pixels turned black, the fidelity gate's verdict of runtime/bundle/gates.py), and the
low-pass echogenicity correlation with the high image, for "reference low" too (did the method
bring the echogenicity map closer to the better image, or further?).

``reference``, ``low`` and each method map an image name to a uint8 (H, W) image; names must
match across all of them. Metric definitions live in :mod:`sonoedge.runtime.metrics` (SSIM and
PSNR with data range 255, LNCC with a 9 x 9 window) and :mod:`sonoedge.train.lpips_offline`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sonoedge.runtime import metrics
from sonoedge.runtime.atomic import atomic_path
from sonoedge.runtime.config import from_dict
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import crop, denormalise, pad_to_stride

BASELINE = "reference low"
METRICS = ("LNCC", "SSIM", "PSNR", "LPIPS")  # column order of Table 2
HIGHER_IS_BETTER = {"LNCC": True, "SSIM": True, "PSNR": True, "LPIPS": False}
# USenhance 2023 organs (the paper's Table 1 adds "abdomen")
KNOWN_ORGANS = ("thyroid", "carotid", "liver", "kidney", "breast", "abdomen")
ALL = "all"


def infer_organs(names: list[str]) -> dict[str, str] | None:
    """Organ per image from a name prefix (``thyroid_0012.png`` -> thyroid), or None unless every
    name starts with a known organ."""
    organs = {}
    for name in names:
        prefix = name.lower().replace("-", "_").split("_")[0]
        if prefix not in KNOWN_ORGANS:
            return None
        organs[name] = prefix
    return organs


FIDELITY_COLUMNS = ("erased", "invented", "lowpass_r_low", "bright_to_black", "gate_fail", "lowpass_r_high")


def score_fidelity(output: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """The fidelity of one uint8 (H, W) output to its low input (no reference) and its low-pass
    correlation with the high image, inside ``mask`` (default: the low image's imaging region)."""
    from sonoedge.runtime.bundle.gates import check_fidelity
    from sonoedge.runtime.fidelity import measure

    report = measure(low, output, mask)
    row = {"frame": "image", **report.to_dict(structures=False)}
    against_high = measure(high, output, mask)
    return {"erased": float(len(report.erased)), "invented": float(len(report.invented)),
            "lowpass_r_low": report.lowpass_corr, "bright_to_black": report.bright_to_black,
            "gate_fail": float(not check_fidelity([row]).passed), "lowpass_r_high": against_high.lowpass_corr}


def score_image(output: np.ndarray, high: np.ndarray, lncc_window: int = metrics.LNCC_WINDOW) -> dict[str, float]:
    """LNCC, SSIM and PSNR of one uint8 (H, W) output against the high image (LPIPS is batched
    per reference in :func:`evaluate_methods`)."""
    return {
        "LNCC": metrics.lncc(output, high, window=lncc_window),
        "SSIM": metrics.ssim(output, high, data_range=255),
        "PSNR": metrics.psnr(output, high, data_range=255),
    }


@dataclasses.dataclass
class Row:
    """One line of the table: a method on a group of images."""

    organ: str
    method: str
    n: int
    mean: dict[str, float]
    sd: dict[str, float]
    p: dict[str, float | None]  # None for the baseline row


@dataclasses.dataclass
class EvaluationReport:
    """Per-image scores of every method, and the Table-2 summaries built from them."""

    names: list[str]
    methods: list[str]  # BASELINE first
    scores: dict[str, dict[str, np.ndarray]]  # method -> metric -> (n,) in the order of names
    organs: dict[str, str] | None
    lpips_trunk: str | None  # None: LPIPS not computed
    lncc_window: int = metrics.LNCC_WINDOW
    images: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict, repr=False)
    # images: "low", "high" and each method -> name -> image (for the figure)
    fidelity: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    # method -> FIDELITY_COLUMNS -> (n,) in the order of names; {} when not measured

    @property
    def metric_names(self) -> list[str]:
        return [m for m in METRICS if m in self.scores[BASELINE]]

    def groups(self) -> list[str]:
        if not self.organs:
            return [ALL]
        return [ALL, *sorted(set(self.organs.values()))]

    def rows(self, organ: str = ALL) -> list[Row]:
        index = np.array([organ == ALL or self.organs[name] == organ for name in self.names])
        out = []
        for method in self.methods:
            mean, sd, p = {}, {}, {}
            for metric in self.metric_names:
                values = self.scores[method][metric][index]
                mean[metric] = float(np.mean(values))
                finite = len(values) > 1 and bool(np.isfinite(values).all())
                sd[metric] = float(np.std(values, ddof=1)) if finite else math.nan
                p[metric] = None if method == BASELINE else wilcoxon_p(
                    values, self.scores[BASELINE][metric][index], HIGHER_IS_BETTER[metric])
            out.append(Row(organ, method, int(index.sum()), mean, sd, p))
        return out

    def markdown(self) -> str:
        """The tables (all images, then per organ) as Markdown, with the LPIPS trunk line."""
        lines = []
        for organ in self.groups():
            rows = self.rows(organ)
            title = "All images" if organ == ALL else f"Organ: {organ}"
            lines += [f"### {title} (n = {rows[0].n})", ""]
            header = ["Method"]
            for metric in self.metric_names:
                arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
                header += [f"{metric} {arrow} mean (sd)", "p"]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for row in rows:
                cells = [row.method]
                for metric in self.metric_names:
                    cells += [_mean_sd(row.mean[metric], row.sd[metric], metric), _p_text(row.p[metric])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += self.fidelity_markdown()
        lines += self.notes()
        return "\n".join(lines).rstrip() + "\n"

    def fidelity_markdown(self) -> list[str]:
        """The fidelity table: one line per method over all images (empty when not measured)."""
        if not self.fidelity:
            return []
        lines = ["### Fidelity (all images)", "",
                 "| Method | failing the fidelity gate | erased | invented | low-pass r vs low, mean (min) | "
                 "bright->black % mean | low-pass r vs high, mean |", "|---|---:|---:|---:|---:|---:|---:|"]
        for method in self.methods:
            f = self.fidelity[method]
            n = len(self.names)
            lines.append(f"| {method} | {int(f['gate_fail'].sum())} of {n} | {int(f['erased'].sum())} | "
                         f"{int(f['invented'].sum())} | {f['lowpass_r_low'].mean():.3f} ({f['lowpass_r_low'].min():.3f}) | "
                         f"{100 * f['bright_to_black'].mean():.2f} | {f['lowpass_r_high'].mean():.3f} |")
        lines += ["", "Fidelity: each output against its low input with no reference (runtime/fidelity.py; the gate of "
                  "runtime/bundle/gates.py), and the low-pass echogenicity map of each output against the high image. "
                  "'reference low' against itself is the identity.", ""]
        return lines

    def notes(self) -> list[str]:
        trunk = self.lpips_trunk if self.lpips_trunk else "not computed"
        notes = [
            f"LPIPS trunk: {trunk}.",
            f"p: one-sided Wilcoxon signed-rank test of each method against '{BASELINE}' (paired by image; "
            f"greater for LNCC/SSIM/PSNR, less for LPIPS). LNCC window {self.lncc_window} x {self.lncc_window}; "
            "SSIM Gaussian 11 x 11, sigma 1.5, "
            "data range 255; PSNR data range 255.",
        ]
        if any(row.n < 2 for organ in self.groups() for row in self.rows(organ)):
            notes.append("n/a: a group with fewer than 2 images cannot be tested.")
        if any(np.isinf(v).any() for s in self.scores.values() for v in s.values()):
            notes.append("PSNR is inf for an output identical to its reference (MSE 0); means including it are inf.")
        return notes

    def csv_text(self) -> str:
        """One line per (organ, method): n, then mean, sd and p of each metric."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["organ", "method", "n"]
        for metric in self.metric_names:
            header += [f"{metric}_mean", f"{metric}_sd", f"{metric}_p"]
        writer.writerow(header)
        for organ in self.groups():
            for row in self.rows(organ):
                values: list[Any] = [row.organ, row.method, row.n]
                for metric in self.metric_names:
                    p = row.p[metric]
                    values += [_num(row.mean[metric]), _num(row.sd[metric]), "" if p is None else _num(p)]
                writer.writerow(values)
        return buffer.getvalue()

    def per_image_csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        extra = list(FIDELITY_COLUMNS) if self.fidelity else []
        writer.writerow(["name", "organ", "method", *self.metric_names, *extra])
        for method in self.methods:
            for i, name in enumerate(self.names):
                organ = self.organs[name] if self.organs else ""
                writer.writerow([name, organ, method, *(_num(self.scores[method][m][i]) for m in self.metric_names),
                                 *(_num(self.fidelity[method][c][i]) for c in extra)])
        return buffer.getvalue()

    def figure_png(self, rows: int = 4) -> bytes:
        """PNG grid like the paper's Figure 3: reference low | each method | reference high."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not self.images:
            raise InputError("this report holds no images; build it with keep_images=True to draw the figure")
        chosen = _spread(self.names, rows)
        columns = [("reference low", self.images["low"]), *((m, self.images[m]) for m in self.methods[1:]),
                   ("reference high", self.images["high"])]
        fig = Figure(figsize=(2.2 * len(columns), 2.3 * len(chosen) + 0.3), dpi=110)
        FigureCanvasAgg(fig)
        for r, name in enumerate(chosen):
            for c, (title, images) in enumerate(columns):
                ax = fig.add_subplot(len(chosen), len(columns), r * len(columns) + c + 1)
                ax.imshow(images[name], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"({chr(65 + c)}) {title}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(name, fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()

    def write(self, out_dir: str | Path, figure_rows: int = 4) -> dict[str, Path]:
        """table.md, table.csv, scores_per_image.csv and figure.png (when images are held) in ``out_dir``.

        Everything is rendered in memory first and each file is replaced atomically, so a failure
        leaves no half-written report.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file; give a folder")
        contents: dict[str, bytes] = {
            "table.md": self.markdown().encode(),
            "table.csv": self.csv_text().encode(),
            "scores_per_image.csv": self.per_image_csv_text().encode(),
        }
        if self.images:
            contents["figure.png"] = self.figure_png(figure_rows)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, data in contents.items():
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(data)
                _readable(tmp)
            written[name] = out / name
        return written


def wilcoxon_p(method: np.ndarray, baseline: np.ndarray, higher_is_better: bool) -> float:
    """One-sided Wilcoxon signed-rank p-value that ``method`` improves on ``baseline`` (paired).

    All-zero differences (a method identical to the baseline) give p = 1: no evidence of
    improvement. Fewer than 2 images cannot be tested: NaN (printed "n/a"), never a passing value.
    """
    from scipy.stats import wilcoxon

    method, baseline = np.asarray(method, float), np.asarray(baseline, float)
    if len(method) < 2:
        return math.nan
    diff = method - baseline
    diff = np.where(np.isnan(diff), 0.0, diff)  # inf - inf (both identical to the reference): no difference
    if np.all(diff == 0):
        return 1.0
    result = wilcoxon(diff, alternative="greater" if higher_is_better else "less")
    return float(result.pvalue)


def evaluate_methods(
    reference: Mapping[str, np.ndarray],
    low: Mapping[str, np.ndarray],
    methods: Mapping[str, Mapping[str, np.ndarray]],
    organs: Mapping[str, str] | None = None,
    lpips_metric=None,
    keep_images: bool = True,
    progress: bool = False,
    lncc_window: int = metrics.LNCC_WINDOW,
    fidelity: bool = True,
) -> EvaluationReport:
    """Score "reference low" (low vs high) and every method (output vs high) on each image.

    All mappings are name -> uint8 (H, W) and must hold the same names; shapes must match per
    name. ``organs``: name -> organ for per-organ tables (None: inferred from the names, when every
    name starts with a known organ). ``lpips_metric``: from
    :func:`sonoedge.train.lpips_offline.build_lpips`, or None to leave LPIPS out. ``fidelity``: add
    the fidelity measures (:func:`score_fidelity`) of every method, "reference low" included.
    """
    names = sorted(reference)
    if not names:
        raise InputError("no reference images to evaluate")
    if BASELINE in methods:
        raise InputError(f"'{BASELINE}' is the name of the baseline row; give the method another name")
    _check_names("low", low, names)
    for method, outputs in methods.items():
        _check_names(f"method '{method}'", outputs, names)
    for name in names:
        shape = np.shape(reference[name])
        for label, images in (("low", low), *((f"method '{m}'", o) for m, o in methods.items())):
            if np.shape(images[name]) != shape:
                raise InputError(f"{label} image '{name}' is {np.shape(images[name])} but the reference is {shape}; "
                                 "outputs must have the reference's size")
    if organs is None:
        organs = infer_organs(names)
    elif set(organs) < set(names):
        raise InputError(f"no organ given for {sorted(set(names) - set(organs))[:3]}")
    all_methods = {BASELINE: low, **methods}
    scores: dict[str, dict[str, list[float]]] = {m: {k: [] for k in METRICS} for m in all_methods}
    faithful: dict[str, dict[str, list[float]]] = {m: {k: [] for k in FIDELITY_COLUMNS} for m in all_methods}
    from tqdm import tqdm

    from sonoedge.runtime.region import detect_region

    for name in tqdm(names, desc="evaluate", unit="image", disable=not progress):
        high = reference[name]
        if fidelity:
            mask = detect_region(low[name]).mask  # one region per image for every method: the input's
            for method, outputs in all_methods.items():
                for key, value in score_fidelity(outputs[name], low[name], high, mask).items():
                    faithful[method][key].append(value)
        for method, outputs in all_methods.items():
            try:
                image_scores = score_image(outputs[name], high, lncc_window)
            except InputError as exc:
                label = "low" if method == BASELINE else f"method '{method}'"
                raise InputError(f"{label} image '{name}': {exc}") from exc
            for metric, value in image_scores.items():
                scores[method][metric].append(value)
        if lpips_metric is not None:
            try:
                values = lpips_metric.distances(high, [outputs[name] for outputs in all_methods.values()])
            except InputError as exc:
                raise InputError(f"image '{name}': {exc}") from exc
            for method, value in zip(all_methods, values):
                scores[method]["LPIPS"].append(value)
    arrays = {m: {k: np.asarray(v, dtype=np.float64) for k, v in s.items() if v} for m, s in scores.items()}
    images = {}
    if keep_images:
        images = {"low": dict(low), "high": dict(reference), **{m: dict(o) for m, o in methods.items()}}
    trunk = getattr(lpips_metric, "trunk_description", None) if lpips_metric is not None else None
    fid = {m: {k: np.asarray(v, dtype=np.float64) for k, v in f.items()} for m, f in faithful.items()} if fidelity else {}
    return EvaluationReport(names, list(all_methods), arrays, dict(organs) if organs else None, trunk,
                            lncc_window=lncc_window, images=images, fidelity=fid)


def _check_names(label: str, images: Mapping[str, np.ndarray], names: list[str]) -> None:
    missing = sorted(set(names) - set(images))
    extra = sorted(set(images) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"has extra {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise InputError(f"{label} {' and '.join(parts)} compared with the reference images; names must match")


def _readable(path: Path) -> None:
    """mkstemp makes 0600 files; a report gets the usual permissions (umask applies)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _spread(names: list[str], count: int) -> list[str]:
    if len(names) <= count:
        return list(names)
    idx = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [names[i] for i in idx]


def _mean_sd(mean: float, sd: float, metric: str) -> str:
    digits = 2 if metric == "PSNR" else 4  # the paper prints 4 decimals (PSNR too; 2 suffice)
    sd_text = "–" if math.isnan(sd) else f"{sd:.{digits}f}"
    return f"{mean:.{digits}f} ({sd_text})"


def _p_text(p: float | None) -> str:
    if p is None:
        return "–"
    if math.isnan(p):
        return "n/a"
    if p < 0.001:
        return "<.001"  # the paper's notation
    return f"{p:.3f}"


def _num(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.6g}")


def checkpoint_inputs(checkpoint: str | Path, data: str | Path, split_name: str = "test",
                      deployed: bool = False) -> tuple[dict, dict, dict]:
    """(reference, low, {method: outputs}) for a checkpoint on a dataset folder: the checkpoint's data
    config (root replaced by ``data``, same split seed and ratios) gives the split; each low image is
    reflect-padded to the generator's stride, enhanced, cropped back, and kept as uint8. With
    ``deployed`` a second method scores the outputs :func:`as_deployed`."""
    import torch

    from sonoedge.train.checkpoint import load_checkpoint, load_generator
    from sonoedge.train.datasets import DataConfig, build_datasets

    ckpt = load_checkpoint(checkpoint)
    if ckpt["model"]["task"] != "enhance" or "data" not in ckpt.get("config", {}):
        raise InputError(f"checkpoint {checkpoint} is not an enhancement checkpoint with a data config")
    data_cfg = from_dict(DataConfig, ckpt["config"]["data"], where=f"{checkpoint} data config")
    data_cfg = dataclasses.replace(data_cfg, root=str(data))
    split = build_datasets(data_cfg)[split_name]
    if len(split) == 0 or data_cfg.layout != "paired":
        raise InputError(f"the {split_name} split of {data} has no paired images; choose --split or another folder")
    model, info = load_generator(checkpoint)
    method = f"{info['generator']} ({ckpt['config'].get('preset') or Path(checkpoint).name})"
    reference, low, outputs = {}, {}, {}
    with torch.no_grad():
        for i in range(len(split)):
            item = split[i]
            name = Path(item["name"]).stem
            x, size = pad_to_stride(item["low"][None].numpy(), info["stride"])
            y = crop(model(torch.from_numpy(x)).numpy(), size, info["scale"])
            low[name], reference[name], outputs[name] = (denormalise(item["low"].numpy()), denormalise(item["high"].numpy()),
                                                         denormalise(y))
    methods = {method: outputs}
    if deployed:
        methods[f"{method}, as deployed"] = {name: as_deployed(low[name], out) for name, out in outputs.items()}
    return reference, low, methods


def as_deployed(low: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """What the device shows (runtime/stream/enhancer.py): the enhanced imaging region pasted into the
    untouched input frame; everything outside the region detected on ``low`` is ``low`` itself."""
    from sonoedge.runtime.region import detect_region

    mask = detect_region(low).mask  # (H, W) bool
    return np.where(mask, enhanced, low)
