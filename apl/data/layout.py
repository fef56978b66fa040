"""The canonical prepared layout every profile shares (data/<profile>/datasets/).

    train/              defocused training images (detection GT is never used for training)
    fullclear/          unpaired fully-clear images: D's real samples and the synthesis input
    cuhk/images, cuhk/masks     detection test set 1 (masks: white = in focus)
    dut/images,  dut/masks      detection test set 2
    dp/source,   dp/target      deblurring test set (defocused input, sharp target; same stem)
    manifest.json               counts, written last: its presence means the folder is complete
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
    raise ValueError(f"{where}: image counts differ from data.expected_counts ({detail}); "
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
