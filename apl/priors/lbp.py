"""Blur prior B(I) of APL's Eq. (7): Yi & Eramian's LBP defocus sharpness (IEEE TIP 2016).

Written from the published description (paper [37] of APL and REFERENCE.md section 3):

* grey image on 0-255; 8 neighbours on a circle of radius 1 around every pixel;
* neighbour bit p is set when ``g_p - g_c > threshold * 255`` (``threshold`` = T_LBP = 0.016);
* rotation-invariant uniform code LBP^riu2_{8,1}: the number of set bits when the circular bit
  string has at most two 0/1 transitions, else 9;
* sharpness at a pixel = fraction of pixels of the s x s window centred on it whose code is in
  {6, 7, 8, 9}; every per-scale map is then min-max normalised to [0, 1].

Choices where the description is silent (all documented in the functions below):

* Neighbours: the interpolated circular neighbours of the standard LBP_{8,1} (Ojala et al.):
  the four axis neighbours are the 4-connected pixels; the four diagonal neighbours sit at
  distance 1 (offsets +-1/sqrt(2)) and are bilinearly interpolated from their 2x2 pixels.
* Image border, codes: the grey image is padded by edge replication, so an outside neighbour
  equals the border pixel it copies.
* Image border, windows: window fractions use a box filter with mirror ('reflect') borders, so
  a border pixel's window is completed by mirrored codes and stays a true fraction in [0, 1].
* Constant per-scale map (max == min, e.g. a flat image): the raw fractions, already in
  [0, 1], are returned instead of dividing by zero.
* Multi-scale combination: the mean of the normalised per-scale maps (the author's full
  pipeline fuses them with trimap + closed-form matting + a multi-scale MRF instead).
* Grey conversion: ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) on 0-255, as MATLAB's
  rgb2gray, kept in floating point (no rounding to integers).
* Optional refinement (refine="matting"): every per-scale map becomes a trimap (sharp above
  0.3, blurred below 0.01, unknown between) completed by closed-form matting (Levin, Lischinski
  & Weiss, TPAMI 2008: 3x3 windows, epsilon 1e-7, known-pixel weight 100), implemented here
  from the paper's equations; the maps are then averaged (no MRF). Sparse solve: meant for the
  160x160 working resolution (about 0.5 s a map), slow on large images.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from PIL import Image
from scipy import ndimage, sparse
from scipy.sparse import linalg as sparse_linalg

SHARP_CODES = (6, 7, 8, 9)
DEFAULT_WINDOWS = (11, 15, 21)
DEFAULT_THRESHOLD = 0.016
REFINE_CHOICES = ("none", "matting")
TRIMAP_HIGH, TRIMAP_LOW = 0.3, 0.01  # Yi & Eramian's trimap thresholds on a sharpness map

# Circular neighbours of LBP_{8,1}, counter-clockwise from "right": (dy, dx) offsets.
_ANGLES = 2.0 * np.pi * np.arange(8) / 8.0
_OFFSETS = tuple((-float(np.sin(a)), float(np.cos(a))) for a in _ANGLES)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB HxWx3 (or grey HxW / HxWx1) -> float64 grey HxW on 0-255 (BT.601 luma)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        gray = image.astype(np.float64)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[..., :3].astype(np.float64)
        gray = rgb @ np.array([0.299, 0.587, 0.114])
    else:
        raise ValueError(f"expected an HxW grey or HxWx3 RGB image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating) and gray.size and 0.0 < gray.max() <= 1.0:
        raise ValueError("blur_prior expects values on 0-255 (uint8 images); got a float image in [0, 1]")
    return gray


def _neighbour(padded: np.ndarray, dy: float, dx: float, height: int, width: int) -> np.ndarray:
    """Value at offset (dy, dx) (|dy|, |dx| <= 1) of every pixel; `padded` has a 1-pixel border."""
    y0, x0 = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - y0, dx - x0

    def shifted(oy: int, ox: int) -> np.ndarray:
        return padded[1 + oy:1 + oy + height, 1 + ox:1 + ox + width]

    if fy == 0.0 and fx == 0.0:
        return shifted(y0, x0)
    return ((1 - fy) * (1 - fx) * shifted(y0, x0) + (1 - fy) * fx * shifted(y0, x0 + 1)
            + fy * (1 - fx) * shifted(y0 + 1, x0) + fy * fx * shifted(y0 + 1, x0 + 1))


def lbp_codes(gray: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """LBP^riu2_{8,1} code (0..9) of every pixel of a grey float image on 0-255 -> uint8 HxW.

    Bit p is set when g_p - g_c > threshold * 255 (g_p interpolated for the diagonal neighbours);
    code = number of set bits if the circular bit string has <= 2 transitions, else 9.
    Borders: edge-replicated padding.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2:
        raise ValueError(f"lbp_codes expects a 2-D grey image, got shape {gray.shape}")
    height, width = gray.shape
    padded = np.pad(gray, 1, mode="edge")
    limit = threshold * 255.0
    bits = []
    for dy, dx in _OFFSETS:
        # snap the axis offsets (cos(pi/2) = 6e-17) to exact integers
        dy, dx = (round(dy) if abs(dy - round(dy)) < 1e-9 else dy), (round(dx) if abs(dx - round(dx)) < 1e-9 else dx)
        bits.append(_neighbour(padded, dy, dx, height, width) - gray > limit)
    bits = np.stack(bits)  # 8 x H x W, circular order
    ones = bits.sum(axis=0, dtype=np.uint8)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0, dtype=np.uint8)
    return np.where(transitions <= 2, ones, np.uint8(9)).astype(np.uint8)


