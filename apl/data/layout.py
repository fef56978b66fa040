"""The canonical prepared layout every profile shares (data/<profile>/datasets/), and the raw layouts it is built from.

    train/              defocused training images (detection GT is never used for training)
    fullclear/          unpaired fully-clear images: D's real samples and the synthesis input
    cuhk/images, cuhk/masks     detection test set 1 (masks: white = in focus)
    dut/images,  dut/masks      detection test set 2
    dp/source,   dp/target      deblurring test set (defocused input, sharp target; same stem)
    val/images,  val/masks      (data.validation > 0) CUHK training images held out of training, with their
                                masks: the split any choice is made on, never the test sets
    heldout/source, heldout/target, heldout/masks
                                (data.heldout_fullclear > 0) synthetic defocus pairs made from full-clear images
                                held out of fullclear/ (so of D's real set and of the pretraining pairs)
    lists/<set>.csv             (real datasets) one row per image: name, paths, and the raw file it came from
    manifest.json               counts, written last: its presence means the folder is complete

Raw side: each canonical set comes from one raw layout chosen in `data.sets` (REFERENCE section 6).
`original` is the datasets' own release, `packed` the authors' packed archive (the SG repository's
train_data / test_data), `dpdd` the DPDD Canon set, `original_cuhk` CUHK's 604 training images alone,
`folder` a user's own folder of all-in-focus photographs (`data.fullclear_dir`), `none` a set that is absent
(DUT, DP): it is not prepared, not evaluated, and its table columns say so. RAW_NEEDS says which folders of
which raw dataset (one folder each under `data.raw_dir`) a choice needs; a need may be a nested path such as
`test_c/source`, found at any depth below the dataset's folder.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from apl.io import ImageError, list_images

DETECTION_SETS = {"cuhk": "CUHK", "dut": "DUT"}   # folder -> name in the paper's tables (the test sets)
DEBLUR_SET = ("dp", "DP")
VALIDATION_SET = ("val", "Validation")           # never a column of the paper's tables
HELDOUT_SET = ("heldout", "Synthetic held-out")  # never mixed with DP
REAL_PHOTOS = "Real photographs"   # deblurring results on a few detection test photographs (no sharp target)
FOLDERS = {
    "train": "train",
    "fullclear": "fullclear",
    "cuhk": "cuhk/images",
    "dut": "dut/images",
    "dp": "dp/source",
    "val": "val/images",
    "heldout": "heldout/source",
}
CORE_SETS = ("train", "fullclear", "cuhk", "dut", "dp")   # counted in every manifest (0 when absent)
MASK_FOLDERS = {"cuhk": "cuhk/masks", "dut": "dut/masks", "val": "val/masks", "heldout": "heldout/masks",
                # training images' GT masks, where the raw layout has them: never used for training unless asked
                # (train.gws_target: masks, or the single_gws_masks stage, the release's `1204gt` supervision)
                "train": "train_masks"}
TARGET_FOLDERS = {"dp": "dp/target", "heldout": "heldout/target"}
DP_TARGET = TARGET_FOLDERS["dp"]
ABSENT = "none"                                  # data.sets value of a set this profile does not have
MASK_POLARITY = "focus-white"
LISTS = "lists"

# (canonical set, raw layout) -> {raw dataset: folders it must hold}
RAW_NEEDS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("train", "original"): {"cuhk": ("image",), "dut": ("DUT600S_Training",)},
    ("train", "packed"): {"packed": ("1204source",)},
    ("train", "original_cuhk"): {"cuhk": ("image",)},
    ("cuhk", "original"): {"cuhk": ("image", "gt")},
    ("cuhk", "packed"): {"packed": ("xu100-source", "xu100-gt")},
    ("dut", "original"): {"dut": ("DUT500S-Testing", "DUT500GT-Testing")},
    ("dut", "packed"): {"packed": ("dut500-source", "dut500-gt")},
    ("dut", ABSENT): {},
    ("dp", "dpdd"): {"dpdd": ("test_c/source", "test_c/target")},
    ("dp", ABSENT): {},
    ("fullclear", "packed"): {"packed": ("FC",)},
    ("fullclear", "dpdd"): {"dpdd": ("train_c/target",)},
    ("fullclear", "folder"): {},           # data.fullclear_dir, anywhere (fullclear_folder)
}
VALIDATION_NEEDS = {"cuhk": ("image", "gt")}   # data.validation: CUHK training images with their masks
PAPER_FULLCLEAR = "packed"                 # the authors' 500 full-clear images; anything else is a deviation
TRAIN_PARTS = {"cuhk": 604, "dut": 600}    # the paper's 1204 training images, original layout
DPDD_FULLCLEAR_COUNT = 350                 # DPDD train_c/target: the open full-clear substitute


def chosen_layouts(config: dict) -> dict[str, str]:
    """{canonical set: raw layout} for every set of the profile (`none` for an absent one)."""
    return dict(config["data"]["sets"])


def absent_sets(config: dict) -> list[str]:
    """Canonical sets this profile does not have (`data.sets.<set>: none`): not prepared, not evaluated."""
    return [name for name, layout in chosen_layouts(config).items() if layout == ABSENT]


def _needs(config: dict):
    """(label, {raw dataset: folders}) for every choice of `data.sets` and for the validation split."""
    for key in chosen_layouts(config).items():
        if key not in RAW_NEEDS:
            raise ValueError(f"data.sets: no raw layout {key[1]!r} for the set {key[0]!r}")
        yield f"{key[0]} ({key[1]})", RAW_NEEDS[key]
    if config["data"]["validation"]:
        yield "validation split (data.validation)", VALIDATION_NEEDS


def raw_needs(config: dict) -> dict[str, list[str]]:
    """{raw dataset: folders needed}, in a stable order, for the layouts chosen in `data.sets`."""
    needs: dict[str, list[str]] = {}
    for _, found in _needs(config):
        for dataset, folders in found.items():
            needs.setdefault(dataset, [])
            needs[dataset] += [f for f in folders if f not in needs[dataset]]
    return needs


def raw_users(config: dict) -> dict[str, list[str]]:
    """{raw dataset: ["<set>: <layout>", ...]}: which choices of `data.sets` need it (for messages)."""
    users: dict[str, list[str]] = {}
    for label, found in _needs(config):
        for dataset in found:
            users.setdefault(dataset, []).append(label)
    return users


def fullclear_folder(config: dict) -> Path:
    """The user's folder of all-in-focus photographs (`data.sets.fullclear: folder`), checked to hold images."""
    folder = config["data"].get("fullclear_dir")
    if not folder:
        raise ValueError("data.sets.fullclear is `folder` but data.fullclear_dir is not set: give the folder of "
                         "your all-in-focus photographs")
    try:
        list_images(folder)
    except ImageError as err:
        raise FileNotFoundError(f"data.fullclear_dir: {Path(folder).resolve()} must be a folder of all-in-focus "
                                f"photographs (png, jpg, tif, ...): {err}") from None
    return Path(folder)


