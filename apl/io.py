"""Image and file I/O shared by every stage.

Conventions: RGB images are uint8 arrays HxWx3; focus maps and masks are float32 arrays HxW in
[0, 1] with 1 = in focus (sharp). Files are matched by stem.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
POLARITIES = ("focus-white", "blur-white")


class ImageError(ValueError):
    """An input image or folder is missing, unreadable or inconsistent; the message names the file."""


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Map stem -> path for every image in `folder` (case-insensitive suffixes); duplicate stems are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"image folder not found: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ImageError(f"duplicate image name {path.stem!r} in {folder}: {found[path.stem].name} and {path.name}")
        found[path.stem] = path
    if not found:
        raise ImageError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return found


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ImageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"cannot read image {path}: {err}; replace the file with a valid image") from None
    return image


def read_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Read an image as uint8 RGB HxWx3, optionally resized (bicubic) to size x size."""
    image = _open(Path(path))
    # 16-bit grey PNGs: scale to 8 bit before RGB conversion. (16-bit RGB PNGs such as DPDD's are opened
    # by Pillow as 8-bit RGB holding the high byte, value >> 8: DEVIATIONS.md, "DP images")
    if image.mode in ("I;16", "I;16B", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8))
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def read_mask(path: str | os.PathLike, polarity: str, size: int | None = None) -> np.ndarray:
    """Read a ground-truth focus mask as float32 HxW in [0,1], 1 = in focus.

    `polarity` says what white means in the file: "focus-white" (kept) or "blur-white" (inverted,
    e.g. CUHK's original masks). Anything else is refused rather than guessed.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"unknown mask polarity {polarity!r} for {path}; use one of {POLARITIES}")
    image = _open(Path(path)).convert("L")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    mask = np.asarray(image, dtype=np.float32) / 255.0
    return 1.0 - mask if polarity == "blur-white" else mask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it is renamed over `path`, on failure removed.

    A process killed at any moment leaves either the old complete file or the new complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_file_beside(path: Path) -> Path:
    """An empty, uniquely named hidden file beside `path`, with the mode of any new file (0666 less the umask).

    Not tempfile.mkstemp: its files are 0600 whatever the umask, so a group sharing a results folder
    or a DVC cache could not read what the pipeline wrote.
    """
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 RGB, or a float map in [0,1] as 8-bit grey, atomically."""
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=Image.registered_extensions()[Path(path).suffix.lower()])


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically so a killed process never leaves a half-written result."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike, made_by: str | None = None):
    path = Path(path)
    if not path.exists():
        hint = f"; the rule `{made_by}` makes it" if made_by else ""
        raise FileNotFoundError(f"results file missing: {path}{hint}")
    return json.loads(path.read_text())
