# Helpers shared by the rules: paths, the one way a rule calls apl, the config sections stages depend on.
import re

from apl.devices import cuda_expected
from apl.data.release_files import RELEASE_FILES, RELEASE_PAGES
from apl.report.tables import required_metrics

VARIANT_PATTERN = "|".join(["ugan", "dcgan", "cdfgan", "ufat", "guard"])   # apl.models.deblurrer.VARIANTS (no torch here)
RUN_PATTERN = f"{VARIANT_PATTERN}|{schedule.SINGLE}"
CACHE = f"{DATA}/cache"
# A job that runs a network (training, evaluation) or times methods (evaluation) holds one unit of the `gpu`
# resource when the jobs run on a GPU, so `--resources gpu=N` (workflow/profiles/default) runs at most N at
# once and each takes its own device (apl/devices.py). On a machine without a GPU they hold none and run
# side by side as --cores allows. The SLURM profile sets the GPU request of each rule itself.
GPU = 1 if cuda_expected(config["device"]) else 0
# A training job that fails (killed, out of memory, a node lost, the cluster's time limit) is started again
# this often; it resumes from its last finished epoch.
TRAIN_RETRIES = 2
TABLE_FILES = [f"{RESULTS}/tables/table{n}.{ext}" for n in (1, 2, 3, 4, 5) for ext in ("csv", "md", "tex")]
# The training seeds: every trained run and its evaluation lies under seed<N>/ (runs/, metrics/, maps/, logs/);
# the classic baselines, which learn nothing, are evaluated once. The qualitative figures show the first seed.
SEEDS = config["seeds"]
FIRST_SEED = SEEDS[0]
# Where the authors' released weights go (config release.*; rule evaluate_release), for the download rule's message
RELEASE_PLACES = {name: config["release"][key] for key, name in RELEASE_FILES.items()}


wildcard_constraints:
    variant=VARIANT_PATTERN,
    run=RUN_PATTERN,
    n="[123]",
    stage="|".join(schedule.STAGES),
    seed="[0-9]+",


def apl(command, arguments, with_config=True):
    """A rule's shell command: the apl CLI (with this profile's config files), logged to {log}."""
    config_flags = f" {CFG}" if with_config else ""
    return f"{APL} {command}{config_flags} {arguments} > {{log}} 2>&1"


def weights_file(run, stage, seed="{seed}"):
    return f"{RESULTS}/runs/seed{seed}/{run}/{stage}/weights.pt"


def losses_file(run, stage, seed="{seed}"):
    return f"{RESULTS}/runs/seed{seed}/{run}/{stage}/losses.csv"


def metrics_file(run, stage, seed="{seed}"):
    """A stage's evaluation (one per seed); the baselines' are not per seed."""
    if run == "baselines":
        return f"{RESULTS}/metrics/baselines/{stage}.json"
    return f"{RESULTS}/metrics/seed{seed}/{run}/{stage}.json"


def probe_file(stage, seed="{seed}"):
    """The probe of an adversarial stage of the main run (rule probe, apl/probe.py)."""
    return f"{RESULTS}/probe/seed{seed}/{MAIN}/{stage}.json"


def of_first_seed(path):
    """A path of the first training seed, or of no seed (the baselines)."""
    return not re.search(r"(^|/)seed[0-9]+/", path) or f"seed{FIRST_SEED}/" in path


def every_seed(path):
    """A per-seed path pattern for every training seed."""
    return [path.format(seed=seed) for seed in SEEDS] if "{seed}" in path else [path]


def init_weights(stage, variant):
    """The previous stage's weights (schedule.previous_run), as a Snakemake input list."""
    previous = schedule.previous_run(stage, variant)
    return [weights_file(*previous)] if previous else []


def init_gws_weights(stage):
    """The weights G_ws starts from beside the previous stage's (train.gws_start), as a Snakemake input list."""
    start = schedule.gws_start(stage, config)
    return [weights_file(schedule.SINGLE, start)] if start else []


def train_settings(wildcards):
    """Everything a trained network depends on; a change reruns the training rules (params trigger)."""
    return {key: config[key] for key in schedule.TRAINING_KEYS}


def train_params(stage_of, run_of):
    """params shared by the training rules: the stage, its run folder, the init flag, the settings."""
    return dict(
        stage=stage_of,
        variant=run_of,
        cache_dir=lambda wildcards, input: os.path.dirname(input[0]),   # the caches come first
        out_dir=lambda wildcards: f"{RESULTS}/runs/seed{wildcards.seed}/{run_of(wildcards)}/{stage_of(wildcards)}",
        init=lambda wildcards, input: (f"--init {input.init}" if input.get("init") else "")
        + (f" --init-gws {input.init_gws}" if input.get("init_gws") else ""),
        settings=train_settings,
    )


# One command for every training rule; the rules differ only in stage, run folder and inputs.
TRAIN = apl(
    "train",
    "--stage {params.stage} --variant {params.variant} --cache-dir {params.cache_dir} {params.init} "
    "--out-dir {params.out_dir} --seed {wildcards.seed}",
)
