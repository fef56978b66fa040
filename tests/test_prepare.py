"""Preparing the paper profile's raw datasets (original layouts) into the canonical layout."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apl.data.download import MissingDataError, check_raw
from apl.data.prepare import prepare, split_rows
from apl.io import ImageError, list_images, read_mask

FIXTURES = Path(__file__).parent / "fixtures"


def tiny(path: Path, value: int = 128, size=(12, 8), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(path)


@pytest.fixture
def raw(tmp_path):
    """Raw folders in the datasets' original layouts: real CUHK fixtures + tiny stand-ins for the rest."""
    root = tmp_path / "raw"
    cuhk = root / "cuhk"
    shutil.copytree(FIXTURES / "cuhk_original", cuhk)
    for row in split_rows("cuhk_test_split.csv"):
        stem = Path(row["original_name"]).stem
        tiny(cuhk / "image" / f"{stem}.jpg")
        mask = Image.new("L", (12, 8), 0)
        mask.paste(255, (0, 0, 6, 8))   # left half white = blurred in CUHK's convention
        mask.save(cuhk / "gt" / f"{stem}.png")
    tiny(cuhk / "image" / "motion0001.jpg")   # motion-blur images are not used
    dut = root / "dut"
    for i in range(3):
        tiny(dut / "DUT600S_Training" / f"t{i}.jpg")
        tiny(dut / "DUT600GT_Training" / f"t{i}.bmp", 255, mode="L")   # never read: training uses no masks
        tiny(dut / "DUT500S-Testing" / f"{i}.jpg")
        tiny(dut / "DUT500GT-Testing" / f"{i}.bmp", 255, mode="L")
    for row in split_rows("dpdd_test_pairs.csv"):
        for column in ("source", "target"):
            tiny(root / "dpdd" / "test_c" / column / row[column], size=(6, 4))
    for i in range(4):
        tiny(root / "fullclear" / "FC" / f"{i}.jpg")
    return root


def config(allow_subset=True):
    return {"data": {"expected_counts": {"train": 1204, "fullclear": 500, "cuhk": 100, "dut": 500, "dp": 76},
                     "allow_subset": allow_subset}}


def test_original_layouts_are_prepared(raw, tmp_path):
    manifest = prepare(config(), raw, tmp_path / "datasets")
    assert manifest["counts"] == {"train": 6 + 3, "fullclear": 4, "cuhk": 100, "dut": 3, "dp": 76}
    out = tmp_path / "datasets"
    train = list_images(out / "train")
    assert "cuhk_out_of_focus0016" in train and "dut_t0" in train and not any("motion" in s for s in train)
    # CUHK's masks (white = blurred) are inverted: the left half is now 0 (defocused), the right half 1.
    mask = read_mask(out / "cuhk" / "masks" / "out_of_focus0037.png", "focus-white")
    assert mask[:, :6].max() == 0 and mask[:, 6:].min() == 1
    assert set(list_images(out / "dp" / "source")) == set(list_images(out / "dp" / "target")) == \
        {f"{i:03d}" for i in range(1, 77)}
    assert not (tmp_path / "datasets.partial").exists()


def test_counts_must_match_the_paper_unless_a_subset_is_allowed(raw, tmp_path):
    with pytest.raises(ValueError, match="allow_subset"):
        prepare(config(allow_subset=False), raw, tmp_path / "datasets")
    assert not (tmp_path / "datasets").exists()


def test_image_without_mask_and_bad_mask_are_named(raw, tmp_path):
    (raw / "dut" / "DUT500GT-Testing" / "1.bmp").unlink()
    with pytest.raises(ImageError, match="without a mask: 1"):
        prepare(config(), raw, tmp_path / "a")
    tiny(raw / "dut" / "DUT500GT-Testing" / "1.bmp", 255, size=(5, 5), mode="L")
    with pytest.raises(ImageError, match="1.bmp"):
        prepare(config(), raw, tmp_path / "b")


def test_missing_dataset_message_names_page_and_path(tmp_path):
    with pytest.raises(MissingDataError) as err:
        check_raw(tmp_path / "raw")
    text = str(err.value)
    assert "ln2.sync.com" in text and str(tmp_path / "raw" / "dpdd") in text and "test_c/source" in text


def test_real_cuhk_masks_are_binary_and_fit_their_images():
    images = list_images(FIXTURES / "cuhk_original" / "image")
    for stem, path in list_images(FIXTURES / "cuhk_original" / "gt").items():
        mask = read_mask(path, "blur-white")
        assert mask.shape == np.asarray(Image.open(images[stem])).shape[:2]
        assert np.mean((mask > 0.1) & (mask < 0.9)) < 0.05
