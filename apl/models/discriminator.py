"""Discriminator D (paper Sec. 3.2, REFERENCE.md Sec. 2).

``kind="paper"``: VGG16's first three conv blocks (widths width * (1, 2, 4),
2x2 max pooling, no BatchNorm as in VGG16, LeakyReLU(0.2) as usual for a GAN
critic), then an adaptive average pool to a 4 x 4 grid and three fully
connected layers (4096 -> fc_width -> fc_width -> 1 at paper scale).  The
paper gives no FC sizes; pooling to 4 x 4 keeps the first FC at 4M weights
instead of ~100M for a flattened 256 x 20 x 20 map and makes D size-agnostic.

``kind="release"``: the authors' conv stack 3->64, 64->64 (s2), 64->128,
128->128 (s2), 128->256, 256->512, 512->512 (s2) (widths scaled by width/64;
BatchNorm after every conv but the first), global average pool, 1x1 -> fc_width,
LeakyReLU, 1x1 -> 1.

``kind="patch"`` (not in the paper; issue 26's local verdict): the paper kind's
three conv blocks, then 1x1 convolutions (4 * width -> fc_width -> 1) in place of
the pool and the FC layers: one logit per location of the stride-8 grid, each
judging its receptive field (about 40 px), so that a wrong region of the map
changes the verdict on that region rather than on the whole image.

All take RGB in [0, 1] (ImageNet normalisation inside) and return LOGITS of
shape (N,), or (N, P) for P patches; no sigmoid (use BCE-with-logits, averaged).
"""

from __future__ import annotations

import torch
from torch import nn

from .detector import ImageNetNormalize

KINDS = ("paper", "release", "patch")
PAPER_POOL_GRID = 4


def _conv(cin: int, cout: int, stride: int = 1, bn: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Discriminator(nn.Module):
    def __init__(self, width: int = 64, kind: str = "paper", image_size: int = 160, fc_width: int = 1024) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown discriminator kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        if image_size % 8:
            raise ValueError(f"image_size must be divisible by 8, got {image_size}")
        self.kind = kind
        # Nominal training resolution; recorded for reference only - both kinds
        # pool adaptively, so any H, W divisible by 8 is accepted.
        self.image_size = image_size
        self.normalize = ImageNetNormalize()
        w = width
        if kind in ("paper", "patch"):
            self.features = nn.Sequential(
                *_conv(3, w), *_conv(w, w), nn.MaxPool2d(2, 2),
                *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2, 2),
                *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w), *_conv(4 * w, 4 * w), nn.MaxPool2d(2, 2),
            )
        if kind == "patch":
            self.pool = nn.Identity()
            self.classifier = nn.Sequential(
                nn.Conv2d(4 * w, fc_width, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(fc_width, 1, 1),
                nn.Flatten(),
            )
        elif kind == "paper":
            self.pool = nn.AdaptiveAvgPool2d(PAPER_POOL_GRID)
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(4 * w * PAPER_POOL_GRID**2, fc_width),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(fc_width, fc_width),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(fc_width, 1),
            )
        else:
            self.features = nn.Sequential(
                *_conv(3, w),
                *_conv(w, w, stride=2, bn=True),
                *_conv(w, 2 * w, bn=True),
                *_conv(2 * w, 2 * w, stride=2, bn=True),
                *_conv(2 * w, 4 * w, bn=True),
                *_conv(4 * w, 8 * w, bn=True),
                *_conv(8 * w, 8 * w, stride=2, bn=True),
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Conv2d(8 * w, fc_width, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(fc_width, 1, 1),
                nn.Flatten(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits, shape (N,); (N, P), one per patch, for kind patch."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(x.shape)}")
        h = self.pool(self.features(self.normalize(x)))
        logits = self.classifier(h)
        return logits if self.kind == "patch" else logits.reshape(x.shape[0])
