"""Run a trained stage (or a classic baseline) on the test sets, save its outputs, score them.

Detection stages write focus maps for CUHK and DUT; deblurring stages write composites for DP. Sets a
profile does not have are skipped; the validation split (detection) and the synthetic held-out pairs
(deblurring) are scored the same way, under their own names, and left out of the timing.
Scores come from apl.metrics reading the saved files back, exactly as for any other method.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from apl.data.layout import (DEBLUR_SET, DETECTION_SETS, FOLDERS, MASK_FOLDERS, MASK_POLARITY, TARGET_FOLDERS,
                             evaluation_sets)
from apl.io import list_images, read_image, write_image
from apl.metrics.deblurring import score_deblur_dirs
from apl.metrics.detection import score_detection_dirs
from apl.models.factory import build, configure_torch
from apl.priors import prior_map
from apl.train import checkpoint, schedule


class Predictor:
    """Loads a stage's weights and turns images (uint8 RGB, any size) into maps / deblurred images."""

    def __init__(self, config: dict, weights: str | Path, variant: str):
        self.config, self.size = config, config["image_size"]
        self.device = configure_torch(config)
        saved = checkpoint.load(weights, made_by="the stage's training rule")
        self.variant = saved["meta"].get("variant", variant)
        self.nets = {}
        for name, state in saved["networks"].items():
            if name == "d":
                continue
            net = build(name, config, self.variant)
            net.load_state_dict(state)
            self.nets[name] = net.to(self.device).eval()

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        resized = np.array(Image.fromarray(image).resize((self.size, self.size), Image.BICUBIC))
        return torch.from_numpy(resized).permute(2, 0, 1)[None].float().div(255).to(self.device)

    @torch.no_grad()
    def focus_map(self, image: np.ndarray) -> np.ndarray:
        """G_ws's map at the working resolution, 1 = in focus."""
        if "gws" not in self.nets:
            raise ValueError("these weights hold no defocus detector (G_ws)")
        return self.nets["gws"](self._tensor(image))[0, 0].float().cpu().numpy()

    @torch.no_grad()
    def deblur(self, image: np.ndarray) -> np.ndarray:
        """The composite R * (1 - M) + I * M at the working resolution, uint8 RGB.

        M comes from the G_ws saved with these weights; weights without one (pretraining) use the
        blur prior B(I), and U-GAN ignores M.
        """
        if "gsr" not in self.nets:
            raise ValueError("these weights hold no deblurring generator (G_sr)")
        x = self._tensor(image)
        if "gws" in self.nets:
            focus = self.nets["gws"](x)
        elif self.variant == "ugan":
            focus = None
        else:
            focus = torch.from_numpy(prior_map(image, self.config["prior"], self.size))[None, None].to(self.device)
        out = self.nets["gsr"](x, focus)["out"][0].clamp(0, 1)
        return (out.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)


def _timed_maps(method, images: dict[str, Path], out_dir: Path) -> dict:
    """Apply `method` to every image and write the results; return the timing.

    Only the call is timed (not reading or writing files), after one untimed warm-up call on the
    first image (lazy initialisation, GPU kernels' autotuning). Returns seconds (total), images and
    input_sizes ("WxH" -> count) of the images as stored, which is what every method receives.
    """
    seconds, sizes = 0.0, Counter()
    first = next(iter(images.values()))
    method(read_image(first))
    for stem, path in images.items():
        image = read_image(path)
        sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
        start = time.perf_counter()
        result = method(image)
        seconds += time.perf_counter() - start
        write_image(out_dir / f"{stem}.png", result)
    return {"seconds": seconds, "images": len(images), "input_sizes": dict(sizes)}


TEST_SETS = {*DETECTION_SETS.values(), DEBLUR_SET[1]}


