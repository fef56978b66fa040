# Snakemake reads this file first; the workflow lives in workflow/Snakefile (the catalog's layout). An
# included file cannot set the default target, so it is named here: everything `rule all` asks for.
# `profiles` links to workflow/profiles, so the workflow profile is found from here as well.
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
