"""What `apl predict --task deblur` does to photographs, end to end (a benchmark, not a test; run by hand).

Two yardsticks, for each weights file and --resolution given:

* synthetic pairs: scikit-image's colour photographs, each blurred with a Gaussian (sigma 1-3 px at its own
  size) inside random smooth blobs covering 40-70% of it; the PSNR / SSIM of the output to the sharp original,
  minus the input's (a gain above 0: closer to the original than the blurred input);
* CUHK test photographs (12, spread over the names, masks white = blurred): the Laplacian energy of the output
  over the input's in the GT-defocused regions (> 1: sharper), and in their interior (INTERIOR_PX from the in-focus
  regions: the Laplacian of an in-focus edge spills onto the defocused side's first pixels; --bands shows where the
  energy lies), the mean absolute change of the in-focus regions and the largest mean colour shift of a channel
  (8-bit levels).

    python tests/bench_deblur.py --resolutions auto full          # the deblurrer apl ships, with its detector
    python tests/bench_deblur.py --weights results/cuhk/runs/seed0/guard/gsr_O3/weights.pt --resolutions auto full
    python tests/bench_deblur.py --keep-mean 8 0     # with and without the local mean kept (apl predict --keep-mean)

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
from apl.pretrained import (INTERIOR_PX, deblurred, deblurring_scores, distance_from_focus, laplacian_energy,
                            laplacian_squared)

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


BANDS = (0, 2, 4, 8, 16)   # px from the nearest in-focus pixel


def energy_bands(model: Model, photos: list[np.ndarray], masks: list[np.ndarray], deblur) -> str:
    """A table of the defocused regions by distance from the in-focus ones: share of their area and of the
    input's Laplacian energy there, and the output's energy over the input's."""
    edges = (*BANDS, np.inf)
    totals = np.zeros((len(BANDS), 3))   # area, input energy, output energy
    for photo, mask in zip(photos, masks):
        out = deblur(model, photo)
        distance = distance_from_focus(mask)
        for row, (near, far) in enumerate(zip(edges[:-1], edges[1:])):
            band = (distance > near) & (distance <= far)
            totals[row] += band.sum(), laplacian_energy(photo, band), laplacian_energy(out, band)
    lines = ["| px from the in-focus regions | share of the defocused area | share of its Laplacian energy | "
             "output / input |", "|---|---|---|---|"]
    for row, (near, far) in enumerate(zip(edges[:-1], edges[1:])):
        area, energy_in, energy_out = totals[row]
        lines.append(f"| {near:g}-{far:g} | {area / totals[:, 0].sum():.2f} | {energy_in / totals[:, 1].sum():.2f} | "
                     f"{energy_out / max(energy_in, 1e-12):.2f}x |".replace("-inf", "+"))
    return "\n".join(lines)


CROP = 112


def crop_windows(photos: list[np.ndarray], masks: list[np.ndarray]) -> list[tuple[int, int]]:
    """(top, left) of the CROP x CROP window with the most Laplacian energy at least 16 px inside each
    photograph's defocused region."""
    from scipy.ndimage import uniform_filter
    corners = []
    for photo, mask in zip(photos, masks):
        energy = uniform_filter(laplacian_squared(photo) * (distance_from_focus(mask) > 16), CROP)
        half = CROP // 2
        valid = energy[half:photo.shape[0] - half, half:photo.shape[1] - half]
        top, left = np.unravel_index(np.argmax(valid), valid.shape)
        corners.append((int(top), int(left)))
    return corners


def save_crops(path: Path, columns: list[tuple[str, list[np.ndarray]]]) -> None:
    """Columns of crops (a label over each), scaled 3x without smoothing, so grain and halos show."""
    from PIL import Image, ImageDraw
    scale, label_height = 3, 16
    width = CROP * scale
    sheet = Image.new("RGB", (len(columns) * (width + 4), label_height + len(columns[0][1]) * (width + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, (label, crops) in enumerate(columns):
        draw.text((col * (width + 4) + 2, 2), label[:60], fill="black")
        for row, crop in enumerate(crops):
            tile = Image.fromarray(crop).resize((width, width), Image.NEAREST)
            sheet.paste(tile, (col * (width + 4), label_height + row * (width + 4)))
    sheet.save(path)
    print(f"crops -> {path}")


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
    parser.add_argument("--keep-mean", type=float, nargs="+", default=[None], metavar="SIGMA",
                        help="apl predict's --keep-mean, each value a row (default: apl predict's; 0: G_sr's change as "
                             "it is, with its cast)")
    parser.add_argument("--bands", action="store_true",
                        help="also where the CUHK photographs' defocused Laplacian energy lies: its share and the "
                             "output's ratio by distance from the in-focus regions")
    parser.add_argument("--crops", type=Path, default=None, metavar="PNG",
                        help="also a picture: for the first 4 CUHK photographs, the defocused window (well inside the "
                             "region) with the most detail, the input and every row's output side by side, 3x")
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
    shown = photos[0][:4]
    corners = crop_windows(shown, photos[1][:4]) if args.crops else []

    def crops(images):
        return [image[top:top + CROP, left:left + CROP] for image, (top, left) in zip(images, corners)]
    columns = [("input", crops(shown))]
    print("| weights | --resolution | synthetic PSNR gain (dB) | SSIM gain | CUHK sharpness (out / in, defocused) | "
          f"the same, {INTERIOR_PX} px inside | in-focus change (levels) | largest colour shift (levels) |")
    print("|---|---|---|---|---|---|---|---|")
    for weights in args.weights:
        for resolution, keep_mean in ((r, k) for r in args.resolutions for k in args.keep_mean):
            model = Model(weights, device="cpu", resolution=parse_resolution(resolution), keep_mean=keep_mean)
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
                outputs = {}   # each photo deblurred once for this row: the scores, the bands and the crops share it

                def run(m, p, upsample_r=upsample_r, outputs=outputs):
                    if id(p) not in outputs:
                        outputs[id(p)] = deblur(m if args.map == "gws" else given_map(m, p, maps[id(p)]), p,
                                                upsample_r, args.passes)
                    return outputs[id(p)]
                real = deblurring_scores(model, *photos, deblur=run)
                rule = " (R upsampled, before issue 30)" if upsample_r else ""
                rule += f", passes at {' then '.join(map(str, args.passes))} px" if args.passes else ""
                rule += {"gws": "", "gt": ", GT mask as the map", "zeros": ", M = 0"}[args.map]
                rule += f", --keep-mean {keep_mean:g}" if args.keep_mean != [None] else ""
                print(f"| {weights} | {resolution}{rule} | {np.mean(gains):+.2f} | {np.mean(ssims):+.4f} | "
                      f"{real['sharpness']:.2f}x | {real['sharpness_interior']:.2f}x | {real['in_focus_change']:.2f} | "
                      f"{real['colour_shift']:.2f} |", flush=True)
                if args.crops:
                    name = Path(weights).stem if Path(weights).stem != "weights" else "/".join(Path(weights).parts[-4:-1])
                    columns.append((f"{name} {resolution}{rule}", crops([run(model, photo) for photo in shown])))
                if args.bands:
                    print(energy_bands(model, *photos, run))

    if args.crops:
        save_crops(args.crops, columns)


if __name__ == "__main__":
    main()