def _minmax(raw: np.ndarray) -> np.ndarray:
    lo, hi = float(raw.min()), float(raw.max())
    if hi - lo <= 1e-12:  # constant map: keep the raw fraction (already in [0, 1])
        return np.clip(raw, 0.0, 1.0)
    return (raw - lo) / (hi - lo)


def _window_fraction(sharp: np.ndarray, window: int) -> np.ndarray:
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    return np.clip(ndimage.uniform_filter(sharp, size=int(window), mode="reflect"), 0.0, 1.0)


def sharpness_from_codes(codes: np.ndarray, window: int) -> np.ndarray:
    """Min-max normalised fraction of {6,7,8,9} codes in the s x s window -> float32 HxW in [0,1]."""
    sharp = (codes >= SHARP_CODES[0]).astype(np.float64)
    return _minmax(_window_fraction(sharp, window)).astype(np.float32)


def lbp_sharpness(gray: np.ndarray, window: int, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Yi & Eramian's LBP sharpness of a grey float image on 0-255 at one scale (window s).

    Returns float32 HxW in [0, 1] (min-max normalised; a constant map keeps its raw fraction).
    """
    return sharpness_from_codes(lbp_codes(gray, threshold), window)


def multiscale_sharpness(gray: np.ndarray, windows: Iterable[int] = DEFAULT_WINDOWS,
                         threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
    """The per-scale normalised maps, sharing one LBP code computation."""
    codes = lbp_codes(gray, threshold)
    return [sharpness_from_codes(codes, w) for w in windows]


def matting_laplacian(image: np.ndarray, eps: float = 1e-7) -> sparse.csr_matrix:
    """Closed-form matting Laplacian (Levin et al. 2008) of an RGB float image in [0,1], 3x3 windows.

    L_ij = sum over windows k containing i and j of
           delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/9 * Id)^-1 (I_j - mu_k)) / 9,
    windows centred on the interior pixels (every window lies inside the image).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:  # grey: 1-channel colour model (a repeated grey would make Sigma singular)
        image = image[..., None]
    image = image[..., :3]  # drop an alpha channel
    height, width, channels = image.shape
    if height < 3 or width < 3:
        raise ValueError(f"matting needs an image of at least 3x3 pixels, got {height}x{width}")
    index = np.arange(height * width).reshape(height, width)
    # the 9 pixel indices and colours of every interior window: (K, 9) and (K, 9, C)
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)]
    win_idx = np.stack([index[dy:dy + height - 2, dx:dx + width - 2].ravel() for dy, dx in offsets], axis=1)
    win_col = image.reshape(-1, channels)[win_idx]
    mean = win_col.mean(axis=1, keepdims=True)
    centred = win_col - mean
    cov = np.einsum("kac,kad->kcd", centred, centred) / 9.0 + (eps / 9.0) * np.eye(channels)
    inv = np.linalg.inv(cov)
    values = np.eye(9)[None] - (1.0 + np.einsum("kac,kcd,kbd->kab", centred, inv, centred)) / 9.0
    rows = np.repeat(win_idx, 9, axis=1).ravel()
    cols = np.tile(win_idx, (1, 9)).ravel()
    n = height * width
    return sparse.csr_matrix((values.ravel(), (rows, cols)), shape=(n, n))  # duplicates are summed