def count_images(root: Path) -> dict[str, int]:
    """Images per prepared set: every core set (0 when absent), and the validation / held-out sets when present."""
    counts = {}
    for name, folder in FOLDERS.items():
        present = (root / folder).is_dir()
        if present or name in CORE_SETS:
            counts[name] = len(list_images(root / folder)) if present else 0
    return counts


def evaluation_sets(datasets: Path, task: str) -> dict[str, str]:
    """{folder key: name in the results} of the sets a `task` (detection | deblurring) is scored on, in order:
    the test sets present, then the validation split (detection) or the synthetic held-out pairs (deblurring)."""
    if task == "detection":
        candidates = [*DETECTION_SETS.items(), VALIDATION_SET]
    else:
        candidates = [DEBLUR_SET, HELDOUT_SET]
    return {key: name for key, name in candidates if (Path(datasets) / FOLDERS[key]).is_dir()}


def check_counts(counts: dict[str, int], expected: dict[str, int | None], allow_subset: bool, where: Path) -> None:
    """Refuse a prepared set whose image counts differ from the paper's (or the profile's) counts;
    an expected count of None is not checked (a user's own folder)."""
    wrong = {name: (counts.get(name, 0), want) for name, want in expected.items()
             if want is not None and counts.get(name, 0) != want}
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


def train_masks_available(config: dict) -> bool:
    """Whether the prepared training set carries GT masks: the demo's exact masks, CUHK's original `gt/`
    (CUHK-only training). The packed archive's `1204gt` is not read; DUT's training masks are not either."""
    if config["data"]["source"] == "demo":
        return True
    return config["data"]["sets"]["train"] == "original_cuhk"


def pick_stems(stems, count: int) -> list[str]:
    """`count` stems spread evenly over the sorted list (always the same ones for the same test set): the images
    the figures show and the real photographs every deblurring stage also deblurs."""
    stems = sorted(stems)
    if count >= len(stems):
        return stems
    return [stems[int(round(i))] for i in np.linspace(0, len(stems) - 1, count)]
