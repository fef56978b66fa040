"""The models this project ships inside the package: a defocus detector (G_ws) and a deblurrer (G_sr), both trained
by this pipeline.

`apl predict` with no `--weights` runs `detector.pt` (docs/model.md, its model card). The file is an ordinary
apl weights file (apl.train.checkpoint) holding only G_ws, its large tensors stored as float16 to stay small
(the small ones, first and last layers, norms and biases, stay float32: rounding them moved maps by 3 levels);
the networks load them into float32. `meta["export"]` records where it came from: the run, stage and seed, the
validation scores it was chosen on, the largest change fp16 storage makes to a map, and the working scale
(`working_longer_side`) that `apl predict --resolution auto`, its default, runs it at: the longer side of the
candidates in WORKING_SIDES that scores best on the validation photographs.
`make model` retrains it from CUHK and the full-clear photographs and writes it again (export_detector).

`apl predict --task deblur` with no `--weights` runs `deblurrer.pt`: G_sr alone, stored the same way, of the stage
`model.deblurrer` of the detector's seed (export_deblurrer). Its record names the detector whose map guards the
in-focus regions (`detector`: a file in the same folder), so the two travel together and the map is not stored twice.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from apl.io import read_json
from apl.train import checkpoint

DETECTOR = "detector.pt"
DEBLURRER = "deblurrer.pt"
MAX_BYTES = 2 * 1024 * 1024          # the packaged file stays small enough to ship in a wheel and a git clone
MAX_LEVEL_CHANGE = 1.0               # fp16 storage may move a map by at most one 8-bit level
HALF_FROM = 4096                     # tensors of at least this many values are stored as float16
WORKING_SIDES = (320, 400, 480, 560, 640)   # working scales tried on the validation photographs (CUHK: 640 px)
MAX_IN_FOCUS_CHANGE = 1.5            # a deblurrer leaves in-focus regions alone: at most this mean change (8-bit levels)
MAX_COLOUR_SHIFT = 1.0               # ... and casts no colour: no channel's mean moves more than this
# The Laplacian of an in-focus edge lies on both of its sides, so a defocused region's first pixels (a hand-drawn
# mask's border) hold the in-focus edges' energy, which a deblurrer rightly leaves: on CUHK the outer 4 px, 3-4% of
# the area, hold half the energy (docs/real-photographs.md). Sharpness is also reported inside them.
INTERIOR_PX = 4


def _packaged(name: str, what: str) -> Path:
    path = Path(str(resources.files(__package__) / name))
    if not path.is_file():
        raise FileNotFoundError(f"the packaged {what} {path} is missing from this installation; reinstall apl "
                                "(pip install -e .), rebuild it with `make model`, or pass --weights W")
    return path


def detector_path() -> Path:
    """The packaged detector's file (installed with apl, found through importlib.resources)."""
    return _packaged(DETECTOR, "defocus detector")


def deblurrer_path() -> Path:
    """The packaged deblurrer's file; it runs with the packaged detector beside it."""
    return _packaged(DEBLURRER, "deblurrer")


def companion_detector(weights: str | Path, meta: dict) -> Path | None:
    """The detector file an exported deblurrer runs with (its record's `detector`, in the same folder), or None."""
    name = meta.get("export", {}).get("detector")
    if not name:
        return None
    path = Path(weights).with_name(name)
    if not path.is_file():
        raise checkpoint.WeightsError(f"{weights} is a deblurrer exported to run with the detector {name} beside it, "
                                      f"and {path} is missing; copy both files together (make model writes both)")
    return path


def candidate_score(metrics_file: str | Path) -> tuple[float, float]:
    """(validation F_max, validation MAE) of a stage's metrics file: the numbers the default is chosen on."""
    from apl.data.layout import VALIDATION_SET
    validation = read_json(metrics_file).get("datasets", {}).get(VALIDATION_SET[1])
    if not validation or "fmax" not in validation:
        raise ValueError(f"{metrics_file} has no validation scores; the default detector is chosen on the validation "
                         "split only (a profile with data.validation > 0, e.g. config/cuhk.yaml)")
    return float(validation["fmax"]), float(validation["mae"])


