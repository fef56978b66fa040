"""SVD blur measure of Su, Lu & Tan ("Blurred image region detection and classification", ACM MM 2011).

Written from the published description: blur removes the fine detail of a patch, so its energy
concentrates in the first few singular values. For the local patch around a pixel, with singular
values l_1 >= l_2 >= ... >= l_n, the blur degree is

    beta = (l_1 + ... + l_k) / (l_1 + ... + l_n)

(close to 1 in blurred or flat patches, smaller where there is texture); the focus map is 1 - beta,
min-max normalised per image (1 = in focus).

Choices where the description is silent (listed in DEVIATIONS.md, "Baselines"):

* grey image = BT.601 luma in [0, 1]; patches are w x w windows centred on the pixel, mirror borders;
* w = 11 and k = 3 (the top three singular values of the 11 of a patch);
* the measure is computed at every `stride`-th pixel (2 by default) and bilinearly interpolated in
  between (the windows of neighbouring pixels overlap by 9 of 11 columns, so little is lost);
* a patch with no energy at all (every value 0) counts as blurred (beta = 1);
* no thresholding into blurred / sharp regions and no blur-type classification (the map is scored as is).

Vectorised: all patches are a strided view of the padded image and numpy computes their singular
values in one batched call.
"""
from __future__ import annotations

import numpy as np

from apl.baselines.common import centred_windows, check_image, gray01, grid_to_image, normalise

DEFAULTS = {"window": 11, "top": 3, "stride": 2}


def blur_degree(patches: np.ndarray, top: int) -> np.ndarray:
    """Share of the `top` largest singular values in the sum of all, for a stack (..., w, w) of patches."""
    singular = np.linalg.svd(patches, compute_uv=False)   # (..., w), descending
    total = singular.sum(axis=-1)
    leading = singular[..., :top].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 1e-12, leading / np.where(total > 1e-12, total, 1.0), 1.0)


def svd_sharpness(image: np.ndarray, window: int = DEFAULTS["window"], top: int = DEFAULTS["top"],
                  stride: int = DEFAULTS["stride"]) -> np.ndarray:
    """Focus map (float32 HxW in [0, 1], 1 = in focus) of a uint8 RGB or grey image."""
    image = check_image(image)
    if not 1 <= top < window:
        raise ValueError(f"top must be between 1 and window - 1 = {window - 1}, got {top}")
    gray = gray01(image)
    patches = centred_windows(gray, window, stride)
    focus = 1.0 - blur_degree(patches, top)
    return normalise(grid_to_image(focus, gray.shape, stride))
