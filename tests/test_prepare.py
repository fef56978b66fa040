"""Preparing the raw datasets, in their original layouts and in the authors' packed one, into the canonical layout."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apl.config import load
from apl.data.download import MissingDataError, locate_raw
from apl.data.prepare import check_binary_mask, prepare, split_rows
from apl.io import ImageError, list_images, read_image, read_mask

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
TEST_STEMS = [Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")]


def tiny(path: Path, value: int = 128, size=(12, 8), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(path)


def dpdd(root: Path) -> None:
    for row in split_rows("dpdd_test_pairs.csv"):
        for column in ("source", "target"):
            tiny(root / "dpdd" / "dd_dp_dataset_png" / "test_c" / column / row[column], size=(6, 4))


@pytest.fixture
def raw(tmp_path):
    """Raw folders in the datasets' original layouts: real CUHK fixtures + tiny stand-ins for the rest."""
    root = tmp_path / "raw"
    cuhk = root / "cuhk"
    shutil.copytree(FIXTURES / "cuhk_original", cuhk)
    for stem in TEST_STEMS:
        tiny(cuhk / "image" / f"{stem}.jpg")
        mask = Image.new("L", (12, 8), 0)
        mask.paste(255, (0, 0, 6, 8))   # left half white = blurred in CUHK's convention
        mask.save(cuhk / "gt" / f"{stem}.png")
    tiny(cuhk / "image" / "motion0001.jpg")   # motion-blur images are not used
    dut = root / "dut" / "DUT-DBD"
    for i in range(3):
        tiny(dut / "DUT600S_Training" / f"t{i}.jpg")
        tiny(dut / "DUT600GT_Training" / f"t{i}.bmp", 255, mode="L")   # never read: training uses no masks
        tiny(dut / "DUT500S-Testing" / f"{i}.jpg")
        tiny(dut / "DUT500GT-Testing" / f"{i}.bmp", 255, mode="L")
    dpdd(root)
    for i in range(4):
        tiny(root / "packed" / "FC" / f"{i}.jpg")
    return root


@pytest.fixture
def packed(tmp_path):
    """The authors' packed archive: real DUT test fixtures; CUHK test files made as the archive's are."""
    root = tmp_path / "raw"
    sg = root / "packed" / "SG"
    for i in range(1, 6):
        tiny(sg / "train_data" / "1204source" / f"{i}.bmp")
    for i in range(3):
        tiny(sg / "train_data" / "FCFB" / "FC" / f"{i}.jpg")
    shutil.copytree(FIXTURES / "sg_layout", sg / "test_data" / "DUT")
    source, gt = sg / "test_data" / "CUHK" / "xu100-source", sg / "test_data" / "CUHK" / "xu100-gt"
    source.mkdir(parents=True)
    gt.mkdir(parents=True)
    originals = sorted(list_images(FIXTURES / "cuhk_original" / "image").items())
    for index, (stem, path) in enumerate(originals, start=1):
        # xu100: bilinear 320x320 resizes named by split index; masks 255 - resized original (white = in focus)
        Image.open(path).convert("RGB").resize((320, 320), Image.BILINEAR).save(source / f"{index}.jpg")
        mask = Image.open(FIXTURES / "cuhk_original" / "gt" / f"{stem}.png").convert("L")
        Image.fromarray(255 - np.asarray(mask.resize((320, 320), Image.BILINEAR))).save(gt / f"{index}.png")
    dpdd(root)
    return root


def config(allow_subset=True, **sets):
    data = load([ROOT / "config" / "config.yaml"])
    data["data"]["allow_subset"] = allow_subset
    data["data"]["sets"].update(sets)
    return data


ORIGINAL = {"train": "original", "cuhk": "original", "dut": "original", "fullclear": "packed"}


