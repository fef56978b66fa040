"""Training caches: each training set decoded and brought to the config's scale once into one .npz file.

The blur prior B(I) of every training image is computed here, once, at that scale, and stored beside
it, so a training step never decodes an image or computes a prior. Images of different shapes (scale.mode
photo) are stored zero-padded to one array, with every image's (height, width) in `shapes`.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from apl.data.layout import FOLDERS, MASK_FOLDERS
from PIL import Image

from apl.data.scale import pad_stack, scaled_shape, to_scale
from apl.io import atomic_path, list_images, read_image
from apl.priors import prior_at_scale

CACHE_SETS = ("train", "fullclear", "synthetic")


def _prior_at(path: Path, config: dict) -> np.ndarray:
    return prior_at_scale(read_image(path), config).astype(np.float16)


def _mask_at(path: Path, config: dict) -> np.ndarray:
    """A mask (1 = in focus) at the scale of its image (bilinear, as read_mask resizes), as float16."""
    mask = Image.open(path).convert("L")
    shape = scaled_shape(mask.size[1], mask.size[0], config)
    if mask.size != (shape[1], shape[0]):
        mask = mask.resize((shape[1], shape[0]), Image.BILINEAR)
    return (np.asarray(mask, dtype=np.float32) / 255.0).astype(np.float16)


def save_npz(path: str | Path, **arrays) -> None:
    """np.savez to a temp file, then rename: a killed run never leaves a truncated cache."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def build_cache(which: str, source: str | Path, out_file: str | Path, config: dict, workers: int = 2) -> dict:
    """Cache `which` (train | fullclear | synthetic) from its folder(s) into `out_file`."""
    size = config["image_size"]
    source = Path(source)
    if which == "synthetic":   # made at the config's scale already (apl.data.synthesis)
        names = sorted(list_images(source / "blurred"))
        arrays = {
            "blurred": [to_scale(read_image(source / "blurred" / f"{n}.png"), config) for n in names],
            "sharp": [to_scale(read_image(source / "sharp" / f"{n}.png"), config) for n in names],
            "masks": [_mask_at(source / "masks" / f"{n}.png", config) for n in names],
        }
    elif which in ("train", "fullclear"):
        files = list_images(source / FOLDERS[which])
        names = sorted(files)
        arrays = {"images": [to_scale(read_image(files[n]), config) for n in names]}
        if which == "train":
            with ProcessPoolExecutor(max_workers=workers) as pool:
                arrays["priors"] = list(pool.map(_prior_at, [files[n] for n in names], [config] * len(names),
                                                 chunksize=8))
            masks = source / MASK_FOLDERS["train"]
            if masks.is_dir():   # GT masks, only read by train.gws_target: masks and the single_gws_masks stage
                found = list_images(masks)
                missing = sorted(set(names) - set(found))
                if missing:
                    raise FileNotFoundError(f"{masks}: no mask for the training image(s) {', '.join(missing[:5])}; "
                                            "rerun the prepare rule")
                arrays["masks"] = [_mask_at(found[n], config) for n in names]
    else:
        raise ValueError(f"unknown cache set {which!r}; use one of {CACHE_SETS}")
    stacked = {}
    for key, values in arrays.items():
        stacked[key], shapes = pad_stack(values)
    save_npz(out_file, names=np.array(names), shapes=shapes, **stacked)
    return {"set": which, "images": len(names), "size": size, "scale": config["scale"]["mode"]}


def load_cache(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training cache missing: {path}; the rule `cache` makes it")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
