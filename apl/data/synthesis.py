"""Simulated defocus pairs for pretraining G_sr (APL paper Sec. 4.1, REFERENCE.md section 4).

Paper: 500 full-focused images; a Gaussian filter with standard deviation ~ U(0.1, 10) and a
15x15 window blurs a part (60-70 %) of each image; repeated five times -> 2500 pairs.

Choices where the paper is silent:

* Blurred region: a smooth random region, not a rectangle. A low-resolution Gaussian noise grid
  (3-6 cells a side) is upsampled with cubic splines to HxW, a random linear ramp is added (so
  layouts range from blobs to wavy foreground/background splits, like real depth layouts),
  and the field is thresholded at its exact quantile: the blurred share is round(f*H*W)/(H*W).
* Blur: an explicit normalised 1-D Gaussian of 15 taps (radius window // 2 = 7), applied
  separably along rows and columns (= the normalised 15x15 2-D Gaussian), mirror borders
  (scipy 'reflect', i.e. half-sample symmetric). The whole image is blurred, then composited.
* Kernel (``synthesis.kernel``): the paper's Gaussian; or a disc (pillbox, the thin-lens defocus of a
  circular aperture) of radius 2 sigma, whose per-axis standard deviation equals the Gaussian's, so sigma
  keeps one meaning; or ``mixed``, each pair's kernel drawn between the two. The disc is area-weighted
  (anti-aliased) and normalised, cut to the same window.
* Boundary: the compositing alpha is 1 on the whole focus region and ramps linearly to 0 over
  min(sigma, radius) pixels *inside the blurred region* (distance transform), so there is no
  seam. "Exact mask" means: the saved mask is the binary region used for compositing, every
  mask == 1 pixel is a bit-exact copy of the sharp image, and pixels with mask == 0 are
  blurred (those within the ramp only partly).
* Randomness: one numpy Generator per (seed, source stem, k) from np.random.SeedSequence with
  a SHA-256 hash of the stem, so outputs do not depend on processing order or worker count.
* Sources are brought to the config's scale (apl.data.scale: squashed to size x size, or to a longer side
  with the aspect kept) with bicubic interpolation before blurring.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from apl.data.scale import to_scale
from apl.io import ImageError, list_images, read_image

SUBFOLDERS = ("blurred", "sharp", "masks")
CSV_NAME = "pairs.csv"
CSV_FIELDS = ("name", "source", "sigma", "blurred_fraction", "kernel")


# --------------------------------------------------------------------------- masks and blur
def random_focus_mask(height: int, width: int, blurred_fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Binary float32 HxW mask, 1 = in focus, whose blurred (0) share is round(f*H*W)/(H*W).

    The region is a thresholded smooth random field (see the module docstring).
    """
    if height < 1 or width < 1:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    if not 0.0 <= blurred_fraction <= 1.0:
        raise ValueError(f"blurred_fraction must be in [0, 1], got {blurred_fraction}")
    total = height * width
    n_blur = int(round(blurred_fraction * total))
    cells = int(rng.integers(3, 7))
    coarse = rng.standard_normal((cells, cells))
    field = _upsampler(cells, height) @ coarse @ _upsampler(cells, width).T
    field = field / (field.std() + 1e-12)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    yy = np.linspace(-1.0, 1.0, height)[:, None]
    xx = np.linspace(-1.0, 1.0, width)[None, :]
    field = field + rng.uniform(0.0, 2.0) * (np.cos(angle) * yy + np.sin(angle) * xx)
    # tiny seeded jitter breaks exact ties so the quantile split is exact
    field = field + 1e-9 * rng.standard_normal(field.shape)

    mask = np.ones(total, dtype=np.float32)
    if n_blur >= total:
        mask[:] = 0.0
    elif n_blur > 0:
        mask[np.argpartition(field.ravel(), n_blur)[:n_blur]] = 0.0
    return mask.reshape(height, width)


@functools.lru_cache(maxsize=64)
def _upsampler(cells: int, length: int) -> np.ndarray:
    """length x cells matrix of 1-D cubic-spline upsampling (scipy zoom, pixel-area grid, mirror
    borders); the separable 2-D upsampling of a coarse grid C is U_h @ C @ U_w.T."""
    matrix = ndimage.zoom(np.eye(cells), (length / cells, 1.0), order=3, mode="reflect", grid_mode=True)
    if matrix.shape != (length, cells):  # zoom rounds cells * (length / cells): always length
        raise RuntimeError(f"upsampling matrix has shape {matrix.shape}, expected {(length, cells)}")
    matrix.setflags(write=False)
    return matrix


