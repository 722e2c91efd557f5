"""The fidelity gate's runner: a model, run as deployed on real frames, measured against its input.

    frames = load_frames("../shared/data/realus", per_group=3)     # [FidelityFrame], real files
    result = check_model(infer, frames, stride=64)                  # gates.FidelityResult
    result.passed, result.failures                                  # "<frame>: <measure> ..."

``infer`` is any (1, 1, H, W) float32 -> (1, 1, H, W) callable (ONNX Runtime session, PyTorch,
TensorRT). Each frame goes through :func:`run_deployed`, the enhancer's geometry (DESIGN.md, Frames
in the runtime): the imaging region is found, its bounding box reflect-padded to the stride and run,
and the output pasted back inside the region only, so the gate judges what a user would see. The
measures are ``runtime/fidelity.py``'s; the thresholds ``gates.FIDELITY_GATE``.

Fetal-head frames of the HC18 set (``NNN_HC.png``) also get the skull measures when the experts'
outlines are found (:class:`Hc18Annotations`: ``NNN_HC_Annotation.png`` and
``training_set_pixel_size_and_HC.csv`` in one folder, as the HC18 challenge distributes them).

Which frames. A folder whose sub-folders are kinds of recording (realus: hc18, hip_spj,
itkpocus_handheld, clips) gives ``per_group`` files of each, evenly spaced in natural order; a file
with several frames (a clip, a sequence) gives its middle frame. The manifest names every frame
used (``file#frame``), so a reader knows which data the result was measured on.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from sonoedge.runtime import fidelity, readers
from sonoedge.runtime.bundle.gates import FIDELITY_GATE, FidelityGate, FidelityResult, check_fidelity
from sonoedge.runtime.bundle.verify import run_frame
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import denormalise
from sonoedge.runtime.region import detect_region

Infer = Callable[[np.ndarray], np.ndarray]
REALUS_ENV = "SONOEDGE_REALUS"  # where the real recordings are, when not at ../shared/data/realus
DEFAULT_REALUS = Path("..") / "shared" / "data" / "realus"  # the project's layout, from the repository root
HC18_NAME = re.compile(r"^(\d{3}(?:_\d)?)_HC\.png$")


@dataclasses.dataclass
class FidelityFrame:
    name: str  # "relative/path#frame"
    image: np.ndarray  # uint8 (H, W) grey
    outline: np.ndarray | None = None  # expert outline (H, W) uint8, HC18 frames only
    pixel_mm: float | None = None


def default_realus() -> Path | None:
    """$SONOEDGE_REALUS, else ../shared/data/realus from the current directory, when it exists."""
    env = os.environ.get(REALUS_ENV)
    path = Path(env) if env else DEFAULT_REALUS
    return path if path.is_dir() else None


class Hc18Annotations:
    """The HC18 experts' outlines and pixel sizes in ``folder`` (NNN_HC_Annotation.png + the CSV)."""

    CSV = "training_set_pixel_size_and_HC.csv"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        table = self.folder / self.CSV
        if not table.is_file():
            raise InputError(f"HC18 annotations folder {self.folder} has no {self.CSV}")
        with open(table, newline="") as fh:
            self.rows = {r["filename"]: r for r in csv.DictReader(fh)}

    @classmethod
    def beside(cls, realus: Path | None) -> "Hc18Annotations | None":
        """The annotations at <realus>/../annotations/hc18, when present."""
        if realus is None:
            return None
        folder = Path(realus).parent / "annotations" / "hc18"
        return cls(folder) if (folder / cls.CSV).is_file() else None

    def lookup(self, file_name: str, shape: tuple[int, int]) -> tuple[np.ndarray, float] | None:
        """(outline uint8 (H, W), pixel size mm) of an HC18 frame name, or None."""
        if not HC18_NAME.match(file_name) or file_name not in self.rows:
            return None
        outline = cv2.imread(str(self.folder / file_name.replace(".png", "_Annotation.png")), cv2.IMREAD_GRAYSCALE)
        if outline is None or outline.shape != shape:
            return None
        return outline, float(self.rows[file_name]["pixel size(mm)"])


