"""Self-referenced defocus deblurring generator G_sr and UFAT (paper Sec. 3.2, 4.2).

Layered composition (paper Eq. 4, REFERENCE.md Sec. 1)::

    I_f  = M * I            (focused layer)
    I_df = (1 - M) * I      (defocused layer)
    R    = G(I_df | I_f)    (reconstruction; a global skip adds I (or I_df) back)
    out  = R * (1 - M) + I * M

Variants (paper Table 3 / Fig. 8), selected with ``variant``:

* ``"ugan"``   - plain generator on I only; no reference, no composite: out = R(I).
* ``"dcgan"``  - I_f and I_df concatenated at the input (6 channels).
* ``"cdfgan"`` - a 3-conv block encodes I_f; its features are concatenated with
                 the intermediate features of I_df and fused by a 1x1 conv.
* ``"ufat"``   - the full model: UFAT residual blocks between the stages.
* ``"guard"``  - not the paper's: U-GAN's map-blind generator R(I), composited with the map like the others,
                 out = R(I) (1 - M) + I M. The network judges the blur itself and the map only guards the
                 in-focus regions (issue 30: UFAT deblurs at full strength wherever the map says defocused,
                 lightly blurred and mis-mapped regions included).

The backbone is the same for all four: input conv -> stage 1 -> [insert] ->
stage 2 -> [insert] -> ... -> last stage -> output conv (+ global skip), where a
stage is a residual group of Conv-BN-ReLU blocks and [insert] is a UFAT residual
block (ufat), a CDF fusion followed by a plain residual block (cdfgan), or a
plain residual block (ugan, dcgan) so that depth is matched across variants.

Global skip (``skip``; the paper only says "a global skip connection"):
``"image"`` adds the whole image I back, so R = I + residual and, with the
output convolution initialised to zero, G_sr starts as the identity (out = I)
for any map M; ``"defocused"`` adds I_df = (1 - M) I back (the release), which
equals I where M = 0 but darkens R wherever a soft map is above 0.  Both agree
on binary masks.

Value range (``clamp``): ``reconstruction`` and ``out`` are clamped to [0, 1].
``"hard"`` is a plain clamp (no gradient pushes a pixel further outside);
``"straight_through"`` keeps the identity gradient outside the bounds.  The
forward dict also returns ``unclamped`` (the composite before the clamp: R
where the map lets it through), so training can log the share the clamp cuts
(``clipped_share``).  Inputs are used in [0, 1] without ImageNet normalisation
(the generator predicts a residual in image space).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("ugan", "dcgan", "cdfgan", "ufat", "guard")
MAP_BLIND = ("ugan", "guard")   # the generator itself never reads the map


class _ClampST(torch.autograd.Function):
    """clamp(x, 0, 1) forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def clamp_straight_through(x: torch.Tensor) -> torch.Tensor:
    return _ClampST.apply(x)


