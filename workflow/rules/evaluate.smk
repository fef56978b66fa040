# Evaluation: every stage's outputs are saved, then scored by apl.metrics (authors' protocol).
from apl.baselines import METHODS, settings as baseline_settings
from apl.data.release_files import RELEASE_RUN, RELEASE_STAGES, release_fingerprint


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


# The authors' released model (config release.dbd / release.deblur, placed by hand: docs/release.md): imported
# with apl import-release into runs/release/weights.pt and scored like a stage (its maps and images go to
# runs/release/maps/; runs/release/import.json, always written, says what was found). Files that may be absent
# cannot be inputs, so the job is in every DAG: absent files give results files saying "not run: weights absent"
# (Tables 1, 2, 4 and 5 show that; the figures leave the release out), and `found` (each file's size and mtime,
# or null) reruns the job through Snakemake's params trigger when a file is placed, replaced or removed.
rule evaluate_release:
    input:
        datasets=f"{DATA}/datasets",
    output:
        metrics=[f"{RESULTS}/metrics/{RELEASE_RUN}/{stage}.json" for stage in RELEASE_STAGES],
        run=directory(f"{RESULTS}/runs/{RELEASE_RUN}"),   # weights.pt, import.json (what was found), maps/
    params:
        release=config["release"],
        found=lambda wildcards: release_fingerprint(config),
        evaluation=config["evaluation"],
        out_dir=lambda wildcards, output: os.path.dirname(output.metrics[0]),
    resources:
        gpu=GPU,   # the networks run on the GPU, and Table 4 times them: alone on its device
    log:
        f"{RESULTS}/logs/{RELEASE_RUN}/evaluate_release.log",
    shell:
        apl(
            "evaluate-release",
            "--datasets {input.datasets} --run-dir {output.run} --maps {output.run}/maps --out-dir {params.out_dir}",
        )


# Does D teach the true map? (apl/probe.py): every adversarial stage of the main run and seed, its frozen G_ws,
# G_sr and D on crops of photographs with masks that are never test images; REPORT.md reads them all (PROBES).
rule probe:
    input:
        weights=weights_file(MAIN, "{stage}"),
        datasets=f"{DATA}/datasets",
    output:
        probe=probe_file("{stage}"),
    params:
        probe=config["probe"],
    log:
        f"{RESULTS}/logs/seed{{seed}}/{MAIN}/probe_{{stage}}.log",
    shell:
        apl("probe", "--weights {input.weights} --datasets {input.datasets} --out {output.probe}")
