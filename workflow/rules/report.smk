# Tables 1-5, Figure 7 and the report, built only from results files.
DETECTION_CURVES = (
    [metrics_file(schedule.SINGLE, "single_gws")]
    + [metrics_file(MAIN, f"gws_O{n}") for n in schedule.ROUNDS]
    + [metrics_file("baselines", "lbp")]
)


rule tables:
    input:
        [f"{RESULTS}/metrics/{path}" for path in required_metrics(config)],
    output:
        TABLE_FILES,
    params:
        metrics=lambda wildcards, input: os.path.dirname(os.path.dirname(input[0])),   # metrics/<run>/<stage>.json
        out=lambda wildcards, output: os.path.dirname(output[0]),
        train=config["train"],
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        CONDA_ENV
    shell:
        apl("tables", "--metrics {params.metrics} --out {params.out}")


rule figure7:
    input:
        DETECTION_CURVES,
    output:
        png=f"{RESULTS}/figures/figure7.png",
        pdf=f"{RESULTS}/figures/figure7.pdf",
    log:
        f"{RESULTS}/logs/figure7.log",
    conda:
        CONDA_ENV
    shell:
        apl("figure7", "--metrics {input} --out {output.png}", with_config=False)


rule report:
    input:
        tables=TABLE_FILES,
        figure=f"{RESULTS}/figures/figure7.png",
    output:
        f"{RESULTS}/REPORT.md",
    params:
        results=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        CONDA_ENV
    shell:
        apl("report", "--results {params.results} --out {output}")
