"""sonoedge.train.datasets and sonoedge.train.augment: layouts, patient split, determinism,
augmentation applied identically to pairs, tensors in the frame contract, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.runtime.errors import InputError
from sonoedge.train.augment import AugmentConfig, augment_images, crop_to_stride
from sonoedge.train.datasets import (
    DataConfig,
    build_datasets,
    compute_split,
    data_hash,
    detect_layout,
    list_images,
    match_pairs,
    organ_of,
    patient_of,
    read_split,
    split_names,
    write_split,
)


def _image(seed: int, h: int = 120, w: int = 100) -> np.ndarray:
    """A smooth random image with a bright gradient, so flips and crops are visible."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 200, (h, w), dtype=np.uint8), (5, 5), 1)
    return np.clip(base.astype(int) + np.linspace(0, 55, w)[None].astype(int), 0, 255).astype(np.uint8)


@pytest.fixture
def paired_root(tmp_path) -> Path:
    """low/ and high/ with two organ folders, 5 patients x 3 images each, high = low + 10."""
    for organ in ("thyroid", "breast"):
        for patient in range(5):
            for k in range(3):
                low = _image(hash((organ, patient, k)) % 1000)
                for side, image in (("low", low), ("high", np.clip(low.astype(int) + 10, 0, 255).astype(np.uint8))):
                    path = tmp_path / side / organ / f"patient{patient:03d}_{k}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(path), image)
    return tmp_path


# --------------------------------------------------------------------------------------------
# listing and naming


def test_organ_and_patient_from_names():
    assert organ_of("thyroid/012.png") == "thyroid"
    assert organ_of("carotid_p3_1.png") == "carotid"
    assert organ_of("image_3.png") == "unknown"
    assert organ_of("patient07/breast_2.png") == "breast" and organ_of("patient07/img2.png") == "unknown"
    assert organ_of("shoulder/img2.png") == "shoulder"
    assert patient_of("patient012_a.png") == "12"
    assert patient_of("P012-left.png") == "12"
    assert patient_of("liver/p7/frame3.png") == "7"
    assert patient_of("pair_001.png") is None and patient_of("phantom_3.png") is None
    assert patient_of("case-44_x.png", r"case-(\d+)") == "44"


def test_list_images_is_natural_recursive_and_skips_hidden(tmp_path):
    for name in ("b/x10.png", "b/x2.png", "a.png", ".hidden/z.png", "notes.txt"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert list_images(tmp_path) == ["a.png", "b/x2.png", "b/x10.png"]


def test_pairs_match_across_extensions_and_report_orphans():
    assert match_pairs(["a.png", "b.png"], ["b.jpg", "a.png"]) == ["a.png", "b.png"]
    with pytest.raises(InputError, match=r"1 low image\(s\) without a high partner \(first: c\.png\).*1 high .*d\.png"):
        match_pairs(["a.png", "c.png"], ["a.png", "d.png"], "root")


def test_detect_layout(tmp_path):
    assert detect_layout(tmp_path) == "single"
    (tmp_path / "A").mkdir(), (tmp_path / "B").mkdir()
    assert detect_layout(tmp_path) == "unpaired"
    (tmp_path / "low").mkdir(), (tmp_path / "high").mkdir()
    assert detect_layout(tmp_path) == "paired"


# --------------------------------------------------------------------------------------------
# split


def test_split_keeps_patients_together_and_is_deterministic():
    names = [f"patient{p:03d}_{k}.png" for p in range(40) for k in range(4)] + [f"extra_{i}.png" for i in range(20)]
    a = split_names(names, (0.7, 0.1, 0.2), seed=3)
    assert a == split_names(list(reversed(names)), (70, 10, 20), seed=3)  # order and percent/fraction do not matter
    assert sorted(sum(a.values(), [])) == sorted(names)
    owners = {}
    for split, members in a.items():
        for name in members:
            pid = patient_of(name)
            if pid is not None:
                assert owners.setdefault(pid, split) == split, f"patient {pid} in two splits"
    total = len(names)
    assert abs(len(a["train"]) - 0.7 * total) <= 4 and abs(len(a["test"]) - 0.2 * total) <= 4
    assert split_names(names, (0.7, 0.1, 0.2), seed=4) != a
    conference = split_names(names, (90, 10, 0))
    assert conference["test"] == [] and len(conference["val"]) > 0


def test_bad_ratios_and_regex():
    for ratios in [(1, 2), (-1, 1, 1), (0, 0, 0)]:
        with pytest.raises(InputError, match="ratios"):
            split_names(["a.png"], ratios)
    with pytest.raises(InputError, match="patient_regex"):
        split_names(["a.png"], (7, 1, 2), patient_regex="(")


def test_split_file_round_trip(paired_root, tmp_path):
    cfg = DataConfig(root=str(paired_root), ratios=(0.6, 0.2, 0.2), seed=1)
    document = compute_split(cfg)
    assert document["patients"] == 5 and sum(document["counts"].values()) == 30
    path = write_split(document, tmp_path / "out" / "split.json")
    assert read_split(path)["splits"] == document["splits"]
    sets = build_datasets(DataConfig(root=str(paired_root), split_file=str(path), ratios=(1, 0, 0)))
    assert [len(sets[s]) for s in ("train", "val", "test")] == [document["counts"][s] for s in ("train", "val", "test")]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json is not readable JSON"):
        read_split(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"splits": {}}))
    with pytest.raises(InputError, match="not a sonoedge split file"):
        read_split(tmp_path / "other.json")
    twice = dict(document, splits={"train": ["thyroid/patient000_0.png"], "val": ["thyroid/patient000_0.png"], "test": []})
    write_split(twice, tmp_path / "twice.json")
    with pytest.raises(InputError, match=r"puts 1 file\(s\) in more than one split"):
        build_datasets(DataConfig(root=str(paired_root), split_file=str(tmp_path / "twice.json")))
    stale = dict(document, splits={"train": ["thyroid/gone.png"], "val": [], "test": []})
    write_split(stale, tmp_path / "stale.json")
    with pytest.raises(InputError, match=r"names 1 file\(s\) not in .*gone\.png"):
        build_datasets(DataConfig(root=str(paired_root), split_file=str(tmp_path / "stale.json")))


