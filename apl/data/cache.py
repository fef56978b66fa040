"""Training caches: each training set decoded and resized once into one .npz file.

The blur prior B(I) of every training image is computed here, once, and stored beside it, so a
training step never decodes an image or computes a prior.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from apl.data.layout import FOLDERS, MASK_FOLDERS
from apl.io import atomic_path, list_images, read_image, read_mask
from apl.priors import prior_map

CACHE_SETS = ("train", "fullclear", "synthetic")


def _prior_at(path: Path, size: int, prior: dict) -> np.ndarray:
    return prior_map(read_image(path), prior, size).astype(np.float16)


def save_npz(path: str | Path, **arrays) -> None:
    """np.savez to a temp file, then rename: a killed run never leaves a truncated cache."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def build_cache(which: str, source: str | Path, out_file: str | Path, config: dict, workers: int = 2) -> dict:
    """Cache `which` (train | fullclear | synthetic) from its folder(s) into `out_file`."""
    size = config["image_size"]
    source = Path(source)
    if which == "synthetic":
        names = sorted(list_images(source / "blurred"))
        arrays = {
            "blurred": np.stack([read_image(source / "blurred" / f"{n}.png", size) for n in names]),
            "sharp": np.stack([read_image(source / "sharp" / f"{n}.png", size) for n in names]),
            "masks": np.stack([read_mask(source / "masks" / f"{n}.png", "focus-white", size) for n in names]).astype(np.float16),
        }
    elif which in ("train", "fullclear"):
        files = list_images(source / FOLDERS[which])
        names = sorted(files)
        arrays = {"images": np.stack([read_image(files[n], size) for n in names])}
        if which == "train":
            with ProcessPoolExecutor(max_workers=workers) as pool:
                priors = list(pool.map(_prior_at, [files[n] for n in names], [size] * len(names),
                                       [config["prior"]] * len(names), chunksize=8))
            arrays["priors"] = np.stack(priors)
            masks = source / MASK_FOLDERS["train"]
            if masks.is_dir():   # GT masks, only read by train.gws_target: masks and the single_gws_masks stage
                found = list_images(masks)
                missing = sorted(set(names) - set(found))
                if missing:
                    raise FileNotFoundError(f"{masks}: no mask for the training image(s) {', '.join(missing[:5])}; "
                                            "rerun the prepare rule")
                arrays["masks"] = np.stack([read_mask(found[n], "focus-white", size) for n in names]).astype(np.float16)
    else:
        raise ValueError(f"unknown cache set {which!r}; use one of {CACHE_SETS}")
    save_npz(out_file, names=np.array(names), **arrays)
    return {"set": which, "images": len(names), "size": size}


def load_cache(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training cache missing: {path}; the rule `cache` makes it")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
