"""Classic defocus detectors the pipeline runs itself (apl/baselines): correctness of the vectorised
computations against per-patch references, focus polarity, registry, and a scored run on test data."""
import json

import numpy as np
import pytest
from scipy import fft, ndimage, stats
from skimage import data

from apl.baselines import MAX_SIDE, METHODS, describe, settings, working_resolution
from apl.baselines.common import centred_windows, grid_to_image, limit_size, normalise
from apl.baselines.hifst import (guided_filter, hifst_sharpness, high_frequency_mask, sorted_high_frequencies,
                                 usable_scales)
from apl.baselines.svd import blur_degree, svd_sharpness
from apl.data.synthesis import synthesize_pair
from apl.metrics.detection import evaluate_detection

DETECTORS = [name for name, (task, _) in METHODS.items() if task == "detection"]


def half_blurred(size=(96, 128), sigma=3.0):
    """A textured photograph whose right half is Gaussian-blurred: (uint8 RGB, focus mask 1 = sharp)."""
    photo = data.astronaut()[100:100 + size[0], 150:150 + size[1]].astype(np.float64)
    blurred = ndimage.gaussian_filter(photo, sigma=(sigma, sigma, 0))
    image = photo.copy()
    image[:, size[1] // 2:] = blurred[:, size[1] // 2:]
    mask = np.zeros(size, dtype=np.float32)
    mask[:, : size[1] // 2] = 1.0
    return np.clip(image, 0, 255).astype(np.uint8), mask


def auc(focus, mask) -> float:
    """Probability that a sharp pixel scores above a blurred one (ties count half)."""
    ranks = stats.rankdata(focus.ravel())
    sharp = mask.ravel() == 1
    n_sharp, n_blur = sharp.sum(), (~sharp).sum()
    return float((ranks[sharp].sum() - n_sharp * (n_sharp + 1) / 2) / (n_sharp * n_blur))


# ------------------------------------------------------------------------------------------------ helpers
def test_centred_windows_are_centred_with_mirror_borders():
    values = np.arange(30, dtype=float).reshape(5, 6)
    windows = centred_windows(values, 3, stride=1)
    assert windows.shape == (5, 6, 3, 3)
    np.testing.assert_array_equal(windows[2, 3], values[1:4, 2:5])
    padded = np.pad(values, 1, mode="reflect")
    np.testing.assert_array_equal(windows[0, 0], padded[0:3, 0:3])
    strided = centred_windows(values, 4, stride=2)   # even window: one more pixel up/left
    assert strided.shape == (3, 3, 4, 4)
    np.testing.assert_array_equal(strided[1, 1], values[0:4, 0:4])


def test_grid_to_image_hits_the_grid_nodes_and_interpolates_between():
    grid = np.array([[0.0, 2.0], [4.0, 6.0]])
    full = grid_to_image(grid, (4, 4), stride=2)
    assert full[0, 0] == 0 and full[0, 2] == 2 and full[2, 0] == 4 and full[2, 2] == 6
    assert full[0, 1] == pytest.approx(1.0) and full[1, 1] == pytest.approx(3.0)
    assert full[3, 3] == 6   # past the last node: its value


def test_limit_size_shrinks_only_large_images_keeping_the_aspect():
    image = np.zeros((500, 700, 3), dtype=np.uint8)
    assert limit_size(image, 320).shape == (229, 320, 3)
    assert limit_size(image[:200, :300], 320).shape == (200, 300, 3)
    assert limit_size(image, None).shape == image.shape


def test_normalise_constant_map_is_zero():
    assert normalise(np.full((3, 3), 7.0)).max() == 0
    np.testing.assert_allclose(normalise(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        normalise(np.array([0.0, np.nan]))


# ---------------------------------------------------------------------------------------------------- SVD
def test_svd_blur_degree_matches_a_per_patch_loop():
    rng = np.random.default_rng(0)
    gray = rng.random((9, 11))
    windows = centred_windows(gray, 5, stride=1)
    padded = np.pad(gray, 2, mode="reflect")
    expected = np.empty(gray.shape)
    for y in range(gray.shape[0]):
        for x in range(gray.shape[1]):
            singular = np.linalg.svd(padded[y:y + 5, x:x + 5], compute_uv=False)
            expected[y, x] = singular[:2].sum() / singular.sum()
    np.testing.assert_allclose(blur_degree(windows, top=2), expected, rtol=1e-10)
    # a rank-one patch has all its energy in the first singular value; an all-zero patch counts as blurred
    assert blur_degree(np.outer([1.0, 2, 3], [1.0, 1, 2])[None], top=1)[0] == pytest.approx(1.0)
    assert blur_degree(np.zeros((1, 3, 3)), top=1)[0] == 1.0


def test_svd_map_is_higher_where_the_image_is_sharp():
    image, mask = half_blurred()
    focus = svd_sharpness(image)
    assert focus.shape == mask.shape and focus.dtype == np.float32
    assert focus.min() == 0.0 and focus.max() == pytest.approx(1.0)
    assert auc(focus, mask) > 0.9
    with pytest.raises(ValueError, match="top"):
        svd_sharpness(image, window=5, top=5)


# -------------------------------------------------------------------------------------------------- HiFST
def test_high_frequency_mask_is_the_lower_right_triangle():
    for size in (4, 8, 16):
        mask = high_frequency_mask(size)
        assert mask.sum() == size * (size + 1) // 2
        assert mask[size - 1, 0] and mask[0, size - 1] and mask[-1, -1] and not mask[0, size - 2]


def test_sorted_high_frequencies_match_per_window_dct():
    rng = np.random.default_rng(1)
    values = rng.random((20, 24))
    coefficients = sorted_high_frequencies(values, 8, stride=2)
    padded = np.pad(values, ((4, 3), (4, 3)), mode="reflect")
    for gy, gx in ((0, 0), (3, 5), (9, 11)):
        y, x = 2 * gy, 2 * gx
        block = fft.dctn(padded[y:y + 8, x:x + 8], type=2, norm="ortho")
        expected = np.sort(np.abs(block[high_frequency_mask(8)]))
        np.testing.assert_allclose(coefficients[gy, gx], expected, atol=1e-12)
    assert np.all(np.diff(coefficients, axis=-1) >= 0)


def test_guided_filter_keeps_constants_and_smooths_with_large_eps():
    rng = np.random.default_rng(2)
    guide = rng.random((30, 30))
    np.testing.assert_allclose(guided_filter(guide, np.full((30, 30), 0.4), 3, 1e-3), 0.4, atol=1e-12)
    source = rng.random((30, 30))
    box = ndimage.uniform_filter(ndimage.uniform_filter(source, 7, mode="reflect"), 7, mode="reflect")
    np.testing.assert_allclose(guided_filter(guide, source, 3, 1e6), box, atol=1e-5)


def test_hifst_map_is_higher_where_the_image_is_sharp():
    image, mask = half_blurred()
    focus = hifst_sharpness(image)
    assert focus.shape == mask.shape and focus.dtype == np.float32
    assert 0.0 <= focus.min() and focus.max() <= 1.0
    assert auc(focus, mask) > 0.8   # its 64 px windows and the guided filter blur the sharp/blurred boundary


def test_hifst_scales_adapt_to_small_images():
    assert usable_scales((8, 16, 32, 64), 40, 100) == [8, 16, 32]
    assert usable_scales((8, 16, 32, 64), 6, 6) == [6]
    focus = hifst_sharpness(np.random.default_rng(3).integers(0, 255, (6, 7, 3), dtype=np.uint8))
    assert focus.shape == (6, 7)


# ----------------------------------------------------------------------------------------------- registry
PLAIN_PRIOR = {"windows": [11, 15, 21], "threshold": 0.016, "refine": "none", "matting_at": "working"}
MATTED_PRIOR = {**PLAIN_PRIOR, "refine": "matting"}


@pytest.mark.parametrize("name, prior", [(name, PLAIN_PRIOR) for name in DETECTORS] + [("lbp", MATTED_PRIOR)])
def test_every_detector_finds_synthetic_defocus(name, prior):
    """Same synthesis as the demo's test sets, on a photograph the demo uses only for training."""
    rng = np.random.default_rng(4)
    photo = data.coffee()[::3, ::3]
    preds, gts = [], []
    for _ in range(3):
        defocused, mask, _ = synthesize_pair(photo, rng, sigma_range=(3.0, 5.0), blurred_fraction_range=(0.4, 0.6))
        focus = METHODS[name][1]({"prior": prior, "image_size": 64})(defocused)
        assert focus.dtype == np.float32 and 0.0 <= focus.min() and focus.max() <= 1.0
        preds.append(focus)
        gts.append(mask)
    scores = evaluate_detection(preds, gts, mae_size=64)
    inverted = evaluate_detection([1.0 - p for p in preds], gts, mae_size=64)
    assert scores["fmax"] > 0.7 and scores["fmax"] > inverted["fmax"] + 0.1, (scores["fmax"], inverted["fmax"])


def test_large_images_are_shrunk_for_svd_and_hifst_only(test_config):
    image = np.random.default_rng(5).integers(0, 255, (400, 700, 3), dtype=np.uint8)
    assert METHODS["svd"][1](test_config)(image).shape == (183, MAX_SIDE)
    assert METHODS["hifst"][1](test_config)(image).shape == (183, MAX_SIDE)
    squash = {**test_config, "scale": {"mode": "squash", "longer_side": 0}}
    plain = {**squash, "prior": {**test_config["prior"], "refine": "none"}}
    assert METHODS["lbp"][1](plain)(image[:100, :150]).shape == (100, 150)
    # with matting at the working size, the LBP map is measured at the stored size and matted at that size
    size = test_config["image_size"]
    assert METHODS["lbp"][1](squash)(image[:100, :150]).shape == (size, size)
    # scale.mode photo (the test profile): exactly the map G_ws learns from, at the photograph's scale
    assert METHODS["lbp"][1](test_config)(image[:100, :150]).shape == (32, 48)


def test_settings_and_descriptions_cover_every_method(test_config):
    for name in METHODS:
        assert isinstance(settings(name, test_config), dict)
        assert describe(name) != name
    assert settings("svd", test_config)["max_side"] == MAX_SIDE
    assert settings("lbp", test_config) == {"prior": test_config["prior"], "image_size": test_config["image_size"],
                                           "scale": test_config["scale"]}
    with pytest.raises(ValueError, match="unknown baseline"):
        settings("nope", test_config)


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory, test_config):
    from apl.data.demo import build_demo
    root = tmp_path_factory.mktemp("baseline_data")
    build_demo(test_config, root / "datasets")
    return root / "datasets"


@pytest.mark.parametrize("name", ["svd", "hifst"])
def test_evaluate_baseline_scores_and_times_every_test_image(name, demo_datasets, test_config, tmp_path):
    from apl.evaluate import evaluate_baseline
    from apl.io import write_json
    result = evaluate_baseline(test_config, name, demo_datasets, tmp_path / "maps")
    write_json(tmp_path / "result.json", result)   # JSON-serialisable as the rule writes it
    counts = test_config["data"]["demo"]["counts"]
    assert set(result["datasets"]) == {"CUHK", "DUT"}
    for folder, dataset in (("cuhk", "CUHK"), ("dut", "DUT")):
        assert len(list((tmp_path / "maps" / folder).glob("*.png"))) == counts[folder]
        assert result["datasets"][dataset]["n_images"] == counts[folder]
        assert 0.0 <= result["datasets"][dataset]["fmax"] <= 1.0
    timing = result["timing"]
    from apl.data.demo import demo_shape
    height, width = demo_shape(test_config)
    assert timing["images"] == counts["cuhk"] + counts["dut"]
    assert timing["input_sizes"] == {f"{width}x{height}": counts["cuhk"] + counts["dut"]}
    assert timing["device"] == "cpu" and "cores" in timing["machine"]
    assert result["seconds_per_image"] > 0
    assert result["settings"] == settings(name, test_config)
    assert "320" in result["working_resolution"]
    assert json.loads((tmp_path / "result.json").read_text())["stage"] == name


def test_working_resolution_names_where_the_lbp_prior_is_matted():
    assert working_resolution("lbp", {"prior": PLAIN_PRIOR, "image_size": 64}) == "stored size"
    assert working_resolution("lbp", {"prior": MATTED_PRIOR, "image_size": 64}) == "stored size, matting at 64x64 px"
    assert working_resolution("lbp", {"prior": {**MATTED_PRIOR, "matting_at": "photo"}, "image_size": 64}) == "stored size"
    assert "320" in working_resolution("svd", {"prior": MATTED_PRIOR, "image_size": 64})
