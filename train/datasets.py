"""Training datasets: paired, unpaired and single-domain image folders, a deterministic split by
patient, and a hash of the data for checkpoints.

Layouts under ``DataConfig.root`` (any image kind the runtime reads: PNG/JPEG/BMP/TIFF, DICOM,
NRRD, MetaImage; sub-folders allowed):

    paired     low/<name>, high/<name>    the same relative name in both (extension may differ),
                                          e.g. USenhance 2023 handheld vs high-end pairs
    unpaired   A/<name>, B/<name>         two domains sampled independently (CycleGAN)
    single     <name>                     one domain (self-supervised super-resolution)

The organ of a paired item is its first sub-folder (``low/thyroid/012.png``) or a known organ
prefix of its name (``thyroid_012.png``), else "unknown". The patient of a file comes from
``DataConfig.patient_regex`` (``patient012_...``, ``P012-...``, ``p12/...``); the split keeps
every patient's images in one split, so no patient is in both train and test.

    cfg = DataConfig(root="data/usenhance", layout="paired", ratios=(0.7, 0.1, 0.2))
    sets = build_datasets(cfg)         # {"train", "val", "test"}: map-style datasets
    sets["train"][0]                   # {"low": (1, H, W), "high": (1, H, W), "name": str, "organ": str}
    data_hash(cfg)                     # sha256 of the files, for checkpoints

Items hold float32 torch tensors (C=1, H, W) in [-1, 1] (``sonoedge.runtime.frames.normalise``),
H and W multiples of ``DataConfig.stride``. Unpaired items are ``{"A", "B", "name_A", "name_B"}``,
single ones ``{"image", "name"}``. The randomness of an item (augmentation, the B partner of an
unpaired item) depends only on (seed, epoch, index): call ``dataset.set_epoch(epoch)`` each epoch;
results do not depend on DataLoader workers.

Listing, matching and splitting use numpy only and import without torch (``sonoedge data split``);
torch is imported when an item is built.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.runtime.errors import InputError
from sonoedge.train.augment import AugmentConfig, augment_images, crop_to_stride, prepare_eval

LAYOUTS = {"paired": ("low", "high"), "unpaired": ("A", "B"), "single": ()}
SPLITS = ("train", "val", "test")
ORGANS = ("thyroid", "carotid", "liver", "kidney", "breast", "abdomen")  # USenhance 2023 organs
# patient012_..., P012-..., pat_7..., p12/...: a word starting with patient/pat/p, then digits
PATIENT_REGEX = r"(?i)(?:^|[^a-z0-9])(?:patient|pat|p)[ _-]?(\d+)"
DATA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".nrrd", ".mha", ".mhd")
SPLIT_FORMAT = "sonoedge-split"


@dataclasses.dataclass
class DataConfig:
    """Where the training images are and how they are split, sized and augmented."""

    root: str = ""  # dataset folder (see the module docstring for the layouts)
    layout: str = "paired"  # "paired" | "unpaired" | "single"
    size: int = 256  # images are resized to size x size (0 = keep their resolution)
    ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train/val/test, Athreya et al. 2024 journal, "Implementation Details"
    seed: int = 0  # the split and every augmentation draw
    patient_regex: str = PATIENT_REGEX  # group 1 is the patient id; files without a match are their own group
    split_file: str = ""  # a split JSON from `sonoedge data split` to use instead of computing one
    stride: int = 4  # H and W are centre-cropped to multiples of this (the generator's total down-sampling)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    verify: bool = True  # open every file once when the datasets are built (fail before training, not during)
    # the imaging region of real frames (sonoedge.runtime.region.detect_region): "none", "mask" (black
    # outside the detected region, so a translator learns no screen surround, bars or rings), or "crop"
    # (masked, cut to the region's bounding box and padded with black to a square, so that data.size
    # resizes without squeezing the aspect). Applied to the images of the folders in region_folders
    # ("A", "B", "low", "high", or "" for the single layout); a pair shares the region of its low image.
    region: str = "none"
    region_folders: tuple[str, ...] = ("B",)


# ---------------------------------------------------------------------------------------------
# listing (numpy only)


def list_images(folder: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``folder`` (recursive), sorted naturally."""
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist or is not a folder; check data.root and the layout's folders.")
    names = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in DATA_EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    if not names:
        raise InputError(f"{folder} contains no images ({' '.join(DATA_EXTENSIONS)}).")
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def detect_layout(root: Path) -> str:
    """"paired" when root has low/ and high/, "unpaired" with A/ and B/, else "single"."""
    for layout, folders in LAYOUTS.items():
        if folders and all((root / f).is_dir() for f in folders):
            return layout
    return "single"


