"""Prepare the paper profile's raw datasets (original layouts) into the canonical layout.

CUHK: only the 704 out_of_focus images; the 100 of the BTBNet split (data/splits/cuhk_test_split.csv)
are the test set, the other 604 join DUT's 600 training images. CUHK's masks are white = blurred
and are inverted here. DPDD's 76 test pairs are renamed by their index (data/splits/dpdd_test_pairs.csv)
so source and target share a stem. Counts are checked against data.expected_counts.
"""
from __future__ import annotations

import csv
import shutil
from importlib import resources
from pathlib import Path

import numpy as np

from apl.data.download import check_raw
from apl.data.layout import DP_TARGET, FOLDERS, MASK_FOLDERS, check_counts, count_images, fresh_tmp, publish
from apl.io import ImageError, list_images, read_image, read_mask, write_image, write_json

# What white means in each dataset's original masks.
POLARITY = {"CUHK": "blur-white", "DUT": "focus-white"}


def split_rows(name: str) -> list[dict]:
    with resources.files("apl.data").joinpath("splits", name).open() as handle:
        return list(csv.DictReader(handle))


def _copy(path: Path, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, folder / f"{name}{path.suffix.lower()}")


def _mask(image_path: Path, mask_path: Path, polarity: str, out: Path) -> None:
    """Write a GT mask as white = in focus, after checking it fits its image and is (nearly) binary."""
    mask = read_mask(mask_path, polarity)
    image = read_image(image_path)
    if mask.shape != image.shape[:2]:
        raise ImageError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                         f"{image.shape[1]}x{image.shape[0]}; replace the mask")
    if np.mean((mask > 0.1) & (mask < 0.9)) > 0.05:
        raise ImageError(f"mask {mask_path} is not binary (over 5% grey pixels); is it really a GT mask?")
    write_image(out, mask)


def _paired(images: dict[str, Path], masks: dict[str, Path], where: str) -> None:
    missing = sorted(set(images) - set(masks))
    if missing:
        raise ImageError(f"{where}: image(s) without a mask: {', '.join(missing[:10])}")


def prepare(config: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    roots = check_raw(raw_dir)
    out_dir = Path(out_dir)
    tmp = fresh_tmp(out_dir)

    cuhk_images = {s: p for s, p in list_images(roots["CUHK"] / "image").items() if s.startswith("out_of_focus")}
    cuhk_masks = list_images(roots["CUHK"] / "gt")
    _paired(cuhk_images, cuhk_masks, str(roots["CUHK"]))
    test_stems = [Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")]
    absent = [s for s in test_stems if s not in cuhk_images]
    if absent:
        raise ImageError(f"{roots['CUHK'] / 'image'}: test images of the split are missing: {', '.join(absent[:10])}")
    for stem, path in cuhk_images.items():
        if stem in test_stems:
            _copy(path, tmp / FOLDERS["cuhk"], stem)
            _mask(path, cuhk_masks[stem], POLARITY["CUHK"], tmp / MASK_FOLDERS["cuhk"] / f"{stem}.png")
        else:
            _copy(path, tmp / FOLDERS["train"], f"cuhk_{stem}")

    dut = roots["DUT"]
    for stem, path in list_images(dut / "DUT600S_Training").items():
        _copy(path, tmp / FOLDERS["train"], f"dut_{stem}")
    dut_images, dut_masks = list_images(dut / "DUT500S-Testing"), list_images(dut / "DUT500GT-Testing")
    _paired(dut_images, dut_masks, str(dut / "DUT500S-Testing"))
    for stem, path in dut_images.items():
        _copy(path, tmp / FOLDERS["dut"], stem)
        _mask(path, dut_masks[stem], POLARITY["DUT"], tmp / MASK_FOLDERS["dut"] / f"{stem}.png")

    dpdd = roots["DPDD"] / "test_c"
    for row in split_rows("dpdd_test_pairs.csv"):
        name = f"{int(row['index']):03d}"
        for column, folder in (("source", FOLDERS["dp"]), ("target", DP_TARGET)):
            path = dpdd / column / row[column]
            write_image(tmp / folder / f"{name}.png", read_image(path))   # 16-bit PNG -> 8-bit RGB

    for stem, path in list_images(roots["full-clear"] / "FC").items():
        _copy(path, tmp / FOLDERS["fullclear"], stem)

    counts = count_images(tmp)
    check_counts(counts, config["data"]["expected_counts"], config["data"]["allow_subset"], out_dir)
    manifest = {"source": "download", "counts": counts, "mask_polarity_in_raw": POLARITY}
    write_json(tmp / "manifest.json", manifest)
    publish(tmp, out_dir)
    return manifest
