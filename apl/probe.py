"""Does D teach the true map? The promoting mechanism of APL, measured on a trained stage's frozen networks.

APL's claim is that D's verdict on G_sr's composite C(M) = G_sr(I, M) (1 - M) + I M pushes G_ws toward the true
map. That needs three things, each measured here on crops of photographs with GT masks (1 = in focus) that are
never test images (the validation split, or the training images where a profile has none):

* D learns: its logits and balanced accuracy on held-out full-clear crops (real) against composites made with
  G_ws's map (fake); 0.5 is a coin toss.
* D's verdict depends on the map the right way: D's generator loss -log sigmoid(D(C(M))) for six maps (the GT
  mask, B(I), G_ws(I), all in focus, all defocused, the inverted GT), and the share of crops where the GT mask
  scores better (a lower loss) than each.
* Its gradient points at the truth: at M = G_ws(I), the gradients of the adversarial term and of the weighted
  prior term (train.prior_weight x Eq. 7 with train.prior_reduction) with respect to M; their size per pixel and
  ratio, and the cosine of minus each with (GT - M): above zero, a step on it moves the map toward the truth.

Beside it, how much G_sr changes its input (|R - I| on GT-defocused and on in-focus pixels, in 8-bit levels: the
composite depends on the map only where R differs from I) and D's verdict on the composite with the GT mask against
the input itself. Every measurement is made twice: with the stage's G_sr, and with a fixed reference deblurrer in
its place (an unsharp mask), so that "the mechanism holds" is told apart from "this G_sr is strong enough".
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

MAPS = ("gt", "prior", "gws", "ones", "zeros", "inverted_gt")
UNSHARP = {"sigma": 1.5, "amount": 1.0}   # the reference deblurrer, at the working scale


def unsharp(image: torch.Tensor, sigma: float = UNSHARP["sigma"], amount: float = UNSHARP["amount"]) -> torch.Tensor:
    """I + amount (I - G_sigma * I), clipped to [0, 1]: a deblurrer that sharpens every pixel, map or not."""
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return (image + amount * (image - gaussian_blur(image, [size, size], [sigma, sigma]))).clamp(0, 1)


def reference_deblurrer(image: torch.Tensor, focus: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unsharp mask as a G_sr: R = unsharp(I), composite R (1 - M) + I M."""
    restored = unsharp(image)
    return {"out": restored * (1 - focus) + image * focus, "reconstruction": restored}


def _prior_term(focus: torch.Tensor, prior: torch.Tensor, weight: float, reduction: str) -> torch.Tensor:
    """train.prior_weight x Eq. 7, reduced as training reduces it (apl.train.loop.StageTrainer._prior_loss)."""
    distance = (focus - prior).abs()
    loss = distance.flatten(1).sum(1).mean() if reduction == "sum" else distance.mean()
    return weight * loss


def _cosines(direction: torch.Tensor, toward: torch.Tensor) -> torch.Tensor:
    """Per crop, the cosine between a step direction and (GT - M); 0 where either is zero."""
    a, b = direction.flatten(1).double(), toward.flatten(1).double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(1) / norms.clamp_min(1e-300), torch.zeros_like(norms))


def _right(logits: torch.Tensor) -> float:
    """The share of logits on the right side of 0 (a logit of exactly 0, a coin toss, counts half)."""
    return float((logits > 0).float().mean() + 0.5 * (logits == 0).float().mean())


def _stats(values: torch.Tensor) -> dict[str, float]:
    values = values.double()
    return {"mean": float(values.mean()), "std": float(values.std()) if values.numel() > 1 else 0.0}