def organ_of(name: str) -> str:
    """The organ of a relative name: a known organ (:data:`ORGANS`) as a folder or a name prefix,
    else its first folder (unless that is a patient folder), else "unknown"."""
    parts = name.lower().split("/")
    prefix = re.split(r"[_\-\s.]", parts[-1], maxsplit=1)[0]
    for part in (*parts[:-1], prefix):
        if part in ORGANS:
            return part
    if len(parts) > 1 and patient_of(parts[0] + "/") is None:
        return parts[0]
    return "unknown"


def patient_of(name: str, regex: str = PATIENT_REGEX) -> str | None:
    """The patient id in ``name`` (group 1 of ``regex``, leading zeros dropped), or None."""
    match = re.search(regex, name)
    if match is None:
        return None
    group = match.group(1) if match.groups() else match.group(0)
    return str(int(group)) if group.isdigit() else group


def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise InputError("data.root is not set; point it at the dataset folder.")
    root = Path(cfg.root)
    if not root.is_dir():
        raise InputError(f"the data folder {root} does not exist; check data.root.")
    if cfg.layout not in LAYOUTS:
        raise InputError(f"data.layout '{cfg.layout}' is unknown; valid layouts: {', '.join(LAYOUTS)}.")
    return root


def scan(cfg: DataConfig) -> dict[str, list[str]]:
    """The items of the dataset: {"pairs": [...]} (names under low/, matched in high/),
    {"A": [...], "B": [...]} or {"images": [...]}; InputError for missing/empty folders or
    unmatched pair names."""
    root = _root(cfg)
    if cfg.layout == "paired":
        low, high = list_images(root / "low"), list_images(root / "high")
        return {"pairs": match_pairs(low, high, root)}
    if cfg.layout == "unpaired":
        return {"A": list_images(root / "A"), "B": list_images(root / "B")}
    return {"images": list_images(root)}


def match_pairs(low: list[str], high: list[str], root: Path | str = "") -> list[str]:
    """Low names that have a high partner of the same relative name (any image extension)."""
    low_keys = {_stem(n): n for n in low}
    high_keys = {_stem(n): n for n in high}
    only_low = sorted((low_keys[k] for k in set(low_keys) - set(high_keys)), key=_natural_key)
    only_high = sorted((high_keys[k] for k in set(high_keys) - set(low_keys)), key=_natural_key)
    if only_low or only_high:
        raise InputError(
            f"{root}: {len(only_low)} low image(s) without a high partner (first: {', '.join(only_low[:5]) or '-'}) and "
            f"{len(only_high)} high image(s) without a low partner (first: {', '.join(only_high[:5]) or '-'}); "
            "paired data needs the same names in low/ and high/."
        )
    return [low_keys[k] for k in sorted(low_keys, key=_natural_key)]


def high_name(low_name: str, high: list[str]) -> str:
    """The high/ name that matches ``low_name`` (the extension may differ)."""
    return {_stem(n): n for n in high}[_stem(low_name)]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


# ---------------------------------------------------------------------------------------------
# the split (numpy only)


