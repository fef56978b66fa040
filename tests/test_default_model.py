"""The defocus detector apl ships (apl/pretrained, docs/model.md): the packaged file, `apl predict` without
--weights, and the export step that writes it (rule model, make model)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from apl.cli import main
from apl.io import list_images, read_mask
from apl.metrics.detection import evaluate_detection
from apl.predict import Model, full_size_outputs, read_photo
from apl.pretrained import (HALF_FROM, MAX_BYTES, MAX_COLOUR_SHIFT, MAX_IN_FOCUS_CHANGE, WORKING_SIDES, deblurrer_path,
                            detector_path)
from apl.train import checkpoint

from test_predict import CUHK, PHOTO, ROOT, apl


def packaged(path, network):
    """A packaged model file: small, the one network, float16 from HALF_FROM values; its saved contents."""
    assert path.stat().st_size <= MAX_BYTES
    saved = checkpoint.load(path)
    assert list(saved["networks"]) == [network]
    tensors = [t for t in saved["networks"][network].values() if t.is_floating_point()]
    assert all(t.dtype == (torch.float16 if t.numel() >= HALF_FROM else torch.float32) for t in tensors)
    return saved


def test_the_packaged_detector_is_small_self_describing_float16():
    saved = packaged(detector_path(), "gws")
    meta = saved["meta"]
    assert meta["format"] == checkpoint.FORMAT and meta["config"]["scale"]["mode"] == "photo"
    export = meta["export"]
    assert export["profile"] == "cuhk" and export["stage"] in meta["config"]["model"]["stages"]
    assert export["max_map_change_levels"] <= 1
    assert export["working_longer_side"] in WORKING_SIDES
    # chosen on the validation split: the exported candidate has the best validation F_max of them all
    chosen = export["candidates"][export["source"]]["validation_fmax"]
    assert chosen == max(c["validation_fmax"] for c in export["candidates"].values())


def test_predict_without_weights_gives_real_maps_of_the_photo_size(tmp_path):
    """The README's first use: no --weights, a map per photo at its size, better than calling all of it in focus
    on CUHK photographs with masks (a test of the model, not only of the plumbing)."""
    shutil.copytree(CUHK / "image", tmp_path / "photos")
    result = apl("predict", "--input", "photos", "--out", "maps", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "default detector" in result.stdout
    maps, gts, ones = [], [], []
    photos = list_images(tmp_path / "photos")
    for stem, gt_path in list_images(CUHK / "gt").items():
        out = Image.open(tmp_path / "maps" / f"{stem}.png")
        assert out.size == Image.open(photos[stem]).size
        maps.append(np.asarray(out) / 255.0)
        gts.append(read_mask(gt_path, "blur-white"))
        ones.append(np.ones_like(maps[-1]))
    ours, flat = evaluate_detection(maps, gts), evaluate_detection(ones, gts)
    assert ours["fmax"] > flat["fmax"] + 0.1 and ours["mae"] < flat["mae"] - 0.2, (ours["fmax"], flat["fmax"])


def test_the_packaged_deblurrer_is_small_float16_and_names_its_detector():
    saved = packaged(deblurrer_path(), "gsr")
    export = saved["meta"]["export"]
    assert export["detector"] == detector_path().name and export["profile"] == "cuhk"
    assert export["stage"] in ("pretrain", "gsr_O1", "gsr_O2", "gsr_O3")   # config model.deblurrer when exported
    assert export["seed"] == checkpoint.load(detector_path())["meta"]["seed"]   # the detector's seed
    assert export["max_output_change_levels"] <= 1
    # G_sr's own working scale, chosen on validation photographs among the detector's candidates
    assert export["deblur_longer_side"] in WORKING_SIDES and set(map(int, export["deblur_scales"])) == set(WORKING_SIDES)


def test_deblur_without_weights_sharpens_the_defocused_regions_only(tmp_path):
    """The default deblurrer with the default detector's map: an all-in-focus photograph comes back almost as it
    was, and a photograph blurred in a region comes back closer to its sharp original there."""
    from skimage import data as samples
    from apl.data.synthesis import gaussian_blur
    sharp = samples.astronaut()[::2, ::2].copy()    # 256 x 256, never seen in training
    blurred = sharp.copy()
    blurred[:, 128:] = np.clip(np.rint(gaussian_blur(sharp, 1.5, 11)), 0, 255)[:, 128:]
    (tmp_path / "photos").mkdir()
    Image.fromarray(blurred).save(tmp_path / "photos" / "half.png")
    result = apl("predict", "--input", "photos", "--task", "deblur", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "default deblurrer" in result.stdout
    out = np.asarray(Image.open(tmp_path / "out" / "half.png")).astype(float)
    error = lambda a, b: np.sqrt(np.mean((a - b) ** 2))   # noqa: E731
    right = np.s_[:, 136:]
    assert error(out[right], sharp[right]) < error(blurred[right].astype(float), sharp[right]), "no restoration"
    assert np.abs(out - blurred).mean() > 0.2, "nothing changed"


def test_deblurring_scores_known_cases():
    """The deblurring yardsticks on a made-up photograph: in focus on the left (a sharp edge at the border), a
    textured defocused right half. Unchanged: 1x, no change; a cast: its levels; sharpening the interior only
    raises the interior's ratio above the whole region's, whose first pixels hold the in-focus edge."""
    from scipy.ndimage import gaussian_filter
    from apl.pretrained import INTERIOR_PX, deblurring_scores
    rng = np.random.default_rng(0)
    photo = np.zeros((64, 64, 3))
    photo[:, :32] = 200.0                                               # a flat in-focus half: a strong edge at 32
    photo[:, 32:] = 60 + gaussian_filter(rng.normal(0, 20, (64, 32, 3)), (2, 2, 0))
    photo = np.rint(photo).astype(np.uint8)
    mask = np.zeros((64, 64))
    mask[:, :32] = 1.0                                                  # 1 = in focus
    interior = np.zeros((64, 64), bool)
    interior[:, 32 + INTERIOR_PX:] = True

    def sharpen_interior(model, image):
        detail = image.astype(float) - gaussian_filter(image.astype(float), (1, 1, 0))
        return np.clip(np.rint(image + 2 * detail * interior[..., None]), 0, 255).astype(np.uint8)

    same = deblurring_scores(object(), [photo], [mask], deblur=lambda model, image: image)
    assert same == {"sharpness": 1.0, "sharpness_interior": 1.0, "in_focus_change": 0.0, "colour_shift": 0.0}
    cast = deblurring_scores(object(), [photo], [mask], deblur=lambda model, image: image + np.uint8([0, 0, 5]))
    assert cast["colour_shift"] == pytest.approx(5.0) and cast["in_focus_change"] == pytest.approx(5 / 3)
    sharper = deblurring_scores(object(), [photo], [mask], deblur=sharpen_interior)
    assert sharper["sharpness_interior"] > 2 and 1 < sharper["sharpness"] < sharper["sharpness_interior"]
    assert sharper["in_focus_change"] == 0.0
    blurred_all = deblurring_scores(object(), [photo], [np.zeros((64, 64))], deblur=sharpen_interior)
    assert blurred_all["sharpness_interior"] == blurred_all["sharpness"] > 1   # no in-focus pixel: all interior


SIDES = (320, 480)   # working scales the export tests try (the CLI's default: WORKING_SIDES, five of them)


@pytest.fixture(scope="module")
def two_runs(tiny_data, tmp_path_factory, test_config):
    """Two Single G_ws runs and two G_sr pretrainings of the test profile (seeds 0 and 1), as the rule `model`
    finds them."""
    from apl.train.loop import train_stage
    root = tmp_path_factory.mktemp("model_runs")
    for seed in (0, 1):
        train_stage(test_config, "single_gws", "single", tiny_data / "cache", None, root / f"seed{seed}", seed=seed)
        train_stage(test_config, "pretrain", "ufat", tiny_data / "cache", None, root / f"pretrain{seed}", seed=seed)
    return root


def write_metrics(path, validation_fmax, validation_mae):
    path.write_text(json.dumps({"task": "detection", "stage": "single_gws", "datasets": {
        "Validation": {"fmax": validation_fmax, "mae": validation_mae, "n_images": 3},
        "CUHK": {"fmax": 0.5, "mae": 0.3, "n_images": 6}}}))
    return path


def validation_set(tmp_path):
    """A prepared datasets folder whose validation split is the CUHK fixtures."""
    datasets = tmp_path / "datasets"
    shutil.copytree(CUHK / "image", datasets / "val" / "images")
    (datasets / "val" / "masks").mkdir()
    for stem, path in list_images(CUHK / "gt").items():   # prepared masks are white = in focus
        Image.fromarray(np.uint8(read_mask(path, "blur-white") * 255)).save(datasets / "val" / "masks" / f"{stem}.png")
    return datasets


def test_export_writes_the_packaged_format_from_the_best_validation_candidate(two_runs, tmp_path):
    datasets = validation_set(tmp_path)
    metrics = [write_metrics(tmp_path / "m0.json", 0.70, 0.20), write_metrics(tmp_path / "m1.json", 0.75, 0.25)]
    weights = [two_runs / "seed0" / "weights.pt", two_runs / "seed1" / "weights.pt"]
    out, record = tmp_path / "detector.pt", tmp_path / "detector.json"
    assert main(["export-model", "-c", str(ROOT / "config" / "config.yaml"), "-c", str(ROOT / "config" / "test.yaml"),
                 "--weights", *map(str, weights), "--metrics", *map(str, metrics), "--datasets", str(datasets),
                 "--out", str(out), "--record", str(record), "--sides", *map(str, SIDES)]) == 0
    saved = packaged(out, "gws")
    export = json.loads(record.read_text())
    assert export["source"] == str(weights[1]) == saved["meta"]["export"]["source"]   # the better validation F_max
    assert export["max_map_change_levels"] <= 1
    # the working scale apl predict uses by default: the best of those tried on the validation photographs
    scales = {int(side): score for side, score in export["working_scales"].items()}
    assert set(scales) == set(SIDES) and export["working_longer_side"] == max(
        scales, key=lambda side: (scales[side]["fmax"], -scales[side]["mae"]))
    assert Model(out).resolution == export["working_longer_side"] and Model(weights[1]).resolution == "train"
    # what the exported file computes is what its float32 source computes, within one 8-bit level
    photo = read_photo(PHOTO)
    maps = [Model(path, device="cpu", resolution="train").focus_map(photo).astype(int) for path in (weights[1], out)]
    assert np.abs(maps[0] - maps[1]).max() <= 1


def test_export_writes_the_deblurrer_of_the_chosen_detectors_seed(two_runs, tmp_path):
    datasets = validation_set(tmp_path)
    metrics = [write_metrics(tmp_path / "m0.json", 0.75, 0.20), write_metrics(tmp_path / "m1.json", 0.70, 0.25)]
    weights = [two_runs / "seed0" / "weights.pt", two_runs / "seed1" / "weights.pt"]
    deblurrers = [two_runs / "pretrain1" / "weights.pt", two_runs / "pretrain0" / "weights.pt"]
    out = tmp_path / "model" / "deblurrer.pt"
    assert main(["export-model", "-c", str(ROOT / "config" / "config.yaml"), "-c", str(ROOT / "config" / "test.yaml"),
                 "--weights", *map(str, weights), "--metrics", *map(str, metrics), "--datasets", str(datasets),
                 "--out", str(tmp_path / "model" / "detector.pt"), "--record", str(tmp_path / "detector.json"),
                 "--deblurrers", *map(str, deblurrers), "--deblurrer-out", str(out),
                 "--deblurrer-record", str(tmp_path / "deblurrer.json"), "--sides", *map(str, SIDES)]) == 0
    packaged(out, "gsr")
    export = json.loads((tmp_path / "deblurrer.json").read_text())
    assert export["source"] == str(deblurrers[1]) and export["seed"] == 0   # seed 0's detector won
    assert export["max_output_change_levels"] <= 1 and export["detector"] == "detector.pt"
    # the exported pair deblurs as the float32 source does with the same map, within one level
    photo = read_photo(PHOTO)
    model = Model(out, device="cpu", resolution="train")
    assert set(model.nets) == {"gws", "gsr"}
    _, focus, restoration = model.predict(photo, "deblur")
    exported = full_size_outputs(photo, focus, restoration, want_map=False, want_overlay=False)["deblurred"]
    source = Model(deblurrers[1], device="cpu", resolution="train")
    source.nets["gws"] = model.nets["gws"]
    _, focus, restoration = source.predict(photo, "deblur")
    reference = full_size_outputs(photo, focus, restoration, want_map=False, want_overlay=False)["deblurred"]
    assert np.abs(exported.astype(int) - reference.astype(int)).max() <= 1
    # G_sr's own working scale at auto: the sharpest on the validation photographs that leaves in-focus regions and
    # colours alone, recorded with every scale's scores; G_sr runs there, the map is brought to it
    scales = {int(side): score for side, score in export["deblur_scales"].items()}
    assert set(scales) == set(SIDES)
    allowed = [side for side, score in scales.items()
               if score["in_focus_change"] <= MAX_IN_FOCUS_CHANGE and score["colour_shift"] <= MAX_COLOUR_SHIFT]
    assert export["deblur_longer_side"] == (max(allowed, key=lambda side: scales[side]["sharpness"]) if allowed
                                            else min(scales))
    auto, seen = Model(out, device="cpu"), []
    run = auto._restoration_small
    auto._restoration_small = lambda small, focus: seen.append((small.shape[:2], focus.shape)) or run(small, focus)
    auto.predict(photo, "deblur")
    (shape, guide), = seen
    assert max(shape) == min(max(photo.shape[:2]), export["deblur_longer_side"]) and guide == shape
    # without its detector beside it, the deblurrer says what is missing
    (tmp_path / "model" / "detector.pt").unlink()
    with pytest.raises(checkpoint.WeightsError, match="detector.pt"):
        Model(out)


def test_export_refuses_candidates_without_validation_scores(two_runs, tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"datasets": {"CUHK": {"fmax": 0.9, "mae": 0.1}}}))
    assert main(["export-model", "--weights", str(two_runs / "seed0" / "weights.pt"), "--metrics",
                 str(tmp_path / "m.json"), "--datasets", str(tmp_path), "--out", str(tmp_path / "d.pt"),
                 "--record", str(tmp_path / "d.json")]) == 1
    assert "validation" in capsys.readouterr().err
    assert not (tmp_path / "d.pt").exists()


def test_the_readme_picture_is_drawn_from_a_finished_run(pipeline_run, tmp_path, monkeypatch):
    """make readme-figure's command on the test profile's run: photograph, B(I), the default map, GT."""
    from apl.report.figures import showcase
    monkeypatch.chdir(pipeline_run)   # results files name folders relative to the repository, as make runs it
    out = showcase("results/test", "data/test/datasets", tmp_path / "s.png")
    picture = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert picture.shape[1] > 400 and picture.std() > 20   # drawn images, not an empty canvas


def test_auto_runs_at_the_recorded_scale_and_never_upscales():
    model = Model(detector_path(), device="cpu")
    side = checkpoint.load(detector_path())["meta"]["export"]["working_longer_side"]
    photo = read_photo(PHOTO)                                            # 640 x 427
    assert max(model.predict(photo, "detect")[0]) == side
    small = photo[::4, ::4]                                             # 160 x 107: below the working scale
    assert model.predict(small, "detect")[0] == small.shape[:2]
    assert max(Model(detector_path(), device="cpu", resolution="train").predict(photo, "detect")[0]) == 320
