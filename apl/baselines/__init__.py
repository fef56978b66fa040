"""Methods the pipeline runs itself beside the model: name -> (task, factory(config) -> function).

A detection function maps a uint8 RGB image to a focus map in [0, 1] (1 = in focus); a deblurring
function maps it to a uint8 RGB image.
"""
from __future__ import annotations

from apl.priors.lbp import blur_prior


def lbp(config: dict):
    """Yi & Eramian's LBP sharpness (the blur prior B(I) itself) at the image's own resolution."""
    prior = config["prior"]
    return lambda image: blur_prior(image, windows=tuple(prior["windows"]), threshold=prior["threshold"], refine=prior["refine"])


def defocused_input(config: dict):
    """No deblurring at all: the defocused input scored as the output, the floor any deblurrer must beat."""
    return lambda image: image


METHODS = {"lbp": ("detection", lbp), "input": ("deblurring", defocused_input)}
