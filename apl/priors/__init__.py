"""Blur priors. B(I) of the paper is the LBP sharpness of Yi & Eramian (apl.priors.lbp)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from apl.priors.lbp import blur_prior


def prior_map(image: np.ndarray, settings: dict, size: int | None = None,
              working_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """B(I) of a uint8 RGB image with the config's `prior` settings: float32 HxW in [0, 1], 1 = sharp.

    The prior is measured at the image's own resolution (its LBP windows are defined there); with
    `size`, the map is then resized (bilinear) to size x size. `prior.matting_at: working` runs the
    matting refinement at the networks' working size (`working_size`, a side or an (h, w) shape; by
    default `size`; without either, at the image's own size), `photo` at the image's own size, and a
    number N at the image's shape scaled to a longer side of N pixels.
    """
    matting_at = settings["matting_at"]
    if matting_at == "working":
        matting_size = working_size or size
    elif matting_at == "photo":
        matting_size = None
    else:
        height, width = np.asarray(image).shape[:2]
        factor = int(matting_at) / max(height, width)
        matting_size = (max(3, round(height * factor)), max(3, round(width * factor)))
    focus = blur_prior(image, windows=tuple(settings["windows"]), threshold=settings["threshold"],
                       refine=settings["refine"], matting_size=matting_size)
    if size is not None:
        focus = np.asarray(Image.fromarray(focus.astype(np.float32)).resize((size, size), Image.BILINEAR))
    return np.clip(focus, 0.0, 1.0).astype(np.float32)


def prior_at_scale(image: np.ndarray, config: dict) -> np.ndarray:
    """B(I) of a photograph as G_ws learns it: at the config's scale (apl.data.scale), float32 in [0, 1].

    The LBP sharpness is measured on the photograph as given; `prior.matting_at: working` mattes at the
    scaled shape itself."""
    from apl.data.scale import resize_map, scaled_shape
    shape = scaled_shape(*np.asarray(image).shape[:2], config)
    if config["scale"]["mode"] == "squash":
        return prior_map(image, config["prior"], config["image_size"])
    return np.clip(resize_map(prior_map(image, config["prior"], working_size=shape), shape), 0.0, 1.0)
