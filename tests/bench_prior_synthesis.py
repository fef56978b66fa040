"""Benchmark of the LBP blur prior and the pair synthesis (not a pytest test).

Run: .venv/bin/python tests/bench_prior_synthesis.py [--sources 500] [--workers 2]

Targets: the three LBP sharpness maps (s = 11, 15, 21) of a 640x480 image in <= 0.5 s on one
core; 2500 pairs at 160x160 (500 sources x 5) in <= 60 s on 2 cores.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from apl.data.synthesis import synthesize_dataset  # noqa: E402
from apl.priors.lbp import blur_prior, lbp_sharpness, multiscale_sharpness, to_gray  # noqa: E402


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_prior() -> None:
    image = np.asarray(Image.fromarray(data.astronaut()).resize((640, 480), Image.BICUBIC))
    gray = to_gray(image)
    small = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160), Image.BICUBIC))
    previous = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if previous:
        os.sched_setaffinity(0, {min(previous)})  # one core
    try:
        separate = _best(lambda: [lbp_sharpness(gray, w) for w in (11, 15, 21)])
        shared = _best(lambda: multiscale_sharpness(gray, (11, 15, 21)))
        prior = _best(lambda: blur_prior(image))
        matting = _best(lambda: blur_prior(small, refine="matting"), repeat=2)
        # the paper profile's B(I): LBP on the 640x480 photograph, matting at the 160-px working size
        working = _best(lambda: blur_prior(image, refine="matting", matting_size=160), repeat=2)
    finally:
        if previous:
            os.sched_setaffinity(0, previous)
    verdict = "OK" if separate <= 0.5 else "TOO SLOW"
    print(f"prior 640x480, 1 core: 3x lbp_sharpness {separate:.3f} s [{verdict}, target 0.5 s]; "
          f"multiscale_sharpness (shared codes) {shared:.3f} s; blur_prior (RGB, incl. grey) {prior:.3f} s")
    print(f"prior 160x160 with refine='matting' (3 scales, 1 core): {matting:.3f} s")
    print(f"prior 640x480 with refine='matting', matting_size=160 (the paper profile's B(I), 1 core): {working:.3f} s")


def bench_synthesis(n_sources: int, workers: int) -> None:
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(n_sources):  # random 320x240 crops saved as JPEG, like a photo folder
            photo = photos[i % len(photos)]
            y = int(rng.integers(0, photo.shape[0] - 240 + 1))
            x = int(rng.integers(0, photo.shape[1] - 320 + 1))
            Image.fromarray(photo[y:y + 240, x:x + 320]).save(src / f"img{i:04d}.jpg", quality=90)
        start = time.perf_counter()
        summary = synthesize_dataset(src, Path(tmp) / "synth", per_image=5, size=160, seed=0, workers=workers)
        elapsed = time.perf_counter() - start
    target = 60.0 * n_sources / 500.0
    verdict = "OK" if elapsed <= target else "TOO SLOW"
    print(f"synthesis {summary['pairs']} pairs at 160x160 from {summary['sources']} sources, "
          f"{workers} worker(s): {elapsed:.2f} s ({1000 * elapsed / summary['pairs']:.1f} ms/pair) "
          f"[{verdict}, target {target:.0f} s]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"cpus available: {os.cpu_count()}")
    bench_prior()
    bench_synthesis(args.sources, args.workers)


if __name__ == "__main__":
    main()
