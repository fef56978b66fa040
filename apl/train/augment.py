"""Differentiable augmentation of what D sees (train.d_augment), and what a camera adds to G_sr's pretraining
inputs (train.pretrain_camera, `camera` at the end).

With a small full-clear set (the open set has 90 training photographs; the paper's has 500) D learns
its real images by heart within a few hundred steps, and its gradient then asks G_sr for their colours
and textures rather than for sharpness. The same random colour, translation and cutout are applied to
real and fake images alike, on the differentiable path, so G_sr is still judged through D but D cannot
memorise the real set (DiffAugment: Zhao et al., NeurIPS 2020). None of these operations blurs or
sharpens, so sharpness stays the cue D can use. Not in the paper: DEVIATIONS.md.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

def _uniform(n: int, low: float, high: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    draw = torch.rand(n, 1, 1, 1, generator=generator)
    return (low + (high - low) * draw).to(like.device, like.dtype)


def colour(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness shift, saturation and contrast per image."""
    n = x.shape[0]
    x = x + _uniform(n, -0.5, 0.5, generator, x)
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * _uniform(n, 0.0, 2.0, generator, x) + grey
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(n, 0.5, 1.5, generator, x) + mean


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio of its size, filling with zeros."""
    n, _, h, w = x.shape
    sy, sx = max(1, int(h * ratio)), max(1, int(w * ratio))
    shifts = torch.stack([torch.randint(-sy, sy + 1, (n,), generator=generator),
                          torch.randint(-sx, sx + 1, (n,), generator=generator)], 1).tolist()
    padded = F.pad(x, (sx, sx, sy, sy))
    return torch.stack([padded[i, :, sy - dy:sy - dy + h, sx - dx:sx - dx + w] for i, (dy, dx) in enumerate(shifts)])


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ratio of the image's size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio), int(w * ratio)
    ys = torch.randint(0, h, (n,), generator=generator).tolist()
    xs = torch.randint(0, w, (n,), generator=generator).tolist()
    keep = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
    for i, (y, x0) in enumerate(zip(ys, xs)):
        keep[i, :, max(0, y - ch // 2):y + ch // 2, max(0, x0 - cw // 2):x0 + cw // 2] = 0
    return x * keep


OPERATIONS = {"colour": colour, "translation": translation, "cutout": cutout}


def augment(x: torch.Tensor, operations: list[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the listed operations, always in OPERATIONS' order; an empty list returns x unchanged."""
    for name, operation in OPERATIONS.items():
        if name in operations:
            x = operation(x, generator)
    return x


def camera(images: torch.Tensor, noise: list[float], jpeg: list[int] | None,
           generator: torch.Generator) -> torch.Tensor:
    """What a camera adds after the blur, drawn afresh per image (train.pretrain_camera; DEVIATIONS.md): Gaussian
    noise of a standard deviation ~ U(noise) 8-bit levels, then JPEG at a quality ~ U(jpeg) (None: none).

    uint8 NHWC in and out. A G_sr pretrained on clean pairs takes a photograph's noise and JPEG blocks for
    detail and leaves its blurred regions alone (issue 30: one level of noise, or JPEG at quality 95, cuts
    what it restores on a Gaussian blur of sigma 2 by more than half), so its blurred inputs carry both; its
    target stays clean.
    """
    n = images.shape[0]
    out = images.float()
    low, high = (float(v) for v in noise)
    if high > 0:
        spread = low + (high - low) * torch.rand(n, 1, 1, 1, generator=generator)
        out = out + spread.to(out.device) * torch.randn(out.shape, generator=generator).to(out.device)
    out = out.round_().clamp_(0, 255).to(torch.uint8)
    if not jpeg:
        return out
    qualities = torch.randint(int(jpeg[0]), int(jpeg[1]) + 1, (n,), generator=generator).tolist()
    compressed = []
    for image, quality in zip(out.cpu().numpy(), qualities):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        compressed.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(compressed)).to(images.device)
