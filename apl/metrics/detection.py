"""Defocus blur detection metrics: the authors' protocol (F_max, MAE, PR curve) and the salient-object one.

Authors' protocol (REFERENCE.md section 5, the release's MATLAB `evaluate_dbd`), per image:

* F_max: the prediction is resized (bicubic) to the ground-truth size, negative values are set to 0 and
  the map is divided by its own maximum (an all-zero map stays zero). Positives are GT >= 0.1. For the
  thresholds t_i = i/255, i = 1..255, a pixel is predicted in focus when map >= t_i;
  F = (1 + b2) P R / (b2 P + R) with b2 = 0.3, and the image keeps its maximum F over the thresholds.
  F_max is the mean over images of these per-image maxima.
* MAE: the GT is resized to `mae_size` x `mae_size` as an 8-bit image (bicubic, rounded) and binarised at
  >= 125/255; the prediction is resized to the same size, clipped to [0, 1] and NOT max-normalised;
  mean absolute difference per image, averaged over images.
* PR curve: precision and recall at PR_THRESHOLDS (1.00, 0.95, ..., 0.00) with map >= t on the same
  max-normalised map as F_max, averaged over images; the F-measure curve is 1.3 P R / (0.3 P + R) of the
  averages.
* Degenerate cases (the release's convention): whenever no pixel is both predicted and truly in focus
  (TP = 0, which includes "nothing predicted positive"), precision = recall = F = 0. No NaN is produced.
* All-negative GT (no pixel >= 0.1): the image is scored on the inverted map (1 - normalised map, thresholded
  with the same >= rule) against an all-ones GT, for F_max and the PR curve alike. (The release inverts only
  at the first F threshold because its loop overwrites the GT; we apply the intended inversion everywhere.)

The salient-object convention is computed with pysodmetrics (`fmax_sod`: maximum of the image-averaged F
curve of its `Fmeasure` class; `mae_sod`: its `MAE`), with prediction (resized to GT size, clipped, not
max-normalised) and GT given as uint8 0-255 at GT size; pysodmetrics min-max normalises the map itself and
takes GT > 128 as positive.

Known differences from the release's MATLAB code (all deliberate, all small):

* thresholds are exactly i/255; the release uses i * 0.00392157, a hair above i/255, which for 8-bit maps
  turns `>= i/255` into `> i/255` (its sweep skips "every non-zero pixel" and ends with an empty prediction);
* the all-negative-GT inversion is applied at every threshold (see above);
* the MAE prediction is clipped to [0, 1] after the bicubic resize (the release keeps the overshoot);
* every image counts in the means; the release drops all-zero prediction maps from the denominator while
  still adding their scores to the sum;
* bicubic resizing is Pillow's (Keys a = -0.5, antialiased when shrinking), close to but not bit-identical
  with MATLAB's imresize.

All threshold sweeps are vectorised: each pixel gets the index of the highest threshold it reaches (exact
``>=`` comparisons), a bincount splits those indices by GT label, and reversed cumulative sums give the
true-positive and predicted-positive counts at every threshold at once.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from apl.io import POLARITIES, ImageError, list_images, read_mask

BETA2 = 0.3
GT_POSITIVE = 0.1  # detection positives: GT >= 0.1 on [0, 1]
MAE_GT_LEVEL = 125  # MAE ground truth: 8-bit resized GT >= 125
F_LEVELS = 255  # F thresholds i / 255, i = 1..255
PR_LEVELS = 20  # PR thresholds j / 20, j = 20..0
F_THRESHOLDS = np.arange(1, F_LEVELS + 1) / float(F_LEVELS)
PR_THRESHOLDS = np.arange(PR_LEVELS, -1, -1) / float(PR_LEVELS)  # 1.00, 0.95, ..., 0.00 (21 values)

# Pillow modes a prediction file may have; everything else (CMYK, YCbCr, LAB, HSV, 32-bit int/float) is refused.
_PRED_MODES_8BIT = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"}
_PRED_MODES_16BIT = {"I;16", "I;16B", "I;16L"}


# ----------------------------------------------------------------------------------------------- helpers
def _as_map(array: np.ndarray, what: str) -> np.ndarray:
    """A 2-D float64 map in [0, 1] scale: uint8 is divided by 255, HxWx1 is squeezed; NaN/inf refused."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{what}: expected a non-empty 2-D map, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == bool:
        return array.astype(np.float64)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: map contains NaN or inf")
    return array


