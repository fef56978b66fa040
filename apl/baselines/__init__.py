"""Classic defocus detectors run by the pipeline for Table 4 (name -> factory(config) -> map function)."""
from __future__ import annotations

from apl.priors.lbp import blur_prior


def lbp(config: dict):
    """Yi & Eramian's LBP sharpness (the blur prior B(I) itself) at the image's own resolution."""
    prior = config["prior"]
    return lambda image: blur_prior(image, windows=tuple(prior["windows"]), threshold=prior["threshold"], refine=prior["refine"])


METHODS = {"lbp": lbp}
