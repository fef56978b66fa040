# DVC's view of this workflow. `apl dvc-pipeline` (make dvc-pipeline) turns every job of the DAG into a
# stage of dvc.yaml (paper profile) or pipelines/<profile>/dvc.yaml; this file adds what only DVC needs:
# the data behind its plots (rule plots_data), which outputs are metrics, the plots, the folders DVC keeps.
from apl.config import load as load_config
from apl.data.layout import absent_sets
from apl.dvcpipeline import dvc_yaml_path, plotdata
from apl.dvcpipeline.timestamps import restore_at_start

# Every training job's losses and every detection evaluation of the first seed (and the baselines), from the
# metrics the pipeline writes.
DVC_LOSSES, DVC_CURVES = plotdata.sources(
    [
        path
        for path in [path for path in rules.all.input if isinstance(path, str)]
        + [f"{RESULTS}/metrics/{path}" for path in required_metrics(config)]
        if of_first_seed(path)
    ],
    metrics_dir=f"{RESULTS}/metrics",
    losses_file=lambda run, stage: losses_file(run, stage, FIRST_SEED),
    run_order=[MAIN, *config["train"]["ablation_variants"], schedule.SINGLE],
)
DVC_PLOT_FILES = [
    path
    for paths in plotdata.outputs(f"{RESULTS}/plots", DVC_LOSSES, DVC_CURVES, absent_sets(config)).values()
    for path in paths
]


rule plots_data:
    input:
        losses=DVC_LOSSES,
        metrics=DVC_CURVES,
    output:
        DVC_PLOT_FILES,
    params:
        out=lambda wildcards, output: plotdata.plots_root(output[0]),
    log:
        f"{RESULTS}/logs/plots_data.log",
    shell:
        apl("plots-data", "--losses {input.losses} --metrics {input.metrics} --out {params.out}", with_config=False)


# Outputs of these names are DVC metrics (`dvc metrics show`); every other output is a plain DVC out.
DVC_METRICS_OUTPUTS = ["metrics", "probe"]
# Folders a rule's command fills beside its declared outputs, tracked by DVC and never deleted before a
# run (persist): the raw datasets the download rule fetches or finds, so `dvc push` / `dvc pull` share them.
# DVC lets one stage own a path: the paper profile's download stage owns the shared raw folder, and another
# profile (config/cuhk.yaml) tracks its raw folder only when it has one of its own.
SHARED_RAW = load_config(CONFIG_FILES[:1])["data"]["raw_dir"]
DVC_EXTRA_OUTS = (
    {"download": [{"path": config["data"]["raw_dir"], "persist": True}]}
    if len(CONFIG_FILES) == 1 or os.path.normpath(config["data"]["raw_dir"]) != os.path.normpath(SHARED_RAW)
    else {}
)
# dvc.yaml's plots section (`dvc plots show`): Figure 7's curves per test set, the losses of every run.
DVC_PLOTS = plotdata.definitions(f"{RESULTS}/plots", DVC_LOSSES, DVC_CURVES, absent_sets(config))

# After `dvc pull` / `dvc checkout` the restored files carry the time of the checkout, in no particular
# order; where dvc.lock vouches for them, their times are set so that Snakemake sees them up to date
# (apl/dvcpipeline/timestamps.py; APL_DVC_TIMESTAMPS=0 turns this off).
restore_at_start(dvc_yaml_path(PROFILE, CONFIG_FILES))
