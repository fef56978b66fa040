# Data: raw datasets (paper) or the embedded demo -> canonical datasets -> synthetic pairs -> caches.

if config["data"]["source"] == "demo":

    rule demo_data:
        output:
            directory(f"{DATA}/datasets"),
        params:
            demo=config["data"]["demo"],
            size=config["image_size"],
            scale=config["scale"],
            seed=config["seed"],
        log:
            f"{RESULTS}/logs/demo_data.log",
        shell:
            apl("demo-data", "--out {output}")

else:

    localrules:
        download,   # needs the internet: run where Snakemake runs, never on a cluster node

    rule download:
        # Fetches what it can (resumable, verified against data.lock_file, which it extends on first
        # sight of a file), extracts archives, and otherwise stops with what to put where. The authors'
        # released weights are never downloaded (share pages): the message and the log say where they go.
        message:
            (
                f"Raw datasets into {config['data']['raw_dir']}/ (log: {RESULTS}/logs/download.log). Optional, never "
                "downloaded: the authors' released weights, "
                + " and ".join(f"{name} at {path}" for name, path in RELEASE_PLACES.items())
                + f", from {' or '.join(RELEASE_PAGES)} (rule evaluate_release scores them)"
            )
        output:
            f"{DATA}/raw.json",
        params:
            raw=config["data"]["raw_dir"],
            lock=config["data"]["lock_file"],
            sets=config["data"]["sets"],
            fullclear_dir=config["data"]["fullclear_dir"],
            datasets=config["data"]["datasets"],
        log:
            f"{RESULTS}/logs/download.log",
        shell:
            apl("download", "--out {output}")

    rule prepare:
        input:
            f"{DATA}/raw.json",
        output:
            directory(f"{DATA}/datasets"),
        params:
            raw=config["data"]["raw_dir"],
            sets=config["data"]["sets"],
            fullclear_dir=config["data"]["fullclear_dir"],
            counts=config["data"]["expected_counts"],
            allow_subset=config["data"]["allow_subset"],
            # the validation split and the held-out full-clear images (made into synthetic pairs here)
            splits={key: config["data"][key] for key in ("validation", "heldout_fullclear")},
            heldout_pairs=(
                {"synthesis": config["synthesis"], "size": config["image_size"], "scale": config["scale"]}
                if config["data"]["heldout_fullclear"]
                else None
            ),
            seed=config["seed"],
        log:
            f"{RESULTS}/logs/prepare.log",
        shell:
            apl("prepare", "--raw {params.raw} --out {output}")


rule synthesize:
    input:
        f"{DATA}/datasets",
    output:
        directory(f"{DATA}/synthetic"),
    params:
        synthesis=config["synthesis"],
        size=config["image_size"],
        scale=config["scale"],
        seed=config["seed"],
    threads: 2   # the command's worker processes
    log:
        f"{RESULTS}/logs/synthesize.log",
    shell:
        apl("synthesize", "--datasets {input} --out {output}")


rule cache:
    input:
        lambda wildcards: f"{DATA}/synthetic" if wildcards.set == "synthetic" else f"{DATA}/datasets",
    output:
        f"{DATA}/cache/{{set}}.npz",
    wildcard_constraints:
        set="train|fullclear|synthetic",
    params:
        size=config["image_size"],
        scale=config["scale"],
        prior=lambda wildcards: config["prior"] if wildcards.set == "train" else None,
    threads: 2   # the command's worker processes
    log:
        f"{RESULTS}/logs/cache_{{set}}.log",
    shell:
        apl("cache", "--set {wildcards.set} --source {input} --out {output}")
