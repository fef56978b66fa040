"""Defocus deblurring metrics under the authors' protocol (REFERENCE.md section 5, the release's evaluate.py).

Per image, the output and the sharp ground truth are converted to 8-bit RGB and resized to size x size
(Pillow bicubic, rounded back to 8 bit), then scaled to [0, 1]:

* PSNR: skimage.metrics.peak_signal_noise_ratio(gt, out, data_range=1). Identical images (MSE = 0) are
  reported as 100 dB, the cap the release intended, instead of scikit-image's inf (which is not valid JSON).
* SSIM: skimage.metrics.structural_similarity(gt, out, data_range=1, channel_axis=-1) (uniform 7x7 window,
  the per-channel SSIMs averaged).
* MAE: mean absolute error over all pixels of the three channels.

The dataset scores are plain means over images. Because both images are resized, a prediction and its
ground truth may differ in size (e.g. a model's 160x160 output against the 1680x1120 DPDD target); the
aspect ratio is not preserved, exactly as in the release.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from apl.io import read_image
from apl.metrics.detection import match_stems

PSNR_IDENTICAL = 100.0  # dB reported when output and ground truth are identical after resizing


def _resize_rgb(image: np.ndarray, size: int, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"{what}: expected a uint8 RGB array HxWx3, got {image.dtype} {image.shape}")
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image, mode="RGB").resize((size, size), Image.BICUBIC))
    return image.astype(np.float64) / 255.0


def score_pair(pred: np.ndarray, gt: np.ndarray, size: int = 160, what: str = "image") -> dict:
    """PSNR, SSIM and MAE of one output against its ground truth (both uint8 RGB, any size)."""
    out = _resize_rgb(pred, size, f"prediction {what}")
    ref = _resize_rgb(gt, size, f"ground truth {what}")
    if np.array_equal(out, ref):
        psnr = PSNR_IDENTICAL
    else:
        psnr = float(peak_signal_noise_ratio(ref, out, data_range=1))
    ssim = float(structural_similarity(ref, out, data_range=1, channel_axis=-1))
    mae = float(np.abs(ref - out).mean())
    return {"psnr": psnr, "ssim": ssim, "mae": mae}


def evaluate_deblurring(
    preds: list[np.ndarray], gts: list[np.ndarray], size: int = 160, names: list[str] | None = None
) -> dict:
    """Mean PSNR / SSIM / MAE over image pairs, with the per-image values (named by `names` or by index)."""
    preds, gts = list(preds), list(gts)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} ground-truth images")
    if not preds:
        raise ValueError("no images to evaluate")
    if names is None:
        names = [str(index) for index in range(len(preds))]
    names = [str(name) for name in names]
    if len(names) != len(preds):
        raise ValueError(f"{len(names)} names for {len(preds)} images")
    if int(size) < 7:  # SSIM's 7x7 window needs at least 7 pixels a side
        raise ValueError(f"size must be at least 7, got {size}")
    size = int(size)

    per_image = []
    for name, pred, gt in zip(names, preds, gts):
        per_image.append({"name": name, **score_pair(pred, gt, size, what=name)})
    # PSNR of the mean squared error over all images: a pair whose input is already (almost) sharp scores
    # ~100 dB per image and dominates the mean of per-image PSNRs; the pooled value weighs errors, not ratios
    mse = np.mean([10.0 ** (-row["psnr"] / 10.0) for row in per_image])
    return {
        "psnr": float(np.mean([row["psnr"] for row in per_image])),
        "psnr_pooled": float(10.0 * np.log10(1.0 / max(mse, 1e-10))),
        "ssim": float(np.mean([row["ssim"] for row in per_image])),
        "mae": float(np.mean([row["mae"] for row in per_image])),
        "n_images": len(per_image),
        "per_image": per_image,
    }


def score_deblur_dirs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, size: int = 160,
                      pred_suffix: str = "") -> dict:
    """evaluate_deblurring over two folders matched by stem, plus pred_dir and gt_dir.

    A missing or extra file, or an unreadable image, is an apl.io.ImageError naming it. A prediction and its
    ground truth may have different sizes: both are resized to size x size before scoring.
    """
    pairs = match_stems(pred_dir, gt_dir, pred_suffix)
    names = [stem for stem, _, _ in pairs]
    preds = [read_image(pred_path) for _, pred_path, _ in pairs]
    gts = [read_image(gt_path) for _, _, gt_path in pairs]
    result = evaluate_deblurring(preds, gts, size=size, names=names)
    result.update(pred_dir=str(pred_dir), gt_dir=str(gt_dir))
    return result
