"""Evaluation metrics: defocus blur detection (F_max, MAE, PR curve) and deblurring (PSNR, SSIM, MAE)."""
from apl.metrics.deblurring import evaluate_deblurring, score_deblur_dirs
from apl.metrics.detection import PR_THRESHOLDS, evaluate_detection, score_detection_dirs

__all__ = [
    "PR_THRESHOLDS",
    "evaluate_detection",
    "score_detection_dirs",
    "evaluate_deblurring",
    "score_deblur_dirs",
]
