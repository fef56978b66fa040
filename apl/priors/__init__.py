"""Blur priors. B(I) of the paper is the LBP sharpness of Yi & Eramian (apl.priors.lbp)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from apl.priors.lbp import blur_prior


def prior_map(image: np.ndarray, settings: dict, size: int | None = None,
              working_size: int | None = None) -> np.ndarray:
    """B(I) of a uint8 RGB image with the config's `prior` settings: float32 HxW in [0, 1], 1 = sharp.

    The prior is measured at the image's own resolution (its LBP windows are defined there); with
    `size`, the map is then resized (bilinear) to size x size. `prior.matting_at: working` runs the
    matting refinement at the networks' working size (`working_size`, by default `size`; without
    either, at the image's own size), `photo` at the image's own size.
    """
    working = working_size or size
    focus = blur_prior(image, windows=tuple(settings["windows"]), threshold=settings["threshold"],
                       refine=settings["refine"], matting_size=working if settings["matting_at"] == "working" else None)
    if size is not None:
        focus = np.asarray(Image.fromarray(focus.astype(np.float32)).resize((size, size), Image.BILINEAR))
    return np.clip(focus, 0.0, 1.0).astype(np.float32)