def _resize_float(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic (Pillow, antialiased when shrinking) resize of a float map to `shape` = (H, W); float64 out."""
    if array.shape == tuple(shape):
        return array
    image = Image.fromarray(array.astype(np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.BICUBIC), dtype=np.float64)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _levels(values: np.ndarray, n: int) -> np.ndarray:
    """For v in [0, 1], the largest i in 0..n with i/n <= v (exact float comparison with the thresholds i/n)."""
    level = np.floor(values * n)
    np.clip(level, 0, n, out=level)
    # floor(v * n) can be off by one against the correctly rounded threshold i/n; fix with exact compares
    # (for level = n the next threshold (n+1)/n > 1 >= v, so no pixel moves past n).
    threshold = level + 1.0
    threshold /= n
    level += values >= threshold
    np.divide(level, n, out=threshold)
    level -= values < threshold
    return level.astype(np.intp)


def _counts(level: np.ndarray, positive: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(TP, predicted positives) for thresholds i/n, i = 0..n: pixels whose level is >= i."""
    hist = np.bincount((level.ravel() << 1) | positive.ravel(), minlength=2 * (n + 1)).reshape(n + 1, 2)
    tp = np.cumsum(hist[::-1, 1])[::-1]
    pp = np.cumsum(hist[::-1].sum(axis=1))[::-1]
    return tp, pp


def _precision_recall(tp: np.ndarray, pp: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall; both 0 wherever TP = 0 (nothing predicted, or nothing predicted correctly)."""
    hit = tp > 0
    precision = np.where(hit, tp / np.maximum(pp, 1), 0.0)
    recall = np.where(hit, tp / max(n_pos, 1), 0.0)
    return precision, recall


def f_measure(precision, recall, beta2: float = BETA2) -> np.ndarray:
    """(1 + b2) P R / (b2 P + R), 0 where the denominator is 0."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    denominator = beta2 * precision + recall
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, (1.0 + beta2) * precision * recall / safe, 0.0)


def _authors_image(pred: np.ndarray, gt: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Per-image F_max and the PR_THRESHOLDS precision/recall under the authors' protocol."""
    score = _resize_float(pred, gt.shape)
    score = np.maximum(score, 0.0)
    peak = score.max()
    if peak > 0:
        score = score / peak
    positive = gt >= GT_POSITIVE
    if not positive.any():  # all-negative GT: inverted map against an all-ones GT
        score = 1.0 - score
        positive = np.ones_like(positive)
    positive = positive.astype(np.intp)
    n_pos = int(positive.sum())

    tp, pp = _counts(_levels(score, F_LEVELS), positive, F_LEVELS)
    precision, recall = _precision_recall(tp[1:], pp[1:], n_pos)  # thresholds 1/255 .. 255/255
    fmax = float(f_measure(precision, recall).max())

    tp, pp = _counts(_levels(score, PR_LEVELS), positive, PR_LEVELS)
    precision, recall = _precision_recall(tp[::-1], pp[::-1], n_pos)  # order of PR_THRESHOLDS: 1.00 .. 0.00
    return fmax, precision, recall


def _mae_image(pred: np.ndarray, gt: np.ndarray, size: int) -> float:
    score = np.clip(_resize_float(pred, (size, size)), 0.0, 1.0)
    gt8 = Image.fromarray(_to_uint8(gt), mode="L")
    if gt8.size != (size, size):
        gt8 = gt8.resize((size, size), Image.BICUBIC)
    target = (np.asarray(gt8) >= MAE_GT_LEVEL).astype(np.float64)
    return float(np.abs(score - target).mean())


# ------------------------------------------------------------------------------------------- public API
def evaluate_detection(preds: list[np.ndarray], gts: list[np.ndarray], mae_size: int = 160) -> dict:
    """Score focus maps against GT masks (both 1 = in focus) under the authors' and the SOD protocols.

    preds: float maps in [0, 1] of any size (uint8 maps are divided by 255); gts: masks in [0, 1] at their
    stored size. Returns a JSON-serialisable dict: fmax, mae (authors'), fmax_sod, mae_sod (pysodmetrics),
    pr_curve {threshold, precision, recall, fmeasure} (21 points, thresholds 1.00 .. 0.00), n_images.
    """
    import py_sod_metrics

    preds, gts = list(preds), list(gts)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} ground-truth masks")
    if not preds:
        raise ValueError("no images to evaluate")
    if int(mae_size) < 1:
        raise ValueError(f"mae_size must be a positive integer, got {mae_size}")
    mae_size = int(mae_size)

    with warnings.catch_warnings():  # pysodmetrics announces Fmeasure's future removal on construction
        warnings.simplefilter("ignore")
        sod_f = py_sod_metrics.Fmeasure()
    sod_mae = py_sod_metrics.MAE()

    fmaxes, maes = [], []
    precisions = np.zeros((len(preds), len(PR_THRESHOLDS)))
    recalls = np.zeros_like(precisions)
    for index, (pred, gt) in enumerate(zip(preds, gts)):
        pred = _as_map(pred, f"prediction {index}")
        gt = _as_map(gt, f"ground truth {index}")
        at_gt_size = _resize_float(pred, gt.shape)
        fmax, precisions[index], recalls[index] = _authors_image(at_gt_size, gt)
        fmaxes.append(fmax)
        maes.append(_mae_image(pred, gt, mae_size))

        pred_u8 = _to_uint8(at_gt_size)
        gt_u8 = _to_uint8(gt)
        sod_f.step(pred=pred_u8, gt=gt_u8)
        sod_mae.step(pred=pred_u8, gt=gt_u8)

    sod = sod_f.get_results()
    mean_p = precisions.mean(axis=0)
    mean_r = recalls.mean(axis=0)
    return {
        "fmax": float(np.mean(fmaxes)),
        "mae": float(np.mean(maes)),
        "fmax_sod": float(np.max(sod["fm"]["curve"])),
        "mae_sod": float(sod_mae.get_results()["mae"]),
        "pr_curve": {
            "threshold": PR_THRESHOLDS.tolist(),
            "precision": mean_p.tolist(),
            "recall": mean_r.tolist(),
            "fmeasure": f_measure(mean_p, mean_r).tolist(),
        },
        "n_images": len(preds),
    }


def match_stems(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, pred_suffix: str = "") -> list[tuple[str, Path, Path]]:
    """Pair the images of two folders by stem; a missing or extra prediction is an ImageError naming it.

    `pred_suffix` is removed from the end of prediction stems first (methods that save `<name>_focus.png`).
    """
    preds = list_images(pred_dir)
    if pred_suffix:
        preds = {stem[:-len(pred_suffix)] if stem.endswith(pred_suffix) else stem: path for stem, path in preds.items()}
    gts = list_images(gt_dir)
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing from {pred_dir} (present in {gt_dir}): {_name_list(missing, gts)}")
        if extra:
            problems.append(f"extra in {pred_dir} (no ground truth in {gt_dir}): {_name_list(extra, preds)}")
        raise ImageError("predictions do not match ground truth by file stem; " + "; ".join(problems))
    return [(stem, preds[stem], gts[stem]) for stem in sorted(gts)]


def _name_list(stems: list[str], paths: dict[str, Path], limit: int = 20) -> str:
    names = [paths[stem].name for stem in stems[:limit]]
    more = f" and {len(stems) - limit} more" if len(stems) > limit else ""
    return f"{len(stems)} file(s): " + ", ".join(names) + more


def read_prediction(path: str | os.PathLike, polarity: str = "focus-white") -> np.ndarray:
    """Read a predicted map as a focus map, float64 HxW in [0, 1], 1 = in focus.

    8-bit /255, 16-bit /65535, colour via luma, 32-bit float as stored (values in [0, 1]).
    `polarity` says what white means in the file: "focus-white" (kept) or "blur-white" (inverted).
    """
    if polarity not in POLARITIES:
        raise ValueError(f"unknown prediction polarity {polarity!r} for {path}; use one of {POLARITIES}")
    values = _read_prediction(path)
    return 1.0 - values if polarity == "blur-white" else values


def _read_prediction(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ImageError(f"prediction not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"cannot read prediction {path}: {err}; replace the file with a valid image") from None
    if image.mode in _PRED_MODES_16BIT or image.mode == "I":  # 16-bit grey (Pillow may open it as "I")
        values = np.asarray(image, dtype=np.float64).reshape(image.size[1], image.size[0])
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(f"prediction {path} has values outside 0..65535; save it as an 8- or 16-bit map")
        return values / 65535.0
    if image.mode == "F":  # 32-bit float maps (TIFF), as many methods' MATLAB/Python code saves them
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < -1e-3 or values.max() > 1 + 1e-3:
            raise ImageError(f"prediction {path} is a float map with values outside [0, 1] (or NaN); save it scaled "
                             "to [0, 1], or as an 8- or 16-bit image")
        return np.clip(values, 0.0, 1.0)
    if image.mode not in _PRED_MODES_8BIT:
        raise ImageError(
            f"prediction {path} has image mode {image.mode!r}, which is not a grey or RGB map; "
            "save focus maps as 8-bit greyscale (or 8/16-bit grey, RGB) images"
        )
    if image.mode in ("RGBA", "RGBX", "PA", "LA", "P"):
        image = image.convert("RGB")
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def score_detection_dirs(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, gt_polarity: str, mae_size: int = 160,
    pred_polarity: str = "focus-white", pred_suffix: str = "",
) -> dict:
    """evaluate_detection over two folders matched by stem, plus pred_dir, gt_dir and gt_polarity.

    Predictions may have any size (they are resized to the GT size, as in the protocol); colour predictions
    are converted to grey by luma; GT masks are read with `gt_polarity` ("focus-white" or "blur-white"),
    predictions with `pred_polarity` (many methods publish blur maps: blur-white).
    """
    if gt_polarity not in POLARITIES:
        raise ValueError(f"unknown ground-truth polarity {gt_polarity!r}; use one of {POLARITIES}")
    pairs = match_stems(pred_dir, gt_dir, pred_suffix)
    preds = [read_prediction(pred_path, pred_polarity) for _, pred_path, _ in pairs]
    gts = [read_mask(gt_path, gt_polarity) for _, _, gt_path in pairs]
    result = evaluate_detection(preds, gts, mae_size=mae_size)
    result.update(pred_dir=str(pred_dir), gt_dir=str(gt_dir), gt_polarity=gt_polarity, pred_polarity=pred_polarity)
    return result
