"""Prepare the paper profile's raw datasets into the canonical layout (apl/data/layout.py).

Each set comes from the raw layout `data.sets` chooses (REFERENCE.md section 6):

    train      packed: 1204source | original: CUHK's out_of_focus images outside the test split (604)
               + DUT600S_Training (600), named cuhk_<stem> and dut_<stem> | original_cuhk: CUHK's 604 alone
    val        (data.validation = n > 0) n of CUHK's 604 training images, with their masks (inverted), taken
               out of train: the first n of CUHK's sorted training stems shuffled by a generator seeded with
               `seed` (pick); named as in train
    cuhk       packed: xu100-source + xu100-gt (white = in focus; file i is renamed to the i-th name of
               splits/cuhk_test_split.csv) | original: the 100 images of that split from image/ + gt/,
               whose masks (white = blurred) are inverted here
    dut        packed: dut500-source + dut500-gt | original: DUT500S-Testing + DUT500GT-Testing
    dp         DPDD test_c: the 76 pairs of splits/dpdd_test_pairs.csv, renamed 001..076 so that source
               and target share a stem (16-bit PNG -> 8-bit)
    fullclear  packed: FC (the paper's 500) | dpdd: DPDD train_c/target (350; an open substitute, a deviation)
               | folder: every image of data.fullclear_dir (a user's own photographs; a deviation)
    heldout    (data.heldout_fullclear = n > 0) n full-clear images (pick) taken out of fullclear, so out of
               D's real set and out of the pretraining pairs, each resized to image_size and made into one
               synthetic defocus pair (synthesis.*): source (defocused), target (sharp), masks (exact)
    dut, dp    none: absent; not prepared (counted 0)

Every image is decoded once, so a corrupt file is named here rather than in a later stage; every mask
must fit its image and be binary (grey only along region boundaries, as after a resize). Counts are
checked against `data.expected_counts` (and, in the original training layout, CUHK 604 + DUT 600)
unless `data.allow_subset` says the user knowingly runs a subset. lists/<set>.csv records where every
file came from. The folder is built beside its target and renamed over it only when complete.
"""
from __future__ import annotations

import csv
import io
import logging
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

from apl.data.download import locate_raw
from apl.data.layout import (ABSENT, CORE_SETS, DPDD_FULLCLEAR_COUNT, FOLDERS, LISTS, MASK_FOLDERS, PAPER_FULLCLEAR,
                             TARGET_FOLDERS, TRAIN_PARTS, absent_sets, check_counts, chosen_layouts, count_images,
                             fresh_tmp, fullclear_folder, publish)
from apl.data.scale import to_scale
from apl.data.synthesis import stem_seed_sequence, synthesize_pair
from apl.io import ImageError, list_images, read_image, read_mask, write_image, write_json, write_text

log = logging.getLogger("apl.prepare")

# What white means in each raw layout's masks.
POLARITY = {("cuhk", "original"): "blur-white", ("cuhk", "packed"): "focus-white",
            ("dut", "original"): "focus-white", ("dut", "packed"): "focus-white"}
GREY = (0.1, 0.9)          # mask values strictly between these are grey
BOUNDARY_PX = 3            # grey pixels are allowed this close to a region boundary (resized masks)
MAX_STRAY_GREY = 0.01      # share of grey pixels away from every boundary above which a mask is not binary


def pick(names, count: int, seed: int, purpose: str) -> list[str]:
    """`count` of `names`, sorted: a permutation of the sorted names by a generator seeded with (seed, purpose),
    so the choice depends on the seed and the names only (not on file order or on other draws)."""
    names = sorted(names)
    if count >= len(names):
        raise ValueError(f"cannot hold out {count} of {len(names)} images for the {purpose}: "
                         "at least one must stay for training")
    order = np.random.default_rng(stem_seed_sequence(seed, purpose, 0)).permutation(len(names))
    return sorted(names[i] for i in order[:count])


def split_rows(name: str) -> list[dict]:
    with resources.files("apl.data").joinpath("splits", name).open() as handle:
        return list(csv.DictReader(handle))


def check_binary_mask(mask: np.ndarray, path: Path) -> None:
    """Refuse a mask with grey values away from region boundaries (a photo, a soft map, a trimap)."""
    grey = (mask > GREY[0]) & (mask < GREY[1])
    if not grey.any():
        return
    inside = mask > 0.5
    band = ndimage.binary_dilation(inside, iterations=BOUNDARY_PX) & \
        ndimage.binary_dilation(~inside, iterations=BOUNDARY_PX)
    stray = float(np.mean(grey & ~band))
    if stray > MAX_STRAY_GREY:
        raise ImageError(f"mask {path} is not binary: {stray:.0%} of its pixels are grey away from any region "
                         "boundary; is it really a ground-truth mask? Replace it")


