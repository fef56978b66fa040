"""Tests of apl.metrics: hand-computed cases, agreement with pysodmetrics and scikit-image, folder scoring."""
from __future__ import annotations

import json
import warnings

import numpy as np
import py_sod_metrics
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from apl.io import ImageError
from apl.metrics import (
    PR_THRESHOLDS,
    evaluate_deblurring,
    evaluate_detection,
    score_deblur_dirs,
    score_detection_dirs,
)

# ------------------------------------------------------------------------------------------------ data
# 4x4 hand case. GT (1 = in focus) has 4 positives in the top-left 2x2 block.
GT4 = np.array(
    [[1, 1, 0, 0],
     [1, 1, 0, 0],
     [0, 0, 0, 0],
     [0, 0, 0, 0]], dtype=np.float32)
# Map maximum is 1, so max-normalisation leaves it unchanged.
PRED4 = np.array(
    [[1.0, 0.8, 0.6, 0.0],
     [0.8, 0.2, 0.0, 0.0],
     [0.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 0.0]], dtype=np.float64)
# Predicted positives (map >= t) and F = 1.3 P R / (0.3 P + R):
#   t in (0.0, 0.2]: {1, .8, .6, .8, .2}: TP 4 of 5 predicted, P = 4/5, R = 4/4 -> F = 1.04 / 1.24 = 0.8387
#   t in (0.2, 0.6]: {1, .8, .6, .8}:     TP 3 of 4,            P = 3/4, R = 3/4 -> F = 0.75
#   t in (0.6, 0.8]: {1, .8, .8}:         TP 3 of 3,            P = 1,   R = 3/4 -> F = 0.975 / 1.05 = 13/14
#   t in (0.8, 1.0]: {1}:                 TP 1 of 1,            P = 1,   R = 1/4 -> F = 0.325 / 0.55 = 0.5909
#   t = 0 (PR curve only): all 16 pixels, P = 4/16, R = 1.
FMAX4 = 13.0 / 14.0
# MAE at 4x4 (no resizing): |1-1| + 2 |.8-1| + |.2-1| over the positives, .6 over the negatives -> 1.8 / 16.
MAE4 = 1.8 / 16.0