def choose(candidates: dict[str, str | Path]) -> tuple[str, dict]:
    """The candidate (weights file -> its metrics file) with the best validation F_max, then the lower MAE;
    never a test score."""
    scored = {weights: candidate_score(metrics) for weights, metrics in candidates.items()}
    best = max(scored, key=lambda weights: (scored[weights][0], -scored[weights][1]))
    return best, {weights: {"validation_fmax": f, "validation_mae": m} for weights, (f, m) in scored.items()}


def _half(state: dict) -> dict:
    return {key: value.half() if value.is_floating_point() and value.numel() >= HALF_FROM else value
            for key, value in state.items()}


def _export_parts(weights: str | Path, network: str, missing: str, provenance: dict) -> tuple[dict, dict, dict]:
    """(the network's float32 state, the meta to store, the export record) of one network of `weights`: the
    record (provenance, source file and its SHA-256, storage) sits in meta["export"] and is completed by the
    caller before the final write."""
    states, meta, _ = checkpoint.load_weights(weights)
    if network not in states:
        raise checkpoint.WeightsError(f"{weights} holds no {missing}")
    meta = {key: value for key, value in meta.items() if key != "export"}
    meta["architecture"] = {network: meta.get("architecture", {}).get(network, {})}
    record = {**provenance, "source": str(weights), "source_sha256": hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
              "storage": f"float16 for tensors of at least {HALF_FROM} values, float32 below"}
    meta["export"] = record
    return states[network], meta, record


def _check_change(levels: float | None, what: str) -> None:
    if levels is not None and levels > MAX_LEVEL_CHANGE:
        raise ValueError(f"float16 storage changes {what} by {levels:.0f} levels (at most {MAX_LEVEL_CHANGE:.0f} "
                         "allowed); keep this model in float32")


def _check_size(out: Path, what: str, network: str) -> None:
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise ValueError(f"the exported {what} would be {size / 1e6:.1f} MB, above the {MAX_BYTES / 1e6:.1f} MB a "
                         f"packaged model may take; export a narrower {network}")


def _map_change(full: str | Path, half: str | Path, photos: list[np.ndarray], resolution: str | int) -> float:
    """Largest difference, in 8-bit levels, between the maps of the full-precision and the fp16 weights."""
    from apl.predict import Model
    largest = 0.0
    models = [Model(path, device="cpu", resolution=resolution) for path in (full, half)]
    for photo in photos:
        maps = [model.focus_map(photo).astype(np.int16) for model in models]
        largest = max(largest, float(np.abs(maps[0] - maps[1]).max()))
    return largest


def working_scale_scores(weights: str | Path, photos: list[np.ndarray], masks: list[np.ndarray],
                         sides=WORKING_SIDES) -> dict[int, dict]:
    """{longer side: validation F_max and MAE} of the detector run at each working scale on `photos` (uint8 RGB)
    against their masks (1 = in focus)."""
    from apl.metrics.detection import evaluate_detection
    from apl.predict import Model
    scores = {}
    for side in sides:
        model = Model(weights, device="cpu", resolution=int(side))
        result = evaluate_detection([model.focus_map(photo) for photo in photos], masks)
        scores[int(side)] = {"fmax": result["fmax"], "mae": result["mae"]}
    return scores


