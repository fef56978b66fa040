# The default models `apl predict` ships (apl/pretrained/, docs/model.md): every seed of the stages in
# model.stages is a candidate detector, the best on the validation split is exported (G_ws only, float16), and
# G_sr of the stage model.deblurrer of that seed is exported beside it; `make model` copies both into the package. Not part of `rule all`: a profile with a validation split asks for
# it by name (results/cuhk/model/detector.pt).
MODEL_CANDIDATES = [
    (schedule.run_variant(stage, MAIN), stage, seed) for stage in config["model"]["stages"] for seed in SEEDS
]
DEBLURRERS = [
    weights_file(schedule.run_variant(config["model"]["deblurrer"], MAIN), config["model"]["deblurrer"], seed)
    for seed in SEEDS
]


rule model:
    input:
        weights=[weights_file(run, stage, seed) for run, stage, seed in MODEL_CANDIDATES],
        metrics=[metrics_file(run, stage, seed) for run, stage, seed in MODEL_CANDIDATES],
        deblurrers=DEBLURRERS,
        datasets=f"{DATA}/datasets",
    output:
        model=f"{RESULTS}/model/detector.pt",
        record=f"{RESULTS}/model/detector.json",
        deblurrer=f"{RESULTS}/model/deblurrer.pt",
        deblurrer_record=f"{RESULTS}/model/deblurrer.json",
    params:
        model=config["model"],
    log:
        f"{RESULTS}/logs/model.log",
    shell:
        apl(
            "export-model",
            "--weights {input.weights} --metrics {input.metrics} --datasets {input.datasets} "
            "--out {output.model} --record {output.record} --deblurrers {input.deblurrers} "
            "--deblurrer-out {output.deblurrer} --deblurrer-record {output.deblurrer_record}",
        )