def blob_masks(n: int, side: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    masks = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * side
        r = rng.uniform(0.15, 0.35) * side
        masks.append((((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32))
    return masks


def noisy_maps(gts: list[np.ndarray], seed: int, noise: float = 0.3) -> list[np.ndarray]:
    """Maps on the 8-bit grid (k/255), so that the uint8 versions given to pysodmetrics are exact."""
    rng = np.random.default_rng(seed)
    maps = []
    for gt in gts:
        m = np.clip(0.6 * gt + 0.2 + rng.normal(0, noise, gt.shape), 0, 1)
        maps.append(np.rint(m * 255) / 255)
    return maps


def reference_image_scores(pred: np.ndarray, gt: np.ndarray, thresholds) -> list[tuple[float, float]]:
    """Slow, literal per-threshold precision/recall of the authors' protocol (pred already at GT size)."""
    m = np.maximum(pred.astype(np.float64), 0)
    if m.max() > 0:
        m = m / m.max()
    pos = gt >= 0.1
    if not pos.any():
        m, pos = 1 - m, np.ones_like(pos)
    out = []
    for t in thresholds:
        predicted = m >= t
        tp = np.count_nonzero(predicted & pos)
        if tp == 0:
            out.append((0.0, 0.0))
        else:
            out.append((tp / np.count_nonzero(predicted), tp / np.count_nonzero(pos)))
    return out


def f_of(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 1.3 * p * r / (0.3 * p + r)


# ------------------------------------------------------------------------------------------- detection
def test_pr_thresholds():
    assert PR_THRESHOLDS.shape == (21,)
    assert PR_THRESHOLDS[0] == 1.0 and PR_THRESHOLDS[-1] == 0.0
    np.testing.assert_allclose(np.diff(PR_THRESHOLDS), -0.05, atol=1e-12)
    assert PR_THRESHOLDS[4] == 0.8 and PR_THRESHOLDS[8] == 0.6  # exactly the doubles nearest 0.8 and 0.6


def test_hand_computed_4x4():
    result = evaluate_detection([PRED4], [GT4], mae_size=4)
    assert result["fmax"] == pytest.approx(FMAX4, abs=1e-12)
    assert result["mae"] == pytest.approx(MAE4, abs=1e-12)
    assert result["n_images"] == 1

    curve = result["pr_curve"]
    expected = {1.0: (1, 0.25), 0.85: (1, 0.25), 0.8: (1, 0.75), 0.65: (1, 0.75), 0.6: (0.75, 0.75),
                0.25: (0.75, 0.75), 0.2: (0.8, 1.0), 0.05: (0.8, 1.0), 0.0: (0.25, 1.0)}
    for t, (p, r) in expected.items():
        i = int(np.argmin(np.abs(PR_THRESHOLDS - t)))
        assert curve["threshold"][i] == pytest.approx(t)
        assert curve["precision"][i] == pytest.approx(p, abs=1e-12), t
        assert curve["recall"][i] == pytest.approx(r, abs=1e-12), t
        assert curve["fmeasure"][i] == pytest.approx(f_of(p, r), abs=1e-12), t
    # thresholds 0.8 and 0.6 equal map values: `>=` keeps those pixels (P = 1, R = 3/4 at 0.8)


def test_max_normalisation_and_threshold_ties():
    # Halving the map changes nothing (divided by its own max); values equal to i/255 count at threshold i/255.
    half = evaluate_detection([PRED4 * 0.5], [GT4], mae_size=4)
    assert half["fmax"] == pytest.approx(FMAX4, abs=1e-12)
    assert half["mae"] > MAE4  # MAE is not max-normalised
    # 8-bit map: pixel values 255, 128, 128, 0 in the positive block; negatives 0 except one 128.
    pred8 = np.zeros((4, 4), np.uint8)
    pred8[0, 0], pred8[0, 1], pred8[1, 0], pred8[2, 2] = 255, 128, 128, 128
    # at t = 128/255 (>=): {255, 128, 128, 128}: TP 3 of 4 -> P = R = 3/4; at 129/255: {255}: P 1, R 1/4;
    # for t <= 128/255 the same set; so F_max = max(0.75, 0.5909) = 0.75
    assert evaluate_detection([pred8], [GT4], mae_size=4)["fmax"] == pytest.approx(0.75, abs=1e-12)


def test_vectorised_matches_literal_loop():
    gts = blob_masks(5, 37, seed=1) + [np.zeros((37, 37), np.float32)]
    gts[1] = gts[1] * 0.5 + 0.05  # soft GT: positives are >= 0.1, so the 0.05 background is negative
    rng = np.random.default_rng(2)
    preds = [rng.random((37, 37)) ** 2 for _ in gts]
    preds[2] = np.rint(preds[2] * 255) / 255  # 8-bit grid: exact ties with the i/255 thresholds
    result = evaluate_detection(preds, gts, mae_size=37)

    f_thresholds = np.arange(1, 256) / 255.0
    fmaxes, ps, rs = [], [], []
    for pred, gt in zip(preds, gts):
        fmaxes.append(max(f_of(p, r) for p, r in reference_image_scores(pred, gt, f_thresholds)))
        pr = reference_image_scores(pred, gt, PR_THRESHOLDS)
        ps.append([p for p, _ in pr])
        rs.append([r for _, r in pr])
    assert result["fmax"] == pytest.approx(np.mean(fmaxes), abs=1e-12)
    np.testing.assert_allclose(result["pr_curve"]["precision"], np.mean(ps, axis=0), atol=1e-12)
    np.testing.assert_allclose(result["pr_curve"]["recall"], np.mean(rs, axis=0), atol=1e-12)
    binary = [(g >= 125 / 255).astype(float) for g in gts]  # same size: no resizing, 8-bit GT rounding only
    assert result["mae"] == pytest.approx(np.mean([np.abs(p - b).mean() for p, b in zip(preds, binary)]))


def test_pred_resized_bicubic_to_gt_size():
    gt = blob_masks(1, 48, seed=3)[0]
    pred = np.kron(noisy_maps([gt], seed=4, noise=0.1)[0], np.ones((2, 2)))  # 96x96 map for a 48x48 GT
    resized = np.asarray(Image.fromarray(pred.astype(np.float32), "F").resize((48, 48), Image.BICUBIC), float)
    expected = max(f_of(p, r) for p, r in reference_image_scores(resized, gt, np.arange(1, 256) / 255.0))
    assert evaluate_detection([pred], [gt], mae_size=48)["fmax"] == pytest.approx(expected, abs=1e-9)


def test_pysodmetrics_agreement():
    gts = blob_masks(6, 40, seed=5)
    gts[0] = np.rint(gts[0] * 200) / 255  # a soft GT: 200 > 128 is positive for pysodmetrics
    preds = noisy_maps(gts, seed=6)
    result = evaluate_detection(preds, gts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = py_sod_metrics.Fmeasure()
    mae = py_sod_metrics.MAE()
    for pred, gt in zip(preds, gts):
        p8, g8 = np.rint(pred * 255).astype(np.uint8), np.rint(gt * 255).astype(np.uint8)
        fm.step(pred=p8, gt=g8)
        mae.step(pred=p8, gt=g8)
    assert result["fmax_sod"] == pytest.approx(float(fm.get_results()["fm"]["curve"].max()), abs=1e-12)
    assert result["mae_sod"] == pytest.approx(float(mae.get_results()["mae"]), abs=1e-12)
    # the two conventions are different numbers (mean of per-image maxima >= maximum of the mean curve)
    assert result["fmax"] != result["fmax_sod"]


def test_perfect_and_inverted_maps():
    gts = blob_masks(4, 160, seed=7)
    perfect = evaluate_detection([g.copy() for g in gts], gts)
    assert perfect["fmax"] == pytest.approx(1.0)
    assert perfect["mae"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["fmax_sod"] == pytest.approx(1.0)
    assert perfect["mae_sod"] == pytest.approx(0.0, abs=1e-12)
    inverted = evaluate_detection([1.0 - g for g in gts], gts)
    assert inverted["fmax"] < perfect["fmax"] - 0.3
    assert inverted["mae"] == pytest.approx(1.0)
    noisy = evaluate_detection(noisy_maps(gts, seed=8), gts)
    assert inverted["fmax"] < noisy["fmax"] < 1.0


def test_all_negative_gt_scored_on_inverted_map():
    gt = np.zeros((10, 10), np.float32)
    gt[0, 0] = 0.09  # below the 0.1 positive level: still all-negative
    zero_map = evaluate_detection([np.zeros((10, 10))], [gt], mae_size=10)
    assert zero_map["fmax"] == pytest.approx(1.0)  # 1 - 0 = 1 everywhere against an all-ones GT
    assert zero_map["mae"] == pytest.approx(0.0)
    assert zero_map["pr_curve"]["precision"] == pytest.approx([1.0] * 21)
    assert zero_map["pr_curve"]["recall"] == pytest.approx([1.0] * 21)
    assert evaluate_detection([np.ones((10, 10))], [gt], mae_size=10)["fmax"] == 0.0
    half = np.zeros((10, 10))
    half[:, 5:] = 0.5  # normalised to 1 on the right half; the inverted map is 1 on the left half
    # every threshold in (0, 1]: P = 1, R = 1/2 -> F = 0.65 / 0.8 = 0.8125
    assert evaluate_detection([half], [gt], mae_size=10)["fmax"] == pytest.approx(0.8125)


def test_nothing_predicted_gives_zero_not_nan():
    result = evaluate_detection([np.zeros((4, 4))], [GT4], mae_size=4)
    assert result["fmax"] == 0.0
    curve = result["pr_curve"]
    assert curve["precision"][:-1] == [0.0] * 20 and curve["recall"][:-1] == [0.0] * 20
    assert curve["precision"][-1] == pytest.approx(0.25) and curve["recall"][-1] == 1.0  # t = 0: all pixels
    json.dumps(result, allow_nan=False)


def test_pr_curve_shape():
    gts = blob_masks(5, 50, seed=9)
    result = evaluate_detection(noisy_maps(gts, seed=10), gts)
    curve = result["pr_curve"]
    assert list(curve) == ["threshold", "precision", "recall", "fmeasure"]
    assert all(len(v) == 21 for v in curve.values())
    assert curve["threshold"] == pytest.approx(list(PR_THRESHOLDS))
    recall = np.array(curve["recall"])
    assert np.all(np.diff(recall) >= -1e-12)  # thresholds descend, so recall never decreases along the list
    assert recall[-1] == pytest.approx(1.0)  # t = 0 predicts every pixel
    assert curve["precision"][-1] == pytest.approx(np.mean([g.mean() for g in gts]))
    p, r = np.array(curve["precision"]), recall
    np.testing.assert_allclose(curve["fmeasure"], 1.3 * p * r / (0.3 * p + r), atol=1e-12)
    assert max(curve["fmeasure"]) <= result["fmax"] + 1e-12
    json.dumps(result, allow_nan=False)


def test_detection_input_errors():
    with pytest.raises(ValueError, match="2 predictions but 1"):
        evaluate_detection([PRED4, PRED4], [GT4])
    with pytest.raises(ValueError, match="no images"):
        evaluate_detection([], [])
    with pytest.raises(ValueError, match="2-D"):
        evaluate_detection([np.zeros((4, 4, 3))], [GT4])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_detection([np.full((4, 4), np.nan)], [GT4])


# ------------------------------------------------------------------------------------------- deblurring
def _resized(image: np.ndarray, size: int = 160) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC)).astype(np.float64) / 255


def test_psnr_ssim_match_scikit_image():
    rng = np.random.default_rng(11)
    gts = [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8) for _ in range(3)]
    outs = [np.clip(g.astype(int) + rng.integers(-30, 31, g.shape), 0, 255).astype(np.uint8) for g in gts]
    result = evaluate_deblurring(outs, gts, names=["a", "b", "c"])
    psnrs, ssims, maes = [], [], []
    for out, gt in zip(outs, gts):
        o, g = _resized(out), _resized(gt)
        psnrs.append(peak_signal_noise_ratio(g, o, data_range=1))
        ssims.append(structural_similarity(g, o, data_range=1, channel_axis=-1))
        maes.append(np.abs(g - o).mean())
    assert [row["name"] for row in result["per_image"]] == ["a", "b", "c"]
    np.testing.assert_allclose([row["psnr"] for row in result["per_image"]], psnrs, rtol=1e-12)
    np.testing.assert_allclose([row["ssim"] for row in result["per_image"]], ssims, rtol=1e-12)
    assert result["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-12)
    assert result["ssim"] == pytest.approx(np.mean(ssims), rel=1e-12)
    assert result["mae"] == pytest.approx(np.mean(maes), rel=1e-12)
    assert result["n_images"] == 3


def test_deblurring_hand_values_and_identity():
    gt = np.zeros((160, 160, 3), np.uint8)
    out = np.full((160, 160, 3), 51, np.uint8)  # 51/255 = 0.2 everywhere
    result = evaluate_deblurring([out], [gt])
    assert result["mae"] == pytest.approx(0.2)
    assert result["psnr"] == pytest.approx(10 * np.log10(1 / 0.04))  # MSE 0.04 -> 13.98 dB
    assert result["per_image"][0]["name"] == "0"
    image = np.random.default_rng(12).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    same = evaluate_deblurring([image], [image.copy()])
    assert same["mae"] == 0.0
    assert same["ssim"] == pytest.approx(1.0)
    assert same["psnr"] == 100.0  # identical: the release's 100 dB cap instead of inf
    json.dumps(same, allow_nan=False)


def test_deblurring_sizes_and_errors():
    rng = np.random.default_rng(13)
    gt = rng.integers(0, 256, (320, 240, 3), dtype=np.uint8)
    out = np.asarray(Image.fromarray(gt).resize((160, 160), Image.BICUBIC))  # different size: allowed
    assert evaluate_deblurring([out], [gt])["mae"] == 0.0
    with pytest.raises(ValueError, match="uint8 RGB"):
        evaluate_deblurring([gt.astype(np.float32)], [gt])
    with pytest.raises(ValueError, match="1 predictions but 2"):
        evaluate_deblurring([gt], [gt, gt])


# --------------------------------------------------------------------------------------------- folders
def _save(path, array):
    Image.fromarray(array).save(path)


def _detection_folders(tmp_path, n=3, side=32):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gts = blob_masks(n, side, seed=14)
    preds = noisy_maps(gts, seed=15)
    for i, (p, g) in enumerate(zip(preds, gts)):
        _save(pred_dir / f"img{i}.png", np.rint(p * 255).astype(np.uint8))
        _save(gt_dir / f"img{i}.bmp", np.rint(g * 255).astype(np.uint8))
    return pred_dir, gt_dir, preds, gts


def test_score_detection_dirs_matches_arrays(tmp_path):
    pred_dir, gt_dir, preds, gts = _detection_folders(tmp_path)
    result = score_detection_dirs(pred_dir, gt_dir, "focus-white", mae_size=32)
    expected = evaluate_detection(preds, gts, mae_size=32)
    for key in ("fmax", "mae", "fmax_sod", "mae_sod", "n_images"):
        assert result[key] == pytest.approx(expected[key], abs=1e-12)
    assert result["gt_polarity"] == "focus-white"
    assert result["pred_dir"] == str(pred_dir) and result["gt_dir"] == str(gt_dir)
    json.dumps(result, allow_nan=False)


def test_score_detection_dirs_blur_white_inverts(tmp_path):
    pred_dir, gt_dir, preds, gts = _detection_folders(tmp_path)
    blur_dir = tmp_path / "gt_blur_white"
    blur_dir.mkdir()
    for i, g in enumerate(gts):
        _save(blur_dir / f"img{i}.png", 255 - np.rint(g * 255).astype(np.uint8))
    focus = score_detection_dirs(pred_dir, gt_dir, "focus-white", mae_size=32)
    blur = score_detection_dirs(pred_dir, blur_dir, "blur-white", mae_size=32)
    assert blur["fmax"] == pytest.approx(focus["fmax"], abs=1e-12)
    assert blur["mae"] == pytest.approx(focus["mae"], abs=1e-12)
    wrong = score_detection_dirs(pred_dir, blur_dir, "focus-white", mae_size=32)
    assert wrong["fmax"] < focus["fmax"] and wrong["mae"] > focus["mae"]
    with pytest.raises(ValueError, match="polarity"):
        score_detection_dirs(pred_dir, gt_dir, "white-is-sharp")


def test_score_detection_dirs_missing_extra_unreadable(tmp_path):
    pred_dir, gt_dir, _, _ = _detection_folders(tmp_path)
    (pred_dir / "img1.png").unlink()
    with pytest.raises(ImageError, match="missing.*img1"):
        score_detection_dirs(pred_dir, gt_dir, "focus-white")
    _save(pred_dir / "img1.png", np.zeros((32, 32), np.uint8))
    _save(pred_dir / "stray.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(ImageError, match="extra.*stray"):
        score_detection_dirs(pred_dir, gt_dir, "focus-white")
    (pred_dir / "stray.png").unlink()
    (pred_dir / "img2.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="img2.png"):
        score_detection_dirs(pred_dir, gt_dir, "focus-white")
    Image.new("CMYK", (32, 32)).save(pred_dir / "img2.tif")
    (pred_dir / "img2.png").unlink()
    with pytest.raises(ImageError, match="img2.tif.*CMYK"):
        score_detection_dirs(pred_dir, gt_dir, "focus-white")
    (gt_dir / "img0.bmp").write_bytes(b"broken")
    (pred_dir / "img2.tif").unlink()
    _save(pred_dir / "img2.png", np.zeros((64, 48), np.uint8))  # other size and aspect: fine, resized
    with pytest.raises(ImageError, match="img0.bmp"):
        score_detection_dirs(pred_dir, gt_dir, "focus-white")


def test_score_detection_dirs_colour_and_resized_preds(tmp_path):
    pred_dir, gt_dir, preds, gts = _detection_folders(tmp_path)
    grey = np.rint(preds[0] * 255).astype(np.uint8)
    _save(pred_dir / "img0.png", np.stack([grey] * 3, axis=-1))  # RGB with equal channels = same grey map
    _save(pred_dir / "img1.png", np.kron(np.rint(preds[1] * 255).astype(np.uint8), np.ones((2, 2), np.uint8)))
    _save(pred_dir / "img2.png", (np.rint(preds[2] * 255) * 257).astype(np.uint16))  # 16-bit grey PNG
    result = score_detection_dirs(pred_dir, gt_dir, "focus-white", mae_size=32)
    up = np.kron(preds[1], np.ones((2, 2)))
    expected = evaluate_detection([preds[0], up, preds[2]], gts, mae_size=32)
    assert result["fmax"] == pytest.approx(expected["fmax"], abs=1e-9)
    assert result["mae"] == pytest.approx(expected["mae"], abs=1e-9)


def test_score_deblur_dirs(tmp_path):
    pred_dir, gt_dir = tmp_path / "out", tmp_path / "target"
    pred_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(16)
    gts = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    outs = [np.asarray(Image.fromarray(g).resize((160, 160), Image.BICUBIC)) for g in gts]  # other size
    outs[1] = 255 - outs[1]
    for i in range(2):
        _save(gt_dir / f"p{i}.png", gts[i])
        _save(pred_dir / f"p{i}.png", outs[i])
    result = score_deblur_dirs(pred_dir, gt_dir)
    expected = evaluate_deblurring(outs, gts, names=["p0", "p1"])
    assert result["per_image"] == expected["per_image"]
    assert result["per_image"][0]["mae"] == 0.0 and result["per_image"][1]["mae"] > 0.2
    assert result["pred_dir"] == str(pred_dir) and result["gt_dir"] == str(gt_dir)
    (pred_dir / "p1.png").unlink()
    with pytest.raises(ImageError, match="missing.*p1"):
        score_deblur_dirs(pred_dir, gt_dir)
    _save(pred_dir / "p1.png", outs[1])
    _save(pred_dir / "p9.png", outs[1])
    with pytest.raises(ImageError, match="extra.*p9"):
        score_deblur_dirs(pred_dir, gt_dir)
    (pred_dir / "p9.png").unlink()
    (pred_dir / "p0.png").write_bytes(b"garbage")
    with pytest.raises(ImageError, match="p0.png"):
        score_deblur_dirs(pred_dir, gt_dir)


def test_pooled_psnr_is_not_dominated_by_identical_pairs():
    """One identical pair (100 dB by the cap) lifts the mean of per-image PSNRs by tens of dB, not the pooled one."""
    from apl.metrics.deblurring import evaluate_deblurring
    rng = np.random.default_rng(0)
    sharp = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    noisy = np.clip(sharp[0].astype(int) + rng.integers(-20, 21, sharp[0].shape), 0, 255).astype(np.uint8)
    result = evaluate_deblurring([noisy, sharp[1]], sharp, size=32)
    alone = evaluate_deblurring([noisy], sharp[:1], size=32)
    assert result["psnr"] > alone["psnr"] + 30
    assert abs(result["psnr_pooled"] - (alone["psnr"] + 10 * np.log10(2))) < 0.01