def _middle_frame(path: Path) -> tuple[np.ndarray, int]:
    try:
        count = readers.probe(path).frames or 1
    except InputError:
        count = 1
    middle = count // 2
    for i, frame in enumerate(readers.iter_frames(path)):
        if i == middle:
            return frame, i
    raise InputError(f"{path} holds fewer frames than it says ({count})")


def readable_files(source: Path) -> list[Path]:
    """Every readable ultrasound file of a folder (recursively, natural order), or the file itself."""
    known = (readers.IMAGE_EXTENSIONS + readers.DICOM_EXTENSIONS + readers.NRRD_EXTENSIONS
             + readers.METAIMAGE_EXTENSIONS + readers.VIDEO_EXTENSIONS)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(f"fidelity frames {source} do not exist; pass a folder or file of real ultrasound frames")
    files = [p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known]
    if not files:
        raise InputError(f"fidelity frames {source} hold no readable ultrasound files ({' '.join(known)})")

    def natural(p: Path) -> list[object]:
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.relative_to(source).as_posix())]

    return sorted(files, key=natural)


def _evenly(items: list[Path], count: int) -> list[Path]:
    if len(items) <= count:
        return items
    return [items[int((i + 0.5) * len(items) / count)] for i in range(count)]


def pick_files(source: str | Path, per_group: int = 3) -> list[Path]:
    """``per_group`` files of each first-level sub-folder of ``source`` (and of its own files);
    ``source`` itself when it is a file. Within a group the files of each folder are spaced evenly
    in natural order and the folders take turns, so a group of several recordings (realus/clips:
    two videos, three sequences) gives one file of each before a second of any."""
    source = Path(source)
    if per_group < 1:
        raise InputError(f"frames per group must be at least 1, got {per_group}")
    files = readable_files(source)
    if source.is_file():
        return files
    groups: dict[str, dict[Path, list[Path]]] = {}
    for f in files:
        parts = f.relative_to(source).parts
        groups.setdefault(parts[0] if len(parts) > 1 else ".", {}).setdefault(f.parent, []).append(f)
    picked = []
    for key in sorted(groups):
        folders = [_evenly(groups[key][folder], per_group) for folder in sorted(groups[key])]
        turns = [folder[i] for i in range(per_group) for folder in folders if i < len(folder)]
        picked.extend(turns[:per_group])
    return picked


def load_frames(source: str | Path, per_group: int = 3, annotations: Hc18Annotations | None = None) -> list[FidelityFrame]:
    """The frames of :func:`pick_files`, read (middle frame of a clip) as uint8 grey."""
    source = Path(source)
    out = []
    for path in pick_files(source, per_group):
        image, index = _middle_frame(path)
        rel = path.name if source.is_file() else path.relative_to(source).as_posix()
        frame = FidelityFrame(f"{rel}#{index}", image)
        if annotations is not None:
            found = annotations.lookup(path.name, image.shape)
            if found is not None:
                frame.outline, frame.pixel_mm = found
        out.append(frame)
    return out


def run_deployed(infer: Infer, image: np.ndarray, stride: int, region: str = "auto",
                 min_size: tuple[int, int] = (1, 1)) -> np.ndarray:
    """uint8 (H, W) -> uint8 (H, W) as the stream enhancer shows it: the region's box padded, run,
    de-normalised and pasted back inside the region mask; every other pixel is the input's."""
    out = image.copy()
    h, w = image.shape
    x0, y0, x1, y1, mask = 0, 0, w, h, None
    if region == "auto":
        found = detect_region(image)
        if found.kind != "full":
            x0, y0, x1, y1 = found.bbox
            mask = found.mask[y0:y1, x0:x1]
    if y1 - y0 < min_size[0] or x1 - x0 < min_size[1]:  # region too small for the model: the whole frame
        x0, y0, x1, y1, mask = 0, 0, w, h, None
    enhanced = denormalise(run_frame(infer, image[y0:y1, x0:x1], stride))
    target = out[y0:y1, x0:x1]
    if mask is None:
        target[...] = enhanced
    else:
        target[mask] = enhanced[mask]
    return out


