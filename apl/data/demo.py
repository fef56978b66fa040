"""The embedded demo: every dataset role of the paper, built from scikit-image's photographs.

Nothing is downloaded. Train-side roles (defocused training images, full-clear images) and
test-side roles (two detection test sets with exact focus masks, a deblurring test set with sharp
originals) come from different photographs, so no test image shares content with training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from apl.data.layout import DP_TARGET, FOLDERS, MASK_FOLDERS, count_images, fresh_tmp, publish
from apl.data.synthesis import synthesize_pair
from apl.io import write_image, write_json

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle", "camera", "brick", "gravel")
TEST_PHOTOS = ("chelsea", "coins", "grass", "immunohistochemistry", "moon", "hubble_deep_field")


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photograph as uint8 RGB."""
    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def random_crop(photo: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of the aspect of shape (h, w) covering 40-80% of what fits, resized to shape."""
    height, width = photo.shape[:2]
    out_h, out_w = shape
    side = int(rng.uniform(0.4, 0.8) * min(height, width * out_h / out_w))   # the crop's height
    side_w = round(side * out_w / out_h)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side_w + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side_w])
    return np.asarray(crop.resize((out_w, out_h), Image.BICUBIC))


def demo_shape(config: dict) -> tuple[int, int]:
    """(h, w) of every demo image: the square (scale.mode squash), or a 3:4 landscape photograph at the
    photo scale, so that training crops it and evaluation sees a whole non-square image."""
    size, scale = config["image_size"], config["scale"]
    if scale["mode"] == "squash":
        return size, size
    return max(size, round(0.75 * scale["longer_side"])), max(size, scale["longer_side"])


def crops(photos: tuple[str, ...], count: int, shape: tuple[int, int], rng: np.random.Generator):
    """`count` crops cycling over `photos` so every photograph contributes."""
    loaded = {name: load_photo(name) for name in photos}
    for index in range(count):
        name = photos[index % len(photos)]
        yield f"{name}_{index:03d}", random_crop(loaded[name], shape, rng)


def build_demo(config: dict, out_dir: str | Path) -> dict:
    """Write the demo datasets in the canonical layout (see apl.data.layout) and return the counts."""
    demo = config["data"]["demo"]
    counts, size = demo["counts"], demo_shape(config)
    blur = dict(sigma_range=tuple(demo["sigma"]), window=config["synthesis"]["window"],
                blurred_fraction_range=tuple(demo["blurred_fraction"]))
    seeds = np.random.SeedSequence(config["seed"]).spawn(5)
    out_dir = Path(out_dir)
    tmp = fresh_tmp(out_dir)

    for name, image in crops(TRAIN_PHOTOS, counts["fullclear"], size, np.random.default_rng(seeds[0])):
        write_image(tmp / FOLDERS["fullclear"] / f"{name}.png", image)
    rng = np.random.default_rng(seeds[1])
    for name, image in crops(TRAIN_PHOTOS, counts["train"], size, rng):
        defocused, mask, _ = synthesize_pair(image, rng, **blur)
        write_image(tmp / FOLDERS["train"] / f"{name}.png", defocused)
        write_image(tmp / MASK_FOLDERS["train"] / f"{name}.png", mask)   # only for train.gws_target: masks
    for key, seed in (("cuhk", seeds[2]), ("dut", seeds[3])):
        rng = np.random.default_rng(seed)
        for name, image in crops(TEST_PHOTOS, counts[key], size, rng):
            defocused, mask, _ = synthesize_pair(image, rng, **blur)
            write_image(tmp / FOLDERS[key] / f"{name}.png", defocused)
            write_image(tmp / MASK_FOLDERS[key] / f"{name}.png", mask)
    rng = np.random.default_rng(seeds[4])
    for name, image in crops(TEST_PHOTOS, counts["dp"], size, rng):
        defocused, _, _ = synthesize_pair(image, rng, **blur)
        write_image(tmp / FOLDERS["dp"] / f"{name}.png", defocused)
        write_image(tmp / DP_TARGET / f"{name}.png", image)

    manifest = {"source": "demo", "counts": count_images(tmp),
                "train_photos": list(TRAIN_PHOTOS), "test_photos": list(TEST_PHOTOS)}
    write_json(tmp / "manifest.json", manifest)
    publish(tmp, out_dir)
    return manifest
