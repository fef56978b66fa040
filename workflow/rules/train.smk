# Training (schedule in apl/train/schedule.py): pretrain G_sr, alternate G_ws / G_sr three times,
# and the single-task baselines. Every rule resumes from its last finished epoch when rerun.
ADVERSARIAL_CACHES = [f"{CACHE}/train.npz", f"{CACHE}/fullclear.npz"]


rule pretrain_gsr:
    input:
        cache=f"{CACHE}/synthetic.npz",
    output:
        weights=weights_file("{variant}", "pretrain"),
        losses=losses_file("{variant}", "pretrain"),
    params:
        **train_params(lambda wildcards: "pretrain", lambda wildcards: wildcards.variant),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{{variant}}/pretrain.log",
    shell:
        TRAIN


rule train_gws:
    input:
        caches=ADVERSARIAL_CACHES,
        init=lambda wildcards: init_weights(f"gws_O{wildcards.n}", wildcards.variant),
        init_gws=lambda wildcards: init_gws_weights(f"gws_O{wildcards.n}"),
    output:
        weights=weights_file("{variant}", "gws_O{n}"),
        losses=losses_file("{variant}", "gws_O{n}"),
    params:
        **train_params(lambda wildcards: f"gws_O{wildcards.n}", lambda wildcards: wildcards.variant),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{{variant}}/gws_O{{n}}.log",
    shell:
        TRAIN


rule train_gsr:
    input:
        caches=ADVERSARIAL_CACHES,
        init=lambda wildcards: init_weights(f"gsr_O{wildcards.n}", wildcards.variant),
    output:
        weights=weights_file("{variant}", "gsr_O{n}"),
        losses=losses_file("{variant}", "gsr_O{n}"),
    params:
        **train_params(lambda wildcards: f"gsr_O{wildcards.n}", lambda wildcards: wildcards.variant),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{{variant}}/gsr_O{{n}}.log",
    shell:
        TRAIN


rule single_gws:
    input:
        caches=[f"{CACHE}/train.npz"],
    output:
        weights=weights_file(schedule.SINGLE, "single_gws"),
        losses=losses_file(schedule.SINGLE, "single_gws"),
    params:
        **train_params(lambda wildcards: "single_gws", lambda wildcards: schedule.SINGLE),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{schedule.SINGLE}/single_gws.log",
    shell:
        TRAIN


# Single G_ws on the training images' GT masks (the release's 1204gt supervision; a row of Table 1 marked as
# ours), where the prepared training set has masks (apl.data.layout.train_masks_available)
rule single_gws_masks:
    input:
        caches=[f"{CACHE}/train.npz"],
    output:
        weights=weights_file(schedule.SINGLE, "single_gws_masks"),
        losses=losses_file(schedule.SINGLE, "single_gws_masks"),
    params:
        **train_params(lambda wildcards: "single_gws_masks", lambda wildcards: schedule.SINGLE),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{schedule.SINGLE}/single_gws_masks.log",
    shell:
        TRAIN


rule single_gsr:
    input:
        caches=ADVERSARIAL_CACHES,
        init=init_weights("single_gsr", MAIN),
    output:
        weights=weights_file(schedule.SINGLE, "single_gsr"),
        losses=losses_file(schedule.SINGLE, "single_gsr"),
    params:
        **train_params(lambda wildcards: "single_gsr", lambda wildcards: schedule.SINGLE),
    resources:
        gpu=GPU,
    retries: TRAIN_RETRIES
    log:
        f"{RESULTS}/logs/seed{{seed}}/{schedule.SINGLE}/single_gsr.log",
    shell:
        TRAIN