# --------------------------------------------------------------------------------------------
# datasets


def test_paired_items_follow_the_frame_contract(paired_root):
    torch = pytest.importorskip("torch")
    sets = build_datasets(DataConfig(root=str(paired_root), size=64, stride=16, ratios=(0.6, 0.2, 0.2)))
    assert sum(len(s) for s in sets.values()) == 30
    item = sets["val"][0]
    assert set(item) == {"low", "high", "name", "organ"} and item["organ"] in ("thyroid", "breast")
    for key in ("low", "high"):
        assert item[key].dtype == torch.float32 and tuple(item[key].shape) == (1, 64, 64)
        assert -1.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    # val/test are not augmented: the high image is the low one + 10 grey levels, pixel for pixel
    difference = (item["high"] - item["low"]) * 127.5
    assert float(difference.median()) == pytest.approx(10, abs=1.5)


def test_pairs_get_the_same_augmentation(paired_root):
    pytest.importorskip("torch")
    cfg = DataConfig(root=str(paired_root), size=64, stride=4, ratios=(1, 0, 0),
                     augment=AugmentConfig(crop_margin=16, affine=True, max_rotation_deg=5))
    train = build_datasets(cfg)["train"]
    for index in range(len(train)):
        item = train[index]
        difference = ((item["high"] - item["low"]) * 127.5).numpy()
        inside = np.abs(item["low"].numpy()) < 0.9  # away from clipping and the black affine corners
        assert np.median(difference[inside]) == pytest.approx(10, abs=1.5), item["name"]


def test_augmentation_is_seeded_per_epoch(paired_root):
    torch = pytest.importorskip("torch")
    cfg = DataConfig(root=str(paired_root), size=48, ratios=(1, 0, 0))
    a, b = build_datasets(cfg)["train"], build_datasets(cfg)["train"]
    assert torch.equal(a[3]["low"], b[3]["low"])  # same seed, epoch, index: same item
    draws = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        draws.add(a[3]["low"].numpy().tobytes())
    assert len(draws) > 2  # a different crop/flip most epochs
    other = build_datasets(DataConfig(root=str(paired_root), size=48, ratios=(1, 0, 0), seed=9))["train"]
    assert not all(torch.equal(a[i]["low"], other[i]["low"]) for i in range(5))


def test_unpaired_and_single_layouts(tmp_path):
    torch = pytest.importorskip("torch")
    for domain, count in (("A", 7), ("B", 3)):
        (tmp_path / domain).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / domain / f"{domain.lower()}{i}.png"), _image(i + (100 if domain == "B" else 0), 40, 50))
    cfg = DataConfig(root=str(tmp_path), layout="unpaired", size=32, ratios=(1, 0, 0))
    train = build_datasets(cfg)["train"]
    assert len(train) == 7
    item = train[0]
    assert set(item) == {"A", "B", "name_A", "name_B"} and item["name_A"] == "a0.png"
    assert tuple(item["A"].shape) == (1, 32, 32) and item["B"].dtype == torch.float32
    partners = {train[i]["name_B"] for i in range(7)}
    assert partners <= {"b0.png", "b1.png", "b2.png"} and len(partners) > 1  # B sampled independently
    single = build_datasets(DataConfig(root=str(tmp_path / "A"), layout="single", size=0, stride=8, ratios=(1, 0, 0),
                                       augment=AugmentConfig(crop_margin=8)))
    image = single["train"][0]
    # native size 40 x 50, minus the 8 px crop margin (32 x 42), centre-cropped to stride 8
    assert set(image) == {"image", "name"} and tuple(image["image"].shape) == (1, 32, 40)
    with pytest.raises(InputError, match="too small for a crop margin of 40"):
        build_datasets(DataConfig(root=str(tmp_path / "A"), layout="single", size=0, ratios=(1, 0, 0)))["train"][0]


