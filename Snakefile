# Snakemake reads this file first; the workflow lives in workflow/Snakefile. An included file cannot
# set the default target, so it is named here: everything `rule all` asks for.
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
