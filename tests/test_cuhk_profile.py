"""The real-data laptop profile (config/cuhk.yaml): CUHK in its original layout, a folder of the user's own
all-in-focus photographs as the full-clear set, DUT and DP absent, a validation split of CUHK's training
images and synthetic deblurring pairs made from held-out full-clear photographs."""
import copy
import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apl.config import ConfigError, load, validate
from apl.data.cache import build_cache, load_cache
from apl.data.download import MissingDataError, download
from apl.data.layout import evaluation_sets
from apl.data.prepare import pick, prepare, split_rows
from apl.data.release_files import RELEASE_RUN, absent_result
from apl.data.synthesis import synthesize_dataset
from apl.evaluate import score_deblurring_method, score_detection_method
from apl.data.scale import scaled_shape
from apl.io import list_images, read_image, read_json, read_mask, write_json
from apl.report import report, tables
from apl.train import schedule

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
CUHK_PROFILE = [ROOT / "config" / "config.yaml", ROOT / "config" / "cuhk.yaml"]
TEST_STEMS = [Path(row["original_name"]).stem for row in split_rows("cuhk_test_split.csv")]
CUHK_TRAIN = sorted(list_images(FIXTURES / "cuhk_original" / "image"))   # 6 real CUHK training photographs


def cuhk_config(validation=2, heldout=1, fullclear_dir=FIXTURES / "fullclear_folder", seed=0) -> dict:
    """The cuhk profile at fixture scale (6 of CUHK's 604 training images: a knowing subset)."""
    config = load(CUHK_PROFILE)
    config["seed"] = seed
    config["image_size"] = 32
    config["scale"]["longer_side"] = 48   # photographs at a longer side of 48 px, 32x32 crops
    config["data"].update(allow_subset=True, validation=validation, heldout_fullclear=heldout,
                          fullclear_dir=str(fullclear_dir))
    return validate(config)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """CUHK's original layout (real training fixtures + tiny test images of the split); no DUT, no DPDD."""
    cuhk = tmp_path_factory.mktemp("raw") / "cuhk"
    shutil.copytree(FIXTURES / "cuhk_original", cuhk)
    for stem in TEST_STEMS:
        Image.new("RGB", (12, 8), (90, 120, 150)).save(cuhk / "image" / f"{stem}.jpg")
        mask = Image.new("L", (12, 8), 0)
        mask.paste(255, (0, 0, 6, 8))            # white = blurred (CUHK's convention)
        mask.save(cuhk / "gt" / f"{stem}.png")
    return cuhk.parent


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "datasets"
    return out, prepare(cuhk_config(), raw, out)


def names(path: Path) -> set[str]:
    return set(list_images(path))


def test_profile_prepares_cuhk_and_a_photo_folder_without_dut_or_dp(prepared):
    out, manifest = prepared
    assert manifest["counts"] == {"train": 4, "fullclear": 3, "cuhk": 100, "dut": 0, "dp": 0, "val": 2, "heldout": 1}
    assert manifest["absent"] == ["dut", "dp"] and not (out / "dut").exists() and not (out / "dp").exists()
    assert manifest["train_parts"] == {"train from CUHK": 6}
    assert names(out / "fullclear") | set(manifest["heldout_fullclear"]) == names(FIXTURES / "fullclear_folder")
    text = " ".join(manifest["deviations"])
    for expected in ("data.fullclear_dir", "an open substitute", "DUT absent", "DP absent", "original_cuhk",
                     "validation split", "held out of D's real set"):
        assert expected in text, expected
    # validation images keep their masks, inverted to white = in focus like every prepared mask
    stem = manifest["validation"][0]
    mask = read_mask(out / "val" / "masks" / f"{stem}.png", "focus-white")
    original = read_mask(FIXTURES / "cuhk_original" / "gt" / f"{stem.removeprefix('cuhk_')}.png", "blur-white")
    assert np.array_equal(mask > 0.5, original > 0.5)
    assert evaluation_sets(out, "detection") == {"cuhk": "CUHK", "val": "Validation"}
    assert evaluation_sets(out, "deblurring") == {"heldout": "Synthetic held-out"}