class _Builder:
    """Writes canonical files into `tmp`, refusing duplicate names, and keeps the file lists."""

    def __init__(self, tmp: Path, raw_dir: Path):
        self.tmp, self.raw_dir = tmp, raw_dir
        self.rows: dict[str, list[dict]] = {name: [] for name in FOLDERS}
        self.names: dict[str, dict[str, Path]] = {name: {} for name in FOLDERS}

    def _claim(self, which: str, name: str, source: Path) -> None:
        if name in self.names[which]:
            raise ImageError(f"duplicate image name {name!r} in the {which} set: {self.names[which][name]} and {source}")
        self.names[which][name] = source

    def _raw(self, path: Path | None) -> str:
        if path is None:
            return ""
        try:
            return str(path.resolve().relative_to(self.raw_dir.resolve()))
        except ValueError:
            return str(path)

    def image(self, which: str, source: Path, name: str, recode: bool = False) -> np.ndarray:
        """Decode `source` (naming it if corrupt); copy it as it is, or as 8-bit PNG when `recode`."""
        self._claim(which, name, source)
        image = read_image(source)
        target = self.tmp / FOLDERS[which] / (f"{name}.png" if recode else f"{name}{source.suffix.lower()}")
        if recode:
            write_image(target, image)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        self.rows[which].append({"name": name, "file": str(target.relative_to(self.tmp)), "gt": "",
                                 "raw_file": self._raw(source), "raw_gt": ""})
        return image

    def pair(self, which: str, image_path: Path, gt_path: Path, name: str, polarity: str | None) -> None:
        """An image with its GT: a mask (`polarity` says what white means) or, for DP, the sharp target."""
        image = self.image(which, image_path, name, recode=polarity is None)
        if polarity is None:
            gt = read_image(gt_path)
            target = self.tmp / TARGET_FOLDERS[which] / f"{name}.png"
        else:
            gt = read_mask(gt_path, polarity)
            target = self.tmp / MASK_FOLDERS[which] / f"{name}.png"
        if gt.shape[:2] != image.shape[:2]:
            raise ImageError(f"{gt_path} is {gt.shape[1]}x{gt.shape[0]} but its image {image_path} is "
                             f"{image.shape[1]}x{image.shape[0]}; replace it")
        if polarity is not None:
            check_binary_mask(gt, gt_path)
        write_image(target, gt)
        self.rows[which][-1].update(gt=str(target.relative_to(self.tmp)), raw_gt=self._raw(gt_path))

    def synthetic_pair(self, source: Path, name: str, config: dict) -> None:
        """A held-out full-clear image at the config's scale as a synthetic defocus pair (source, target, mask)."""
        self._claim("heldout", name, source)
        sharp = to_scale(read_image(source), config)
        rng = np.random.default_rng(stem_seed_sequence(config["seed"], f"heldout/{name}", 0))
        synthesis = config["synthesis"]
        defocused, mask, _ = synthesize_pair(sharp, rng, tuple(synthesis["sigma"]), synthesis["window"],
                                             tuple(synthesis["blurred_fraction"]), synthesis["kernel"])
        files = {}
        for folder, array in ((FOLDERS["heldout"], defocused), (TARGET_FOLDERS["heldout"], sharp),
                              (MASK_FOLDERS["heldout"], mask)):
            files[folder] = self.tmp / folder / f"{name}.png"
            write_image(files[folder], array)
        self.rows["heldout"].append({"name": name, "file": str(files[FOLDERS["heldout"]].relative_to(self.tmp)),
                                     "gt": str(files[TARGET_FOLDERS["heldout"]].relative_to(self.tmp)),
                                     "raw_file": self._raw(source), "raw_gt": ""})

    def write_lists(self) -> None:
        for which, rows in self.rows.items():
            if not rows and which not in CORE_SETS:
                continue
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=["name", "file", "gt", "raw_file", "raw_gt"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda row: row["name"]))
            write_text(self.tmp / LISTS / f"{which}.csv", text.getvalue())