def normalise_ratios(ratios) -> tuple[float, float, float]:
    """Three non-negative numbers (fractions or percentages) -> fractions summing to 1."""
    values = [float(r) for r in ratios]
    if len(values) != 3 or any(v < 0 or not np.isfinite(v) for v in values) or sum(values) <= 0:
        raise InputError(f"split ratios must be three non-negative numbers for train, val, test, got {list(ratios)}.")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def split_names(names: list[str], ratios, seed: int = 0, patient_regex: str = PATIENT_REGEX,
                domain_of=None) -> dict[str, list[str]]:
    """Deterministic train/val/test split of ``names`` keeping each patient in one split.

    Patients (or single files without an id) are shuffled with ``seed`` and each goes to the split
    furthest below its target share of images, counted per domain (``domain_of(name)``, e.g. the
    A/ and B/ of unpaired data) so every split gets both domains in proportion. Splits with ratio
    0 stay empty.
    """
    fractions = np.array(normalise_ratios(ratios))
    try:
        re.compile(patient_regex)
    except re.error as exc:
        raise InputError(f"data.patient_regex '{patient_regex}' is not a valid regular expression ({exc}).") from exc
    domain_of = domain_of or (lambda name: "")
    domains = sorted({domain_of(n) for n in names})
    totals = np.array([sum(1 for n in names if domain_of(n) == d) for d in domains], dtype=float)
    groups: dict[str, list[str]] = {}
    for name in names:
        patient = patient_of(name, patient_regex)
        groups.setdefault(f"patient:{patient}" if patient is not None else f"file:{name}", []).append(name)
    keys = sorted(groups, key=_natural_key)
    order = np.random.default_rng(seed).permutation(len(keys))
    counts = np.zeros((3, len(domains)))  # images per split and domain
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i in order:
        members = groups[keys[i]]
        share = np.array([sum(1 for n in members if domain_of(n) == d) for d in domains]) / totals
        # how far each split is below its target, in shares of each domain this group adds to
        deficit = ((fractions[:, None] - counts / totals) * share).sum(axis=1)
        choice = int(np.argmax(np.where(fractions > 0, deficit, -np.inf)))
        splits[SPLITS[choice]].extend(members)
        counts[choice] += share * totals
    return {s: sorted(v, key=_natural_key) for s, v in splits.items()}


def compute_split(cfg: DataConfig) -> dict[str, Any]:
    """The split document of ``cfg``'s data (see :func:`write_split`)."""
    items = scan(cfg)
    if cfg.layout == "unpaired":  # one patient's A and B images share a split (no leakage across domains)
        keys = [f"A/{n}" for n in items["A"]] + [f"B/{n}" for n in items["B"]]
    else:
        keys = next(iter(items.values()))
    domain_of = (lambda key: key[:2]) if cfg.layout == "unpaired" else None
    splits = split_names(keys, cfg.ratios, cfg.seed, cfg.patient_regex, domain_of)
    return {
        "format": SPLIT_FORMAT,
        "version": 1,
        "layout": cfg.layout,
        "ratios": list(normalise_ratios(cfg.ratios)),
        "seed": cfg.seed,
        "patient_regex": cfg.patient_regex,
        "counts": {s: len(v) for s, v in splits.items()},
        "patients": len({patient_of(k, cfg.patient_regex) for k in keys} - {None}),
        "splits": splits,
    }