def test_validation_split_is_disjoint_from_training_and_deterministic(prepared, raw, tmp_path):
    out, manifest = prepared
    val, train = names(out / "val" / "images"), names(out / "train")
    assert val == set(manifest["validation"]) and len(val) == 2 and not val & train
    assert {s.removeprefix("cuhk_") for s in val | train} == set(CUHK_TRAIN)
    assert not {s.removeprefix("cuhk_") for s in val} & set(TEST_STEMS)
    again = prepare(cuhk_config(), raw, tmp_path / "again")
    assert again["validation"] == manifest["validation"] and again["heldout_fullclear"] == manifest["heldout_fullclear"]
    # the choice depends on the seed and the names only, not on their order
    many = [f"img{i:03d}" for i in range(604)]
    assert pick(many, 100, 0, "validation split") == pick(many[::-1], 100, 0, "validation split")
    assert pick(many, 100, 0, "validation split") != pick(many, 100, 1, "validation split")
    with pytest.raises(ValueError, match="at least one must stay"):
        pick(many[:3], 3, 0, "validation split")


def test_held_out_fullclear_images_reach_neither_d_nor_the_pretraining_pairs(prepared, tmp_path):
    out, manifest = prepared
    config = cuhk_config()
    held = set(manifest["heldout_fullclear"])
    assert len(held) == 1 and not held & names(out / "fullclear")
    build_cache("fullclear", out, tmp_path / "fullclear.npz", config, workers=1)
    assert not held & set(load_cache(tmp_path / "fullclear.npz")["names"].tolist())
    synthesize_dataset(out / "fullclear", tmp_path / "synthetic", per_image=2, size=32, seed=0, workers=1)
    with open(tmp_path / "synthetic" / "pairs.csv") as handle:
        sources = {Path(row["source"]).stem for row in csv.DictReader(handle)}
    assert sources == names(out / "fullclear")
    # the held-out check pairs: defocused source, sharp target at the working size, exact mask
    stem = next(iter(held))
    source = read_image(out / "heldout" / "source" / f"{stem}.png")
    target = read_image(out / "heldout" / "target" / f"{stem}.png")
    mask = read_mask(out / "heldout" / "masks" / f"{stem}.png", "focus-white")
    original = read_image(next(p for p in Path(config["data"]["fullclear_dir"]).iterdir() if p.stem == stem))
    assert source.shape == target.shape == (*scaled_shape(*original.shape[:2], config), 3) and 0 < mask.mean() < 1
    assert np.array_equal(source[mask == 1], target[mask == 1]) and not np.array_equal(source, target)


def test_a_missing_or_empty_photo_folder_is_named(raw, tmp_path):
    empty = tmp_path / "my_photos"
    empty.mkdir()
    for folder in (tmp_path / "nowhere", empty):
        with pytest.raises(FileNotFoundError, match=f"data.fullclear_dir: {folder}"):
            prepare(cuhk_config(fullclear_dir=folder), raw, tmp_path / "datasets")
        assert not (tmp_path / "datasets").exists()
    config = cuhk_config(fullclear_dir=empty)
    with pytest.raises(MissingDataError, match="data.fullclear_dir"):
        download(config, raw_dir=raw, lock_file=tmp_path / "lock.yaml")
    bad = copy.deepcopy(config)
    bad["data"]["fullclear_dir"] = None
    with pytest.raises(ConfigError, match="data.fullclear_dir"):
        validate(bad)
    bad = copy.deepcopy(config)
    bad["data"]["expected_counts"]["dp"] = 76
    with pytest.raises(ConfigError, match="data.sets.dp is none"):
        validate(bad)


def stand_in_detector(seed: int):
    def detect(image):
        gray = image.mean(axis=2) / 255.0
        return np.clip(0.7 * gray + 0.3 * np.random.default_rng(seed).random(gray.shape), 0, 1).astype(np.float32)
    return detect


MAIN = "guard"   # the profile's train.variant: its adversarial stages' run folder


def test_the_profile_deblurs_with_the_map_as_a_guard():
    config = cuhk_config()
    assert config["train"]["variant"] == MAIN and config["train"]["pretrain_loss"] == "l2"


