"""Which working resolution gives better focus maps on real photographs (not a test; run by hand).

Runs `apl predict`'s detector at several --resolution settings on real photographs with masks and scores the
full-size maps with the authors' protocol (F_max, MAE at 160x160) and the salient-object one. By default the
photographs are CUHK's 100 test images (the names of apl/data/splits/cuhk_test_split.csv; masks white =
blurred) and the detector is the one apl ships (docs/model.md). `--photo-sizes` first resizes every photograph
to those longer sides (bicubic), as people's photographs come at every size; the masks stay as they are.

    python tests/bench_resolution.py [--weights W] [--resolutions auto train 400 full] [--photo-sizes native 400 1000]
    python tests/bench_resolution.py --images data/cuhk/datasets/val/images --gt data/cuhk/datasets/val/masks \\
        --gt-polarity focus-white --photo-sizes native 400 1000      # the validation split: choose settings here
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from apl.io import list_images
from apl.metrics.detection import score_detection_dirs
from apl.predict import Model, parse_resolution, read_photo, save
from apl.data.scale import resize_image

ROOT = Path(__file__).resolve().parents[1]
CUHK = ROOT.parent / "shared" / "datasets" / "cuhk"


def at_size(photo: np.ndarray, size: str) -> np.ndarray:
    if size == "native":
        return photo
    scale = int(size) / max(photo.shape[:2])
    return resize_image(photo, (round(photo.shape[0] * scale), round(photo.shape[1] * scale)))


def reference_rows(photos: dict[str, Path], gt_dir: Path, polarity: str, tmp: Path) -> None:
    from apl import config as config_module
    from apl.priors import prior_map
    prior = config_module.load([ROOT / "config" / "config.yaml"])["prior"]
    for label, make in (("(all in focus)", lambda photo: np.ones(photo.shape[:2], np.float32)),
                        ("(LBP prior B(I), photo size)", lambda photo: prior_map(photo, prior))):
        maps = tmp / label.strip("()").split(",")[0].replace(" ", "_")
        for stem, path in photos.items():
            save(maps / f"{stem}.png", np.rint(make(read_photo(path)) * 255).astype(np.uint8))
        s = score_detection_dirs(maps, gt_dir, polarity)
        print(f"| native | {label} | {s['fmax']:.4f} | {s['mae']:.4f} | {s['fmax_sod']:.4f} | {s['mae_sod']:.4f} | |",
              flush=True)


def cuhk_test(cuhk: Path, tmp: Path) -> tuple[dict[str, Path], Path]:
    """CUHK's test photographs and a folder of only their masks, so every map has its GT and vice versa."""
    names = [row["original_name"] for row in csv.DictReader(open(ROOT / "apl/data/splits/cuhk_test_split.csv"))]
    gt_dir = tmp / "gt"
    gt_dir.mkdir()
    for name in names:
        (gt_dir / f"{Path(name).stem}.png").symlink_to(cuhk / "gt" / f"{Path(name).stem}.png")
    return {Path(name).stem: cuhk / "image" / name for name in names}, gt_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="default: the detector apl ships")
    parser.add_argument("--cuhk", type=Path, default=CUHK, help="CUHK in its original layout (image/, gt/)")
    parser.add_argument("--images", type=Path, default=None, help="instead of CUHK's test images: a folder of photos")
    parser.add_argument("--gt", type=Path, default=None, help="their masks (same names)")
    parser.add_argument("--gt-polarity", choices=("focus-white", "blur-white"), default="blur-white")
    parser.add_argument("--resolutions", nargs="+", default=["auto", "train", "full"])
    parser.add_argument("--photo-sizes", nargs="+", default=["native"],
                        help="longer sides the photographs are resized to first (native: as they are)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--references", action="store_true",
                        help="also score an all-in-focus map and the LBP blur prior B(I) (what G_ws learns from)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.weights is None:
        from apl.pretrained import detector_path
        args.weights = detector_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.images is not None:
            photos, gt_dir = list_images(args.images), args.gt
        else:
            photos, gt_dir = cuhk_test(args.cuhk, tmp)
        print(f"{args.weights}: {len(photos)} photographs of {args.images or 'CUHK test'}")
        print("| photo's longer side | --resolution | F_max | MAE | F_max (SOD) | MAE (SOD) | s/image |")
        print("|---|---|---|---|---|---|---|")
        if args.references:
            reference_rows(photos, gt_dir, args.gt_polarity, tmp)
        for size in args.photo_sizes:
            for resolution in args.resolutions:
                model = Model(args.weights, device="cpu", resolution=parse_resolution(resolution))
                maps = tmp / f"maps_{size}_{resolution}"
                start = time.perf_counter()
                for stem, path in photos.items():
                    photo = at_size(read_photo(path), size)
                    save(maps / f"{stem}.png", model.focus_map(photo))
                seconds = (time.perf_counter() - start) / len(photos)
                s = score_detection_dirs(maps, gt_dir, args.gt_polarity)
                print(f"| {size} | {resolution} | {s['fmax']:.4f} | {s['mae']:.4f} | {s['fmax_sod']:.4f} | "
                      f"{s['mae_sod']:.4f} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
