"""Defocus detection generator G_ws (paper Sec. 3.2, REFERENCE.md Sec. 2).

A U-Net whose encoder follows the layout of VGG16 blocks 1-4 and whose decoder
fuses the block-2 and block-3 features through skip connections.  As in the
authors' release every 3x3 convolution is followed by BatchNorm and a
LeakyReLU, pooling is 2x2 average pooling and convolutions are initialised
with N(0, 0.01).  ``pretrained=True`` instead loads torchvision's VGG16
ImageNet weights into the ten encoder convolutions (paper: "the first four
convolution blocks of VGG16").

Input: RGB in [0, 1], N x 3 x H x W (H, W divisible by 8 is the intended use;
other sizes >= 8 also work because every upsampling targets the skip's size);
the ImageNet normalisation happens inside.  Output: focus map N x 1 x H x W in [0, 1],
1 = in focus.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Indices of the 3x3 convolutions of blocks 1-4 inside torchvision's
# ``vgg16().features`` (ReLU / max-pool layers sit in between).
_VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)


class ImageNetNormalize(nn.Module):
    """(x - mean) / std with the ImageNet statistics, stored as buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn_act(cin: int, cout: int, kernel: int, negative_slope: float) -> nn.Sequential:
    """Conv (no bias: BatchNorm's shift replaces it) + BatchNorm + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(negative_slope, inplace=True),
    )


def _check_input(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < 8:
        raise ValueError(f"H and W must be at least 8, got {tuple(x.shape[-2:])}")


class DefocusDetector(nn.Module):
    """G_ws: VGG16(blocks 1-4)-shaped encoder + U-Net decoder -> focus map.

    ``width`` scales every channel count (64 = paper scale); the decoder widths
    of the release (256, 128, 64, 32) become width * (4, 2, 1, 1/2).
    ``align_corners=True`` upsamples as the release does; with it and width 64 the
    network holds the release's DBD.pth exactly (apl.models.release).
    """

    def __init__(self, width: int = 64, negative_slope: float = 0.2, pretrained: bool = False,
                 align_corners: bool = False) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even integer >= 2, got {width}")
        if pretrained and width != 64:
            raise ValueError(
                f"pretrained=True loads VGG16 ImageNet weights, which needs width=64 (got width={width})"
            )
        self.width = width
        # Bilinear upsampling with align_corners=True is what the authors' release does (models.gws.kind: release)
        self.align_corners = bool(align_corners)
        w, s = width, negative_slope
        self.normalize = ImageNetNormalize()

        # Encoder: VGG16 blocks 1-4 (average pooling as in the release).
        self.block1 = nn.Sequential(conv_bn_act(3, w, 3, s), conv_bn_act(w, w, 3, s))
        self.block2 = nn.Sequential(conv_bn_act(w, 2 * w, 3, s), conv_bn_act(2 * w, 2 * w, 3, s))  # s1
        self.block3 = nn.Sequential(  # s2
            conv_bn_act(2 * w, 4 * w, 3, s), conv_bn_act(4 * w, 4 * w, 3, s), conv_bn_act(4 * w, 4 * w, 3, s)
        )
        self.block4 = nn.Sequential(  # s3
            conv_bn_act(4 * w, 8 * w, 3, s), conv_bn_act(8 * w, 8 * w, 3, s), conv_bn_act(8 * w, 8 * w, 3, s)
        )
        self.pool = nn.AvgPool2d(2, 2)

        # Decoder (release widths 256/128/64/32 scaled by width / 64).
        self.dec3 = nn.Sequential(conv_bn_act(8 * w, 4 * w, 1, s), conv_bn_act(4 * w, 4 * w, 3, s))
        self.dec2 = nn.Sequential(conv_bn_act(8 * w, 2 * w, 1, s), conv_bn_act(2 * w, 2 * w, 3, s))
        self.dec1 = nn.Sequential(
            conv_bn_act(4 * w, w, 1, s), conv_bn_act(w, w, 3, s), conv_bn_act(w, w // 2, 3, s)
        )
        self.dec0 = nn.Sequential(conv_bn_act(w // 2, w // 2, 3, s), conv_bn_act(w // 2, w // 2, 3, s))
        self.head = nn.Conv2d(w // 2, 1, 1)

        self._init_weights()
        if pretrained:
            self.load_vgg16_imagenet()

    # ------------------------------------------------------------------ init
    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encoder_convs(self) -> list[nn.Conv2d]:
        """The ten encoder convolutions, in VGG16 order."""
        return [layer[0] for block in (self.block1, self.block2, self.block3, self.block4) for layer in block]

    def load_vgg16_imagenet(self) -> None:
        """Copy torchvision's VGG16 (IMAGENET1K_V1) conv weights into the encoder.

        Only the kernels are copied: each encoder conv is followed by BatchNorm,
        whose shift absorbs VGG's bias exactly in training mode.  Raises
        RuntimeError (never falls back to random weights) when the checkpoint
        cannot be obtained.
        """
        from torchvision.models import VGG16_Weights

        weights = VGG16_Weights.IMAGENET1K_V1
        filename = os.path.basename(weights.url)
        target = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # offline, HTTP error, hash mismatch, corrupt file, ...
            raise RuntimeError(
                f"could not load the VGG16 ImageNet weights ({weights.url}): {err!r}. "
                f"Download {filename} elsewhere and place it at {target} "
                "(torch.hub.get_dir()/checkpoints/), or use pretrained=False."
            ) from err
        convs = self.encoder_convs()
        with torch.no_grad():
            for conv, idx in zip(convs, _VGG16_CONV_INDICES):
                src = state[f"features.{idx}.weight"]
                if src.shape != conv.weight.shape:
                    raise RuntimeError(
                        f"VGG16 features.{idx}.weight has shape {tuple(src.shape)}, "
                        f"expected {tuple(conv.weight.shape)}"
                    )
                conv.weight.copy_(src)

    # --------------------------------------------------------------- forward
    def _up(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid focus map, N x 1 x H x W."""
        _check_input(x)
        size = x.shape[-2:]
        f0 = self.block1(self.normalize(x))  # H
        s1 = self.block2(self.pool(f0))  # H/2
        s2 = self.block3(self.pool(s1))  # H/4
        s3 = self.block4(self.pool(s2))  # H/8
        d = self.dec3(s3)
        d = self.dec2(torch.cat([self._up(d, s2.shape[-2:]), s2], dim=1))
        d = self.dec1(torch.cat([self._up(d, s1.shape[-2:]), s1], dim=1))
        d = self.dec0(self._up(d, size))
        return self.head(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Focus map in [0, 1] (1 = in focus), N x 1 x H x W."""
        return torch.sigmoid(self.forward_logits(x))
