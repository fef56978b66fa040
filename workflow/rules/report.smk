# Tables 1-5, Figures 6, 7 and 9, the training curves and REPORT.md, built only from results files.
# Outputs wrapped in report() appear, with the captions of workflow/report/, in `snakemake --report report.html`.
from apl.baselines import METHODS as BASELINES
from apl.data.release_files import RELEASE_RUN


report: "../report/workflow.rst"


REPORT_DIR = "../report"   # captions: relative to this file
FIGURES = f"{RESULTS}/figures"
DETECTION_BASELINES = [name for name, (task, _) in BASELINES.items() if task == "detection"]
# The authors' released model (rule evaluate_release): a curve and a column where its weights were placed (the
# figures leave out a results file that says they were absent).
RELEASE_GWS = f"{RESULTS}/metrics/{RELEASE_RUN}/release_gws.json"
RELEASE_GSR = f"{RESULTS}/metrics/{RELEASE_RUN}/release_gsr.json"
# Figure 7: every detection method this run evaluates (training stages, then the classic detectors, then the
# authors' release); a training stage's curve is the mean over the seeds, so every seed's file is an input.
DETECTION_CURVES = [
    path
    for pattern in [metrics_file(schedule.SINGLE, "single_gws")]
    + [metrics_file(MAIN, f"gws_O{n}") for n in schedule.ROUNDS]
    + [metrics_file("baselines", name) for name in DETECTION_BASELINES]
    for path in every_seed(pattern)
] + [RELEASE_GWS]
# Figure 6 columns: the prior B(I), the classic detectors, Single G_ws, ours (the first seed's maps), the release.
DETECTION_COLUMNS = [metrics_file("baselines", name) for name in DETECTION_BASELINES] + [
    metrics_file(schedule.SINGLE, "single_gws", FIRST_SEED),
    metrics_file(MAIN, "gws_O3", FIRST_SEED),
    RELEASE_GWS,
]
DEBLUR_COLUMNS = [
    metrics_file(schedule.SINGLE, "single_gsr", FIRST_SEED),
    metrics_file(MAIN, "gsr_O3", FIRST_SEED),
    RELEASE_GSR,
]
TRAINING_LOSSES = [losses_file(MAIN, stage, FIRST_SEED) for stage in schedule.ALTERNATION] + [
    losses_file(schedule.SINGLE, stage, FIRST_SEED) for stage in ("single_gws", "single_gsr")
]
FIGURE_FILES = [f"{FIGURES}/{stem}.png" for stem in ("figure7", "figure6", "figure9", "training_curves")]
# REPORT.md's "Does D teach the true map?": the probe of every adversarial stage and seed (rule probe)
PROBES = [path for stage in schedule.PHASES for path in every_seed(probe_file(stage))]


rule tables:
    input:
        [f"{RESULTS}/metrics/{path}" for path in required_metrics(config)],
    output:
        [
            report(path, caption=f"{REPORT_DIR}/{os.path.basename(path)[:-4]}.rst", category="Tables")
            if path.endswith(".csv")
            else path
            for path in TABLE_FILES
        ],
    params:
        metrics=lambda wildcards, input: os.path.commonpath(list(input)),   # metrics/: seed<N>/..., baselines/
        out=lambda wildcards, output: os.path.dirname(output[0]),
        train=config["train"],
    log:
        f"{RESULTS}/logs/tables.log",
    shell:
        apl("tables", "--metrics {params.metrics} --out {params.out}")


rule figure7:
    input:
        DETECTION_CURVES,
    output:
        png=report(f"{FIGURES}/figure7.png", caption=f"{REPORT_DIR}/figure7.rst", category="Figures"),
        pdf=f"{FIGURES}/figure7.pdf",
    log:
        f"{RESULTS}/logs/figure7.log",
    shell:
        apl("figure7", "--metrics {input} --out {output.png}", with_config=False)


rule figure6:
    input:
        metrics=DETECTION_COLUMNS,
        datasets=f"{DATA}/datasets",
    output:
        png=report(f"{FIGURES}/figure6.png", caption=f"{REPORT_DIR}/figure6.rst", category="Figures"),
        pdf=f"{FIGURES}/figure6.pdf",
    log:
        f"{RESULTS}/logs/figure6.log",
    shell:
        apl("figure6", "--metrics {input.metrics} --datasets {input.datasets} --out {output.png}", with_config=False)


rule figure9:
    input:
        metrics=DEBLUR_COLUMNS,
        datasets=f"{DATA}/datasets",
    output:
        png=report(f"{FIGURES}/figure9.png", caption=f"{REPORT_DIR}/figure9.rst", category="Figures"),
        pdf=f"{FIGURES}/figure9.pdf",
    log:
        f"{RESULTS}/logs/figure9.log",
    shell:
        apl("figure9", "--metrics {input.metrics} --datasets {input.datasets} --out {output.png}", with_config=False)


rule training_curves:
    input:
        TRAINING_LOSSES,
    output:
        png=report(f"{FIGURES}/training_curves.png", caption=f"{REPORT_DIR}/training_curves.rst", category="Figures"),
        pdf=f"{FIGURES}/training_curves.pdf",
    log:
        f"{RESULTS}/logs/training_curves.log",
    shell:
        apl("training-curves", "--losses {input} --out {output.png}", with_config=False)


rule probe_figure:
    input:
        PROBES,
    output:
        png=report(f"{FIGURES}/probe.png", caption=f"{REPORT_DIR}/probe.rst", category="Figures"),
        pdf=f"{FIGURES}/probe.pdf",
    log:
        f"{RESULTS}/logs/probe_figure.log",
    shell:
        apl("probe-figure", "--probes {input} --out {output.png}", with_config=False)


rule report:
    input:
        tables=TABLE_FILES,
        figures=FIGURE_FILES,
        probes=PROBES,
        probe_figure=f"{FIGURES}/probe.png",
    output:
        report(f"{RESULTS}/REPORT.md", caption=f"{REPORT_DIR}/report_md.rst", category="Report"),
    params:
        results=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        apl("report", "--results {params.results} --out {output}")
