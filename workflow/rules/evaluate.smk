# Evaluation: every stage's outputs are saved, then scored by apl.metrics (authors' protocol).
from apl.baselines import METHODS, settings as baseline_settings


rule evaluate:
    input:
        weights=weights_file("{run}", "{stage}"),
        datasets=f"{DATA}/datasets",
    output:
        metrics=metrics_file("{run}", "{stage}"),
        maps=directory(f"{RESULTS}/maps/seed{{seed}}/{{run}}/{{stage}}"),
    params:
        evaluation=config["evaluation"],
    resources:
        gpu=GPU,   # the network runs on the GPU, and Table 4 times it: alone on its device
    log:
        f"{RESULTS}/logs/seed{{seed}}/{{run}}/evaluate_{{stage}}.log",
    shell:
        apl(
            "evaluate",
            "--stage {wildcards.stage} --variant {wildcards.run} --weights {input.weights} "
            "--datasets {input.datasets} --maps {output.maps} --out {output.metrics}",
        )


rule evaluate_baseline:
    input:
        datasets=f"{DATA}/datasets",
    output:
        metrics=metrics_file("baselines", "{method}"),
        maps=directory(f"{RESULTS}/maps/baselines/{{method}}"),
    wildcard_constraints:
        method="|".join(METHODS),
    params:
        settings=lambda wildcards: baseline_settings(wildcards.method, config),   # a change reruns the method
        evaluation=config["evaluation"],
    resources:
        gpu=GPU,   # not for a device: Table 4 times these methods, so they do not run beside a GPU job
    log:
        f"{RESULTS}/logs/baselines/{{method}}.log",
    shell:
        apl(
            "baseline",
            "--method {wildcards.method} --datasets {input.datasets} --maps {output.maps} --out {output.metrics}",
        )
