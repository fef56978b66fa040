# Tables 1-5, Figure 7 and the report, built only from results files.
DETECTION_CURVES = [metrics_file(schedule.SINGLE, "single_gws")] + [
    metrics_file(MAIN, f"gws_O{n}") for n in schedule.ROUNDS
] + [metrics_file("baselines", "lbp")]


rule tables:
    input:
        [f"{RESULTS}/metrics/{path}" for path in required_metrics(config)],
    output:
        TABLE_FILES,
    params:
        variants=config["train"],
    log:
        f"{RESULTS}/logs/tables.log",
    shell:
        "{APL} tables {CFG} --metrics {RESULTS}/metrics --out {RESULTS}/tables > {log} 2>&1"


rule figure7:
    input:
        DETECTION_CURVES,
    output:
        png=f"{RESULTS}/figures/figure7.png",
        pdf=f"{RESULTS}/figures/figure7.pdf",
    log:
        f"{RESULTS}/logs/figure7.log",
    shell:
        "{APL} figure7 --metrics {input} --out {output.png} > {log} 2>&1"


rule report:
    input:
        tables=TABLE_FILES,
        figure=f"{RESULTS}/figures/figure7.png",
    output:
        f"{RESULTS}/REPORT.md",
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "{APL} report {CFG} --results {RESULTS} --out {output} > {log} 2>&1"