def measure_frame(frame: FidelityFrame, output: np.ndarray, report: fidelity.FidelityReport | None = None) -> dict:
    """The gate's measures of one frame: ``fidelity.measure`` (and the skull's on HC18 frames)."""
    report = fidelity.measure(frame.image, output) if report is None else report
    m = {"frame": frame.name, **report.to_dict(structures=False)}
    m["erased_list"] = [s.to_dict() for s in report.erased[:8]]  # the first few, for a person to find them
    m["invented_list"] = [s.to_dict() for s in report.invented[:8]]
    if frame.outline is not None and frame.pixel_mm is not None:
        skull = fidelity.outline_measures(frame.image, output, frame.outline, frame.pixel_mm, cell=report.cell)
        m["skull_kept"] = round(skull.contrast_kept, 3)
        m["hc_expert_mm"] = round(skull.perimeter_expert, 2)
        m["hc_source_mm"] = None if skull.perimeter_source is None else round(skull.perimeter_source, 2)
        m["hc_diff_mm"] = None if skull.perimeter_diff is None else round(skull.perimeter_diff, 2)
    return m


def check_model(infer: Infer, frames: Sequence[FidelityFrame], stride: int, region: str = "auto",
                min_size: tuple[int, int] = (1, 1), max_size: tuple[int, int] | None = None,
                gate: FidelityGate = FIDELITY_GATE, progress: Callable[[str], None] | None = None) -> FidelityResult:
    """Run ``infer`` as deployed on every frame, measure, and apply the gate. A frame whose region
    is larger than ``max_size`` (the model's size range) is not run and is reported as skipped."""
    measures = []
    for i, frame in enumerate(frames):
        if max_size is not None and (frame.image.shape[0] > max_size[0] or frame.image.shape[1] > max_size[1]):
            box = detect_region(frame.image).bbox
            if box[3] - box[1] > max_size[0] or box[2] - box[0] > max_size[1]:
                if progress:
                    progress(f"fidelity: {frame.name}: region larger than the model's maximum {max_size}; skipped")
                continue
        output = run_deployed(infer, frame.image, stride, region, min_size)
        measures.append(measure_frame(frame, output))
        if progress:
            m = measures[-1]
            progress(f"fidelity: [{i + 1}/{len(frames)}] {frame.name}: erased {m['erased']}, invented {m['invented']}, "
                     f"low-pass r {m['lowpass_corr']:.3f}, bright->black {100 * m['bright_to_black']:.1f} %")
    return check_fidelity(measures, gate)


# -- scoring files and reporting (``sonoedge fidelity``, docs/results/fidelity.md) ------------------

def frame_indices(path: str | Path, count: int = 1) -> list[int]:
    """``count`` frame indices of a file spread evenly (the middle one for 1; every frame of a short file)."""
    try:
        total = readers.probe(path).frames or 1
    except InputError:
        total = 1
    if count >= total:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


