"""What `apl predict --task deblur` does to photographs, end to end (a benchmark, not a test; run by hand).

Two yardsticks, for each weights file and --resolution given:

* synthetic pairs: scikit-image's colour photographs, each blurred with a Gaussian (sigma 1-3 px at its own
  size) inside random smooth blobs covering 40-70% of it; the PSNR / SSIM of the output to the sharp original,
  minus the input's (a gain above 0: closer to the original than the blurred input);
* CUHK test photographs (12, spread over the names, masks white = blurred): the Laplacian energy of the output
  over the input's in the GT-defocused regions (> 1: sharper), the mean absolute change of the in-focus regions
  and the largest mean colour shift of a channel (8-bit levels).

    python tests/bench_deblur.py --resolutions auto full          # the deblurrer apl ships, with its detector
    python tests/bench_deblur.py --weights results/cuhk/runs/seed0/guard/gsr_O3/weights.pt --resolutions auto full

The map comes from the weights' own G_ws; a file without one (a pretraining stage) takes the G_ws of --gws
(default: the detector apl ships).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from apl.data.layout import pick_stems
from apl.io import read_mask
from apl.data.scale import resize_image
from apl.predict import Model, Upsampler, parse_resolution, read_photo
from apl.pretrained import deblurred, deblurring_scores

ROOT = Path(__file__).resolve().parents[1]
CUHK = ROOT.parent / "shared" / "datasets" / "cuhk"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


def synthetic_pairs(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sharp, blurred) uint8 pairs: Gaussian blur inside smooth random blobs."""
    from skimage import data
    rng = np.random.default_rng(seed)
    pairs = []
    for name in PHOTOS:
        sharp = getattr(data, name)()[..., :3]
        sigma = rng.uniform(1.0, 3.0)
        blurred = gaussian_filter(sharp.astype(np.float64), sigma=(sigma, sigma, 0))
        field = gaussian_filter(rng.standard_normal(sharp.shape[:2]), sigma=max(sharp.shape[:2]) / 8)
        threshold = np.quantile(field, 1 - rng.uniform(0.4, 0.7))
        blob = gaussian_filter((field > threshold).astype(np.float64), sigma=2)[..., None]
        pairs.append((sharp, np.rint(blurred * blob + sharp * (1 - blob)).clip(0, 255).astype(np.uint8)))
    return pairs


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def deblur(model: Model, photo: np.ndarray, upsample_r: bool = False, passes: list[int] | None = None) -> np.ndarray:
    """apl predict's output; with `upsample_r`, the rule before issue 30 for comparison: R brought up from the
    working size and composited, R_up (1 - M) + I M, which loses the photograph's detail below full size. With
    `passes` (longer sides), G_sr runs once at each, every pass on the previous one's output (a lever measured,
    not what apl predict does)."""
    if passes:
        default_side = model.deblur_side
        for side in passes:
            model.deblur_side = side
            photo = deblurred(model, photo)
        model.deblur_side = default_side
        return photo
    if not upsample_r:
        return deblurred(model, photo)
    shape, focus, restoration = model.predict(photo, "deblur")
    height, width = photo.shape[:2]
    small = Upsampler(resize_image(photo, shape, model.resample).astype(np.float32) / 255, height, width)
    m = np.clip(focus.strip(0, height), 0, 1)
    r = np.clip(small.strip(0, height) + restoration.strip(0, height), 0, 1) * 255
    return np.rint(np.clip(r * (1 - m) + photo * m, 0, 255)).astype(np.uint8)


