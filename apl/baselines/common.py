"""Helpers shared by the classic detectors: grey conversion, centred local windows, grids, sizes.

Conventions: a detector takes a uint8 RGB image HxWx3 and returns a float32 focus map in [0, 1]
(1 = in focus) at the resolution it worked at; the evaluation resizes every map to its GT's size.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage

from apl.priors.lbp import to_gray


def gray01(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (or grey) -> float64 grey HxW in [0, 1] (BT.601 luma, as the LBP prior)."""
    return to_gray(image) / 255.0


def limit_size(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """The image shrunk (Pillow bicubic, antialiased) so that its longer side is at most `max_side`.

    Images already small enough, and max_side None, are returned unchanged (never enlarged).
    """
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BICUBIC))


def centred_windows(values: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
    """Read-only view (gh, gw, size, size) of the size x size windows centred on pixels (0, 0),
    (0, stride), ..., i.e. on every `stride`-th row and column; mirror ('reflect') borders.

    An even window extends one pixel further up/left than down/right of its centre.
    """
    size, stride = int(size), int(stride)
    if size < 1 or stride < 1:
        raise ValueError(f"window size and stride must be positive, got {size} and {stride}")
    before = size // 2
    padded = np.pad(values, ((before, size - 1 - before), (before, size - 1 - before)), mode="reflect")
    return sliding_window_view(padded, (size, size))[::stride, ::stride]


def grid_to_image(grid: np.ndarray, shape: tuple[int, int], stride: int) -> np.ndarray:
    """Bilinear interpolation of values sampled at every `stride`-th pixel back to `shape`.

    Grid node (a, b) sits at pixel (a * stride, b * stride); pixels past the last node take its value.
    """
    if stride == 1 and grid.shape == tuple(shape):
        return grid
    rows = np.arange(shape[0], dtype=np.float64) / stride
    cols = np.arange(shape[1], dtype=np.float64) / stride
    coords = np.stack(np.meshgrid(rows, cols, indexing="ij"))
    return ndimage.map_coordinates(grid, coords, order=1, mode="nearest")


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] as float32; a constant map becomes all zeros (no evidence of focus anywhere)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("a focus map holds NaN or infinite values")
    if hi - lo <= 1e-12:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise ValueError(f"expected an HxW or HxWx3 image of at least 2x2 pixels, got shape {image.shape}")
    return image