def test_unpaired_split_keeps_a_patient_in_one_split(tmp_path):
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        for p in range(10):
            cv2.imwrite(str(tmp_path / domain / f"p{p}_{domain}.png"), _image(p, 20, 20))
    splits = compute_split(DataConfig(root=str(tmp_path), layout="unpaired", ratios=(0.5, 0.2, 0.3)))["splits"]
    for p in range(10):
        homes = {s for s, names in splits.items() if f"A/p{p}_A.png" in names or f"B/p{p}_B.png" in names}
        assert len(homes) == 1


def test_data_hash_tracks_content_and_settings(paired_root):
    cfg = DataConfig(root=str(paired_root))
    first = data_hash(cfg)
    assert first == data_hash(DataConfig(root=str(paired_root))) and len(first) == 64
    assert data_hash(DataConfig(root=str(paired_root), seed=1)) != first
    target = paired_root / "high" / "breast" / "patient000_0.png"
    image = cv2.imread(str(target), cv2.IMREAD_GRAYSCALE)
    image[0, 0] ^= 1
    cv2.imwrite(str(target), image)
    assert data_hash(cfg) != first


def test_bad_input_names_the_thing(tmp_path, paired_root):
    with pytest.raises(InputError, match="data.root is not set"):
        build_datasets(DataConfig())
    with pytest.raises(InputError, match=r"nowhere does not exist"):
        build_datasets(DataConfig(root=str(tmp_path / "nowhere")))
    (tmp_path / "empty" / "low").mkdir(parents=True)
    (tmp_path / "empty" / "high").mkdir(parents=True)
    with pytest.raises(InputError, match=r"empty/low contains no images"):
        build_datasets(DataConfig(root=str(tmp_path / "empty")))
    with pytest.raises(InputError, match=r"A does not exist"):
        build_datasets(DataConfig(root=str(paired_root), layout="unpaired"))
    with pytest.raises(InputError, match="layout 'triplet' is unknown"):
        build_datasets(DataConfig(root=str(paired_root), layout="triplet"))
    with pytest.raises(InputError, match="not a multiple of data.stride"):
        build_datasets(DataConfig(root=str(paired_root), size=100, stride=16))
    (paired_root / "high" / "thyroid" / "patient004_2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match=r"patient004_2\.png"):
        build_datasets(DataConfig(root=str(paired_root)))
    sets = build_datasets(DataConfig(root=str(paired_root), verify=False, ratios=(1, 0, 0)))
    names = sets["train"].names
    with pytest.raises(InputError, match=r"patient004_2\.png"):
        sets["train"][names.index("thyroid/patient004_2.png")]


def test_augment_images_directly():
    image = _image(1, 100, 90)
    cfg = AugmentConfig(crop_margin=20, hflip=True)
    outs = [augment_images([image], cfg, np.random.default_rng(s))[0] for s in range(20)]
    assert all(o.shape == (80, 70) for o in outs)
    flipped = [o for o in outs if o[:, 0].mean() > o[:, -1].mean()]  # the gradient runs left to right
    assert 0 < len(flipped) < 20
    off = augment_images([image], AugmentConfig(enabled=False), np.random.default_rng(0), size=64)[0]
    assert off.shape == (64, 64)
    assert crop_to_stride(np.zeros((37, 70)), 16).shape == (32, 64)
    with pytest.raises(InputError, match="one shape"):
        augment_images([image, image[:50]], AugmentConfig(), np.random.default_rng(0))
    with pytest.raises(InputError, match="smaller than the model stride"):
        crop_to_stride(np.zeros((10, 70)), 16)


def test_listing_and_split_import_without_torch(paired_root, tmp_path):
    code = (
        "import sys\n"
        "from sonoedge.train.datasets import DataConfig, compute_split\n"
        f"doc = compute_split(DataConfig(root={str(paired_root)!r}))\n"
        "assert sum(doc['counts'].values()) == 30\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unpaired_split_has_both_domains_in_every_split(tmp_path):
    for domain, count in (("A", 30), ("B", 12)):
        (tmp_path / domain).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / domain / f"img{i}.png"), _image(i, 20, 20))
    document = compute_split(DataConfig(root=str(tmp_path), layout="unpaired", ratios=(0.7, 0.1, 0.2)))
    for split, names in document["splits"].items():
        a = sum(n.startswith("A/") for n in names)
        b = sum(n.startswith("B/") for n in names)
        share = {"train": 0.7, "val": 0.1, "test": 0.2}[split]
        assert abs(a - share * 30) <= 1 and abs(b - share * 12) <= 1, (split, a, b)
