# Training (schedule in apl/train/schedule.py): pretrain G_sr, alternate G_ws / G_sr three times,
# and the single-task baselines. Every rule resumes from its last finished epoch when rerun.

CACHE = f"{DATA}/cache"
ADVERSARIAL_CACHES = [f"{CACHE}/train.npz", f"{CACHE}/fullclear.npz"]
# One command for every training rule; the rules differ only in stage, run folder and inputs.
TRAIN = (
    "{APL} train {CFG} --stage {params.stage} --variant {params.variant} --cache-dir {CACHE} "
    "{params.init} --out-dir {params.out_dir} > {log} 2>&1"
)


def train_params(stage_of, run_of):
    """params shared by the training rules: the stage, its run folder, the init flag, the settings."""
    return dict(
        stage=stage_of,
        variant=run_of,
        out_dir=lambda wildcards: f"{RESULTS}/runs/{run_of(wildcards)}/{stage_of(wildcards)}",
        init=lambda wildcards, input: f"--init {input.init}" if input.get("init") else "",
        settings=train_settings,
    )


rule pretrain_gsr:
    input:
        cache=f"{CACHE}/synthetic.npz",
    output:
        weights=weights_file("{variant}", "pretrain"),
        losses=f"{RESULTS}/runs/{{variant}}/pretrain/losses.csv",
    params:
        **train_params(lambda wildcards: "pretrain", lambda wildcards: wildcards.variant),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/{{variant}}/pretrain.log",
    shell:
        TRAIN


rule train_gws:
    input:
        caches=ADVERSARIAL_CACHES,
        init=lambda wildcards: init_weights(f"gws_O{wildcards.n}", wildcards.variant),
    output:
        weights=weights_file("{variant}", "gws_O{n}"),
        losses=f"{RESULTS}/runs/{{variant}}/gws_O{{n}}/losses.csv",
    params:
        **train_params(lambda wildcards: f"gws_O{wildcards.n}", lambda wildcards: wildcards.variant),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/{{variant}}/gws_O{{n}}.log",
    shell:
        TRAIN


rule train_gsr:
    input:
        caches=ADVERSARIAL_CACHES,
        init=lambda wildcards: init_weights(f"gsr_O{wildcards.n}", wildcards.variant),
    output:
        weights=weights_file("{variant}", "gsr_O{n}"),
        losses=f"{RESULTS}/runs/{{variant}}/gsr_O{{n}}/losses.csv",
    params:
        **train_params(lambda wildcards: f"gsr_O{wildcards.n}", lambda wildcards: wildcards.variant),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/{{variant}}/gsr_O{{n}}.log",
    shell:
        TRAIN


rule single_gws:
    input:
        caches=[f"{CACHE}/train.npz"],
    output:
        weights=weights_file(schedule.SINGLE, "single_gws"),
        losses=f"{RESULTS}/runs/{schedule.SINGLE}/single_gws/losses.csv",
    params:
        **train_params(lambda wildcards: "single_gws", lambda wildcards: schedule.SINGLE),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/{schedule.SINGLE}/single_gws.log",
    shell:
        TRAIN


rule single_gsr:
    input:
        caches=ADVERSARIAL_CACHES,
        init=init_weights("single_gsr", MAIN),
    output:
        weights=weights_file(schedule.SINGLE, "single_gsr"),
        losses=f"{RESULTS}/runs/{schedule.SINGLE}/single_gsr/losses.csv",
    params:
        **train_params(lambda wildcards: "single_gsr", lambda wildcards: schedule.SINGLE),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/{schedule.SINGLE}/single_gsr.log",
    shell:
        TRAIN