def cuhk_photos(cuhk: Path, count: int, validation: Path | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Photographs and masks (1 = in focus) of CUHK's test split, or of a prepared validation split (images/,
    masks/ white = in focus), on which settings are chosen."""
    if validation is not None:
        names = sorted(p.name for p in (validation / "images").iterdir())
        files = [(validation / "images" / name, validation / "masks" / f"{Path(name).stem}.png", "focus-white")
                 for name in pick_stems(names, count)]
    else:
        names = [row["original_name"] for row in csv.DictReader(open(ROOT / "apl/data/splits/cuhk_test_split.csv"))]
        files = [(cuhk / "image" / name, cuhk / "gt" / f"{Path(name).stem}.png", "blur-white")
                 for name in pick_stems(names, count)]
    return [read_photo(image) for image, _, _ in files], [read_mask(mask, polarity) for _, mask, polarity in files]


def given_map(model: Model, photo: np.ndarray, focus: np.ndarray) -> Model:
    """The model with `focus` (1 = in focus, the photo's size) in place of G_ws's map for this photo."""
    from PIL import Image
    model._focus_small = lambda small: np.asarray(Image.fromarray(focus.astype(np.float32), mode="F").resize(
        (small.shape[1], small.shape[0]), Image.BILINEAR))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, nargs="+", default=None,
                        help="weights holding G_sr (and G_ws); default: the deblurrer apl ships")
    parser.add_argument("--resolutions", nargs="+", default=["auto", "full"])
    parser.add_argument("--cuhk", type=Path, default=CUHK, help="CUHK in its original layout (image/, gt/)")
    parser.add_argument("--count", type=int, default=12, help="CUHK test photographs")
    parser.add_argument("--validation", type=Path, default=None,
                        help="a prepared validation split (e.g. data/cuhk/datasets/val) in place of CUHK's test "
                             "photographs: choose settings there")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gws", type=Path, default=None,
                        help="G_ws for weights that hold none (default: the detector apl ships)")
    parser.add_argument("--map", choices=("gws", "gt", "zeros"), default="gws",
                        help="the map that guards the CUHK photographs: G_ws's (what apl predict does), the GT mask "
                             "(an ideal detector) or 0 everywhere (G_sr alone); the synthetic pairs keep G_ws's")
    parser.add_argument("--passes", type=int, nargs="+", default=None, metavar="SIDE",
                        help="G_sr run once at each longer side, each pass on the previous output (e.g. 640 640); "
                             "replaces the deblurrer's own scale")
    parser.add_argument("--upsampled-r", action="store_true",
                        help="also the rule before issue 30 (R upsampled from the working size), for comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.weights is None:
        from apl.pretrained import deblurrer_path
        args.weights = [deblurrer_path()]
    pairs = synthetic_pairs()
    photos = cuhk_photos(args.cuhk, args.count, args.validation)
    from skimage.metrics import structural_similarity
    print("| weights | --resolution | synthetic PSNR gain (dB) | SSIM gain | CUHK sharpness (out / in, defocused) | "
          "in-focus change (levels) | largest colour shift (levels) |")
    print("|---|---|---|---|---|---|---|")
    for weights in args.weights:
        for resolution in args.resolutions:
            model = Model(weights, device="cpu", resolution=parse_resolution(resolution))
            if "gws" not in model.nets:
                from apl.pretrained import detector_path
                model.nets["gws"] = Model(args.gws or detector_path(), device="cpu").nets["gws"]
            for upsample_r in (False, True) if args.upsampled_r and resolution != "full" else (False,):
                gains, ssims = [], []
                for sharp, blurred in pairs:
                    out = deblur(model, blurred, upsample_r, args.passes)
                    gains.append(psnr(out, sharp) - psnr(blurred, sharp))
                    ssims.append(structural_similarity(out, sharp, channel_axis=2)
                                 - structural_similarity(blurred, sharp, channel_axis=2))
                maps = {id(photo): mask if args.map == "gt" else np.zeros_like(mask) for photo, mask in zip(*photos)}
                real = deblurring_scores(model, *photos, deblur=lambda m, p: deblur(
                    m if args.map == "gws" else given_map(m, p, maps[id(p)]), p, upsample_r, args.passes))
                rule = " (R upsampled, before issue 30)" if upsample_r else ""
                rule += f", passes at {' then '.join(map(str, args.passes))} px" if args.passes else ""
                rule += {"gws": "", "gt": ", GT mask as the map", "zeros": ", M = 0"}[args.map]
                print(f"| {weights} | {resolution}{rule} | {np.mean(gains):+.2f} | {np.mean(ssims):+.4f} | "
                      f"{real['sharpness']:.2f}x | {real['in_focus_change']:.2f} | {real['colour_shift']:.2f} |",
                      flush=True)

if __name__ == "__main__":
    main()