def measure(gws_maps: torch.Tensor, deblur: Callable, d: Callable, images: torch.Tensor, masks: torch.Tensor,
            priors: torch.Tensor, reals: torch.Tensor, prior_weight: float, reduction: str) -> dict:
    """The probe on one batch of crops. `images` N x 3 x H x W in [0, 1], `masks` (GT, 1 = in focus), `priors`
    (B(I)) and `gws_maps` (G_ws(I)) N x 1 x H x W, `reals` full-clear crops; `deblur(image, map)` returns G_sr's
    {"out": composite, "reconstruction": R}, `d(x)` D's logits (N,), or (N, P) for a patch D (its accuracy then
    counts patches; a crop's generator loss and logit are the means over its patches, as trained)."""
    def per_crop(values):
        return values.flatten(1).mean(1) if values.dim() > 1 else values

    def loss_per_crop(focus):
        return per_crop(F.softplus(-d(deblur(images, focus)["out"]).float()))   # -log sigmoid(D(C(M)))

    with torch.no_grad():
        real_logits, fake_logits = d(reals).float(), d(deblur(images, gws_maps)["out"]).float()
        maps = {"gt": masks, "prior": priors, "gws": gws_maps, "ones": torch.ones_like(masks),
                "zeros": torch.zeros_like(masks), "inverted_gt": 1 - masks}
        losses = {name: loss_per_crop(focus) for name, focus in maps.items()}
        restored = deblur(images, gws_maps)["reconstruction"].clamp(0, 1)
        change = (restored - images).abs().mean(1, keepdim=True) * 255
        blurred = masks < 0.5
        input_logits = per_crop(d(images).float())
        gt_logits = per_crop(d(deblur(images, masks)["out"]).float())

    focus = gws_maps.detach().clone().requires_grad_(True)
    adversarial = F.softplus(-d(deblur(images, focus)["out"]).float()).mean()   # the generator's BCE, as trained
    adversarial_grad = None
    if adversarial.requires_grad:
        adversarial_grad, = torch.autograd.grad(adversarial, focus, allow_unused=True)
    if adversarial_grad is None:   # D's verdict does not depend on the map at all
        adversarial_grad = torch.zeros_like(focus)
    focus = gws_maps.detach().clone().requires_grad_(True)
    prior_grad, = torch.autograd.grad(_prior_term(focus, priors, prior_weight, reduction), focus)
    toward = masks - gws_maps
    size_adv, size_prior = float(adversarial_grad.abs().mean()), float(prior_grad.abs().mean())
    cos_adv, cos_prior = _cosines(-adversarial_grad, toward), _cosines(-prior_grad, toward)
    return {
        "n_crops": int(images.shape[0]),
        "d": {"logit_real": _stats(real_logits), "logit_fake": _stats(fake_logits),
              "accuracy": 0.5 * (_right(real_logits) + _right(-fake_logits))},
        "generator_loss": {name: _stats(value) for name, value in losses.items()},
        "gt_beats": {name: float((losses["gt"] < value).float().mean()) for name, value in losses.items()
                     if name != "gt"},
        "gradient": {
            "adversarial_per_pixel": size_adv, "prior_per_pixel": size_prior,
            "ratio": size_adv / size_prior if size_prior > 0 else float("nan"),
            "cosine_adversarial": {**_stats(cos_adv), "share_positive": float((cos_adv > 0).float().mean())},
            "cosine_prior": {**_stats(cos_prior), "share_positive": float((cos_prior > 0).float().mean())}},
        "restoration_levels": {"defocused": float(change[blurred].mean()) if blurred.any() else float("nan"),
                               "in_focus": float(change[~blurred].mean()) if (~blurred).any() else float("nan")},
        # D's verdict on deblurring itself: the composite with the GT mask against the untouched input
        "deblurred_vs_input": {"logit_gain": _stats(gt_logits - input_logits),
                               "share_preferred": float((gt_logits > input_logits).float().mean())},
    }


