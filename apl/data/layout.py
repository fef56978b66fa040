"""The canonical prepared layout every profile shares (data/<profile>/datasets/), and the raw layouts it is built from.

    train/              defocused training images (detection GT is never used for training)
    fullclear/          unpaired fully-clear images: D's real samples and the synthesis input
    cuhk/images, cuhk/masks     detection test set 1 (masks: white = in focus)
    dut/images,  dut/masks      detection test set 2
    dp/source,   dp/target      deblurring test set (defocused input, sharp target; same stem)
    lists/<set>.csv             (real datasets) one row per image: name, paths, and the raw file it came from
    manifest.json               counts, written last: its presence means the folder is complete

Raw side: each canonical set comes from one raw layout chosen in `data.sets` (REFERENCE section 6).
`original` is the datasets' own release, `packed` the authors' packed archive (the SG repository's
train_data / test_data), `dpdd` the DPDD Canon set. RAW_NEEDS says which folders of which raw dataset
(one folder each under `data.raw_dir`) a choice needs; a need may be a nested path such as
`test_c/source`, found at any depth below the dataset's folder.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from apl.io import list_images

DETECTION_SETS = {"cuhk": "CUHK", "dut": "DUT"}   # folder -> name in the paper's tables
DEBLUR_SET = ("dp", "DP")
FOLDERS = {
    "train": "train",
    "fullclear": "fullclear",
    "cuhk": "cuhk/images",
    "dut": "dut/images",
    "dp": "dp/source",
}
MASK_FOLDERS = {"cuhk": "cuhk/masks", "dut": "dut/masks"}
DP_TARGET = "dp/target"
MASK_POLARITY = "focus-white"
LISTS = "lists"

# (canonical set, raw layout) -> {raw dataset: folders it must hold}
RAW_NEEDS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("train", "original"): {"cuhk": ("image",), "dut": ("DUT600S_Training",)},
    ("train", "packed"): {"packed": ("1204source",)},
    ("cuhk", "original"): {"cuhk": ("image", "gt")},
    ("cuhk", "packed"): {"packed": ("xu100-source", "xu100-gt")},
    ("dut", "original"): {"dut": ("DUT500S-Testing", "DUT500GT-Testing")},
    ("dut", "packed"): {"packed": ("dut500-source", "dut500-gt")},
    ("dp", "dpdd"): {"dpdd": ("test_c/source", "test_c/target")},
    ("fullclear", "packed"): {"packed": ("FC",)},
    ("fullclear", "dpdd"): {"dpdd": ("train_c/target",)},
}
DP_LAYOUT = "dpdd"                         # the deblurring test set has one source only
PAPER_FULLCLEAR = "packed"                 # the authors' 500 full-clear images; anything else is a deviation
TRAIN_PARTS = {"cuhk": 604, "dut": 600}    # the paper's 1204 training images, original layout
DPDD_FULLCLEAR_COUNT = 350                 # DPDD train_c/target: the open full-clear substitute


def chosen_layouts(config: dict) -> dict[str, str]:
    """{canonical set: raw layout} for every set the paper profile prepares."""
    return {**config["data"]["sets"], "dp": DP_LAYOUT}


def raw_needs(config: dict) -> dict[str, list[str]]:
    """{raw dataset: folders needed}, in a stable order, for the layouts chosen in `data.sets`."""
    needs: dict[str, list[str]] = {}
    for key in chosen_layouts(config).items():
        if key not in RAW_NEEDS:
            raise ValueError(f"data.sets: no raw layout {key[1]!r} for the set {key[0]!r}")
        for dataset, folders in RAW_NEEDS[key].items():
            needs.setdefault(dataset, [])
            needs[dataset] += [f for f in folders if f not in needs[dataset]]
    return needs


def raw_users(config: dict) -> dict[str, list[str]]:
    """{raw dataset: ["<set>: <layout>", ...]}: which choices of `data.sets` need it (for messages)."""
    users: dict[str, list[str]] = {}
    for key in chosen_layouts(config).items():
        for dataset in RAW_NEEDS.get(key, {}):
            users.setdefault(dataset, []).append(f"{key[0]} ({key[1]})")
    return users


def count_images(root: Path) -> dict[str, int]:
    return {name: len(list_images(root / folder)) for name, folder in FOLDERS.items()}


def check_counts(counts: dict[str, int], expected: dict[str, int], allow_subset: bool, where: Path) -> None:
    """Refuse a prepared set whose image counts differ from the paper's (or the demo's) counts."""
    wrong = {name: (counts.get(name, 0), want) for name, want in expected.items() if counts.get(name, 0) != want}
    if not wrong:
        return
    if allow_subset and all(0 < have <= want for have, want in wrong.values()):
        return
    detail = ", ".join(f"{name}: {have} found, {want} expected" for name, (have, want) in wrong.items())
    raise ValueError(f"{where}: image counts differ from the paper's (data.expected_counts) ({detail}); "
                     "complete the dataset, or set data.allow_subset: true to knowingly run on a subset")


def fresh_tmp(target: Path) -> Path:
    """A clean sibling folder to build `target` in; renamed over it when complete."""
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
