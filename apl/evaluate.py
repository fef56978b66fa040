"""Run a trained stage (or a classic baseline, or the authors' released model) on the test sets, save its
outputs, score them.

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

from apl.data.layout import (DEBLUR_SET, DETECTION_SETS, FOLDERS, MASK_FOLDERS, MASK_POLARITY, REAL_PHOTOS,
                             TARGET_FOLDERS, evaluation_sets, pick_stems)
from apl.io import list_images, read_image, read_mask, write_image, write_json
from apl.metrics.deblurring import score_deblur_dirs
from apl.metrics.detection import score_detection_dirs
from apl.models.factory import build, configure_torch
from apl.data.release_files import (RELEASE_NEEDS, RELEASE_RUN, RELEASE_STAGES, RELEASE_URL, absent_result,
                                    release_files, release_instructions)
from apl.data.scale import resize_image, resize_map, scaled_shape, to_scale
from apl.predict import run_tiled
from apl.priors import prior_at_scale
from apl.train import checkpoint, schedule


# Test images larger than this at the config's scale run in overlapping tiles (memory bound), as in apl predict
TILE, TILE_OVERLAP = 512, 128


class Predictor:
    """Loads a stage's weights and turns images (uint8 RGB, any size) into maps / deblurred images.

    Weights imported from the authors' release (apl import-release: meta `release`) run as the release does,
    whatever the profile's scale: the networks and the 160 x 160 square recorded in the weights file, the
    photo resized to it bilinearly (meta `resize`), and G_sr's own output (ReleaseDeblurrer's `out`, the
    release's output rule, never re-composited with the paper's formula). The device is the profile's.
    """

    def __init__(self, config: dict, weights: str | Path, variant: str):
        self.device = configure_torch(config)
        saved = checkpoint.load(weights, made_by="the stage's training rule")
        meta = saved.get("meta") or {}
        self.release = "release" in meta
        self.config = meta["config"] if self.release else config
        self.size = self.config["image_size"]
        self.resample = meta.get("resize", "bicubic")
        self.variant = meta.get("variant", variant)
        self.nets = {}
        for name, state in saved["networks"].items():
            if name == "d":
                continue
            net = build(name, self.config, self.variant)
            net.load_state_dict(state)
            self.nets[name] = net.to(self.device).eval()

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """The image at the config's scale (squashed to the square, or the whole photo brought to its scale)."""
        if self.release:   # the release's loader: PIL bilinear to its 160 x 160 square
            resized = np.array(resize_image(image, scaled_shape(*image.shape[:2], self.config), self.resample))
        else:
            resized = np.array(to_scale(image, self.config))
        return torch.from_numpy(resized).permute(2, 0, 1)[None].float().div(255)

    def _run(self, fn, x: torch.Tensor, channels: int) -> torch.Tensor:
        """fn on the whole image, fully convolutionally; in tiles where it is larger than TILE pixels a side."""
        return run_tiled(fn, x, channels, TILE, TILE_OVERLAP, self.device)

    @torch.no_grad()
    def focus_map(self, image: np.ndarray) -> np.ndarray:
        """G_ws's map at the working resolution, 1 = in focus."""
        if "gws" not in self.nets:
            raise ValueError("these weights hold no defocus detector (G_ws)")
        return self._run(self.nets["gws"], self._tensor(image), 1)[0, 0].numpy()

    @torch.no_grad()
    def deblur(self, image: np.ndarray) -> np.ndarray:
        """The composite R * (1 - M) + I * M at the working resolution, uint8 RGB.

        M comes from the G_ws saved with these weights; weights without one (pretraining) use the
        blur prior B(I), and U-GAN ignores M. G_sr's `out` is that composite (clipped R); for the release's
        generator it is the release's own output, clip(Q (1 - M) + I M) at 160 x 160 (apl.models.release).
        """
        if "gsr" not in self.nets:
            raise ValueError("these weights hold no deblurring generator (G_sr)")
        x = self._tensor(image)
        if "gws" in self.nets:
            focus = self._run(self.nets["gws"], x, 1)
        elif self.variant == "ugan":
            focus = torch.zeros_like(x[:, :1])   # U-GAN ignores the map
        else:
            focus = torch.from_numpy(prior_at_scale(image, self.config))[None, None]
        gsr = self.nets["gsr"]
        out = self._run(lambda both: gsr(both[:, :3], None if self.variant == "ugan" else both[:, 3:])["out"],
                        torch.cat([x, focus.float()], dim=1), 3)[0].clamp(0, 1)
        return (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


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


# Real defocused photographs (the first detection test set) that every deblurring stage also deblurs: they have
# no sharp target, so they are scored only by the colour shift their masks allow (REAL_PHOTOS in the results)
REAL_PHOTO_COUNT = 12


def colour_shift(outputs: Path, inputs: dict[str, Path], masks: Path) -> dict:
    """How far a deblurrer moves colours, per region of the GT mask: the largest over R, G, B of the mean signed
    change (output - input, 8-bit levels) over the in-focus pixels, and over the blurred ones. A colour cast
    moves a channel's mean everywhere; sharpening only redistributes values about it. Compared at the output's
    size: an output at a working size other than the photo's (a squashed square) meets the photo and its mask
    resized to it."""
    sums = {"in_focus": np.zeros(3), "blurred": np.zeros(3)}
    counts = {"in_focus": 0, "blurred": 0}
    mask_files = list_images(masks)
    for stem, path in inputs.items():
        out = read_image(outputs / f"{stem}.png").astype(np.float64)
        image = resize_image(read_image(path), out.shape[:2]).astype(np.float64)
        focus = resize_map(read_mask(mask_files[stem], MASK_POLARITY), out.shape[:2]) >= 0.5
        for region, where in (("in_focus", focus), ("blurred", ~focus)):
            sums[region] += (out - image)[where].sum(axis=0)
            counts[region] += int(where.sum())
    return {f"colour_shift_{region}": float(np.abs(sums[region] / max(counts[region], 1)).max()) for region in sums}


def score_deblurring_method(method, datasets: Path, maps_dir: Path, size: int, device: str = "cpu") -> dict:
    results, parts = {}, {}
    for folder, name in _sets(datasets, "deblurring").items():
        parts[name] = _timed_maps(method, list_images(datasets / FOLDERS[folder]), maps_dir / folder)
        results[name] = score_deblur_dirs(maps_dir / folder, datasets / TARGET_FOLDERS[folder], size)
        results[name]["clipped"] = saturated_share(maps_dir / folder)
    detection = evaluation_sets(datasets, "detection")
    real = next((key for key in DETECTION_SETS if key in detection), None)
    if real is not None:   # a fixed handful of real defocused photographs, for Figure 9 and the colour shift
        photos = list_images(datasets / FOLDERS[real])
        chosen = {stem: photos[stem] for stem in pick_stems(photos, REAL_PHOTO_COUNT)}
        _timed_maps(method, chosen, maps_dir / f"{real}_photos")
        results[REAL_PHOTOS] = {"set": DETECTION_SETS[real], "pred_dir": str(maps_dir / f"{real}_photos"),
                                "images": len(chosen),
                                **colour_shift(maps_dir / f"{real}_photos", chosen, datasets / MASK_FOLDERS[real])}
    return {"task": "deblurring", "datasets": results, **_timing(parts, device)}


def _score_predictor(config: dict, predictor: Predictor, task: str, stage: str, weights, datasets, maps_dir) -> dict:
    """One task of a Predictor on the profile's test sets, scored and timed like every method."""
    score = score_detection_method if task == "detection" else score_deblurring_method
    result = score(predictor.focus_map if task == "detection" else predictor.deblur, Path(datasets), Path(maps_dir),
                   config["evaluation"]["size"], device=str(predictor.device))
    result.update({"stage": stage, "variant": predictor.variant, "weights": str(weights), "device": str(predictor.device),
                   "image_size": predictor.config["image_size"], "scale": predictor.config["scale"]})
    return result


def evaluate_stage(config: dict, stage: str, variant: str, weights, datasets, maps_dir) -> dict:
    predictor = Predictor(config, weights, schedule.gsr_variant(stage, variant))
    return _score_predictor(config, predictor, schedule.get(stage).task, stage, weights, datasets, maps_dir)


def evaluate_release(config: dict, run_dir, datasets, maps_dir) -> dict[str, dict]:
    """The authors' released checkpoints (config release.dbd / release.deblur), imported into
    `run_dir`/weights.pt with apl import-release and scored on the profile's test sets like a stage:
    detection (G_ws of DBD.pth; maps in `maps_dir`/release_gws) and deblurring (the release's generator with
    that G_ws's map; outputs in `maps_dir`/release_gsr). Returns {stage: results}; a task whose files are
    absent gets {"absent": true, "status": WEIGHTS_ABSENT, ...} instead, never an error."""
    from apl.models.release import import_release
    run_dir, maps_dir = Path(run_dir), Path(maps_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    found = release_files(config)
    present = {stage: all(found[key] is not None for key in RELEASE_NEEDS[stage]) for stage in RELEASE_STAGES}
    weights = run_dir / "weights.pt"
    meta = None
    if present["release_gws"]:
        meta = import_release(found["dbd"], found["deblur"], weights, base_config=config)
    elif weights.exists():
        weights.unlink()   # an import of files since removed
    summary = {"url": RELEASE_URL, "files": {key: config["release"][key] for key in found},
               "present": {key: path is not None for key, path in found.items()},
               "weights": str(weights) if meta else None, "release": meta["release"] if meta else None,
               "instructions": release_instructions(config, indent="")}
    write_json(run_dir / "import.json", summary)
    results = {}
    predictor = Predictor(config, weights, "ufat") if meta else None
    for stage, task in RELEASE_STAGES.items():
        if present[stage]:
            results[stage] = _score_predictor(config, predictor, task, stage, weights, datasets, maps_dir / stage)
            results[stage].update(variant=RELEASE_RUN, release=meta["release"])
        else:
            results[stage] = absent_result(stage, [config["release"][key] for key in RELEASE_NEEDS[stage]
                                                   if found[key] is None])
    return results


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