def rows(datasets: Path, which: str) -> dict[str, dict]:
    with open(datasets / "lists" / f"{which}.csv") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def test_original_layouts_are_prepared(raw, tmp_path):
    out = tmp_path / "datasets"
    manifest = prepare(config(**ORIGINAL), raw, out)
    assert manifest["counts"] == {"train": 6 + 3, "fullclear": 4, "cuhk": 100, "dut": 3, "dp": 76}
    assert manifest["train_parts"] == {"train from CUHK": 6, "train from DUT": 3}
    train = list_images(out / "train")
    assert "cuhk_out_of_focus0016" in train and "dut_t0" in train and not any("motion" in s for s in train)
    assert not set(TEST_STEMS) & {s.removeprefix("cuhk_") for s in train}      # the test split stays out
    # CUHK's masks (white = blurred) are inverted: the left half is now 0 (defocused), the right half 1.
    mask = read_mask(out / "cuhk" / "masks" / "out_of_focus0037.png", "focus-white")
    assert mask[:, :6].max() == 0 and mask[:, 6:].min() == 1
    assert set(list_images(out / "dp" / "source")) == set(list_images(out / "dp" / "target")) == \
        {f"{i:03d}" for i in range(1, 77)}
    # DP pairs follow dpdd_test_pairs.csv, and every file's raw origin is listed.
    first = split_rows("dpdd_test_pairs.csv")[0]
    assert rows(out, "dp")["001"]["raw_file"].endswith(f"test_c/source/{first['source']}")
    assert rows(out, "dp")["001"]["raw_gt"].endswith(f"test_c/target/{first['target']}")
    assert rows(out, "cuhk")["out_of_focus0037"] == {
        "name": "out_of_focus0037", "file": "cuhk/images/out_of_focus0037.jpg", "gt": "cuhk/masks/out_of_focus0037.png",
        "raw_file": "cuhk/image/out_of_focus0037.jpg", "raw_gt": "cuhk/gt/out_of_focus0037.png"}
    assert len(rows(out, "train")) == 9 and manifest["deviations"][0].startswith("subset")
    assert not (tmp_path / "datasets.partial").exists()


def test_packed_layout_is_prepared(packed, tmp_path):
    out = tmp_path / "datasets"
    manifest = prepare(config(), packed, out)
    assert manifest["sets"] == {"train": "packed", "cuhk": "packed", "dut": "packed", "fullclear": "packed", "dp": "dpdd"}
    assert manifest["counts"] == {"train": 5, "fullclear": 3, "cuhk": 6, "dut": 5, "dp": 76}
    # xu100 files are named by their index in the split; they get CUHK's names back.
    assert set(list_images(out / "cuhk" / "images")) == set(TEST_STEMS[:6])
    # Their masks are already white = in focus: kept as they are, and equal to the original mask inverted.
    first_original = sorted(list_images(FIXTURES / "cuhk_original" / "gt").items())[0][1]
    packed_mask = read_mask(out / "cuhk" / "masks" / f"{TEST_STEMS[0]}.png", "focus-white")
    original_mask = read_mask(first_original, "blur-white", size=320)
    assert np.abs(packed_mask - original_mask).mean() < 0.01
    # The real DUT packed masks pass the binary check although their edges are grey after resizing.
    dut_mask = read_mask(out / "dut" / "masks" / "2.png", "focus-white")
    assert 0.01 < np.mean((dut_mask > 0.1) & (dut_mask < 0.9)) < 0.1
    assert manifest["mask_polarity_in_raw"] == {"cuhk": "focus-white", "dut": "focus-white"}
    assert rows(out, "cuhk")[TEST_STEMS[0]]["raw_file"] == "packed/SG/test_data/CUHK/xu100-source/1.jpg"


def test_counts_must_match_the_paper_unless_a_subset_is_allowed(raw, tmp_path):
    with pytest.raises(ValueError, match="allow_subset"):
        prepare(config(allow_subset=False, **ORIGINAL), raw, tmp_path / "datasets")
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "datasets.partial").exists()
    # Totals that match are not enough in the original layout: CUHK must give 604 and DUT 600 of the 1204.
    exact = config(allow_subset=False, **ORIGINAL)
    exact["data"]["expected_counts"] = {"train": 9, "fullclear": 4, "cuhk": 100, "dut": 3, "dp": 76}
    with pytest.raises(ValueError, match="train from CUHK: 6 found, 604 expected"):
        prepare(exact, raw, tmp_path / "datasets")