# ----------------------------------------------------------------------------------------------- on a stage
def crops(config: dict, datasets: Path, n_crops: int, seed: int = 0):
    """(images, GT masks, B(I), full-clear reals) as tensors: `n_crops` random image_size crops of photographs
    with masks that are never test images (the validation split, else the training images with their masks),
    and as many of the held-out full-clear photographs (else the full-clear set D trains on)."""
    from apl.data.layout import FOLDERS, MASK_FOLDERS, MASK_POLARITY, TARGET_FOLDERS
    from apl.data.scale import resize_map, to_scale
    from apl.io import list_images, read_image, read_mask
    from apl.priors import prior_at_scale

    datasets = Path(datasets)
    source = "val" if (datasets / FOLDERS["val"]).is_dir() else "train"
    if not (datasets / MASK_FOLDERS[source]).is_dir():
        raise FileNotFoundError(f"{datasets / MASK_FOLDERS[source]} is missing: the probe needs photographs with GT "
                                "masks outside the test sets (a validation split, data.validation, or training masks)")
    reals_folder = datasets / TARGET_FOLDERS["heldout"]
    if not reals_folder.is_dir():
        reals_folder = datasets / FOLDERS["fullclear"]
    rng = np.random.default_rng(seed)
    size = config["image_size"]
    photos, mask_files = list_images(datasets / FOLDERS[source]), list_images(datasets / MASK_FOLDERS[source])
    stems = sorted(photos)
    chosen = [stems[i] for i in rng.choice(len(stems), size=min(n_crops, len(stems)), replace=False)]
    loaded = {}
    for stem in chosen:   # B(I) is the slow part: once a photograph
        photo = read_image(photos[stem])
        image = to_scale(photo, config)
        loaded[stem] = (image, resize_map(read_mask(mask_files[stem], MASK_POLARITY), image.shape[:2]),
                        prior_at_scale(photo, config))
    images, masks, priors = [], [], []
    for k in range(n_crops):
        image, mask, prior = loaded[chosen[k % len(chosen)]]
        window = _window(image.shape[:2], size, rng)
        images.append(image[window]), masks.append(mask[window]), priors.append(prior[window])
    real_files = list(list_images(reals_folder).values())
    reals = []
    for k in range(n_crops):
        image = to_scale(read_image(real_files[int(rng.integers(len(real_files)))]), config)
        reals.append(image[_window(image.shape[:2], size, rng)])

    def tensor(arrays, channels):
        x = torch.from_numpy(np.stack(arrays).astype(np.float32))
        return x.permute(0, 3, 1, 2).div(255) if channels == 3 else x[:, None]
    return tensor(images, 3), tensor(masks, 1), tensor(priors, 1), tensor(reals, 3), source


def _window(shape, size, rng) -> tuple[slice, slice]:
    """A random size x size window of an image (the whole image where it is smaller: squashed profiles)."""
    h, w = shape
    top = int(rng.integers(0, h - size + 1)) if h > size else 0
    left = int(rng.integers(0, w - size + 1)) if w > size else 0
    return slice(top, top + size), slice(left, left + size)


def probe_stage(weights: str | Path, datasets: str | Path, n_crops: int, seed: int = 0) -> dict:
    """The probe on a trained adversarial stage's frozen G_ws, G_sr and D: with its G_sr and with the reference."""
    from apl.models.factory import build
    from apl.train import checkpoint
    states, meta, config = checkpoint.load_weights(weights)
    missing = {"gws", "gsr", "d"} - set(states)
    if missing:
        raise checkpoint.WeightsError(f"{weights} holds no {', '.join(sorted(missing))}: the probe reads an "
                                      "adversarial stage (gws_O1 ... gsr_O3), whose weights hold G_ws, G_sr and D")
    config = {**config, "models": {**config["models"], "gws": {**config["models"]["gws"], "pretrained": False}}}
    variant = meta.get("variant") or config["train"]["variant"]
    nets = {}
    for name in ("gws", "gsr", "d"):
        net = build(name, config, variant)
        checkpoint.load_state(net, states[name], name, weights)
        nets[name] = net.eval().requires_grad_(False)
    images, masks, priors, reals, source = crops(config, Path(datasets), n_crops, seed)
    with torch.no_grad():
        gws_maps = nets["gws"](images).float()

    def trained(image, focus):
        return nets["gsr"](image, focus)
    train = config["train"]
    common = dict(gws_maps=gws_maps, d=nets["d"], images=images, masks=masks, priors=priors, reals=reals,
                  prior_weight=float(train["prior_weight"]), reduction=train["prior_reduction"])
    return {"stage": meta.get("stage"), "variant": variant, "seed": meta.get("seed"), "weights": str(weights),
            "images": source, "crop": config["image_size"],
            "trained_gsr": measure(deblur=trained, **common),
            "reference_gsr": {"unsharp": UNSHARP, **measure(deblur=reference_deblurrer, **common)}}


def summary_line(result: dict) -> str:
    """One line of a probe's result, for logs."""
    trained, reference = result["trained_gsr"], result["reference_gsr"]
    return (f"{result['stage']} seed {result['seed']}: D accuracy {trained['d']['accuracy']:.2f}; adversarial cosine "
            f"with (GT - M) {trained['gradient']['cosine_adversarial']['mean']:+.4f} (reference deblurrer "
            f"{reference['gradient']['cosine_adversarial']['mean']:+.4f}), gradient ratio adversarial / prior "
            f"{trained['gradient']['ratio']:.2e}; GT mask beats M = 0 on {trained['gt_beats']['zeros']:.0%} of crops; "
            f"G_sr changes defocused pixels by {trained['restoration_levels']['defocused']:.1f} levels")