def gaussian_kernel(sigma: float, window: int = 15) -> np.ndarray:
    """Normalised 1-D Gaussian of `window` taps (odd); its outer product is the 2-D window kernel."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = window // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, sigma: float, window: int = 15) -> np.ndarray:
    """Blur an HxW or HxWxC array with the truncated window Gaussian -> float64, mirror borders."""
    kernel = gaussian_kernel(sigma, window)
    out = ndimage.correlate1d(np.asarray(image, dtype=np.float64), kernel, axis=0, mode="reflect")
    return ndimage.correlate1d(out, kernel, axis=1, mode="reflect")


KERNELS = ("gaussian", "disc", "mixed")


def disc_kernel(sigma: float, window: int = 15, supersample: int = 8) -> np.ndarray:
    """Normalised 2-D pillbox of radius 2 sigma (the Gaussian's per-axis standard deviation), each tap
    weighted by the share of its pixel inside the disc, cut to `window` x `window`."""
    gaussian_kernel(sigma, window)  # the same checks
    radius = min(2.0 * sigma, window // 2 + 0.5)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    x = np.arange(-(window // 2), window // 2 + 1, dtype=np.float64)
    fine = (x[:, None] + offsets[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius ** 2
    kernel = inside.reshape(window, supersample, window, supersample).mean(axis=(1, 3))
    return kernel / kernel.sum()


def defocus_blur(image: np.ndarray, sigma: float, window: int = 15, kernel: str = "gaussian") -> np.ndarray:
    """Blur an HxWxC array with the window Gaussian or the disc of the same sigma -> float64, mirror borders."""
    if kernel == "gaussian":
        return gaussian_blur(image, sigma, window)
    if kernel != "disc":
        raise ValueError(f"unknown blur kernel {kernel!r}; use one of {KERNELS[:2]}")
    weights = disc_kernel(sigma, window)
    image = np.asarray(image, dtype=np.float64)
    return np.stack([ndimage.correlate(image[..., c], weights, mode="reflect") for c in range(image.shape[2])], axis=2)


def _feathered_alpha(mask: np.ndarray, ramp: float) -> np.ndarray:
    """1 on the focus region; linear fall-off to 0 over `ramp` pixels into the blurred region."""
    if mask.min() >= 1.0:
        return np.ones_like(mask, dtype=np.float64)
    if mask.max() <= 0.0:
        return np.zeros_like(mask, dtype=np.float64)
    if ramp < 1.0:
        return mask.astype(np.float64)
    distance = ndimage.distance_transform_edt(mask < 0.5)  # 0 on focus, >= 1 on blurred pixels
    return np.clip(1.0 - distance / (ramp + 1.0), 0.0, 1.0)


def synthesize_pair(sharp: np.ndarray, rng: np.random.Generator, sigma_range=(0.1, 10.0), window: int = 15,
                    blurred_fraction_range=(0.6, 0.7), kernel: str = "gaussian") -> tuple[np.ndarray, np.ndarray, dict]:
    """One simulated defocus pair from a full-focus uint8 RGB image.

    Returns (defocused uint8 HxWx3, mask float32 HxW with 1 = in focus, {"sigma", "blurred_fraction", "kernel"}),
    where sigma ~ U(sigma_range), the target share ~ U(blurred_fraction_range) and the reported
    blurred_fraction is the share actually achieved by the mask.
    """
    sharp = np.asarray(sharp)
    if sharp.dtype != np.uint8 or sharp.ndim != 3 or sharp.shape[2] != 3:
        raise ValueError(f"synthesize_pair expects a uint8 HxWx3 image, got {sharp.dtype} {sharp.shape}")
    lo, hi = (float(v) for v in sigma_range)
    if not 0.0 < lo <= hi:
        raise ValueError(f"sigma_range must satisfy 0 < low <= high, got {sigma_range}")
    flo, fhi = (float(v) for v in blurred_fraction_range)
    if not 0.0 <= flo <= fhi <= 1.0:
        raise ValueError(f"blurred_fraction_range must satisfy 0 <= low <= high <= 1, got {blurred_fraction_range}")

    if kernel not in KERNELS:
        raise ValueError(f"unknown blur kernel {kernel!r}; use one of {KERNELS}")
    sigma = float(rng.uniform(lo, hi))
    target = float(rng.uniform(flo, fhi))
    height, width = sharp.shape[:2]
    mask = random_focus_mask(height, width, target, rng)
    if kernel == "mixed":   # drawn after the paper's draws, so a Gaussian profile's pairs stay as they were
        kernel = "disc" if rng.random() < 0.5 else "gaussian"
    blurred = defocus_blur(sharp, sigma, window, kernel)
    alpha = _feathered_alpha(mask, min(sigma, window // 2))[..., None]
    mixed = alpha * sharp + (1.0 - alpha) * blurred
    defocused = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    info = {"sigma": sigma, "blurred_fraction": float(1.0 - mask.mean(dtype=np.float64)), "kernel": kernel}
    return defocused, mask, info


# --------------------------------------------------------------------------- dataset
def stem_seed_sequence(seed: int, stem: str, k: int) -> np.random.SeedSequence:
    """Stable per-(seed, stem, k) entropy: SHA-256 of the stem (not Python's salted hash())."""
    digest = int.from_bytes(hashlib.sha256(stem.encode("utf-8")).digest()[:16], "little")
    return np.random.SeedSequence([int(seed), digest, int(k)])


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def _synthesize_source(task: tuple) -> list[tuple[str, str, float, float]]:
    stem, path, tmp_dir, per_image, size, scale, seed, sigma_range, window, fraction_range, kernel = task
    path, tmp_dir = Path(path), Path(tmp_dir)
    sharp = to_scale(read_image(path), {"image_size": size, "scale": scale})  # ImageError names the file
    buffer = io.BytesIO()
    Image.fromarray(sharp).save(buffer, format="PNG", compress_level=1)
    sharp_png = buffer.getvalue()  # encoded once, written per_image times
    rows = []
    for k in range(per_image):
        rng = np.random.default_rng(stem_seed_sequence(seed, stem, k))
        try:
            defocused, mask, info = synthesize_pair(sharp, rng, sigma_range, window, fraction_range, kernel)
        except Exception as err:
            raise ImageError(f"cannot synthesise a pair from {path}: {err}") from err
        name = f"{stem}_{k}"
        _save_png(tmp_dir / "blurred" / f"{name}.png", defocused)
        (tmp_dir / "sharp" / f"{name}.png").write_bytes(sharp_png)
        _save_png(tmp_dir / "masks" / f"{name}.png", (mask * 255).astype(np.uint8))
        rows.append((name, path.name, info["sigma"], info["blurred_fraction"], info["kernel"]))
    return rows


def synthesize_dataset(source_dir, out_dir, per_image: int = 5, size: int = 160, seed: int = 0,
                       sigma_range=(0.1, 10.0), window: int = 15, blurred_fraction_range=(0.6, 0.7),
                       workers: int | None = None, scale: dict | None = None, kernel: str = "gaussian") -> dict:
    """Write out_dir/{blurred,sharp,masks}/{stem}_{k}.png and out_dir/pairs.csv for every source image.

    Sources are brought to the config's scale first (`scale`, apl.data.scale; default: squashed to
    size x size), so sigma is in pixels of that scale. Masks are 8-bit PNGs, white (255) = in focus. Deterministic for a seed and independent of the
    processing order and of `workers` (default: min(2, CPU count) processes). The output is built in
    a temporary sibling folder (a stale one is removed first) and renamed to out_dir at the end, so
    an interrupted run never leaves a complete-looking out_dir. Returns {"pairs": n, "sources": m}.
    """
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1, got {per_image}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    gaussian_kernel(max(float(sigma_range[0]), 1e-3), window)  # validates the window early
    sources = list_images(source_dir)
    out_dir = Path(out_dir)
    tmp_dir = out_dir.with_name(f".{out_dir.name}.partial")
    old_dir = out_dir.with_name(f".{out_dir.name}.old")
    for stale in (tmp_dir, old_dir):
        if stale.exists():
            shutil.rmtree(stale)
    for sub in SUBFOLDERS:
        (tmp_dir / sub).mkdir(parents=True)

    scale = scale or {"mode": "squash", "longer_side": size}
    tasks = [(stem, str(path), str(tmp_dir), int(per_image), int(size), dict(scale), int(seed),
              tuple(sigma_range), int(window), tuple(blurred_fraction_range), kernel)
             for stem, path in sources.items()]
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(tasks)))
    try:
        if workers == 1:
            results = [_synthesize_source(task) for task in tasks]
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            try:
                results = list(pool.map(_synthesize_source, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        rows = sorted(row for rows in results for row in rows)
        with open(tmp_dir / CSV_NAME, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_FIELDS)
            for name, source, sigma, fraction, drawn in rows:
                writer.writerow((name, source, f"{sigma:.6f}", f"{fraction:.6f}", drawn))
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise

    if out_dir.exists():
        out_dir.rename(old_dir)
    tmp_dir.rename(out_dir)
    if old_dir.exists():
        shutil.rmtree(old_dir)
    return {"pairs": len(rows), "sources": len(sources)}
