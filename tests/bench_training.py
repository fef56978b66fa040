"""Benchmark (not a test): one training iteration of a G_ws phase and of a G_sr phase at paper scale,
today's reference configuration beside the profile's fast one, timed alternately in one process.

160x160, batch 1, paper widths, on this machine's CPU (or CUDA with --device cuda). The reference is
the training loop with every speed lever off (`REFERENCE` below; on CUDA it keeps the CUDA settings the
project always had); the fast configuration is the profile as configured. Both start from the same
weights and see the same batches, and their steps are interleaved (reference, fast, reference, ...),
so a shared or throttled machine slows both alike and the ratio stays meaningful. Printed per stage:
the median seconds per iteration of each, the ratio, the FLOPs of one iteration (forward + backward,
torch.utils.flop_counter, a multiply-add = 2 FLOPs), the largest difference of any loss between the
two over the timed steps, and on CUDA the peak memory and GPU utilisation. `--levers` also times each
lever alone on top of the reference (the README's table); `--project` prints the wall time of the
whole paper profile projected from the fast G_ws and G_sr figures (apl.train.budget).

    python tests/bench_training.py [--device cpu|cuda] [--rounds 5] [--levers] [--project]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from apl import config as config_module
from apl.data.cache import save_npz
from apl.train import budget, checkpoint, schedule
from apl.train.loop import DIAGNOSTIC_KEYS, StageTrainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_THREADS = torch.get_num_threads()
STAGES = ("gws_O1", "gsr_O1")
# The speed levers: {name: (config key, value that switches it on)}; every key false is the training loop as it
# was before issue 14. The two compile levers share a key, so the reference turns both off.
LEVERS = {
    "bf16": (("train", "bf16"), True),
    "channels_last": (("train", "channels_last"), True),
    "fused_ufat": (("train", "fused_ufat"), True),
    "frozen_maps_once": (("train", "frozen_maps_once"), True),
    "fused_optimizer": (("train", "fused_optimizer"), True),
    "compile": (("train", "compile"), True),
    "compile_reduce_overhead": (("train", "compile"), "reduce-overhead"),   # CUDA graphs on CUDA
}
# CUDA always had bf16 autocast and channels_last: the reference there keeps them on.
CUDA_BEFORE = ("bf16", "channels_last")


def fake_caches(folder: Path, size: int, n: int = 4) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    names = np.array([f"img{i}" for i in range(n)])
    save_npz(folder / "train.npz", names=names, images=images, priors=rng.random((n, size, size)).astype(np.float16))
    save_npz(folder / "fullclear.npz", names=names, images=images)
    masks = rng.random((n, size, size)) > 0.5
    save_npz(folder / "synthetic.npz", names=names, blurred=images, sharp=images, masks=masks)


def _set(config: dict, path: tuple, value) -> None:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _get(config: dict, path: tuple):
    for key in path:
        config = config[key]
    return config


def configurations(config: dict, device: str, levers: list[str] | None) -> dict[str, dict]:
    """{name: config}: the reference, the profile as configured ("fast"), and (levers) the reference with one
    lever switched on (forced on, whatever the profile says: bf16 where the CPU only emulates it, compile), and
    the reference on one thread."""
    reference = copy.deepcopy(config)
    for name, (path, _) in LEVERS.items():
        _set(reference, path, device.startswith("cuda") and name in CUDA_BEFORE)
    configs = {"reference": reference, "fast": config}
    if levers is not None:
        for name, (path, on) in LEVERS.items():
            wanted = name in levers or (not levers and not (name == "compile_reduce_overhead" and device == "cpu"))
            if wanted and _get(reference, path) != on:
                configs[f"+{name}"] = copy.deepcopy(reference)
                _set(configs[f"+{name}"], path, on)
        if not levers and device == "cpu" and (reference["train"]["num_threads"] or DEFAULT_THREADS) > 1:
            configs["+1 thread"] = copy.deepcopy(reference)
            configs["+1 thread"]["train"]["num_threads"] = 1
    return configs


def gpu_busy(device: torch.device, seconds: float, step) -> str:
    """GPU utilisation (nvidia-smi, sampled every 100 ms) while `step` runs back to back for `seconds`."""
    uuid = str(getattr(torch.cuda.get_device_properties(device), "uuid", ""))
    command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
    if uuid:
        command.append(f"--id={uuid if uuid.startswith('GPU-') else 'GPU-' + uuid}")
    try:
        sampler = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError as err:
        return f"unknown (nvidia-smi: {err})"
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        step()
    synchronize(device)
    sampler.terminate()
    values = [float(v) for v in sampler.communicate(timeout=30)[0].split() if v.replace(".", "", 1).isdigit()]
    return f"{statistics.mean(values):.0f}% ({len(values)} samples)" if values else "unknown (no nvidia-smi samples)"


def synchronize(device: torch.device) -> None:
    """Wait for the GPU, so a step's time is its own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_index(trainer: StageTrainer) -> torch.Tensor:
    """The same batch at every step: the first batch_size cached images."""
    return torch.arange(trainer.train_cfg["batch_size"], device=trainer.device) % len(trainer.inputs)


def loss_difference(reference: list[dict], other: list[dict]) -> tuple[float, str]:
    """The largest relative difference of any loss (not a diagnostic) between two runs, step by step."""
    worst, where = 0.0, ""
    for step, (a, b) in enumerate(zip(reference, other)):
        for key in a.keys() - set(DIAGNOSTIC_KEYS):
            diff = abs(a[key] - b[key]) / max(abs(a[key]), 1e-12)
            if diff > worst:
                worst, where = diff, f"{key}, step {step + 1}"
    return worst, where


