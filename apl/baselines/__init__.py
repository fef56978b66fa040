"""Methods the pipeline runs itself beside the model: name -> (task, factory(config) -> function).

A detection function maps a uint8 RGB image to a focus map in [0, 1] (1 = in focus); a deblurring
function maps it to a uint8 RGB image. `settings(name, config)` lists everything a method's output
depends on (Snakemake reruns a baseline when it changes); `describe(name)` is its line in the report.

Classic detectors of Table 4 (Su et al.'s SVD, the HiFST-style DCT detector) work on the image
shrunk so that its longer side is at most MAX_SIDE pixels (the paper's CUHK originals are 640x480);
their maps are scored like every other method's (resized to the GT). The LBP prior is B(I) itself,
computed at the stored resolution exactly as for training.
"""
from __future__ import annotations

from apl.baselines.common import limit_size
from apl.baselines.hifst import DEFAULTS as HIFST_DEFAULTS
from apl.baselines.hifst import hifst_sharpness
from apl.baselines.svd import DEFAULTS as SVD_DEFAULTS
from apl.baselines.svd import svd_sharpness
from apl.priors import prior_at_scale, prior_map

MAX_SIDE = 320   # working resolution of the classic detectors: longer side at most this many pixels


def _photo_scale(config: dict) -> bool:
    return config.get("scale", {}).get("mode") == "photo"


def lbp(config: dict):
    """Yi & Eramian's LBP sharpness (the blur prior B(I) itself) at the image's own resolution (its matting
    refinement where prior.matting_at puts it, as for training); with scale.mode photo, exactly the map G_ws
    learns from, at the photograph's scale."""
    if _photo_scale(config):
        return lambda image: prior_at_scale(image, config)
    return lambda image: prior_map(image, config["prior"], working_size=config["image_size"])


def svd(config: dict):
    """Su et al. (2011): 1 - share of the top singular values of the local patch."""
    return lambda image: svd_sharpness(limit_size(image, MAX_SIDE), **SVD_DEFAULTS)


def hifst(config: dict):
    """HiFST-style (Golestaneh & Karam 2017): sorted high-frequency DCT coefficients of the gradient."""
    return lambda image: hifst_sharpness(limit_size(image, MAX_SIDE), **HIFST_DEFAULTS)


def defocused_input(config: dict):
    """No deblurring at all: the defocused input scored as the output, the floor any deblurrer must beat."""
    return lambda image: image


METHODS = {"lbp": ("detection", lbp), "svd": ("detection", svd), "hifst": ("detection", hifst),
           "input": ("deblurring", defocused_input)}

WORKING_RESOLUTION = {"lbp": "stored size", "svd": f"longer side at most {MAX_SIDE} px",
                      "hifst": f"longer side at most {MAX_SIDE} px", "input": "stored size"}
DESCRIPTIONS = {
    "lbp": "LBP sharpness of Yi & Eramian (the blur prior B(I)), at the stored resolution",
    "svd": f"SVD blur degree of Su et al. 2011 (window {SVD_DEFAULTS['window']}, top {SVD_DEFAULTS['top']} singular "
           f"values, sampled every {SVD_DEFAULTS['stride']} px), longer side at most {MAX_SIDE} px",
    "hifst": f"HiFST-style sorted DCT coefficients of the gradient magnitude (scales "
             f"{'/'.join(map(str, HIFST_DEFAULTS['scales']))}), longer side at most {MAX_SIDE} px",
    "input": "the defocused input itself, unchanged",
}


def settings(name: str, config: dict) -> dict:
    """Every value a method's output depends on (Snakemake's params, so a change reruns it)."""
    if name not in METHODS:
        raise ValueError(f"unknown baseline {name!r}; available: {', '.join(METHODS)}")
    return {"lbp": {"prior": config["prior"], "image_size": config["image_size"],
                    "scale": config.get("scale")},
            "svd": {"max_side": MAX_SIDE, **SVD_DEFAULTS},
            "hifst": {"max_side": MAX_SIDE, **HIFST_DEFAULTS},
            "input": {}}[name]


def working_resolution(name: str, config: dict) -> str:
    """Where the method looks at the image; the LBP prior's matting may run at the working size (prior.matting_at)."""
    prior, size = config["prior"], config["image_size"]
    if name == "lbp" and _photo_scale(config):
        matting = {"working": "at that scale", "photo": "at the stored size"}.get(prior["matting_at"],
                                                                                 f"at a longer side of {prior['matting_at']} px")
        return (f"LBP at the stored size, matting {matting}, map at a longer side of {config['scale']['longer_side']} px"
                if prior["refine"] == "matting" else f"stored size, map at a longer side of {config['scale']['longer_side']} px")
    if name == "lbp" and prior["refine"] == "matting" and prior["matting_at"] == "working":
        return f"stored size, matting at {size}x{size} px"
    return WORKING_RESOLUTION[name]


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name, name)
