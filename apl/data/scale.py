"""The scale at which images meet the networks (config key `scale`).

* ``squash`` (paper 4.1): every image is resized to image_size x image_size, in training and at test time.
* ``photo``: every image is brought to a common scale, its longer side `scale.longer_side` pixels with the
  aspect kept (the shorter side is raised to at least image_size); training sees random image_size x
  image_size crops of it (random horizontal flips too), evaluation and `apl predict` the whole image,
  fully convolutionally. A defocus blur of 3 pixels on a 640-pixel photograph is under half a pixel once
  squashed to 96, so the cue B(I) measures is gone from a squashed input; at half size it stays.

Images of one set have different shapes at the photo scale: the caches store them padded to a common
array with each image's (height, width) beside them (`pad_stack`); `random_crops` cuts matching windows.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

def scaled_shape(height: int, width: int, config: dict) -> tuple[int, int]:
    """(h, w) of an image of height x width at the config's scale."""
    size, scale = int(config["image_size"]), config["scale"]
    if scale["mode"] == "squash":
        return size, size
    factor = scale["longer_side"] / max(height, width)
    factor = max(factor, size / min(height, width))   # a crop must fit: the shorter side is at least image_size
    return max(size, round(height * factor)), max(size, round(width * factor))


RESAMPLING = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def resize_image(image: np.ndarray, shape: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """uint8 RGB (or grey) resized to shape (h, w), bicubic (antialiased when shrinking), as the training caches
    are; `resample: bilinear` for weights whose meta says so (the authors' release: PIL bilinear)."""
    if image.shape[:2] == tuple(shape):
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), RESAMPLING[resample]))


def to_scale(image: np.ndarray, config: dict) -> np.ndarray:
    """uint8 RGB (or grey) image at the config's scale (bicubic, antialiased when shrinking)."""
    return resize_image(image, scaled_shape(*image.shape[:2], config))


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map resized (bilinear) to shape (h, w), float32."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape == tuple(shape):
        return values
    return np.asarray(Image.fromarray(values, mode="F").resize((shape[1], shape[0]), Image.BILINEAR))


def pad_stack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Images of different shapes as one zero-padded array (top-left aligned) and their (h, w) shapes."""
    shapes = np.array([a.shape[:2] for a in arrays], dtype=np.int32)
    height, width = shapes.max(axis=0)
    out = np.zeros((len(arrays), height, width, *arrays[0].shape[2:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0], :a.shape[1]] = a
    return out, shapes


def random_crops(shapes: torch.Tensor, index: torch.Tensor, size: int, generator: torch.Generator,
                 flips: bool = True) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of a random size x size window inside each indexed image, drawn from `generator`."""
    windows = []
    for i in index.tolist():
        height, width = (int(v) for v in shapes[i])
        top = int(torch.randint(height - size + 1, (1,), generator=generator))
        left = int(torch.randint(width - size + 1, (1,), generator=generator))
        flip = bool(flips and torch.rand((), generator=generator) < 0.5)
        windows.append((top, left, flip))
    return windows


def cut(batch: torch.Tensor, windows: list[tuple[int, int, bool]], size: int) -> torch.Tensor:
    """The windows of an N x H x W [x C] batch (NHWC, as the caches hold them): N x size x size [x C]."""
    pieces = []
    for image, (top, left, flip) in zip(batch, windows):
        piece = image[top:top + size, left:left + size]
        pieces.append(piece.flip(1) if flip else piece)
    return torch.stack(pieces)