def bench_stage(stage: str, configs: dict[str, dict], tmp: Path, init: Path, rounds: int) -> dict[str, float]:
    trainers, generators = {}, {}
    for name, config in configs.items():
        trainer = StageTrainer(config, stage, "ufat", tmp, init if init.exists() else None, tmp / stage / name)
        if not init.exists():
            checkpoint.save_weights(init, trainer.nets, {})
        trainer.epoch = trainer.step_in_epoch = 0
        trainers[name], generators[name] = trainer, torch.Generator().manual_seed(0)
    device = trainers["reference"].device
    index = batch_index(trainers["reference"])
    losses = {name: [] for name in trainers}

    def step(name: str) -> float:
        torch.set_num_threads(configs[name]["train"]["num_threads"] or DEFAULT_THREADS)
        synchronize(device)
        start = time.perf_counter()
        losses[name].append(trainers[name]._step(index, generators[name]))
        synchronize(device)
        return time.perf_counter() - start

    first = {name: step(name) for name in trainers}   # warm-up: compilation, oneDNN's kernel choice
    with FlopCounterMode(display=False) as counter:
        step("reference")
    for name in trainers:
        if name != "reference":
            step(name)   # every run takes the same steps, so their losses can be compared
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name in trainers:
            times[name].append(step(name))
    start = time.perf_counter()
    trainers["reference"]._prep(trainers["reference"].inputs[index])
    fetch = time.perf_counter() - start
    medians = {name: statistics.median(t) for name, t in times.items()}
    ref = medians["reference"]
    print(f"{stage}: {counter.get_total_flops() / 1e9:.1f} GFLOPs per iteration (reference), batch fetch "
          f"{100 * fetch / ref:.4f}% of the step")
    for name, seconds in medians.items():
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(f"  {name:<25} {seconds:7.3f} s per iteration (range {spread}, first step {first[name]:6.1f} s)  "
              f"{ref / seconds:5.2f}x")
    for name in trainers:
        if name != "reference":
            worst, where = loss_difference(losses["reference"], losses[name])
            print(f"  {name:<25} largest relative loss difference to the reference over {len(losses[name])} "
                  f"steps: {worst:.1e} ({where})")
    if device.type == "cuda":
        # one job's utilisation is measured by time_fast, which main runs next on CUDA
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB in the timed steps "
              "(every configuration's networks resident)")
    return medians


# One stage of each kind stands for all stages of that kind in the projection.
KIND_STAGE = {"pretrain": "pretrain", "gws": "gws_O1", "gsr": "gsr_O1", "single_gws": "single_gws",
              "single_gsr": "single_gsr"}


def time_fast(config: dict, variant: str, stage: str, tmp: Path, rounds: int) -> float:
    """Median seconds per iteration of the configured (fast) loop alone for one stage, after a warm-up step;
    on CUDA also the peak GPU memory of the job and the GPU's utilisation while it runs."""
    trainer = StageTrainer(config, stage, variant, tmp, None, tmp / "alone" / variant / stage)
    trainer.epoch = trainer.step_in_epoch = 0
    index = batch_index(trainer)
    generator = torch.Generator().manual_seed(0)
    trainer._step(index, generator)
    if trainer.cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    times = []
    for _ in range(rounds):
        synchronize(trainer.device)
        start = time.perf_counter()
        trainer._step(index, generator)
        synchronize(trainer.device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    line = f"  {variant}/{stage} alone: {seconds:.3f} s per iteration (fast configuration)"
    if trainer.cuda:
        busy = gpu_busy(trainer.device, max(3.0, 3 * seconds), lambda: trainer._step(index, generator))
        line += (f", peak GPU memory {torch.cuda.max_memory_allocated(trainer.device) / 2**30:.2f} GiB, "
                 f"GPU utilisation {busy}")
    print(line, flush=True)
    trainer = None   # frees its tensors before empty_cache (the lambda above is done with it)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per configuration (alternating)")
    parser.add_argument("--levers", nargs="*", choices=list(LEVERS), default=None,
                        help="also time each lever alone on the reference (all, or those named)")
    parser.add_argument("--project", action="store_true",
                        help="time every stage kind of every variant (fast configuration) and project the paper "
                             "profile's wall time from it")
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=STAGES)
    parser.add_argument("--configfile", nargs="*", default=[],
                        help="profile overlays on config/config.yaml (e.g. config/demo.yaml); default: paper scale")
    args = parser.parse_args()
    config = config_module.load([ROOT / "config" / "config.yaml", *args.configfile])
    config["device"] = args.device
    configs = configurations(config, args.device, args.levers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake_caches(tmp, config["image_size"], max(4, config["train"]["batch_size"]))
        print(f"profile {config['profile']}, device {args.device}, {DEFAULT_THREADS} threads (unless a configuration "
              f"says otherwise), {config['image_size']}px, batch {config['train']['batch_size']}; {args.rounds} "
              "alternating rounds")
        init = tmp / "init.pt"
        for stage in args.stages:
            bench_stage(stage, configs, tmp, init, args.rounds)
            if args.device.startswith("cuda") and not args.project:   # memory and utilisation of one job
                time_fast(config, "ufat", stage, tmp, args.rounds)
        if args.project:
            seconds = {}
            for variant, stage in budget.runs(config):
                kind = schedule.get(stage).kind
                if (variant, kind) not in seconds:
                    seconds[variant, kind] = time_fast(config, variant, KIND_STAGE[kind], tmp, args.rounds)
            print(budget.describe(config, seconds, args.device))
            overlays = "".join(f" -c {f}" for f in ["config/config.yaml", *args.configfile])
            print("to project again from these figures: apl budget" + overlays + " --device " + args.device + " --seconds "
                  + " ".join(f"{variant}/{kind}={s:.4g}" for (variant, kind), s in seconds.items()))


if __name__ == "__main__":
    main()