def read_frames(path: str | Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """{index: uint8 (H, W) grey} of the wanted frames of a file."""
    wanted, out, seen = set(indices), {}, 0
    for i, frame in enumerate(readers.iter_frames(path)):
        seen = i + 1
        if i in wanted:
            out[i] = frame
            if len(out) == len(wanted):
                break
    missing = sorted(wanted - set(out))
    if missing:
        raise InputError(f"{path} has no frame {missing[0]} (it holds {seen}); compare files of the same length")
    return out


def score(frame: FidelityFrame, output: np.ndarray, gate: FidelityGate = FIDELITY_GATE) -> tuple[dict, fidelity.FidelityReport]:
    """(row, report): the gate's measures of one frame with its verdict ("pass"/"fail") and failures."""
    if output.shape != frame.image.shape:
        raise InputError(f"{frame.name}: the enhanced frame is {output.shape[1]}x{output.shape[0]} but the input is "
                         f"{frame.image.shape[1]}x{frame.image.shape[0]}; compare a frame with its own enhancement")
    report = fidelity.measure(frame.image, output)
    row = measure_frame(frame, output, report)
    result = check_fidelity([row], gate)
    row["verdict"] = "pass" if result.passed else "fail"
    row["failures"] = [f.split(": ", 1)[1] for f in result.failures]
    return row, report


def source_of(name: str) -> str:
    """The source group of a frame name: its first folder (``hc18/000_HC.png#0`` -> hc18)."""
    parts = name.split("#", 1)[0].split("/")
    return parts[0] if len(parts) > 1 else "."


def summary_by_source(rows: Sequence[dict]) -> list[dict]:
    """One line per source: frames, frames failing, structures erased / invented (total), low-pass r
    (median, min), bright->black (max), skull kept (median, min) and |HC diff| (max) where measured."""
    out = []
    for source in sorted({source_of(r["frame"]) for r in rows}):
        group = [r for r in rows if source_of(r["frame"]) == source]
        corr = [r["lowpass_corr"] for r in group]
        skull = [r["skull_kept"] for r in group if r.get("skull_kept") is not None]
        hc = [abs(r["hc_diff_mm"]) for r in group if r.get("hc_diff_mm") is not None]
        lost = sum(1 for r in group if r.get("hc_source_mm") is not None and r.get("hc_diff_mm") is None)
        out.append({"source": source, "frames": len(group), "failing": sum(r.get("verdict") == "fail" for r in group),
                    "erased": sum(r["erased"] for r in group), "invented": sum(r["invented"] for r in group),
                    "lowpass_corr_median": float(np.median(corr)), "lowpass_corr_min": float(min(corr)),
                    "bright_to_black_max": float(max(r["bright_to_black"] for r in group)),
                    "skull_kept_median": float(np.median(skull)) if skull else None,
                    "skull_kept_min": float(min(skull)) if skull else None,
                    "hc_abs_diff_max_mm": float(max(hc)) if hc else None, "hc_lost": lost})
    return out


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown_rows(rows: Sequence[dict]) -> str:
    """The per-frame table (markdown)."""
    head = ("| frame | verdict | erased | invented | low-pass r | bias | bright->black % | bright kept | "
            "anechoic kept | skull kept | HC diff mm |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        hc = r.get("hc_diff_mm")
        hc_text = "lost" if r.get("hc_source_mm") is not None and hc is None else _num(hc, "+.2f")
        lines.append(f"| {r['frame']} | {r.get('verdict', '')} | {r['erased']} | {r['invented']} | "
                     f"{r['lowpass_corr']:.3f} | {r['lowpass_bias']:+.1f} | {100 * r['bright_to_black']:.1f} | "
                     f"{_num(r.get('bright_kept'), '.2f')} | {_num(r.get('anechoic_kept'), '.2f')} | "
                     f"{_num(r.get('skull_kept'), '.2f')} | {hc_text} |")
    return "\n".join(lines)


def markdown_summary(summary: Sequence[dict]) -> str:
    """The per-source table (markdown)."""
    lines = ["| source | frames | failing | erased | invented | low-pass r median (min) | bright->black max % | "
             "skull kept median (min) | max abs HC diff mm |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        skull = "-" if s["skull_kept_median"] is None else f"{s['skull_kept_median']:.2f} ({s['skull_kept_min']:.2f})"
        hc = _num(s["hc_abs_diff_max_mm"], ".2f") + (f", lost on {s['hc_lost']}" if s["hc_lost"] else "")
        lines.append(f"| {s['source']} | {s['frames']} | {s['failing']} | {s['erased']} | {s['invented']} | "
                     f"{s['lowpass_corr_median']:.3f} ({s['lowpass_corr_min']:.3f}) | "
                     f"{100 * s['bright_to_black_max']:.1f} | {skull} | {hc} |")
    return "\n".join(lines)
