# The default detector `apl predict` ships (apl/pretrained/detector.pt, docs/model.md): every seed of the stages
# in model.stages is a candidate, the best on the validation split is exported (G_ws only, float16), and
# `make model` copies it into the package. Not part of `rule all`: a profile with a validation split asks for
# it by name (results/cuhk/model/detector.pt).
MODEL_CANDIDATES = [
    (schedule.run_variant(stage, MAIN), stage, seed) for stage in config["model"]["stages"] for seed in SEEDS
]


rule model:
    input:
        weights=[weights_file(run, stage, seed) for run, stage, seed in MODEL_CANDIDATES],
        metrics=[metrics_file(run, stage, seed) for run, stage, seed in MODEL_CANDIDATES],
        datasets=f"{DATA}/datasets",
    output:
        model=f"{RESULTS}/model/detector.pt",
        record=f"{RESULTS}/model/detector.json",
    params:
        model=config["model"],
    log:
        f"{RESULTS}/logs/model.log",
    shell:
        apl(
            "export-model",
            "--weights {input.weights} --metrics {input.metrics} --datasets {input.datasets} "
            "--out {output.model} --record {output.record}",
        )
