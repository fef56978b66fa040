"""How much blur CUHK's defocused regions have, in pixels of the profile's scale: the range G_sr's
pretraining pairs should cover (issue 30; `synthesis.sigma` in config/cuhk.yaml).

The estimator is the edge-based one of Zhuo and Sim (2011): at an edge, blurring once more with a known
Gaussian (sigma0) lowers the gradient's size by R = sqrt(sigma^2 + sigma0^2) / sigma for a step edge blurred
by sigma, so sigma = sigma0 / sqrt(R^2 - 1). Real edges are not ideal steps, so the estimator is first
calibrated: full-clear photographs (the held-out ones, which the pipeline never trains on) are blurred whole
with known sigmas and the estimate's median is read against the truth. Then each CUHK training photograph's
GT-defocused region (eroded away from its border) gets the median estimate over its edge pixels, turned into
a sigma through the calibration; in-focus regions are measured the same way, as the estimator's floor.

    python tests/bench_blur_range.py                      # needs the prepared datasets (data/cuhk/datasets)
    python tests/bench_blur_range.py --longer-side 320 --images 200
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.feature import canny

from apl.data.scale import resize_image
from apl.data.synthesis import gaussian_blur
from apl.io import list_images, read_image

SIGMA0 = 1.0            # the re-blur
TRUE_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0)
MIN_EDGES = 30          # a region with fewer edge pixels gives no estimate


def at_longer_side(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    return resize_image(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def grey(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def edge_ratios(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge mask, per-pixel sigma estimate) of a uint8 image; the estimate is nan off edges."""
    g = grey(image)
    magnitude = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))
    reblurred = ndimage.gaussian_filter(g, SIGMA0)
    magnitude2 = np.hypot(ndimage.sobel(reblurred, 0), ndimage.sobel(reblurred, 1))
    # low thresholds: blurred regions have weak edges; canny's own smoothing is kept small
    edges = canny(g, sigma=1.0, low_threshold=2.0, high_threshold=6.0) & (magnitude > 8.0)
    ratio = magnitude / np.maximum(magnitude2, 1e-6)
    sigma = np.full(g.shape, np.nan)
    good = edges & (ratio > 1.0 + 1e-3)
    sigma[good] = SIGMA0 / np.sqrt(ratio[good] ** 2 - 1.0)
    return edges, sigma


def region_estimate(sigma: np.ndarray, region: np.ndarray) -> float:
    values = sigma[region & np.isfinite(sigma)]
    return float(np.median(values)) if values.size >= MIN_EDGES else float("nan")


def calibrate(folder: Path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The estimator's median (and spread over photographs) for each true sigma."""
    medians, spreads = [], []
    photos = [at_longer_side(read_image(p), side) for p in list_images(folder).values()]
    for true in TRUE_SIGMAS:
        per_photo = []
        for photo in photos:
            blurred = np.clip(np.rint(gaussian_blur(photo, true, window=2 * int(np.ceil(3 * true)) + 1)), 0, 255)
            _, sigma = edge_ratios(blurred.astype(np.uint8))
            per_photo.append(region_estimate(sigma, np.ones(sigma.shape, bool)))
        per_photo = np.array(per_photo)
        medians.append(np.nanmedian(per_photo))
        spreads.append(np.nanstd(per_photo))
    return np.array(TRUE_SIGMAS), np.array(medians), np.array(spreads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("data/cuhk/datasets"))
    parser.add_argument("--longer-side", type=int, default=320, help="the profile's scale (scale.longer_side)")
    parser.add_argument("--images", type=int, default=0, help="at most this many training photographs (0: all)")
    parser.add_argument("--erode", type=int, default=4, help="pixels kept away from a region's border")
    args = parser.parse_args(argv)
    train, masks, heldout = (args.datasets / n for n in ("train", "train_masks", "heldout/target"))
    for folder in (train, masks, heldout):
        if not folder.is_dir():
            sys.exit(f"{folder} is missing: prepare the real-data profile's datasets first "
                     "(snakemake --cores 2 --configfile config/cuhk.yaml -- data/cuhk/datasets/manifest.json)")

    true, measured, spread = calibrate(heldout, args.longer_side)
    print(f"calibration on {len(list_images(heldout))} held-out full-clear photographs at longer side "
          f"{args.longer_side}: true sigma -> estimate (std over photographs)")
    for t, m, s in zip(true, measured, spread):
        print(f"  {t:5.1f} -> {m:5.2f} ({s:.2f})")
    if np.any(np.diff(measured) <= 0):
        print("  note: the estimate is not monotonic in sigma beyond some point; larger values saturate")
    monotonic = np.concatenate([[True], np.diff(measured) > 0]).cumprod().astype(bool)

    def to_true(estimate: float) -> float:   # the calibration curve, inverted (clipped to its ends)
        return float(np.interp(estimate, measured[monotonic], true[monotonic]))

    mask_files = list_images(masks)
    photos = list(list_images(train).values())[: args.images or None]
    defocused, focused = [], []
    for path in photos:
        image = at_longer_side(read_image(path), args.longer_side)
        mask = read_image(mask_files[path.stem])
        mask = resize_image(mask[..., 0] if mask.ndim == 3 else mask, image.shape[:2]) > 127   # in focus
        _, sigma = edge_ratios(image)
        blurred_region = ndimage.binary_erosion(~mask, iterations=args.erode)
        focus_region = ndimage.binary_erosion(mask, iterations=args.erode)
        defocused.append(region_estimate(sigma, blurred_region))
        focused.append(region_estimate(sigma, focus_region))
    defocused, focused = np.array(defocused), np.array(focused)
    d = defocused[np.isfinite(defocused)]
    f = focused[np.isfinite(focused)]
    d_true = np.array([to_true(v) for v in d])
    qs = (5, 10, 25, 50, 75, 90, 95)
    print(f"\nCUHK training photographs: {len(photos)}; with an estimate: defocused regions {d.size}, "
          f"in-focus regions {f.size}")
    print("percentiles           " + "  ".join(f"{q:>5}" for q in qs))
    print("in focus, estimate    " + "  ".join(f"{v:5.2f}" for v in np.percentile(f, qs)))
    print("defocused, estimate   " + "  ".join(f"{v:5.2f}" for v in np.percentile(d, qs)))
    print("defocused, sigma (px) " + "  ".join(f"{v:5.2f}" for v in np.percentile(d_true, qs)))
    print(f"share of defocused regions above the calibration's top ({true[monotonic][-1]:.1f} px): "
          f"{np.mean(d >= measured[monotonic][-1]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
