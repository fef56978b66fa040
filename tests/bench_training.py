"""Benchmark (not a test): one training iteration of a G_ws phase and of a G_sr phase at paper scale.

160x160, batch 1, paper widths, on this machine's CPU (or CUDA if present and --device cuda).
Prints seconds per iteration (median of a few after a warm-up), the FLOPs of one iteration
(forward + backward, counted by torch.utils.flop_counter; a multiply-add = 2 FLOPs) and the share of
the step spent fetching the batch from the in-memory cache.

    python tests/bench_training.py [--device cpu|cuda] [--iterations 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from apl import config as config_module
from apl.data.cache import save_npz
from apl.train import checkpoint
from apl.train.loop import StageTrainer

ROOT = Path(__file__).resolve().parents[1]


def fake_caches(folder: Path, size: int, n: int = 4) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    names = np.array([f"img{i}" for i in range(n)])
    save_npz(folder / "train.npz", names=names, images=images, priors=rng.random((n, size, size)).astype(np.float16))
    save_npz(folder / "fullclear.npz", names=names, images=images)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    config = config_module.load([ROOT / "config" / "config.yaml"])
    config["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake_caches(tmp, config["image_size"])
        print(f"device {args.device}, {torch.get_num_threads()} threads, {config['image_size']}px, batch "
              f"{config['train']['batch_size']}, paper widths")
        init = tmp / "init.pt"
        for stage in ("gws_O1", "gsr_O1"):
            trainer = StageTrainer(config, stage, "ufat", tmp, init if init.exists() else None, tmp / stage)
            if not init.exists():
                checkpoint.save_weights(init, trainer.nets, {})
            index = torch.zeros(1, dtype=torch.long, device=trainer.device)
            generator = torch.Generator().manual_seed(0)
            trainer.epoch = trainer.step_in_epoch = 0
            trainer._step(index, generator)   # warm-up
            with FlopCounterMode(display=False) as counter:
                trainer._step(index, generator)
            times, fetch = [], []
            for _ in range(args.iterations):
                if trainer.cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                trainer._prep(trainer.inputs[index])
                fetched = time.perf_counter()
                trainer._step(index, generator)
                if trainer.cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                fetch.append(fetched - start)
            step = statistics.median(times)
            print(f"{stage}: {step:.3f} s per iteration, {counter.get_total_flops() / 1e9:.1f} GFLOPs per iteration, "
                  f"batch fetch {100 * statistics.median(fetch) / step:.4f}% of the step")


if __name__ == "__main__":
    main()
