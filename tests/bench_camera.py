"""Why a deblurrer trained on clean pairs leaves real photographs' blur alone: what a camera adds after the blur
(sensor noise, JPEG) and what G_sr then restores (issue 30; `train.pretrain_camera`). A benchmark, run by hand.

Part 1, for each weights file: scikit-image's photographs blurred whole by a Gaussian (sigma 2 px at their own
size), then given noise or JPEG; how much `apl predict --task deblur` changes them (mean absolute change, 8-bit
levels) and the Laplacian energy of its output over its input's. A deblurrer that takes the camera's noise or
JPEG blocks for detail changes a noisy or compressed blurred photograph far less than a clean one.

Part 2: what CUHK's photographs carry: the JPEG quality their files were saved at (the mean of the luminance
quantisation table, against Pillow's tables for qualities 75-100) and the noise left in their GT-defocused
regions (Immerkaer's estimator on the smoother half of the region's pixels, 8-bit levels).

    python tests/bench_camera.py                                  # the deblurrer apl ships, at full resolution
    python tests/bench_camera.py --weights runs/lever/weights.pt   # a G_sr pretraining (the detector apl ships)
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import binary_erosion, convolve, gaussian_filter

from bench_deblur import CUHK, synthetic_pairs
from apl.io import list_images, read_mask
from apl.predict import Model, parse_resolution, read_photo
from apl.pretrained import deblurred, laplacian_energy
from apl.train.augment import camera

DEGRADATIONS = (("clean", 0.0, None), ("noise 0.5", 0.5, None), ("noise 1", 1.0, None), ("noise 2", 2.0, None),
                ("JPEG 95", 0.0, 95), ("JPEG 85", 0.0, 85), ("JPEG 75", 0.0, 75))
IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def restoration_table(weights: Path, sigma: float, resolution: str) -> None:
    model = Model(weights, device="cpu", resolution=parse_resolution(resolution))
    if "gws" not in model.nets:
        from apl.pretrained import detector_path
        model.nets["gws"] = Model(detector_path(), device="cpu").nets["gws"]
    generator = torch.Generator().manual_seed(0)
    print(f"\n{weights} at --resolution {resolution}: photographs blurred whole (sigma {sigma:g} px), then")
    print("| what the camera adds | mean change (levels) | Laplacian energy, out / in |")
    print("|---|---|---|")
    for label, noise, quality in DEGRADATIONS:
        changes, energy_in, energy_out = [], 0.0, 0.0
        for sharp, _ in synthetic_pairs():
            blurred = np.rint(gaussian_filter(sharp.astype(np.float64), (sigma, sigma, 0))).clip(0, 255).astype(np.uint8)
            # what train.pretrain_camera adds to G_sr's pretraining inputs, at one noise level and quality
            blurred = camera(torch.from_numpy(blurred)[None], [noise, noise], [quality, quality] if quality else None,
                             generator)[0].numpy()
            out = deblurred(model, blurred)
            changes.append(float(np.abs(out.astype(np.float64) - blurred).mean()))
            energy_in, energy_out = energy_in + laplacian_energy(blurred), energy_out + laplacian_energy(out)
        print(f"| {label} | {np.mean(changes):.2f} | {energy_out / energy_in:.2f}x |", flush=True)


def jpeg_quality_of_table(mean_step: float) -> int:
    """The Pillow quality whose luminance table has the closest mean step."""
    steps = {}
    for quality in range(50, 101):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, format="JPEG", quality=quality)
        steps[quality] = float(np.mean(Image.open(buffer).quantization[0]))
    return min(steps, key=lambda quality: abs(steps[quality] - mean_step))


def cuhk_camera(cuhk: Path) -> None:
    qualities, noise = [], []
    for stem, path in list_images(cuhk / "image").items():
        with Image.open(path) as image:
            if image.format == "JPEG":
                qualities.append(jpeg_quality_of_table(float(np.mean(image.quantization[0]))))
        mask_path = cuhk / "gt" / f"{stem}.png"
        if mask_path.is_file():
            defocused = binary_erosion(read_mask(mask_path, "blur-white") < 0.5, iterations=3)
            if defocused.sum() > 1000:
                response = np.abs(convolve(read_photo(path).astype(np.float64).mean(axis=2), IMMERKAER))[defocused]
                noise.append(np.sqrt(np.pi / 2) / 6 * np.percentile(response, 50))
    print(f"\nCUHK ({cuhk}): {len(qualities)} JPEG files, quality (Pillow's nearest table) median "
          f"{np.median(qualities):.0f}, 10th-90th percentile {np.percentile(qualities, 10):.0f}-"
          f"{np.percentile(qualities, 90):.0f}; noise in {len(noise)} GT-defocused regions: median "
          f"{np.median(noise):.2f} levels, 10th-90th percentile {np.percentile(noise, 10):.2f}-"
          f"{np.percentile(noise, 90):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, nargs="+", default=None,
                        help="weights holding G_sr (and G_ws); default: the deblurrer apl ships")
    parser.add_argument("--sigma", type=float, default=2.0)
    parser.add_argument("--cuhk", type=Path, default=CUHK, help="CUHK in its original layout (image/, gt/)")
    parser.add_argument("--resolution", default="full",
                        help="apl predict's --resolution (default full: G_sr sees the blur, noise and JPEG blocks "
                             "at their own scale, as it sees CUHK's at 640 px)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.weights is None:
        from apl.pretrained import deblurrer_path
        args.weights = [deblurrer_path()]
    for weights in args.weights:
        restoration_table(weights, args.sigma, args.resolution)
    if (args.cuhk / "image").is_dir():
        cuhk_camera(args.cuhk)


if __name__ == "__main__":
    main()
