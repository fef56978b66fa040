"""scale.mode photo (issue 19): photographs at a common scale, random crops in training, whole images at test time,
and the training seeds kept apart."""
import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from apl.data.cache import build_cache, load_cache
from apl.data.layout import FOLDERS, MASK_FOLDERS
from apl.data.scale import cut, pad_stack, random_crops, scaled_shape, to_scale
from apl.io import write_image
from apl.priors import prior_at_scale
from apl.report import tables
from apl.train import checkpoint

from test_pipeline import snakemake


def photo_config(test_config, longer_side=48):
    config = copy.deepcopy(test_config)
    config["scale"] = {"mode": "photo", "longer_side": longer_side}
    return config


def test_scaled_shape_keeps_the_aspect_and_fits_a_crop(test_config):
    config = photo_config(test_config, longer_side=320)
    config["image_size"] = 96
    assert scaled_shape(480, 640, config) == (240, 320)
    assert scaled_shape(640, 427, config) == (320, 214)
    assert scaled_shape(100, 1000, config) == (96, 960)    # the shorter side is raised to the crop size
    squash = copy.deepcopy(config)
    squash["scale"]["mode"] = "squash"
    assert scaled_shape(480, 640, squash) == (96, 96)
    assert to_scale(np.zeros((480, 640, 3), np.uint8), config).shape == (240, 320, 3)


def test_crops_of_an_image_and_of_its_target_are_aligned():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 56), (48, 36), (32, 32))]
    padded, shapes = pad_stack(images)
    targets, _ = pad_stack([image[..., 0].astype(np.float32) / 255 for image in images])
    assert padded.shape == (3, 48, 56, 3) and shapes.tolist() == [[40, 56], [48, 36], [32, 32]]
    index = torch.tensor([0, 1, 2, 0, 1])
    generator = torch.Generator().manual_seed(3)
    windows = random_crops(torch.from_numpy(shapes), index, 32, generator)
    assert any(flip for _, _, flip in windows) and any(not flip for _, _, flip in windows)
    crops = cut(torch.from_numpy(padded)[index], windows, 32)
    target_crops = cut(torch.from_numpy(targets)[index], windows, 32)
    assert crops.shape == (5, 32, 32, 3) and target_crops.shape == (5, 32, 32)
    assert torch.equal(crops[..., 0].float() / 255, target_crops)            # the same pixels in both
    for (top, left, flip), i, crop in zip(windows, index.tolist(), crops):
        height, width = shapes[i]
        assert 0 <= top <= height - 32 and 0 <= left <= width - 32          # never into the padding
        expected = images[i][top:top + 32, left:left + 32]
        assert np.array_equal(crop.numpy(), expected[:, ::-1] if flip else expected)