def export_detector(weights: str | Path, out: str | Path, photos: list[np.ndarray], provenance: dict,
                    masks: list[np.ndarray] | None = None, sides=WORKING_SIDES) -> dict:
    """Write G_ws of `weights` to `out` in the packaged format (G_ws only, large tensors float16) and check it.

    `photos` (uint8 RGB, validation photographs) measure what fp16 storage changes in the maps; more than
    MAX_LEVEL_CHANGE levels, or a file above MAX_BYTES, is an error and leaves no file behind. With their `masks`
    (1 = in focus) the working scale is chosen among `sides` (best F_max, then MAE) and recorded.
    Returns the export record kept in meta.
    """
    state, meta, record = _export_parts(weights, "gws", "defocus detector (G_ws); export a single_gws or "
                                        "gws_O*/gsr_O* stage", provenance)
    payload = {"networks": {"gws": _half(state)}, "meta": meta}
    out = Path(out)
    trial = out.with_name(out.name + ".check")
    try:
        checkpoint.atomic_save(payload, trial)
        if masks is not None:
            record["working_scales"] = working_scale_scores(trial, photos, masks, sides)
            record["working_longer_side"] = max(record["working_scales"], key=lambda side: (
                record["working_scales"][side]["fmax"], -record["working_scales"][side]["mae"]))
        record["max_map_change_levels"] = _map_change(weights, trial, photos, record.get(
            "working_longer_side", "train")) if photos else None
        _check_change(record["max_map_change_levels"], f"a map of {weights}")
        checkpoint.atomic_save(payload, out)   # the same tensors, with the record now complete
    finally:
        trial.unlink(missing_ok=True)
    _check_size(out, "detector", "G_ws")
    return record


def _restoration_change(full: str | Path, half: str | Path, photos: list[np.ndarray]) -> float:
    """Largest difference, in 8-bit levels, between the deblurred photographs of two deblurrer files."""
    from apl.predict import Model, full_size_outputs
    largest = 0.0
    models = [Model(path, device="cpu") for path in (full, half)]
    for photo in photos:
        outs = []
        for model in models:
            _, focus, restoration = model.predict(photo, "deblur")
            outs.append(full_size_outputs(photo, focus, restoration, want_map=False,
                                          want_overlay=False)["deblurred"].astype(np.int16))
        largest = max(largest, float(np.abs(outs[0] - outs[1]).max()))
    return largest


def deblurred(model, photo: np.ndarray) -> np.ndarray:
    """`apl predict --task deblur`'s output of a photo (uint8 RGB) with an apl.predict.Model."""
    from apl.predict import full_size_outputs
    _, focus, restoration = model.predict(photo, "deblur")
    return full_size_outputs(photo, focus, restoration, want_map=False, want_overlay=False)["deblurred"]


def laplacian_squared(photo: np.ndarray) -> np.ndarray:
    """The squared Laplacian of a photo's grey level (uint8 RGB), per pixel."""
    from scipy.ndimage import laplace
    return laplace(photo.astype(np.float64).mean(axis=2)) ** 2


def laplacian_energy(photo: np.ndarray, region: np.ndarray | None = None) -> float:
    """The sum of laplacian_squared over `region` (boolean) or all of the photo: the sharpness yardstick of the
    deblurring benchmarks."""
    response = laplacian_squared(photo)
    return float(np.sum(response if region is None else response[region]))