def write_split(document: dict[str, Any], path: str | Path) -> Path:
    """Write a split document as JSON, atomically."""
    from sonoedge.runtime.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, Any]:
    """Read and check a split JSON written by :func:`write_split` / ``sonoedge data split``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"the split file {path} does not exist; write one with `sonoedge data split`.") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"the split file {path} is not readable JSON ({exc}).") from exc
    if not isinstance(document, dict) or document.get("format") != SPLIT_FORMAT or not isinstance(document.get("splits"), dict):
        raise InputError(f"{path} is not a sonoedge split file (format '{SPLIT_FORMAT}' with 'splits').")
    if set(document["splits"]) != set(SPLITS) or not all(isinstance(v, list) for v in document["splits"].values()):
        raise InputError(f"{path} must list 'train', 'val' and 'test' names.")
    return document


def _resolve_split(cfg: DataConfig, items: dict[str, list[str]]) -> dict[str, list[str]]:
    if not cfg.split_file:
        return compute_split(cfg)["splits"]
    document = read_split(cfg.split_file)
    if document.get("layout") != cfg.layout:
        raise InputError(f"the split file {cfg.split_file} is for layout '{document.get('layout')}', not '{cfg.layout}'.")
    known = set(f"{d}/{n}" for d in ("A", "B") for n in items.get(d, [])) if cfg.layout == "unpaired" else set(next(iter(items.values())))
    listed = [n for v in document["splits"].values() for n in v]
    repeated = sorted(n for n, times in collections.Counter(map(str, listed)).items() if times > 1)
    if repeated:
        raise InputError(f"the split file {cfg.split_file} puts {len(repeated)} file(s) in more than one split "
                         f"(first: {', '.join(map(str, repeated[:5]))}); each file belongs to one split.")
    missing = [n for n in listed if n not in known]
    if missing:
        raise InputError(f"the split file {cfg.split_file} names {len(missing)} file(s) not in {cfg.root} (first: {', '.join(missing[:5])}).")
    return document["splits"]


# ---------------------------------------------------------------------------------------------
# the data hash


def data_hash(cfg: DataConfig) -> str:
    """sha256 over the layout, the split (settings, or the split file's lists) and every file's
    relative path, size and content: equal data gives equal hashes on any machine."""
    root = _root(cfg)
    digest = hashlib.sha256()
    settings = {"layout": cfg.layout, "ratios": list(normalise_ratios(cfg.ratios)), "seed": cfg.seed,
                "patient_regex": cfg.patient_regex}
    if cfg.split_file:  # the split itself, wherever the file lives
        settings["split"] = read_split(cfg.split_file)["splits"]
    digest.update(json.dumps(settings, sort_keys=True).encode())
    folders = LAYOUTS[cfg.layout] or ("",)
    for folder in folders:
        base = root / folder if folder else root
        for name in list_images(base):
            path = base / name
            digest.update(f"{folder}/{name}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# datasets (torch imported when items are built)


class _FolderDataset:
    """Map-style dataset base: loading, seeding, augmentation, tensor conversion."""

    def __init__(self, cfg: DataConfig, train: bool):
        self.cfg = cfg
        self.train = train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Re-draw augmentation (and unpaired partners) for ``epoch``; same epoch, same items."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, self.epoch if self.train else 0, index])

    def _load(self, path: Path, region: bool | None = None) -> np.ndarray:
        """uint8 (H, W) (InputError names the file), with data.region applied when its folder is in
        data.region_folders (``region`` True/False overrides that)."""
        from sonoedge.runtime.readers import read_image

        image = read_image(path)
        if region is None:
            region = self._in_region_folders(path)
        return apply_region([image], self.cfg.region)[0] if region else image

    def _in_region_folders(self, path: Path) -> bool:
        if self.cfg.region == "none":
            return False
        folder = Path(path).relative_to(self.cfg.root).parts[0] if self.cfg.layout != "single" else ""
        return folder in self.cfg.region_folders

    def _prepare(self, images: list[np.ndarray], rng: np.random.Generator, names: list[str]) -> list[Any]:
        try:
            if self.train and self.cfg.augment.enabled:
                images = augment_images(images, self.cfg.augment, rng, self.cfg.size)
            else:
                images = prepare_eval(images, self.cfg.size)
            return [_to_tensor(crop_to_stride(im, self.cfg.stride)) for im in images]
        except InputError as exc:
            raise InputError(f"{' + '.join(names)}: {exc}") from exc


REGION_MODES = ("none", "mask", "crop")


def apply_region(images: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """``images`` (same shape, uint8 (H, W)) with the imaging region of the first one applied:
    "mask" zeroes every pixel outside it, "crop" also cuts to its bounding box and pads the shorter
    side with black (centred) to a square, so a later resize keeps the aspect (DataConfig.region)."""
    if mode == "none":
        return list(images)
    if mode not in REGION_MODES:
        raise InputError(f"data.region must be one of {', '.join(REGION_MODES)}, got '{mode}'")
    from sonoedge.runtime.region import detect_region

    region = detect_region(images[0])
    out = [np.where(region.mask, im, 0).astype(np.uint8) for im in images]
    if mode == "crop":
        x0, y0, x1, y1 = region.bbox
        side = max(x1 - x0, y1 - y0)
        squares = []
        for im in out:
            square = np.zeros((side, side), np.uint8)
            top, left = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2
            square[top:top + y1 - y0, left:left + x1 - x0] = im[y0:y1, x0:x1]
            squares.append(square)
        out = squares
    return out


def _to_tensor(image: np.ndarray):
    """uint8 (H, W) -> float32 torch tensor (1, H, W) in [-1, 1] (frames.normalise)."""
    import torch

    from sonoedge.runtime.frames import normalise

    return torch.from_numpy(normalise(np.ascontiguousarray(image))[0])


class PairedDataset(_FolderDataset):
    """Items ``{"low", "high", "name", "organ"}``; one augmentation draw for both images."""

    def __init__(self, cfg: DataConfig, names: list[str], high: list[str], train: bool):
        super().__init__(cfg, train)
        root = Path(cfg.root)
        self.names = list(names)
        self.pairs = [(root / "low" / n, root / "high" / high_name(n, high)) for n in self.names]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        low_path, high_path = self.pairs[index]
        images = [self._load(low_path, region=False), self._load(high_path, region=False)]
        if self._in_region_folders(low_path) or self._in_region_folders(high_path):
            images = apply_region(images, self.cfg.region)  # one region for both: the pair stays aligned
        low, high = self._prepare(images, self._rng(index), [str(low_path), str(high_path)])
        return {"low": low, "high": high, "name": self.names[index], "organ": organ_of(self.names[index])}


class UnpairedDataset(_FolderDataset):
    """Items ``{"A", "B", "name_A", "name_B"}``: the longer domain is walked in order, the other
    sampled at random (seeded by seed, epoch, index), each image augmented independently."""

    def __init__(self, cfg: DataConfig, a_names: list[str], b_names: list[str], train: bool):
        super().__init__(cfg, train)
        if (len(a_names) == 0) != (len(b_names) == 0):
            raise InputError(f"{cfg.root}: a split of unpaired data has images of one domain only "
                             f"(A: {len(a_names)}, B: {len(b_names)}); add data or change data.ratios.")
        self.a_names, self.b_names = list(a_names), list(b_names)

    def __len__(self) -> int:
        return max(len(self.a_names), len(self.b_names))

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = self._rng(index)
        if len(self.a_names) >= len(self.b_names):
            a, b = self.a_names[index], self.b_names[int(rng.integers(len(self.b_names)))]
        else:
            a, b = self.a_names[int(rng.integers(len(self.a_names)))], self.b_names[index]
        root = Path(self.cfg.root)
        image_a = self._prepare([self._load(root / "A" / a)], rng, [str(root / "A" / a)])[0]
        image_b = self._prepare([self._load(root / "B" / b)], rng, [str(root / "B" / b)])[0]
        return {"A": image_a, "B": image_b, "name_A": a, "name_B": b}


class SingleDataset(_FolderDataset):
    """Items ``{"image", "name"}`` of one domain."""

    def __init__(self, cfg: DataConfig, names: list[str], train: bool):
        super().__init__(cfg, train)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = Path(self.cfg.root) / self.names[index]
        return {"image": self._prepare([self._load(path)], self._rng(index), [str(path)])[0], "name": self.names[index]}


def build_datasets(cfg: DataConfig) -> dict[str, _FolderDataset]:
    """{"train", "val", "test"} datasets of ``cfg`` (augmentation on train only). Empty splits
    (ratio 0) are empty datasets. With ``cfg.verify`` every file is opened once first."""
    if cfg.size < 0 or cfg.stride < 1 or cfg.augment.crop_margin < 0:
        raise InputError(f"data.size ({cfg.size}) and data.augment.crop_margin ({cfg.augment.crop_margin}) must be >= 0 "
                         f"and data.stride ({cfg.stride}) >= 1.")
    if cfg.region not in REGION_MODES:
        raise InputError(f"data.region must be one of {', '.join(REGION_MODES)}, got '{cfg.region}'")
    if cfg.size and cfg.size % cfg.stride:
        nearest = cfg.size - cfg.size % cfg.stride or cfg.stride
        raise InputError(f"data.size {cfg.size} is not a multiple of data.stride {cfg.stride}; choose e.g. {nearest}.")
    items = scan(cfg)
    splits = _resolve_split(cfg, items)
    root = Path(cfg.root)
    if cfg.verify:
        _verify(cfg, root, items)
    out: dict[str, _FolderDataset] = {}
    for split in SPLITS:
        train = split == "train"
        names = splits[split]
        if cfg.layout == "paired":
            high = list_images(root / "high")
            out[split] = PairedDataset(cfg, names, high, train)
        elif cfg.layout == "unpaired":
            a = [n[2:] for n in names if n.startswith("A/")]
            b = [n[2:] for n in names if n.startswith("B/")]
            out[split] = UnpairedDataset(cfg, a, b, train)
        else:
            out[split] = SingleDataset(cfg, names, train)
    return out


def _verify(cfg: DataConfig, root: Path, items: dict[str, list[str]]) -> None:
    """Open every file (header/first frame) so a bad one fails now, naming it."""
    from sonoedge.runtime.readers import probe

    folders = {"pairs": ["low"], "A": ["A"], "B": ["B"], "images": [""]}
    for key, names in items.items():
        for folder in folders[key]:
            for name in names:
                probe(root / folder / name if folder else root / name)
    if cfg.layout == "paired":
        for name in list_images(root / "high"):
            probe(root / "high" / name)
