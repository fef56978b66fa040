"""How many training iterations a profile runs, and the wall time that takes at a measured speed.

The runs are those `snakemake` makes for the profile: the whole schedule (pretrain, three G_ws / G_sr
alternations) for the main variant and every Table 3 variant, and the single-task baselines. The image
counts are the profile's `data.expected_counts` (`data.demo.counts` for the demo data; less the images
a validation split or the held-out full-clear check takes out), so a projection needs no data on disk.
"""
from __future__ import annotations

from apl.data.layout import train_masks_available
from apl.train import schedule


def variants(config: dict) -> list[str]:
    """G_sr variants whose schedule runs: the main model's, then Table 3's (each once)."""
    return list(dict.fromkeys([config["train"]["variant"], *config["train"]["ablation_variants"]]))


def runs(config: dict) -> list[tuple[str, str]]:
    """(G_sr variant, stage) of every training job of the profile."""
    jobs = [(variant, stage) for variant in variants(config) for stage in schedule.ALTERNATION]
    if ("ugan", "pretrain") not in jobs:   # single_gsr starts from the U-GAN pretraining
        jobs.append(("ugan", "pretrain"))
    singles = ["single_gws", "single_gsr"] + (["single_gws_masks"] if train_masks_available(config) else [])
    return jobs + [(schedule.gsr_variant(stage, config["train"]["variant"]), stage) for stage in singles]


def images(config: dict, stage: str) -> int:
    """Training samples a stage iterates over: synthetic pairs for pretraining, else the training images."""
    data = config["data"]
    counts = data["demo"]["counts"] if data["source"] == "demo" else data["expected_counts"]
    key = "fullclear" if schedule.get(stage).kind == "pretrain" else "train"
    if counts[key] is None:
        raise ValueError(f"data.expected_counts.{key} is null: the profile does not say how many images it trains on")
    if key == "fullclear":
        return (counts["fullclear"] - data["heldout_fullclear"]) * config["synthesis"]["per_image"]
    return counts["train"] - data["validation"]


def iterations(config: dict, stage: str) -> int:
    """Optimisation steps of one stage (the loop's own rule: epochs x steps per epoch)."""
    train = config["train"]
    steps = train["steps_per_epoch"] or max(1, images(config, stage) // train["batch_size"])
    return train["epochs"][schedule.get(stage).epochs_key] * steps


def parse_seconds(config: dict, items: list[str]) -> dict[tuple[str, str], float]:
    """Measured seconds per iteration from `KIND=S` (every variant) and `VARIANT/KIND=S` (one variant, which
    wins) items, e.g. `gws=2.46 gsr=2.1 ugan/gsr=0.4`; every (variant, stage kind) the profile runs must get one."""
    given: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            given[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--seconds {item!r}: expected KIND=SECONDS or VARIANT/KIND=SECONDS, "
                             "e.g. gws=2.46") from None
    seconds, missing = {}, []
    for variant, stage in runs(config):
        kind = schedule.get(stage).kind
        value = given.get(f"{variant}/{kind}", given.get(kind))
        if value is None:
            missing.append(kind)
        else:
            seconds[variant, kind] = value
    if missing:
        raise ValueError(f"no seconds per iteration for stage kind(s) {', '.join(dict.fromkeys(missing))}: add "
                         "KIND=SECONDS for each (pretrain, gws, gsr, single_gws, single_gsr), measured with "
                         "`python tests/bench_training.py --project`")
    return seconds


def project(config: dict, seconds: dict[tuple[str, str], float]) -> list[dict]:
    """One row per training job: iterations and hours at `seconds[(G_sr variant, stage kind)]` per iteration."""
    rows = []
    for variant, stage in runs(config):
        kind = schedule.get(stage).kind
        n = iterations(config, stage)
        rows.append({"run": schedule.run_variant(stage, variant), "stage": stage, "kind": kind, "iterations": n,
                     "seconds_per_iteration": seconds[(variant, kind)], "hours": n * seconds[(variant, kind)] / 3600})
    return rows


def describe(config: dict, seconds: dict[tuple[str, str], float], device: str) -> str:
    """The projection as text: per run folder, and the whole profile one job at a time."""
    rows = project(config, seconds)
    lines = [f"projected wall time of profile {config['profile']!r} on {device}, one job at a time:"]
    for run in dict.fromkeys(row["run"] for row in rows):
        mine = [row for row in rows if row["run"] == run]
        per_kind = ", ".join(f"{kind} {s:.3f}" for kind, s in
                             dict.fromkeys((r["kind"], r["seconds_per_iteration"]) for r in mine))
        lines.append(f"  {run:<7} {sum(r['iterations'] for r in mine):>10,} iterations {sum(r['hours'] for r in mine):9.1f} h"
                     f"   (s per iteration: {per_kind})")
    total = sum(row["hours"] for row in rows)
    lines.append(f"  total   {sum(r['iterations'] for r in rows):>10,} iterations {total:9.1f} h = {total / 24:.1f} days")
    return "\n".join(lines)
