"""HiFST-style detector: multiscale sorted high-frequency DCT coefficients of the gradient magnitude.

After Golestaneh & Karam ("Spatially-varying blur detection based on multiscale fused and sorted
transform coefficients of gradient magnitudes", CVPR 2017), written from the published description:

1. gradient magnitude G of the grey image (Sobel);
2. for every scale M in (8, 16, 32, 64) (M = 2^(2+r), r = 1..4): the M x M window of G centred on a
   pixel goes through a 2-D DCT (type II, orthonormal); its high-frequency coefficients, those with
   i + j >= M - 1 (the lower-right triangle with the anti-diagonal, M(M+1)/2 of them), are sorted by
   magnitude in ascending order;
3. the t-th smallest coefficient of every pixel forms a layer; each layer is min-max normalised over
   the image and the layers t = 1..M of every scale are fused by max pooling (blur removes high
   frequencies, so even the smallest high-frequency coefficients are larger in focused areas);
4. the fused map is weighted by the normalised local entropy of the grey image (flat areas carry no
   evidence of focus), smoothed by an edge-preserving filter guided by the image, and min-max normalised.

Where this differs from the authors' method (listed in DEVIATIONS.md, "Baselines"): the smoothing is
He et al.'s guided filter (radius = 1/32 of the shorter side, eps 1e-3) instead of the domain-transform
recursive filter; the coefficients are computed at every (M/8)-th pixel and bilinearly interpolated;
scales larger than the image's shorter side are skipped (the smallest scale is always kept, shrunk to
the image if needed); layers are fused per scale before the maps of the scales are resized and fused.

Vectorised: every window of a scale is a strided view, transformed by one batched scipy.fft.dctn call.
"""
from __future__ import annotations

import numpy as np
from scipy import fft, ndimage
from skimage.filters.rank import entropy as rank_entropy
from skimage.morphology import disk

from apl.baselines.common import centred_windows, check_image, gray01, grid_to_image, normalise

DEFAULTS = {"scales": [8, 16, 32, 64], "entropy_radius": 3, "guided_eps": 1e-3, "guided_fraction": 1 / 32}


def high_frequency_mask(size: int) -> np.ndarray:
    """Boolean size x size mask of the DCT coefficients (i, j) with i + j >= size - 1."""
    i, j = np.indices((size, size))
    return (i + j) >= size - 1


def sorted_high_frequencies(values: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Ascending |DCT| high-frequency coefficients of the size x size windows centred on every
    `stride`-th pixel: array (gh, gw, size(size+1)/2)."""
    windows = centred_windows(values, size, stride)
    coefficients = fft.dctn(windows, type=2, axes=(-2, -1), norm="ortho")
    high = np.abs(coefficients[..., high_frequency_mask(size)])
    high.sort(axis=-1)
    return high


def scale_map(gradient: np.ndarray, size: int) -> np.ndarray:
    """Max pooling of the normalised layers t = 1..size of one scale, at full resolution."""
    stride = max(1, size // 8)
    layers = sorted_high_frequencies(gradient, size, stride)[..., :size]
    lo = layers.min(axis=(0, 1), keepdims=True)
    span = layers.max(axis=(0, 1), keepdims=True) - lo
    normalised = np.where(span > 1e-12, (layers - lo) / np.where(span > 1e-12, span, 1.0), 0.0)
    return grid_to_image(normalised.max(axis=-1), gradient.shape, stride)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He, Sun & Tang's guided filter (ECCV 2010) with a grey guide and box windows of side 2r + 1."""
    def box(x):
        return ndimage.uniform_filter(x, size=2 * radius + 1, mode="reflect")

    mean_i, mean_p = box(guide), box(source)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * source) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def local_entropy(gray: np.ndarray, radius: int) -> np.ndarray:
    """Shannon entropy (bits) of the 8-bit grey levels in a disk around every pixel."""
    gray8 = np.clip(np.round(gray * 255.0), 0, 255).astype(np.uint8)
    return rank_entropy(gray8, disk(radius)).astype(np.float64)


def usable_scales(scales, height: int, width: int) -> list[int]:
    shorter = min(height, width)
    kept = [int(s) for s in scales if int(s) <= shorter]
    return kept or [max(2, min(int(min(scales)), shorter))]


def hifst_sharpness(image: np.ndarray, scales=tuple(DEFAULTS["scales"]), entropy_radius: int = DEFAULTS["entropy_radius"],
                    guided_eps: float = DEFAULTS["guided_eps"],
                    guided_fraction: float = DEFAULTS["guided_fraction"]) -> np.ndarray:
    """Focus map (float32 HxW in [0, 1], 1 = in focus) of a uint8 RGB or grey image."""
    image = check_image(image)
    gray = gray01(image)
    gradient = np.hypot(ndimage.sobel(gray, axis=0, mode="reflect"), ndimage.sobel(gray, axis=1, mode="reflect"))
    fused = np.max([scale_map(gradient, size) for size in usable_scales(scales, *gray.shape)], axis=0)
    weighted = fused * normalise(local_entropy(gray, entropy_radius))
    radius = max(1, round(min(gray.shape) * guided_fraction))
    return normalise(guided_filter(gray, weighted, radius, guided_eps))
