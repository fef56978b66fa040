"""Benchmark of the metrics (not a pytest test): `python tests/bench_metrics.py [n_images] [side]`.

Times the authors' detection protocol (F_max + MAE + PR curve, the target: 600 maps of 320x320 in <= 5 s on
2 cores), the full evaluate_detection (adding the pysodmetrics scores), and evaluate_deblurring.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apl.metrics import detection  # noqa: E402
from apl.metrics.deblurring import evaluate_deblurring  # noqa: E402


def make_detection_data(n: int, side: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    yy, xx = np.mgrid[0:side, 0:side]
    for _ in range(n):
        cy, cx, r = rng.uniform(0.2, 0.8) * side, rng.uniform(0.2, 0.8) * side, rng.uniform(0.1, 0.4) * side
        gt = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)
        noise = rng.normal(0.0, 0.25, (side, side))
        preds.append(np.clip(0.7 * gt + 0.15 + noise, 0.0, 1.0).astype(np.float32))
        gts.append(gt)
    return preds, gts


def authors_protocol(preds, gts, mae_size=160):
    """F_max + MAE + PR curve only (what evaluate_detection computes apart from pysodmetrics)."""
    fmaxes, maes, precisions, recalls = [], [], [], []
    for pred, gt in zip(preds, gts):
        pred = detection._as_map(pred, "pred")
        gt = detection._as_map(gt, "gt")
        fmax, precision, recall = detection._authors_image(pred, gt)
        fmaxes.append(fmax)
        precisions.append(precision)
        recalls.append(recall)
        maes.append(detection._mae_image(pred, gt, mae_size))
    mean_p, mean_r = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
    return float(np.mean(fmaxes)), float(np.mean(maes)), detection.f_measure(mean_p, mean_r)


def timed(label, function, *args, repeats=3, **kwargs):
    """Best wall-clock and best CPU (process) time of `repeats` runs; CPU time is robust to other load."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    print(f"{label:<58s} best of {repeats}: wall {best:7.3f} s, cpu {best_cpu:7.3f} s")
    return result, best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 320
    preds, gts = make_detection_data(n, side)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"detection: {n} maps {side}x{side}, GT {side}x{side}; cores {os.cpu_count()}, load average {load:.2f}")
    (fmax, mae, _), t_authors = timed("authors' protocol (fmax + mae + pr curve)", authors_protocol, preds, gts)
    result, t_full = timed("evaluate_detection (authors' + pysodmetrics)", detection.evaluate_detection, preds, gts)
    print(f"  fmax={result['fmax']:.4f} mae={result['mae']:.4f} "
          f"fmax_sod={result['fmax_sod']:.4f} mae_sod={result['mae_sod']:.4f}")
    assert abs(result["fmax"] - fmax) < 1e-12 and abs(result["mae"] - mae) < 1e-12
    print(f"  target <= 5 s for the authors' protocol: {'PASS' if t_authors <= 5.0 else 'FAIL'}")

    # 400x300 maps resized to a 320x320 GT: the bicubic resize path.
    small = [np.pad(p[:300, :], ((0, 0), (0, 80)), mode="edge") for p in preds]  # 300x400
    timed(f"evaluate_detection, {n} preds 300x400 -> GT {side}x{side}", detection.evaluate_detection, small, gts,
          repeats=1)

    rng = np.random.default_rng(1)
    m = 76
    gts_rgb = [rng.integers(0, 256, (1120 // 4, 1680 // 4, 3), dtype=np.uint8) for _ in range(m)]
    outs_rgb = [np.clip(g.astype(int) + rng.integers(-20, 21, g.shape), 0, 255).astype(np.uint8) for g in gts_rgb]
    timed(f"evaluate_deblurring, {m} pairs 280x420 -> 160", evaluate_deblurring, outs_rgb, gts_rgb, repeats=1)


if __name__ == "__main__":
    main()
