"""The paper's training schedule (Eq. 3, Tables 1-2) as data: stages, their order and what each trains.

    pretrain -> gws_O1 -> gsr_O1 -> gws_O2 -> gsr_O2 -> gws_O3 -> gsr_O3      (per G_sr variant)
    single_gws (prior loss only), single_gsr (U-GAN, adversarial only, from the U-GAN pretrain)

Snakemake's rules and the CLI both read this module, so the order is written once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROUNDS = (1, 2, 3)
# Config sections a trained network depends on: a change invalidates a stage's resume state, and
# Snakemake reruns the training rules (params trigger).
TRAINING_KEYS = ("seed", "image_size", "prior", "synthesis", "models", "train")
SINGLE = "single"   # run folder of the single-task baselines, which belong to no variant


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str                 # pretrain | gws | gsr | single_gws | single_gsr
    previous: str | None      # the stage whose weights initialise this one
    epochs_key: str           # key of train.epochs
    gws_target: str | None = None   # G_ws's pixel target when the stage fixes it; None: train.gws_target

    @property
    def task(self) -> str:
        """What the stage's product is evaluated on."""
        return "detection" if self.kind in ("gws", "single_gws") else "deblurring"

    @property
    def trained(self) -> tuple[str, ...]:
        return {"pretrain": ("gsr",), "gws": ("gws", "d"), "gsr": ("gsr", "d"),
                "single_gws": ("gws",), "single_gsr": ("gsr", "d")}[self.kind]

    @property
    def networks(self) -> tuple[str, ...]:
        """Networks present in the stage (frozen ones included)."""
        return {"pretrain": ("gsr",), "gws": ("gws", "gsr", "d"), "gsr": ("gws", "gsr", "d"),
                "single_gws": ("gws",), "single_gsr": ("gsr", "d")}[self.kind]


def _build() -> dict[str, Stage]:
    stages = {"pretrain": Stage("pretrain", "pretrain", None, "pretrain")}
    previous = "pretrain"
    for n in ROUNDS:
        for kind in ("gws", "gsr"):
            name = f"{kind}_O{n}"
            stages[name] = Stage(name, kind, previous, "phase")
            previous = name
    stages["single_gws"] = Stage("single_gws", "single_gws", None, "single")
    # Single G_ws supervised by the training images' GT masks instead of B(I): what the release's
    # `train_data/1204gt` target amounts to (REPORT.md); a row of Table 1 marked as ours
    stages["single_gws_masks"] = Stage("single_gws_masks", "single_gws", None, "single", gws_target="masks")
    stages["single_gsr"] = Stage("single_gsr", "single_gsr", "pretrain", "single_gsr")
    return stages


STAGES = _build()
PHASES = tuple(name for name in STAGES if name.startswith(("gws_O", "gsr_O")))
ALTERNATION = ("pretrain",) + PHASES


def get(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}") from None


def run_variant(stage: str, variant: str) -> str:
    """The run folder a stage lives in: single-task baselines have their own; U-GAN underlies single_gsr."""
    return SINGLE if stage.startswith("single_") else variant


def gsr_variant(stage: str, variant: str) -> str:
    """The G_sr variant a stage trains: single_gsr is U-GAN by definition; single_gws has no G_sr."""
    if get(stage).kind == "single_gws":
        return "none"
    return "ugan" if stage == "single_gsr" else variant


def previous_run(stage: str, variant: str) -> tuple[str, str] | None:
    """(run folder, stage) of the weights that initialise `stage`, or None for a fresh start."""
    previous = get(stage).previous
    if previous is None:
        return None
    return ("ugan" if stage == "single_gsr" else variant), previous


# train.gws_start: what G_ws starts from in its first adversarial phase
GWS_STARTS = ("scratch", "single_gws")


def gws_start(stage: str, config: dict) -> str | None:
    """The stage whose G_ws initialises `stage`'s G_ws beside its `previous` weights: single_gws for gws_O1 when
    train.gws_start is single_gws (the prior-only G_ws, then refined adversarially), else None."""
    if stage == "gws_O1" and config["train"]["gws_start"] == "single_gws":
        return "single_gws"
    return None


def run_dir(results: str | Path, variant: str, stage: str) -> Path:
    return Path(results) / "runs" / run_variant(stage, variant) / stage