def _corrupt(raw):
    path = raw / "dut" / "DUT-DBD" / "DUT500S-Testing" / "1.jpg"
    path.write_bytes(path.read_bytes()[:60])
    return "1.jpg"


def _no_mask(raw):
    (raw / "dut" / "DUT-DBD" / "DUT500GT-Testing" / "1.bmp").unlink()
    return "without a mask: 1"


def _mask_size(raw):
    tiny(raw / "dut" / "DUT-DBD" / "DUT500GT-Testing" / "1.bmp", 255, size=(5, 5), mode="L")
    return "1.bmp is 5x5 but its image"


def _not_binary(raw):
    path = raw / "dut" / "DUT-DBD" / "DUT500GT-Testing" / "1.bmp"
    Image.open(FIXTURES / "cuhk_original" / "image" / "out_of_focus0001.jpg").convert("L").resize((12, 8)).save(path)
    return "1.bmp is not binary"


def _duplicate(raw):
    tiny(raw / "dut" / "DUT-DBD" / "DUT500S-Testing" / "1.png")
    return "duplicate image name '1'"


def _dp_sizes(raw):
    row = split_rows("dpdd_test_pairs.csv")[4]
    tiny(raw / "dpdd" / "dd_dp_dataset_png" / "test_c" / "target" / row["target"], size=(7, 4))
    return f"{row['target']} is 7x4 but its image"


@pytest.mark.parametrize("damage", [_corrupt, _no_mask, _mask_size, _not_binary, _duplicate, _dp_sizes])
def test_bad_input_is_named_and_nothing_is_published(raw, tmp_path, damage):
    expected = damage(raw)
    with pytest.raises(ImageError) as err:
        prepare(config(**ORIGINAL), raw, tmp_path / "datasets")
    assert expected in str(err.value)
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "datasets.partial").exists()


def test_open_fullclear_substitute_is_reported_as_a_deviation(raw, tmp_path):
    for i in range(3):
        tiny(raw / "dpdd" / "dd_dp_dataset_png" / "train_c" / "target" / f"{i}.png", size=(6, 4))
    manifest = prepare(config(**{**ORIGINAL, "fullclear": "dpdd"}), raw, tmp_path / "datasets")
    assert set(list_images(tmp_path / "datasets" / "fullclear")) == {"dpdd_0", "dpdd_1", "dpdd_2"}
    assert manifest["expected_counts"]["fullclear"] == 350
    assert any("DPDD train_c/target" in d and "instead of the authors' FC" in d for d in manifest["deviations"])
    with pytest.raises(ValueError, match="fullclear: 3 found, 350 expected"):
        prepare(config(allow_subset=False, **{**ORIGINAL, "fullclear": "dpdd"}), raw, tmp_path / "datasets")


def test_missing_raw_folders_are_named_and_point_to_download(tmp_path):
    with pytest.raises(MissingDataError) as err:
        locate_raw(config(), tmp_path / "raw")
    text = str(err.value)
    assert f"{(tmp_path / 'raw' / 'dpdd').resolve()}/" in text and "test_c/source" in text
    assert "1204source" in text and "apl download" in text


def test_real_masks_pass_the_binary_check_and_photos_do_not():
    images = list_images(FIXTURES / "cuhk_original" / "image")
    for stem, path in list_images(FIXTURES / "cuhk_original" / "gt").items():
        mask = read_mask(path, "blur-white")
        assert mask.shape == read_image(images[stem]).shape[:2]
        check_binary_mask(mask, path)
        check_binary_mask(read_mask(path, "blur-white", size=160), path)          # resized: grey edges only
    for path in list(images.values()) + list(list_images(FIXTURES / "sg_layout" / "dut500-source").values()):
        with pytest.raises(ImageError, match="not binary"):
            check_binary_mask(read_mask(path, "focus-white"), path)
