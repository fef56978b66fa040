"""Which working resolution gives better focus maps on real photographs (not a test; run by hand).

Runs `apl predict`'s detector at several --resolution settings on the CUHK test images (the 100 names of
apl/data/splits/cuhk_test_split.csv; masks white = blurred) and scores the full-size maps with the authors'
protocol (F_max, MAE at 160x160) and the salient-object one.

    python tests/bench_resolution.py --weights W [--cuhk ../shared/datasets/cuhk] [--resolutions train 256 full]
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from apl.metrics.detection import score_detection_dirs
from apl.predict import Model, full_size_outputs, read_photo, save

ROOT = Path(__file__).resolve().parents[1]


def reference_rows(args, names: list[str], gt_dir: Path, tmp: Path) -> None:
    import numpy as np
    from apl import config as config_module
    from apl.priors import prior_map
    prior = config_module.load([ROOT / "config" / "config.yaml"])["prior"]
    for label, make in (("(all in focus)", lambda photo: np.ones(photo.shape[:2], np.float32)),
                        ("(LBP prior B(I), photo size)", lambda photo: prior_map(photo, prior))):
        maps = tmp / label.strip("()").split(",")[0].replace(" ", "_")
        for name in names:
            photo = read_photo(args.cuhk / "image" / name)
            save(maps / f"{Path(name).stem}.png", np.rint(make(photo) * 255).astype(np.uint8))
        s = score_detection_dirs(maps, gt_dir, "blur-white")
        print(f"| {label} | {s['fmax']:.4f} | {s['mae']:.4f} | {s['fmax_sod']:.4f} | {s['mae_sod']:.4f} | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--cuhk", type=Path, default=ROOT.parent / "shared" / "datasets" / "cuhk")
    parser.add_argument("--resolutions", nargs="+", default=["train", "256", "full"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--references", action="store_true",
                        help="also score an all-in-focus map and the LBP blur prior B(I) (what G_ws learns from)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [row["original_name"] for row in csv.DictReader(open(ROOT / "apl/data/splits/cuhk_test_split.csv"))]
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir = Path(tmp) / "gt"
        gt_dir.mkdir()
        for name in names:   # only the test masks, so every map has its GT and vice versa
            (gt_dir / f"{Path(name).stem}.png").symlink_to(args.cuhk / "gt" / f"{Path(name).stem}.png")
        print(f"{args.weights}: {len(names)} CUHK test images")
        print("| --resolution | F_max | MAE | F_max (SOD) | MAE (SOD) | s/image |")
        print("|---|---|---|---|---|---|")
        if args.references:
            reference_rows(args, names, gt_dir, Path(tmp))
        for resolution in args.resolutions:
            model = Model(args.weights, device="cpu", resolution=resolution if resolution in ("train", "full")
                          else int(resolution))
            maps = Path(tmp) / f"maps_{resolution}"
            start = time.perf_counter()
            for name in names:
                photo = read_photo(args.cuhk / "image" / name)
                _, focus, _ = model.predict(photo, "detect")
                save(maps / f"{Path(name).stem}.png", full_size_outputs(photo, focus, None, want_map=True,
                                                                         want_overlay=False)["map"])
            seconds = (time.perf_counter() - start) / len(names)
            s = score_detection_dirs(maps, gt_dir, "blur-white")
            print(f"| {resolution} | {s['fmax']:.4f} | {s['mae']:.4f} | {s['fmax_sod']:.4f} | {s['mae_sod']:.4f} | "
                  f"{seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
