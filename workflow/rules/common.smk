# Helpers shared by the rules: paths and the config sections each stage depends on.
from apl.report.tables import required_metrics

VARIANT_PATTERN = "|".join(["ugan", "dcgan", "cdfgan", "ufat"])
RUN_PATTERN = f"{VARIANT_PATTERN}|{schedule.SINGLE}"


wildcard_constraints:
    variant=VARIANT_PATTERN,
    run=RUN_PATTERN,
    n="[123]",
    stage="|".join(schedule.STAGES),


def weights_file(run, stage):
    return f"{RESULTS}/runs/{run}/{stage}/weights.pt"


def metrics_file(run, stage):
    return f"{RESULTS}/metrics/{run}/{stage}.json"


def init_weights(stage, variant):
    """The previous stage's weights (schedule.previous_run), as a Snakemake input list."""
    previous = schedule.previous_run(stage, variant)
    return [weights_file(*previous)] if previous else []


def train_settings(wildcards):
    """Everything a trained network depends on; a change reruns the training rules (params trigger)."""
    return {key: config[key] for key in ("seed", "image_size", "models", "train")}


TABLE_FILES = [f"{RESULTS}/tables/table{n}.{ext}" for n in (1, 2, 3, 4, 5) for ext in ("csv", "md", "tex")]