def test_the_cache_holds_b_of_i_at_the_photo_scale(tmp_path, test_config):
    config = photo_config(test_config)
    rng = np.random.default_rng(1)
    photos = {"wide": rng.integers(0, 256, (60, 90, 3), dtype=np.uint8),
              "tall": rng.integers(0, 256, (80, 50, 3), dtype=np.uint8)}
    for name, photo in photos.items():
        write_image(tmp_path / "datasets" / FOLDERS["train"] / f"{name}.png", photo)
        write_image(tmp_path / "datasets" / MASK_FOLDERS["train"] / f"{name}.png",
                    (np.arange(photo.shape[1]) < photo.shape[1] // 2).astype(np.float32)[None].repeat(photo.shape[0], 0))
    build_cache("train", tmp_path / "datasets", tmp_path / "train.npz", config, workers=1)
    cache = load_cache(tmp_path / "train.npz")
    assert [str(n) for n in cache["names"]] == ["tall", "wide"]
    assert cache["shapes"].tolist() == [[51, 32], [32, 48]]   # the tall one: its shorter side raised to 32
    for i, name in enumerate(["tall", "wide"]):
        height, width = cache["shapes"][i]
        expected = prior_at_scale(photos[name], config)          # LBP on the photograph, map at its scale
        assert expected.shape == (height, width)
        np.testing.assert_allclose(cache["priors"][i, :height, :width], expected, atol=1e-3)
        assert np.array_equal(cache["images"][i, :height, :width], to_scale(photos[name], config))
        assert not cache["images"][i, height:].any() and not cache["priors"][i, :, width:].any()   # padding
        assert cache["masks"][i, :height, :width].shape == (height, width)


def test_a_non_square_test_photograph_is_evaluated_whole_at_its_scale(tmp_path, test_config):
    from apl.evaluate import Predictor
    from apl.models.factory import build
    config = photo_config(test_config)
    torch.manual_seed(0)
    gws = build("gws", config).eval()
    checkpoint.save_weights(tmp_path / "weights.pt", {"gws": gws}, {"stage": "gws_O1", "variant": "ufat"},
                            config=config)
    photo = np.random.default_rng(2).integers(0, 256, (30, 72, 3), dtype=np.uint8)
    focus = Predictor(config, tmp_path / "weights.pt", "ufat").focus_map(photo)
    assert focus.shape == (32, 77)               # longer side 48 would leave 20 rows: the shorter side is raised to 32
    x = torch.from_numpy(to_scale(photo, config).copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        whole = gws(x)[0, 0].numpy()               # one pass over the whole image, not crops
    np.testing.assert_allclose(focus, whole, atol=1e-6)


def test_training_in_photo_mode_sees_crops_of_the_cached_photographs(tiny_data, test_config, tmp_path):
    """The test profile trains at its own scale: 36x48 photographs, 32x32 crops, one step of each kind."""
    from apl.train.loop import StageTrainer
    assert test_config["scale"]["mode"] == "photo"
    config = copy.deepcopy(test_config)
    config["train"]["steps_per_epoch"] = 2
    config["train"]["lr_schedule"] = "cosine"
    seen = []
    for stage in ("pretrain", "gws_O1"):
        trainer = StageTrainer(config, stage, "ufat", tiny_data / "cache", None if stage == "pretrain" else
                               tmp_path / "pretrain" / "weights.pt", tmp_path / stage, seed=1)
        original = trainer.nets["gsr"].forward
        trainer.nets["gsr"].forward = lambda image, focus=None: seen.append(tuple(image.shape)) or original(image, focus)
        meta = trainer.run()
        assert meta["seed"] == 1
        lrs = [group["lr"] for optimizer in trainer.optimizers.values() for group in optimizer.param_groups]
        assert all(lr < 0.6 * config["train"]["optimizer"]["lr"] for lr in lrs)   # cosine: decayed by the end
    assert set(seen) == {(4, 3, 32, 32)}
    assert load_cache(tiny_data / "cache" / "train.npz")["images"].shape[1:3] == (36, 48)


def _metrics(path, fmax, mae):
    path.parent.mkdir(parents=True, exist_ok=True)
    scores = {"fmax": fmax, "mae": mae, "psnr": 25.0, "psnr_pooled": 25.0, "ssim": 0.8, "clipped": 0.0}
    path.write_text(json.dumps({"task": "detection", "seconds_per_image": 0.01,
                                "datasets": {name: scores for name in ("CUHK", "DUT", "DP")}}))


def test_table_cells_give_mean_and_std_over_two_seeds(tmp_path, test_config):
    config = copy.deepcopy(test_config)
    config["seeds"] = [0, 1]
    for path in tables.required_metrics(config):
        _metrics(tmp_path / path, 0.5, 0.3)
    _metrics(tmp_path / "seed0/ufat/gws_O3.json", 0.70, 0.20)
    _metrics(tmp_path / "seed1/ufat/gws_O3.json", 0.80, 0.30)
    long = tables.build_long(config, tmp_path)
    cell = long[(long["table"] == 1) & (long["row"] == "G_ws_O3") & (long["dataset"] == "CUHK")
                & (long["metric"] == "Fmax")].iloc[0]
    assert cell["reproduced"] == pytest.approx(0.75) and cell["std"] == pytest.approx(0.0707107, abs=1e-6)
    assert cell["seeds"] == 2 and cell["per_seed"] == "0.7;0.8"
    assert cell["results_file"] == f"{tmp_path}/seed0/ufat/gws_O3.json;{tmp_path}/seed1/ufat/gws_O3.json"
    baseline = long[(long["row"] == "SVD") & (long["dataset"] == "CUHK") & (long["metric"] == "Fmax")].iloc[0]
    assert baseline["seeds"] == 1 and pd.isna(baseline["std"])             # the baselines learn nothing
    grid = tables.wide(long, 1)
    assert "0.750 ± 0.071" in grid.loc["G_ws_O3", "CUHK F_max"]
    tables.write_tables(config, tmp_path, tmp_path / "tables")
    assert r"$\pm$" in (tmp_path / "tables" / "table1.tex").read_text()
    assert "mean ± standard deviation over 2 training seeds" in (tmp_path / "tables" / "table1.md").read_text()


def test_every_seed_trains_and_evaluates_apart(tmp_path):
    """A dry run with two seeds: every training and evaluation job appears once per seed, in its own folder."""
    from test_pipeline import copy_workflow
    work = copy_workflow(tmp_path)
    (work / "config" / "seeds.yaml").write_text("seeds: [0, 1]\n")
    result = snakemake(work, "-n", "-p", "--configfile", "config/test.yaml", "config/seeds.yaml")
    text = result.stdout + result.stderr
    for seed in (0, 1):
        assert f"results/test/runs/seed{seed}/ufat/gsr_O3/weights.pt" in text
        assert f"results/test/metrics/seed{seed}/single/single_gws.json" in text
        assert f"--seed {seed}" in text
    assert "results/test/metrics/baselines/lbp.json" in text and "seed1/baselines" not in text


def test_apl_predict_runs_photo_scale_weights_at_their_scale_by_default(tmp_path, test_config):
    from apl.models.factory import build
    from apl.predict import Model
    config = photo_config(test_config)
    torch.manual_seed(0)
    checkpoint.save_weights(tmp_path / "weights.pt", {"gws": build("gws", config).eval()},
                            {"stage": "gws_O1", "variant": "ufat"}, config=config)
    model = Model(tmp_path / "weights.pt", device="cpu")        # --resolution train, the default
    photo = np.random.default_rng(4).integers(0, 256, (300, 720, 3), dtype=np.uint8)
    shape, focus, _ = model.predict(photo, "detect")
    assert shape == scaled_shape(300, 720, config) == (32, 77)
    assert focus.strip(0, 300).shape == (300, 720, 1)             # the map comes back at the photo's size
    assert "crops of photos at a longer side of 48 px" in model.describe()