def _paired(images: dict[str, Path], masks: dict[str, Path], where: Path) -> None:
    missing = sorted(set(images) - set(masks))
    if missing:
        raise ImageError(f"{where}: image(s) without a mask: {', '.join(missing[:10])}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))


def _cuhk_split(image_folder: Path, allow_subset: bool) -> tuple[dict[str, Path], list[str]]:
    """CUHK's out_of_focus images and the stems of the test split (motion-blur images are not used)."""
    images = {stem: path for stem, path in list_images(image_folder).items() if stem.startswith("out_of_focus")}
    test = [Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")]
    absent = [stem for stem in test if stem not in images]
    if absent and not allow_subset:
        raise ImageError(f"{image_folder}: test images of the split are missing: {', '.join(absent[:10])}"
                         + (f" and {len(absent) - 10} more" if len(absent) > 10 else ""))
    return images, [stem for stem in test if stem in images]


def _train(build: _Builder, layout: str, raw: dict, allow_subset: bool, validation: int, seed: int) -> dict[str, int]:
    """The training images; `validation` of CUHK's go to the val set with their masks instead."""
    if layout == "packed":
        for stem, path in list_images(raw["packed"]["1204source"]).items():
            build.image("train", path, stem)
        return {}
    images, test = _cuhk_split(raw["cuhk"]["image"], allow_subset)
    cuhk = [stem for stem in images if stem not in test]
    held = set(pick(cuhk, validation, seed, "validation split")) if validation else set()
    if held:
        masks = list_images(raw["cuhk"]["gt"])
        _paired({stem: images[stem] for stem in held}, masks, raw["cuhk"]["gt"])
    if layout == "original_cuhk":
        train_masks = list_images(raw["cuhk"]["gt"])
        _paired({stem: images[stem] for stem in cuhk if stem not in held}, train_masks, raw["cuhk"]["gt"])
    for stem in cuhk:
        if stem in held:
            build.pair("val", images[stem], masks[stem], f"cuhk_{stem}", POLARITY[("cuhk", "original")])
        elif layout == "original_cuhk":   # kept beside the images for the release's mask supervision (layout.py)
            build.pair("train", images[stem], train_masks[stem], f"cuhk_{stem}", POLARITY[("cuhk", "original")])
        else:
            build.image("train", images[stem], f"cuhk_{stem}")
    if layout == "original_cuhk":
        return {"train from CUHK": len(cuhk)}
    dut = list_images(raw["dut"]["DUT600S_Training"])
    for stem, path in dut.items():
        build.image("train", path, f"dut_{stem}")
    return {"train from CUHK": len(cuhk), "train from DUT": len(dut)}


def _cuhk(build: _Builder, layout: str, raw: dict, allow_subset: bool) -> None:
    polarity = POLARITY[("cuhk", layout)]
    if layout == "original":
        images, test = _cuhk_split(raw["cuhk"]["image"], allow_subset)
        masks = list_images(raw["cuhk"]["gt"])
        _paired({stem: images[stem] for stem in test}, masks, raw["cuhk"]["gt"])
        for stem in test:
            build.pair("cuhk", images[stem], masks[stem], stem, polarity)
        return
    images, masks = list_images(raw["packed"]["xu100-source"]), list_images(raw["packed"]["xu100-gt"])
    _paired(images, masks, raw["packed"]["xu100-gt"])
    split = {row["index"]: Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")}
    rename = set(images) <= set(split)        # files named by their index in the split: use CUHK's names
    for stem, path in images.items():
        build.pair("cuhk", path, masks[stem], split[stem] if rename else stem, polarity)


def _dut(build: _Builder, layout: str, raw: dict) -> None:
    source, gt = (("DUT500S-Testing", "DUT500GT-Testing") if layout == "original" else ("dut500-source", "dut500-gt"))
    dataset = "dut" if layout == "original" else "packed"
    images, masks = list_images(raw[dataset][source]), list_images(raw[dataset][gt])
    _paired(images, masks, raw[dataset][gt])
    for stem, path in images.items():
        build.pair("dut", path, masks[stem], stem, POLARITY[("dut", layout)])


def _dp(build: _Builder, raw: dict, allow_subset: bool) -> None:
    source, target = raw["dpdd"]["test_c/source"], raw["dpdd"]["test_c/target"]
    for row in split_rows("dpdd_test_pairs.csv"):
        pair = (source / row["source"], target / row["target"])
        if allow_subset and not (pair[0].exists() and pair[1].exists()):
            continue
        build.pair("dp", *pair, f"{int(row['index']):03d}", polarity=None)


def _fullclear(build: _Builder, config: dict, raw: dict) -> list[str]:
    """The full-clear images, less `data.heldout_fullclear` of them, which become the synthetic held-out pairs."""
    layout = config["data"]["sets"]["fullclear"]
    if layout == "packed":
        files, prefix, recode = list_images(raw["packed"]["FC"]), "", False
    elif layout == "dpdd":
        files, prefix, recode = list_images(raw["dpdd"]["train_c/target"]), "dpdd_", True
    else:
        files, prefix, recode = list_images(fullclear_folder(config)), "", False
    count = config["data"]["heldout_fullclear"]
    held = pick(files, count, config["seed"], "held-out full-clear images") if count else []
    for stem, path in files.items():
        if stem in held:
            build.synthetic_pair(path, f"{prefix}{stem}", config)
        else:
            build.image("fullclear", path, f"{prefix}{stem}", recode=recode)
    return [f"{prefix}{stem}" for stem in held]


def _deviations(config: dict, counts: dict, held_out: list[str]) -> list[str]:
    """The prepared set's departures from the paper's data (the subset, if any, is added by the caller)."""
    data, layouts = config["data"], chosen_layouts(config)
    found = []
    if layouts["fullclear"] == "dpdd":
        found.append(f"full-clear set: DPDD train_c/target ({DPDD_FULLCLEAR_COUNT} all-in-focus images) "
                     f"instead of the authors' FC ({data['expected_counts']['fullclear']})")
    elif layouts["fullclear"] == "folder":
        found.append(f"full-clear set: the {counts['fullclear'] + counts.get('heldout', 0)} photographs of "
                     f"data.fullclear_dir ({data['fullclear_dir']}) instead of the authors' FC (500 images): "
                     "an open substitute")
    if layouts["train"] == "original_cuhk":
        found.append("training set: CUHK's 604 training images alone (data.sets.train: original_cuhk), "
                     "not the paper's 1204 (CUHK 604 + DUT 600)")
    for name in absent_sets(config):
        found.append(f"{name.upper()} absent (data.sets.{name}: none): not prepared, not evaluated; "
                     "its table columns say 'not run: data absent'")
    if data["validation"]:
        found.append(f"validation split: {counts['val']} of CUHK's training images held out of training with their "
                     f"masks (data.validation, seed {config['seed']}); choices are made on it, not on the test sets")
    if held_out:
        found.append(f"{len(held_out)} full-clear images held out of D's real set and of the pretraining pairs "
                     "(data.heldout_fullclear) as synthetic defocus pairs, the 'Synthetic held-out' deblurring "
                     "check; never mixed with DP")
    return found


def prepare(config: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    data = config["data"]
    layouts = chosen_layouts(config)
    allow_subset = data["allow_subset"]
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw = locate_raw(config, raw_dir)
    tmp = fresh_tmp(out_dir)
    try:
        build = _Builder(tmp, raw_dir)
        parts = _train(build, layouts["train"], raw, allow_subset, data["validation"], config["seed"])
        _cuhk(build, layouts["cuhk"], raw, allow_subset)
        if layouts["dut"] != ABSENT:
            _dut(build, layouts["dut"], raw)
        if layouts["dp"] != ABSENT:
            _dp(build, raw, allow_subset)
        held_out = _fullclear(build, config, raw)
        counts = count_images(tmp)
        expected = dict(data["expected_counts"])
        if layouts["fullclear"] != PAPER_FULLCLEAR:   # a substitute has its own count (a user's folder: any)
            expected["fullclear"] = DPDD_FULLCLEAR_COUNT if layouts["fullclear"] == "dpdd" else None
        deviations = _deviations(config, counts, held_out)
        # expected train / fullclear counts are before the validation split and the held-out images
        totals = {**counts, "train": counts["train"] + counts.get("val", 0),
                  "fullclear": counts["fullclear"] + counts.get("heldout", 0)}
        log.info("prepared counts: %s%s", counts, f"; training images: {parts}" if parts else "")
        check_counts(totals, expected, allow_subset, out_dir)
        check_counts(parts, {name: TRAIN_PARTS[name.split()[-1].lower()] for name in parts}, allow_subset, out_dir)
        subset = {name: [totals[name], want] for name, want in expected.items()
                  if want is not None and totals[name] != want}
        if subset:
            deviations.append("subset (data.allow_subset): " +
                              ", ".join(f"{name} {have} of {want}" for name, (have, want) in subset.items()))
        for deviation in deviations:
            log.warning("deviation from the paper: %s", deviation)
        build.write_lists()
        manifest = {"source": "download", "sets": layouts, "absent": absent_sets(config), "counts": counts,
                    "expected_counts": expected, "train_parts": parts, "deviations": deviations,
                    "validation": sorted(build.names["val"]), "heldout_fullclear": held_out,
                    "mask_polarity_in_raw": {name: POLARITY[(name, layouts[name])] for name in ("cuhk", "dut")
                                             if layouts[name] != ABSENT},
                    "raw_folders": {dataset: {need: build._raw(path) for need, path in found.items()}
                                    for dataset, found in raw.items()}}
        write_json(tmp / "manifest.json", manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(tmp, out_dir)
    return manifest
