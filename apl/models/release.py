"""The authors' released networks (github.com/wdzhao123/APL: DBD.pth, deblur.pth) as an apl weights file.

``import_release(dbd, deblur, out)`` (``apl import-release``) reads the two PyTorch state dicts the
authors publish, checks every key and shape against the release's layout (below), and writes a
self-describing weights file (apl.train.checkpoint.save_weights) that ``apl predict`` and
``apl.predict.Model`` use like any other. What the release computes, as read from its model
definitions (docs/release.md has the user-facing summary):

* Both networks see the photo resized to 160 x 160 (bilinear) and normalised with the ImageNet mean
  and std; the detector's map is used as it comes out of its sigmoid.
* Detector (``CNN_for_DBD``): the layout of apl.models.detector.DefocusDetector at width 64, except
  that every convolution carries a bias before its BatchNorm (folded here into the BatchNorm's
  running mean, exact in eval mode) and the decoder upsamples with align_corners=True
  (``models.gws.kind: release``). The 1x1 output convolution has a bias, no BatchNorm, a sigmoid.
* Generator (``CNN_for_Generator``): ReleaseDeblurrer below (``models.gsr.kind: release``); it works on
  the normalised image x: I_df = x (1 - M), I_f = x M, its global skip adds I_df and its output is
  (G + I_df)(1 - M) + I_f, un-normalised and clipped to [0, 1]. Only stages 1, 2 and 4 and fuse
  layers 1 and 2 run; the third stage and fuse layer are stored but never called.
* Their conv wrapper always creates a BatchNorm, also where it is switched off (the detector's 1x1
  output conv, the UFAT layers' 1x1 convs): those entries are in the state dicts and unused, as are
  each UFAT layer's third encoder (layer3_*). They are accepted and listed as unused.
"""
from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from apl.data.release_files import RELEASE_URL
from apl.models.detector import IMAGENET_MEAN, IMAGENET_STD, DefocusDetector, ImageNetNormalize

RELEASE_SIZE = 160
SLOPE = 0.2            # LeakyReLU slope of every conv layer of the release ...
RESBLOCK_SLOPE = 0.01  # ... except inside the UFAT residual block (functional leaky_relu, default slope)
BN_KEYS = ("weight", "bias", "running_mean", "running_var")
OPTIONAL_SUFFIX = ".num_batches_tracked"   # absent from state dicts of very old PyTorch versions


class ReleaseError(ValueError):
    """A file given as a release checkpoint is not one; the message names the file and the key."""