@pytest.fixture(scope="module")
def results(prepared, tmp_path_factory):
    """Every metrics file the tables need, scored by the project's evaluation on the prepared fixture sets."""
    datasets = prepared[0]
    config = cuhk_config()
    metrics = tmp_path_factory.mktemp("results") / "metrics"
    for index, path in enumerate(tables.required_metrics(config)):
        run, stage = path.parent.name, path.stem
        if run == RELEASE_RUN:   # the authors' checkpoints are not placed here
            write_json(metrics / path, absent_result(stage, ["DBD.pth"]))
            continue
        maps = metrics.parent / "maps" / run / stage
        task = "deblurring" if stage == "input" else ("detection" if run == "baselines" else schedule.get(stage).task)
        if task == "detection":
            result = score_detection_method(stand_in_detector(index), datasets, maps, 32)
        else:
            result = score_deblurring_method(lambda image: image, datasets, maps, 32)
        result.update(stage=stage, variant=run, weights="", device="cpu", image_size=32)
        write_json(metrics / path, result)
    return metrics


def test_detection_results_hold_the_validation_split_but_time_only_the_test_set(results):
    data = read_json(results / "seed0" / "single" / "single_gws.json")
    assert set(data["datasets"]) == {"CUHK", "Validation"} and data["timing"]["images"] == 100
    deblur = read_json(results / "seed0" / MAIN / "gsr_O3.json")
    assert set(deblur["datasets"]) == {"Synthetic held-out", "Real photographs"}
    real = deblur["datasets"]["Real photographs"]    # CUHK test photographs deblurred: no target, a colour shift
    assert real["set"] == "CUHK" and real["images"] == 12 and real["colour_shift_in_focus"] >= 0
    assert 0 <= deblur["datasets"]["Synthetic held-out"]["clipped"] <= 1


def test_tables_say_absent_data_was_not_run_and_keep_the_held_out_check_apart(results, tmp_path):
    config = cuhk_config()
    tables.write_tables(config, results, tmp_path)
    for n in (1, 2, 4, 5):
        for ext in ("md", "csv", "tex"):
            assert "not run: data absent" in (tmp_path / f"table{n}.{ext}").read_text(), (n, ext)
    long = tables.build_long(config, results)
    dut = long[(long["dataset"] == "DUT") & (long["row"] == "G_ws_O3")]
    assert set(dut["status"]) == {"not run: data absent"} and dut["reproduced"].isna().all()
    held = long[(long["table"] == 2) & (long["row"] == "Defocused input") & (long["dataset"] == "Synthetic held-out")]
    assert set(held["metric"]) == {"PSNR", "PSNR pooled", "SSIM", "MAE", "clipped"} and held["reproduced"].notna().all()
    assert (long["dataset"] == "Validation").sum() == 0          # never a column of the paper's tables
    markdown = (tmp_path / "table2.md").read_text()
    assert "Synthetic held-out PSNR" in markdown and re.search(r"\| Single G_sr +\| reproduced +\|", markdown)
    assert "Validation" in tables.validation_markdown(config, results)


def test_report_and_figures_skip_absent_sets(results, prepared, tmp_path):
    from apl.report import figures
    config = cuhk_config()
    detection = [read_json(results / "seed0" / "single" / "single_gws.json"), read_json(results / "seed0" / MAIN / "gws_O3.json")]
    fig = figures.draw_figure7(detection)
    assert [a.get_title() for a in fig.axes] == ["(a) PR curve on CUHK", "(b) F-measure curve on CUHK"]
    figures.draw_figure6(detection, prepared[0], per_set=1)
    deblur = [read_json(results / "seed0" / MAIN / "gsr_O3.json")]
    fig = figures.draw_figure9(deblur, prepared[0], count=1)
    assert "Synthetic" in fig.axes[0].get_ylabel()
    out = tmp_path / "results"
    tables.write_tables(config, results, out / "tables")
    shutil.copytree(results, out / "metrics")
    (out / "figures").mkdir()
    for stem in report.FIGURES:
        (out / "figures" / f"{stem}.png").write_bytes(b"")
    text = report.write_report(config, CUHK_PROFILE, out, out / "REPORT.md").read_text()
    assert "**Data absent: DP, DUT**" in text and "## Validation split (not a test set)" in text
    assert "Synthetic held-out" in text
