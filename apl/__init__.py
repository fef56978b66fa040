"""APL: united defocus blur detection and deblurring via adversarial promoting learning (ECCV 2022)."""

__version__ = "0.1.0"