def hard_clamp(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


def clipped_share(unclamped: torch.Tensor) -> float:
    """Share of values the [0, 1] clamp cuts by more than one 8-bit level (a saturated photo pixel plus a
    tiny residual is not a clip)."""
    return ((unclamped - unclamped.clamp(0.0, 1.0)).abs() > 1 / 255).float().mean().item()


SKIPS = ("image", "defocused")
CLAMPS = {"hard": hard_clamp, "straight_through": clamp_straight_through}


def _conv_act(cin: int, cout: int, negative_slope: float, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.LeakyReLU(negative_slope, inplace=True)]


def reference_encoder(width: int, negative_slope: float, in_channels: int = 3) -> nn.Sequential:
    """Three 3x3 conv + LeakyReLU layers, in_channels -> width -> width -> width."""
    return nn.Sequential(
        *_conv_act(in_channels, width, negative_slope),
        *_conv_act(width, width, negative_slope),
        *_conv_act(width, width, negative_slope),
    )


class UFAT(nn.Module):
    """Unpaired feature affine transformation (paper Eq. 5).

    A shared 3-conv encoder embeds I_f and I_df separately; their features are
    concatenated (2 * width channels) and two branches (eta, beta), each 3 convs
    + global average pooling + two 1x1 convs, produce channel vectors.  Output:
    ``eta * features + beta`` with ``eta = sigmoid(.)`` - a channel-wise (not
    spatial) transform, because I_f and I_df are not spatially aligned.
    Because eta and beta are pooled vectors, ``features`` may have any spatial
    size; I_f / I_df are used at the image resolution.
    """

    def __init__(self, width: int = 128, negative_slope: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.encoder = reference_encoder(width, negative_slope, in_channels)
        self.eta = self._branch(width, negative_slope)
        self.beta = self._branch(width, negative_slope)
        # Run eta and beta as one branch of twice the width (fused_branches): same weights, same state_dict
        self.fused_branches = False

    @staticmethod
    def _branch(width: int, negative_slope: float) -> nn.Sequential:
        return nn.Sequential(
            *_conv_act(2 * width, width, negative_slope),
            *_conv_act(width, width, negative_slope),
            *_conv_act(width, width, negative_slope),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(width, width, 1),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(width, width, 1),
        )

    def reference_features(self, i_f: torch.Tensor, i_df: torch.Tensor) -> torch.Tensor:
        """Shared encoder on I_f and I_df (one batched call), concatenated on channels."""
        n = i_f.shape[0]
        enc = self.encoder(torch.cat([i_f, i_df], dim=0))
        return torch.cat([enc[:n], enc[n:]], dim=1)

    def _fused(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """eta and beta in one pass: both read the same input through layers of the same shapes, so their first
        conv is one conv with both kernels stacked and every later layer one grouped conv (groups=2). The
        weights are stacked on the fly, so gradients reach each branch's own parameters."""
        groups = 1
        h = ref
        for eta_layer, beta_layer in zip(self.eta, self.beta):
            if isinstance(eta_layer, nn.Conv2d):
                weight = torch.cat([eta_layer.weight, beta_layer.weight])
                bias = torch.cat([eta_layer.bias, beta_layer.bias])
                h = F.conv2d(h, weight, bias, padding=eta_layer.padding, groups=groups)
                groups = 2
            elif isinstance(eta_layer, nn.LeakyReLU):
                h = F.leaky_relu(h, self.negative_slope, inplace=True)
            else:   # the global average pool
                h = eta_layer(h)
        eta, beta = h.chunk(2, dim=1)
        return eta, beta

    def forward(self, features: torch.Tensor, i_f: torch.Tensor, i_df: torch.Tensor) -> torch.Tensor:
        ref = self.reference_features(i_f, i_df)
        if self.fused_branches:
            eta, beta = self._fused(ref)
        else:
            eta, beta = self.eta(ref), self.beta(ref)  # N x C x 1 x 1 each
        return torch.sigmoid(eta) * features + beta


def fuse_ufat_branches(net: nn.Module, on: bool) -> None:
    """Switch every UFAT of `net` to the fused eta/beta pass (or back); weights and state_dict are unchanged."""
    for module in net.modules():
        if isinstance(module, UFAT):
            module.fused_branches = on


class UFATResBlock(nn.Module):
    """UFAT -> conv3x3 -> LeakyReLU -> UFAT -> conv3x3, plus the block's input."""

    def __init__(self, width: int = 128, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.ufat1 = UFAT(width, negative_slope)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.ufat2 = UFAT(width, negative_slope)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, i_f: torch.Tensor, i_df: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(self.ufat1(x, i_f, i_df)))
        y = self.conv2(self.ufat2(y, i_f, i_df))
        return x + y


class PlainResBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3, plus the input (UFATResBlock without UFAT)."""

    def __init__(self, width: int = 128, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, i_f: torch.Tensor | None = None, i_df: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class CDFResBlock(nn.Module):
    """CDF-GAN insertion: concat(features, E(I_f)) -> 1x1 conv back to width -> plain residual block.

    ``ref`` is the I_f feature map from the generator's shared 3-conv encoder.
    """

    def __init__(self, width: int = 128, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(2 * width, width, 1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.res = PlainResBlock(width, negative_slope)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.res(self.act(self.fuse(torch.cat([x, ref], dim=1))))


class Stage(nn.Module):
    """A residual group of ``blocks`` Conv3x3-BN-ReLU blocks: x + body(x)."""

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SelfReferencedDeblurrer(nn.Module):
    """G_sr: self-referenced defocus deblurring generator.

    ``forward(image, focus_map)`` returns ``{"out": composite, "reconstruction": R}``
    (for ``variant="ugan"`` the focus map is ignored and ``out == reconstruction``).
    """

    def __init__(
        self,
        variant: str = "ufat",
        width: int = 128,
        stages: tuple[int, ...] = (2, 3, 2),
        negative_slope: float = 0.2,
        skip: str = "image",
        clamp: str = "hard",
    ) -> None:
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"unknown G_sr skip {skip!r}; valid: {', '.join(SKIPS)}")
        if clamp not in CLAMPS:
            raise ValueError(f"unknown G_sr clamp {clamp!r}; valid: {', '.join(CLAMPS)}")
        self.skip, self.clamp_mode = skip, clamp
        self._clamp = CLAMPS[clamp]
        if variant not in VARIANTS:
            raise ValueError(f"unknown G_sr variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
        stages = tuple(int(b) for b in stages)
        if not stages or any(b < 1 for b in stages):
            raise ValueError(f"stages must be a non-empty tuple of positive block counts, got {stages}")
        self.variant = variant
        self.width = width
        self.stages_spec = stages

        in_channels = 6 if variant == "dcgan" else 3
        self.input_conv = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.LeakyReLU(negative_slope, inplace=True)
        )
        self.stages = nn.ModuleList(Stage(width, b) for b in stages)
        n_insert = len(stages) - 1
        if variant == "ufat":
            self.inserts = nn.ModuleList(UFATResBlock(width, negative_slope) for _ in range(n_insert))
        elif variant == "cdfgan":
            self.ref_encoder = reference_encoder(width, negative_slope)
            self.inserts = nn.ModuleList(CDFResBlock(width, negative_slope) for _ in range(n_insert))
        else:
            self.inserts = nn.ModuleList(PlainResBlock(width, negative_slope) for _ in range(n_insert))
        self.output_conv = nn.Conv2d(width, 3, 3, padding=1)
        if skip == "image" or variant in MAP_BLIND:
            # residual starts at zero: G_sr is the identity until training gives it a reason to change a pixel
            nn.init.zeros_(self.output_conv.weight)
            nn.init.zeros_(self.output_conv.bias)

    @property
    def uses_focus_map(self) -> bool:
        return self.variant != "ugan"

    def _backbone(self, x: torch.Tensor, i_f: torch.Tensor | None, i_df: torch.Tensor | None) -> torch.Tensor:
        h = self.input_conv(x)
        ref = self.ref_encoder(i_f) if self.variant == "cdfgan" else None
        for k, stage in enumerate(self.stages):
            h = stage(h)
            if k < len(self.inserts):
                insert = self.inserts[k]
                if self.variant == "ufat":
                    h = insert(h, i_f, i_df)
                elif self.variant == "cdfgan":
                    h = insert(h, ref)
                else:
                    h = insert(h)
        return self.output_conv(h)

    def forward(self, image: torch.Tensor, focus_map: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
        if self.variant == "ugan":
            raw = image + self._backbone(image, None, None)
            recon = self._clamp(raw)
            return {"out": recon, "reconstruction": recon, "unclamped": raw}
        if focus_map is None:
            raise ValueError(f"variant {self.variant!r} needs a focus map (N x 1 x H x W in [0, 1])")
        if focus_map.dim() != 4 or focus_map.shape[1] != 1 or focus_map.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"focus map must be N x 1 x H x W matching the image {tuple(image.shape)}, got {tuple(focus_map.shape)}"
            )
        i_f = focus_map * image
        i_df = (1.0 - focus_map) * image
        if self.variant == "guard":     # the map never enters the network, only the composite below
            raw = image + self._backbone(image, None, None)
        else:
            x = torch.cat([i_f, i_df], dim=1) if self.variant == "dcgan" else i_df
            raw = (image if self.skip == "image" else i_df) + self._backbone(x, i_f, i_df)
        recon = self._clamp(raw)
        out = self._clamp(recon * (1.0 - focus_map) + image * focus_map)
        # what the composite would be without the clamp: the share it cuts is what a user would see clipped
        return {"out": out, "reconstruction": recon, "unclamped": raw * (1.0 - focus_map) + image * focus_map}