def distance_from_focus(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance in pixels to the nearest in-focus one (mask: 1 = in focus; 0 on in-focus pixels),
    infinite everywhere when the mask has none."""
    from scipy.ndimage import distance_transform_edt
    sharp = mask >= 0.5
    if not sharp.any():
        return np.full(mask.shape, np.inf)
    return distance_transform_edt(~sharp)


def deblurring_scores(model, photos: list[np.ndarray], masks: list[np.ndarray], deblur=deblurred) -> dict[str, float]:
    """What a deblurrer (an apl.predict.Model, or a weights file run at its defaults) does to photographs with masks
    (1 = in focus): the Laplacian energy of the output over the input's in the defocused regions (> 1: sharper),
    the same in their interior (farther than INTERIOR_PX from an in-focus pixel), the mean absolute change of the
    in-focus regions and the largest mean shift of a colour channel (8-bit levels)."""
    if isinstance(model, (str, Path)):
        from apl.predict import Model
        model = Model(model, device="cpu")
    energy = np.zeros((2, 2))    # (defocused, interior) x (input, output)
    changes, shifts = [], []
    for photo, mask in zip(photos, masks):
        out = deblur(model, photo)
        sharp = mask >= 0.5
        interior = distance_from_focus(mask) > INTERIOR_PX
        for row, region in enumerate((~sharp, interior)):
            energy[row] += laplacian_energy(photo, region), laplacian_energy(out, region)
        difference = out.astype(np.float64) - photo
        changes.append(float(np.abs(difference[sharp]).mean()) if sharp.any() else 0.0)
        shifts.append(float(np.abs(difference.reshape(-1, 3).mean(axis=0)).max()))
    ratio = energy[:, 1] / np.maximum(energy[:, 0], 1e-12)
    return {"sharpness": float(ratio[0]), "sharpness_interior": float(ratio[1]),
            "in_focus_change": float(np.mean(changes)), "colour_shift": float(np.max(shifts))}


def choose_deblur_side(weights: str | Path, photos: list[np.ndarray], masks: list[np.ndarray],
                       sides=WORKING_SIDES) -> tuple[int, dict]:
    """The longer side G_sr runs at by default: of `sides`, the one with the largest sharpness gain in the
    validation photographs' defocused regions that keeps their in-focus regions within MAX_IN_FOCUS_CHANGE levels
    and every colour channel within MAX_COLOUR_SHIFT (the smallest side where none does). Returns (side, scores)."""
    from apl.predict import Model
    model, scores = Model(weights, device="cpu"), {}
    for side in sides:
        model.deblur_side = int(side)
        scores[int(side)] = deblurring_scores(model, photos, masks)
    allowed = [side for side, score in scores.items()
               if score["in_focus_change"] <= MAX_IN_FOCUS_CHANGE and score["colour_shift"] <= MAX_COLOUR_SHIFT]
    side = max(allowed, key=lambda side: scores[side]["sharpness"]) if allowed else min(scores)
    return side, scores


def export_deblurrer(weights: str | Path, out: str | Path, photos: list[np.ndarray], provenance: dict,
                     masks: list[np.ndarray] | None = None, sides=WORKING_SIDES) -> dict:
    """Write G_sr of `weights` to `out` (G_sr only, large tensors float16), to run with the detector file
    DETECTOR already exported beside `out` (its map composites G_sr's output). `photos` (uint8 RGB) measure what
    fp16 storage changes in the deblurred photographs: more than MAX_LEVEL_CHANGE levels, or a file above
    MAX_BYTES, is an error and leaves no file behind. With their `masks` (1 = in focus), G_sr's own working scale
    is chosen among `sides` (choose_deblur_side) and recorded as deblur_longer_side. Returns the export record
    kept in meta."""
    state, meta, record = _export_parts(weights, "gsr", "deblurring generator (G_sr); export a pretrain or gsr_O* "
                                        "stage", {**provenance, "detector": DETECTOR})
    out = Path(out)
    if not (out.parent / DETECTOR).is_file():
        raise FileNotFoundError(f"{out.parent / DETECTOR} is missing: export the detector first (rule model does both)")
    payload = {"networks": {"gsr": _half(state)}, "meta": meta}
    reference = out.with_name(out.name + ".float32")
    trial = out.with_name(out.name + ".check")
    try:   # both beside the detector, so both run with its map
        checkpoint.atomic_save({"networks": {"gsr": state}, "meta": meta}, reference)
        checkpoint.atomic_save(payload, trial)
        if masks is not None:
            record["deblur_longer_side"], record["deblur_scales"] = choose_deblur_side(trial, photos, masks, sides)
            # the record is in both files' meta: write them again, to compare the two at the chosen scale
            checkpoint.atomic_save({"networks": {"gsr": state}, "meta": meta}, reference)
            checkpoint.atomic_save(payload, trial)
        record["max_output_change_levels"] = _restoration_change(reference, trial, photos[:12]) if photos else None
        _check_change(record["max_output_change_levels"], f"a deblurred photograph of {weights}")
        checkpoint.atomic_save(payload, out)
    finally:
        trial.unlink(missing_ok=True)
        reference.unlink(missing_ok=True)
    _check_size(out, "deblurrer", "G_sr")
    return record