def _timing(parts: dict[str, dict], device: str) -> dict:
    """seconds_per_image over every image of every test set (of every set when no test set is present),
    with the sizes and the machine it ran on."""
    from apl.report.provenance import machine
    parts = {name: part for name, part in parts.items() if name in TEST_SETS} or parts
    images = sum(part["images"] for part in parts.values())
    sizes = Counter()
    for part in parts.values():
        sizes.update(part["input_sizes"])
    return {"seconds_per_image": sum(part["seconds"] for part in parts.values()) / images,
            "timing": {"images": images, "input_sizes": dict(sizes), "device": device, "machine": machine(device),
                       "per_dataset": {name: part["seconds"] / part["images"] for name, part in parts.items()},
                       "measured": "wall time of the method's call per image (image decoded, result not yet "
                                   "written), after one warm-up call"}}


def _sets(datasets: Path, task: str) -> dict[str, str]:
    found = evaluation_sets(datasets, task)
    if not found:
        raise FileNotFoundError(f"{datasets}: no {task} set to evaluate on (its prepared folders are missing); "
                                "rerun the rule that prepares the datasets")
    return found


def score_detection_method(method, datasets: Path, maps_dir: Path, mae_size: int, device: str = "cpu") -> dict:
    results, parts = {}, {}
    for folder, name in _sets(datasets, "detection").items():
        parts[name] = _timed_maps(method, list_images(datasets / FOLDERS[folder]), maps_dir / folder)
        results[name] = score_detection_dirs(maps_dir / folder, datasets / MASK_FOLDERS[folder], MASK_POLARITY, mae_size)
    return {"task": "detection", "datasets": results, **_timing(parts, device)}


def saturated_share(folder: Path) -> float:
    """Mean over a folder's 8-bit outputs of the share of channel values at 0 or 255 (saturated pixels)."""
    shares = [float(np.mean((image == 0) | (image == 255)))
              for image in (read_image(path) for path in list_images(folder).values())]
    return float(np.mean(shares))


def score_deblurring_method(method, datasets: Path, maps_dir: Path, size: int, device: str = "cpu") -> dict:
    results, parts = {}, {}
    for folder, name in _sets(datasets, "deblurring").items():
        parts[name] = _timed_maps(method, list_images(datasets / FOLDERS[folder]), maps_dir / folder)
        results[name] = score_deblur_dirs(maps_dir / folder, datasets / TARGET_FOLDERS[folder], size)
        results[name]["clipped"] = saturated_share(maps_dir / folder)
    return {"task": "deblurring", "datasets": results, **_timing(parts, device)}


def evaluate_stage(config: dict, stage: str, variant: str, weights, datasets, maps_dir) -> dict:
    datasets, maps_dir = Path(datasets), Path(maps_dir)
    info = schedule.get(stage)
    predictor = Predictor(config, weights, schedule.gsr_variant(stage, variant))
    size = config["evaluation"]["size"]
    score = score_detection_method if info.task == "detection" else score_deblurring_method
    result = score(predictor.focus_map if info.task == "detection" else predictor.deblur, datasets, maps_dir, size,
                   device=str(predictor.device))
    result.update({"stage": stage, "variant": predictor.variant, "weights": str(weights), "device": str(predictor.device),
                   "image_size": config["image_size"]})
    return result


def evaluate_baseline(config: dict, method: str, datasets, maps_dir) -> dict:
    """Methods the pipeline runs itself beside the model (apl.baselines), same test sets, same protocol."""
    from apl.baselines import METHODS, describe, settings, working_resolution
    if method not in METHODS:
        raise ValueError(f"unknown baseline {method!r}; available: {', '.join(METHODS)}")
    task, factory = METHODS[method]
    score = score_detection_method if task == "detection" else score_deblurring_method
    result = score(factory(config), Path(datasets), Path(maps_dir), config["evaluation"]["size"])
    result.update({"stage": method, "variant": "baseline", "device": "cpu", "method": describe(method),
                   "working_resolution": working_resolution(method, config), "settings": settings(method, config)})
    return result