# ------------------------------------------------------------------------------------------ networks
def _conv_bn_act(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """conv (with bias) + BatchNorm + LeakyReLU(0.2): the release's enabled-BN conv layer."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(SLOPE, inplace=True))


def _conv_bn_relu(width: int) -> nn.Sequential:
    """conv 3x3 (no bias) + BatchNorm + ReLU: one block of a release stage (stages have no skip)."""
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True))


class ReleaseUFAT(nn.Module):
    """The release's UFAT (their "SFT" layer): a channel-wise affine transform of `features`.

    A shared encoder (3 conv-BN-LReLU layers) embeds I_df and I_f; the two embeddings are concatenated
    in that order (I_df first). Two branches (eta, beta) of 3 conv-BN-LReLU layers, a global average
    pool and two 1x1 conv + LReLU layers end in a sigmoid each; output ``eta * features + beta`` (so
    beta, too, lies in (0, 1)). The release pools with a fixed 160 x 160 window, the global mean at
    its only working size; here the mean is global at any size.
    """

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(_conv_bn_act(3, w), _conv_bn_act(w, w), _conv_bn_act(w, w))
        self.eta = nn.Sequential(_conv_bn_act(2 * w, w), _conv_bn_act(w, w), _conv_bn_act(w, w))
        self.eta_fc = nn.Sequential(nn.Conv2d(w, w, 1), nn.LeakyReLU(SLOPE), nn.Conv2d(w, w, 1), nn.LeakyReLU(SLOPE))
        self.beta = nn.Sequential(_conv_bn_act(2 * w, w), _conv_bn_act(w, w), _conv_bn_act(w, w))
        self.beta_fc = nn.Sequential(nn.Conv2d(w, w, 1), nn.LeakyReLU(SLOPE), nn.Conv2d(w, w, 1), nn.LeakyReLU(SLOPE))

    def forward(self, features: torch.Tensor, i_df: torch.Tensor, i_f: torch.Tensor) -> torch.Tensor:
        # two calls, as in the release (one batched call would pool BatchNorm statistics in training mode)
        ref = torch.cat([self.encoder(i_df), self.encoder(i_f)], dim=1)
        eta = torch.sigmoid(self.eta_fc(self.eta(ref).mean(dim=(2, 3), keepdim=True)))
        beta = torch.sigmoid(self.beta_fc(self.beta(ref).mean(dim=(2, 3), keepdim=True)))
        return eta * features + beta


class ReleaseUFATResBlock(nn.Module):
    """UFAT -> conv 3x3 -> leaky_relu(0.01) -> UFAT -> conv 3x3, plus the block's input."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.ufat1 = ReleaseUFAT(width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(RESBLOCK_SLOPE, inplace=True)
        self.ufat2 = ReleaseUFAT(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, i_df: torch.Tensor, i_f: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(self.ufat1(x, i_df, i_f)))
        return x + self.conv2(self.ufat2(y, i_df, i_f))


class ReleaseDeblurrer(nn.Module):
    """G_sr as the authors' release computes it (``models.gsr.kind: release``).

    ``forward(image, focus_map)`` with the image in [0, 1] (normalised inside) returns, like
    SelfReferencedDeblurrer: ``out`` the release's output (un-normalised, clipped to [0, 1]),
    ``reconstruction`` Q = unnormalise(G + I_df), NOT clipped, where G is the output conv's result (so
    ``out = clip(Q (1 - M) + I M)``, which apl predict evaluates at the photo's size), and
    ``unclamped`` the output before the clip.
    """

    kind = "release"
    variant = "ufat"
    uses_focus_map = True

    def __init__(self, width: int = 128, stages: tuple[int, ...] = (2, 3, 2)) -> None:
        super().__init__()
        stages = tuple(int(b) for b in stages)
        if not stages or any(b < 1 for b in stages):
            raise ValueError(f"stages must be a non-empty tuple of positive block counts, got {stages}")
        self.width, self.stages_spec = width, stages
        self.normalize = ImageNetNormalize()
        self.input_conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.input_act = nn.LeakyReLU(SLOPE, inplace=True)
        self.stages = nn.ModuleList(nn.Sequential(*(_conv_bn_relu(width) for _ in range(b))) for b in stages)
        self.inserts = nn.ModuleList(ReleaseUFATResBlock(width) for _ in range(len(stages) - 1))
        self.output_conv = nn.Conv2d(width, 3, 3, padding=1, bias=False)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.normalize.std + self.normalize.mean

    def forward(self, image: torch.Tensor, focus_map: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
        if focus_map is None or focus_map.dim() != 4 or focus_map.shape[1] != 1 \
                or focus_map.shape[-2:] != image.shape[-2:]:
            got = None if focus_map is None else tuple(focus_map.shape)
            raise ValueError(f"the release's G_sr needs a focus map N x 1 x H x W matching the image "
                             f"{tuple(image.shape)}, got {got}")
        x = self.normalize(image)
        i_df = x * (1.0 - focus_map)
        i_f = x * focus_map
        h = self.input_act(self.input_conv(i_df))
        for k, stage in enumerate(self.stages):
            h = stage(h)
            if k < len(self.inserts):
                h = self.inserts[k](h, i_df, i_f)
        raw = self.output_conv(h) + i_df
        composite = self.unnormalize(raw * (1.0 - focus_map) + i_f)
        return {"out": composite.clamp(0.0, 1.0), "reconstruction": self.unnormalize(raw), "unclamped": composite}


# --------------------------------------------------------------------------------- the release's keys
DBD_PREFIX = "U_Net_for_DBD."
DEBLUR_PREFIX = "Net_for_Generator.base2."

# (release conv layer, DefocusDetector module, in, out, kernel); None: the 1x1 output conv (no BN used)
_DBD_LAYERS = (
    ("base1.conv1_1_2", "block1.0", 3, 64, 3), ("base1.conv1_2_2", "block1.1", 64, 64, 3),
    ("base1.conv2_1_2", "block2.0", 64, 128, 3), ("base1.conv2_2_2", "block2.1", 128, 128, 3),
    ("base1.conv3_1_2", "block3.0", 128, 256, 3), ("base1.conv3_2_2", "block3.1", 256, 256, 3),
    ("base1.conv3_3_2", "block3.2", 256, 256, 3),
    ("base1.conv4_1_2", "block4.0", 256, 512, 3), ("base1.conv4_2_2", "block4.1", 512, 512, 3),
    ("base1.conv4_3_2", "block4.2", 512, 512, 3),
    ("base2.conv1_2", "dec3.0", 512, 256, 1), ("base2.conv2_2", "dec3.1", 256, 256, 3),
    ("base2.conv3_2", "dec2.0", 512, 128, 1), ("base2.conv4_2", "dec2.1", 128, 128, 3),
    ("base2.conv5_2", "dec1.0", 256, 64, 1), ("base2.conv6_2", "dec1.1", 64, 64, 3),
    ("base2.conv7_2", "dec1.2", 64, 32, 3),
    ("base2.conv_out_base_1", "dec0.0", 32, 32, 3), ("base2.conv_out_base_2", "dec0.1", 32, 32, 3),
    ("base2.conv_out_base_3", None, 32, 1, 1),
)
_GEN_WIDTH = 128
_GEN_STAGES = {1: 2, 2: 3, 3: 3, 4: 2}      # residual_layer_k: blocks; the forward runs 1, 2, 4
_GEN_USED_STAGES = (1, 2, 4)
_GEN_USED_FUSE = (1, 2)                      # fuse_layer_3 is never called


class _Plan:
    """Every key of one release checkpoint: its shape and where its value goes (None: stored, unused)."""

    def __init__(self, name: str, cls: str, prefix: str):
        self.name, self.cls, self.prefix = name, cls, prefix
        self.entries: OrderedDict[str, tuple[tuple[int, ...], str | None]] = OrderedDict()

    def add(self, key: str, shape: tuple[int, ...], target: str | None) -> None:
        self.entries[self.prefix + key] = (tuple(shape), target)

    def base_conv(self, name: str, cin: int, cout: int, kernel: int, conv_target: str | None,
                  bn_target: str | None, bias_target: str | None) -> None:
        """Their conv wrapper: conv (weight, bias) + a BatchNorm that exists even when switched off."""
        self.add(f"{name}.conv.weight", (cout, cin, kernel, kernel), conv_target and f"{conv_target}.weight")
        self.add(f"{name}.conv.bias", (cout,), bias_target)
        for key in BN_KEYS:
            self.add(f"{name}.bn.{key}", (cout,), bn_target and f"{bn_target}.{key}")
        self.add(f"{name}.bn.num_batches_tracked", (), bn_target and f"{bn_target}.num_batches_tracked")

    def used(self) -> list[str]:
        return [key for key, (_, target) in self.entries.items() if target is not None]

    def unused(self) -> list[str]:
        return [key for key, (_, target) in self.entries.items() if target is None]


def dbd_plan() -> _Plan:
    """DBD.pth -> DefocusDetector(width=64, align_corners=True). A conv's bias goes into its BatchNorm's
    running mean ("fold:" targets: running_mean - bias), which is exact in eval mode."""
    plan = _Plan("DBD.pth", "CNN_for_DBD", DBD_PREFIX)
    for name, ours, cin, cout, kernel in _DBD_LAYERS:
        if ours is None:   # the output conv: conv + bias + sigmoid, its BatchNorm unused
            plan.base_conv(name, cin, cout, kernel, "head", None, "head.bias")
        else:
            plan.base_conv(name, cin, cout, kernel, f"{ours}.0", f"{ours}.1", f"fold:{ours}.1")
    return plan


def _ufat_plan(plan: _Plan, release: str, ours: str | None) -> None:
    w = _GEN_WIDTH
    t = (lambda sub: f"{ours}.{sub}") if ours else (lambda sub: None)
    for branch, mine in (("layer1", "encoder"), ("layer2", "eta"), ("layer3", None), ("layer4", "beta")):
        cin = 3 if branch in ("layer1", "layer3") else 2 * w
        for j in range(3):
            target = t(f"{mine}.{j}") if mine else None
            plan.base_conv(f"{release}.{branch}_{j + 1}", cin if j == 0 else w, w, 3,
                           target and f"{target}.0", target and f"{target}.1", target and f"{target}.0.bias")
    for fc, mine in (("fc1", "eta_fc"), ("fc2", "beta_fc")):
        for j in range(2):
            target = t(f"{mine}.{2 * j}")
            plan.base_conv(f"{release}.{fc}_{j + 1}", w, w, 1, target, None, target and f"{target}.bias")


def deblur_plan() -> _Plan:
    """deblur.pth -> ReleaseDeblurrer(width=128, stages=(2, 3, 2))."""
    w = _GEN_WIDTH
    plan = _Plan("deblur.pth", "CNN_for_Generator", DEBLUR_PREFIX)
    plan.add("input.weight", (w, 3, 3, 3), "input_conv.weight")
    for k, blocks in _GEN_STAGES.items():
        ours = f"stages.{_GEN_USED_STAGES.index(k)}" if k in _GEN_USED_STAGES else None
        for b in range(blocks):
            target = ours and f"{ours}.{b}"
            plan.add(f"residual_layer_{k}.{b}.conv.weight", (w, w, 3, 3), target and f"{target}.0.weight")
            for key in (*BN_KEYS, "num_batches_tracked"):
                plan.add(f"residual_layer_{k}.{b}.BN.{key}", () if key == "num_batches_tracked" else (w,),
                         target and f"{target}.1.{key}")
    for f in (1, 2, 3):
        ours = f"inserts.{_GEN_USED_FUSE.index(f)}" if f in _GEN_USED_FUSE else None
        for sft, mine in (("sft0", "ufat1"), ("sft1", "ufat2")):
            _ufat_plan(plan, f"fuse_layer_{f}.{sft}", ours and f"{ours}.{mine}")
        for conv, mine in (("conv0", "conv1"), ("conv1", "conv2")):
            plan.add(f"fuse_layer_{f}.{conv}.weight", (w, w, 3, 3), ours and f"{ours}.{mine}.weight")
            plan.add(f"fuse_layer_{f}.{conv}.bias", (w,), ours and f"{ours}.{mine}.bias")
    plan.add("output.weight", (3, w, 3, 3), "output_conv.weight")
    return plan


# ---------------------------------------------------------------------------------------- reading
def _read(path: Path, plan: _Plan, other: _Plan) -> dict[str, torch.Tensor]:
    """The state dict of `path`, checked against `plan`: every key known, every shape right."""
    if not path.is_file():
        raise ReleaseError(f"{path}: file not found (the release's {plan.name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a zip/pickle, truncated, or a pickle of arbitrary objects
        raise ReleaseError(f"{path} is not the release's {plan.name} ({plan.cls} state dict): torch.load failed "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if isinstance(state, Mapping) and "networks" in state and "meta" in state:
        raise ReleaseError(f"{path} is an apl weights file, not the release's {plan.name}; "
                           "apl predict reads it directly")
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ReleaseError(f"{path} is not the release's {plan.name}: it holds {type(state).__name__}, "
                           f"not a state dict of tensors")
    if all(key.startswith("module.") for key in state):   # saved from nn.DataParallel
        state = {key[len("module."):]: value for key, value in state.items()}
    missing = [key for key in plan.used() if key not in state and not key.endswith(OPTIONAL_SUFFIX)]
    if missing:
        hint = ""
        if any(key in other.entries for key in state):
            hint = f"; it looks like the release's {other.name} ({other.cls})"
        raise ReleaseError(f"{path} is not the release's {plan.name} ({plan.cls} state dict): missing key "
                           f"{missing[0]!r} ({len(missing)} of {len(plan.used())} missing){hint}")
    unexpected = [key for key in state if key not in plan.entries]
    if unexpected:
        raise ReleaseError(f"{path} is not the release's {plan.name} ({plan.cls} state dict): unexpected key "
                           f"{unexpected[0]!r} ({len(unexpected)} unexpected)")
    for key, value in state.items():
        shape = plan.entries[key][0]
        if tuple(value.shape) != shape:
            raise ReleaseError(f"{path} is not the release's {plan.name}: key {key!r} has shape "
                               f"{tuple(value.shape)}, the release's is {shape}")
    return dict(state)


def _convert(state: dict[str, torch.Tensor], plan: _Plan, net: nn.Module, path: Path) -> nn.Module:
    """Load `state` into `net` through `plan`; every parameter and buffer of `net` gets a value."""
    ours: dict[str, torch.Tensor] = {}
    folds: dict[str, torch.Tensor] = {}
    for key, (_, target) in plan.entries.items():
        if target is None or key not in state:
            continue
        value = state[key]
        value = value.to(torch.long) if key.endswith(OPTIONAL_SUFFIX) else value.to(torch.float32)
        if target.startswith("fold:"):
            folds[target[len("fold:"):]] = value
        else:
            ours[target] = value
    for bn, bias in folds.items():
        # BN(conv(x) + b) = BN'(conv(x)) with running_mean' = running_mean - b (eval mode)
        ours[f"{bn}.running_mean"] = ours[f"{bn}.running_mean"] - bias
    expected = net.state_dict()
    for key, value in expected.items():
        if key.endswith(OPTIONAL_SUFFIX) and key not in ours:
            ours[key] = torch.zeros_like(value)
    missing = sorted(set(expected) - set(ours))
    extra = sorted(set(ours) - set(expected))
    if missing or extra:   # the plan and the network disagree: a bug here, not in the user's file
        raise RuntimeError(f"release import of {path}: the conversion plan does not fit {type(net).__name__} "
                           f"(missing {missing[:3]}, extra {extra[:3]})")
    net.load_state_dict(ours)
    return net.eval()


def release_detector(path: str | Path) -> tuple[DefocusDetector, dict]:
    """DBD.pth as a DefocusDetector (width 64, align_corners=True) and a summary of its keys."""
    path, plan = Path(path), dbd_plan()
    state = _read(path, plan, deblur_plan())
    net = _convert(state, plan, DefocusDetector(width=64, align_corners=True), path)
    return net, _summary(path, state, plan)


def release_deblurrer(path: str | Path) -> tuple[ReleaseDeblurrer, dict]:
    """deblur.pth as a ReleaseDeblurrer and a summary of its keys."""
    path, plan = Path(path), deblur_plan()
    state = _read(path, plan, dbd_plan())
    net = _convert(state, plan, ReleaseDeblurrer(_GEN_WIDTH, tuple(_GEN_STAGES[k] for k in _GEN_USED_STAGES)), path)
    return net, _summary(path, state, plan)


def _summary(path: Path, state: dict, plan: _Plan) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    unused = [key for key in plan.unused() if key in state]
    return {"file": path.name, "sha256": digest.hexdigest(), "class": plan.cls, "keys": len(state),
            "used": len(state) - len(unused), "unused": len(unused)}


# ------------------------------------------------------------------------------------------ config
def release_config(base: dict | None = None) -> dict:
    """The config recorded in the imported weights file: the project's defaults with the release's
    networks (``models.gws.kind`` / ``models.gsr.kind: release``), 160 x 160 squashed inputs."""
    from apl import config as config_module
    config = copy.deepcopy(base) if base is not None else config_module.load()
    config["image_size"] = RELEASE_SIZE
    if "scale" in config:
        config["scale"] = {**config["scale"], "mode": "squash", "longer_side": RELEASE_SIZE}
    config["models"]["gws"] = {**config["models"]["gws"], "width": 64, "pretrained": False, "kind": "release"}
    config["models"]["gsr"] = {**config["models"]["gsr"], "width": _GEN_WIDTH, "kind": "release",
                               "stages": [_GEN_STAGES[k] for k in _GEN_USED_STAGES], "skip": "defocused"}
    config["train"]["variant"] = "ufat"
    return config


def import_release(dbd: str | Path, deblur: str | Path | None, out: str | Path,
                   base_config: dict | None = None) -> dict:
    """Write `out`, an apl weights file holding the release's G_ws (and G_sr with `deblur`); returns its meta."""
    from apl.train import checkpoint
    networks: dict[str, nn.Module] = {}
    sources = {}
    networks["gws"], sources["dbd"] = release_detector(dbd)
    if deblur is not None:
        networks["gsr"], sources["deblur"] = release_deblurrer(deblur)
    meta = {
        "stage": "release", "variant": "ufat", "run": "release",
        "release": {"url": RELEASE_URL, **sources},
        # what apl predict needs besides the config: how the photo is brought to the networks and
        # how the deblurred image is formed
        "resolution": "train",           # the release runs at 160 x 160 only (a fixed 160-pixel pool in UFAT)
        "resize": "bilinear",            # the release's loader: PIL bilinear resize to 160 x 160
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": "release",             # out = clip(Q (1 - M) + I M), Q = reconstruction, not clipped first
    }
    checkpoint.save_weights(out, networks, meta, release_config(base_config))
    return meta