def refine_with_matting(image: np.ndarray, sharpness: np.ndarray, high: float = TRIMAP_HIGH,
                        low: float = TRIMAP_LOW, eps: float = 1e-7, weight: float = 100.0,
                        laplacian: sparse.spmatrix | None = None) -> np.ndarray:
    """Trimap from a [0,1] sharpness map (1 above `high`, 0 below `low`) completed by closed-form
    matting on the uint8 RGB (or grey) image -> float32 HxW alpha in [0, 1].

    Solves (L + weight * D) alpha = weight * D * trimap, D = diagonal of known pixels. A map with no
    known pixel is returned unchanged. `laplacian` (from matting_laplacian of the same image) can be
    passed to share it between scales.
    """
    sharpness = np.asarray(sharpness, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64) / 255.0
    if image.shape[:2] != sharpness.shape:
        raise ValueError(f"image {image.shape[:2]} and sharpness map {sharpness.shape} differ in size")
    known = (sharpness > high) | (sharpness < low)
    if not known.any():
        return sharpness.astype(np.float32)
    target = (sharpness > high).astype(np.float64)
    if laplacian is None:
        laplacian = matting_laplacian(image, eps)
    diagonal = sparse.diags(weight * known.ravel().astype(np.float64))
    # symmetric positive definite system: a symmetric fill-reducing ordering is ~3x faster than COLAMD
    alpha = sparse_linalg.spsolve((laplacian + diagonal).tocsc(), weight * (known * target).ravel(),
                                  permc_spec="MMD_AT_PLUS_A")
    return np.clip(alpha.reshape(sharpness.shape), 0.0, 1.0).astype(np.float32)


def blur_prior(image: np.ndarray, windows: Iterable[int] = DEFAULT_WINDOWS,
               threshold: float = DEFAULT_THRESHOLD, refine: str = "none",
               matting_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """B(I): float32 HxW in [0, 1], 1 = sharp / in focus.

    image: uint8 RGB HxWx3 or grey HxW on 0-255. The per-scale maps (windows s) are combined by
    their mean. refine="matting" replaces every per-scale map by its closed-form matting alpha
    (trimap: known sharp above 0.3, known blurred below 0.01, as in the author's pipeline)
    before the mean; the author's multi-scale MRF is not reproduced.

    matting_size: with refine="matting", the per-scale maps (still measured on the photograph
    itself) and the photograph are first resized to matting_size x matting_size (or to the (h, w) it
    gives), and the matting runs there; the result has that size. The sparse solve grows faster than the pixel count: about
    0.3 s at 96 px against about 90 s at 640 px on one core.
    """
    if refine not in REFINE_CHOICES:
        raise ValueError(f"unknown prior refinement {refine!r}; use one of {REFINE_CHOICES}")
    windows = tuple(windows)
    if not windows:
        raise ValueError("blur_prior needs at least one window size")
    gray = to_gray(image)
    maps = multiscale_sharpness(gray, windows, threshold)
    if refine == "matting":
        image = np.asarray(image)
        if matting_size is not None:
            shape = (matting_size, matting_size) if np.isscalar(matting_size) else matting_size
            image, maps = _resized(image, maps, tuple(int(v) for v in shape))
        laplacian = matting_laplacian(image.astype(np.float64) / 255.0)  # shared by the scales
        maps = [refine_with_matting(image, m, laplacian=laplacian) for m in maps]
    prior = np.mean(np.stack(maps), axis=0)
    return np.clip(prior, 0.0, 1.0).astype(np.float32)


def _resized(image: np.ndarray, maps: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The photograph (bicubic, as the training images are resized) and its sharpness maps (bilinear) at
    shape (h, w)."""
    if min(shape) < 3:
        raise ValueError(f"matting_size must be at least 3 pixels, got {shape}")
    size = (shape[1], shape[0])
    small = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(size, Image.BICUBIC))
    return small, [np.asarray(Image.fromarray(m).resize(size, Image.BILINEAR)) for m in maps]
