"""Tables 1-5 of the paper, rebuilt from the pipeline's results files beside the paper's numbers.

A reproduced number enters a table only when a metrics JSON holds it; a missing file is an error
naming the rule (and wildcards) that makes it. Rows the pipeline cannot run (other authors' methods)
keep the paper's value and are marked "reported".

Every table is written three ways: CSV (long form: one line per cell with dataset, metric, protocol,
paper value, reproduced value, difference, status and results file), Markdown and LaTeX (the paper's
layout, each cell "paper / reproduced (difference)").

A test set the profile does not have (`data.sets.<set>: none`) keeps its columns, whose reproduced cells
say "not run: data absent". The authors' released model (their weights, our evaluation: rule evaluate_release)
has a row in Tables 1, 2, 4 and 5; where its checkpoints were not placed (config release.*), its results file
says so and the row says "not run: weights absent". The synthetic held-out deblurring check (`data.heldout_fullclear`) adds its own
columns to Tables 2, 3 and 5, beside DP and never mixed with it; the validation split is not a column of any
table (REPORT.md shows it under its own heading, `validation_markdown`).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from apl.data.layout import DEBLUR_SET, DETECTION_SETS, HELDOUT_SET, VALIDATION_SET, absent_sets, train_masks_available
from apl.data.release_files import RELEASE_RUN, WEIGHTS_ABSENT
from apl.io import read_json, write_text

# Metric names of the paper -> keys of the metrics JSON (the authors' protocol).
METRIC_KEYS = {"Fmax": "fmax", "MAE": "mae", "PSNR": "psnr", "PSNR pooled": "psnr_pooled", "SSIM": "ssim",
               "seconds": "seconds_per_image", "clipped": "clipped"}
METRIC_LABELS = {"Fmax": "F_max", "MAE": "MAE", "PSNR": "PSNR", "PSNR pooled": "PSNR pooled", "SSIM": "SSIM", "seconds": "seconds / image",
                 "clipped": "clipped"}
LOWER_IS_BETTER = {"MAE", "seconds", "clipped"}
SET_OF_DATASET = {name: key for key, name in [*DETECTION_SETS.items(), DEBLUR_SET]}   # "DUT" -> "dut"
ABSENT_STATUS = "not run: data absent"
HELDOUT_METRICS = ("PSNR", "PSNR pooled", "SSIM", "MAE", "clipped")
DEBLUR_TABLES = (2, 3, 5)
TITLES = {
    1: "Table 1. Defocus detection through the mutual promotion (F_max / MAE on CUHK and DUT)",
    2: "Table 2. Defocus deblurring through the mutual promotion (PSNR / SSIM / MAE on DP)",
    3: "Table 3. G_sr variants: how the focused area is referenced (DP test set, after G_sr O3)",
    4: "Table 4. Comparison with unsupervised defocus detectors (F_max / MAE on CUHK and DUT, seconds per image)",
    5: "Table 5. Comparison with defocus deblurring methods (PSNR / SSIM / MAE on DP)",
}
STATUS_TEXT = {"reproduced": "reproduced", "reported": "reported (paper only, not run here)",
               ABSENT_STATUS: ABSENT_STATUS, WEIGHTS_ABSENT: WEIGHTS_ABSENT}
RELEASE_ROW = "authors' released model (their weights, our evaluation)"


def _source_text(status: str, results_file: str) -> str:
    """The `source` column: reproduced (by the model, by our implementation of a method, or the input
    itself as a reference), reported by the paper only, or not run."""
    path = Path(results_file) if results_file else None
    if status == "reproduced" and path is not None and path.parent.name == "baselines":
        return "reference (the input, unchanged)" if path.stem == "input" else "reproduced (our implementation)"
    if status == "reproduced" and path is not None and path.parent.name == RELEASE_RUN:
        return "reproduced (the authors' released weights, this run's evaluation)"
    return STATUS_TEXT.get(status, status)


@dataclass(frozen=True)
class Source:
    """Where a table row's reproduced numbers come from: a run folder and stage, and the rule that makes it."""
    run: str
    stage: str

    @property
    def seeded(self) -> bool:
        """A trained run (one results file per training seed); the baselines and the release have one."""
        return self.run not in ("baselines", RELEASE_RUN)

    def paths(self, metrics_dir: Path, seeds) -> list[Path]:
        """The results file of every training seed (metrics/seed<N>/<run>/<stage>.json); a baseline's or the
        release's one file (metrics/baselines/<method>.json, metrics/release/<stage>.json)."""
        if not self.seeded:
            return [metrics_dir / self.run / f"{self.stage}.json"]
        return [metrics_dir / f"seed{seed}" / self.run / f"{self.stage}.json" for seed in seeds]

    @property
    def rule(self) -> str:
        return {"baselines": "evaluate_baseline", RELEASE_RUN: "evaluate_release"}.get(self.run, "evaluate")

    @property
    def made_by(self) -> str:
        """The rule with its wildcards, as an error message names it."""
        if self.run == "baselines":
            return f"{self.rule} (method={self.stage})"
        if self.run == RELEASE_RUN:
            return self.rule
        return f"{self.rule} (run={self.run}, stage={self.stage})"

    def made_by_each(self, metrics_dir: Path, seeds) -> list[tuple[Path, str]]:
        """(results file, the rule and wildcards that make it) for every training seed."""
        if not self.seeded:
            return [(path, self.made_by) for path in self.paths(metrics_dir, seeds)]
        return [(path, f"{self.rule} (seed={seed}, run={self.run}, stage={self.stage})")
                for seed, path in zip(seeds, self.paths(metrics_dir, seeds))]


MASKS_ROW = "Single G_ws on GT masks (release's 1204gt; ours)"
NOT_RUN = {MASKS_ROW: "not run: the prepared training set has no masks"}


def row_sources(config: dict) -> dict[tuple[int, str], Source | None]:
    """(table, row) -> Source; None marks a row the configuration does not run."""
    main = config["train"]["variant"]
    sources: dict[tuple[int, str], Source | None] = {
        (1, "Single G_ws"): Source("single", "single_gws"),
        (1, MASKS_ROW):
            Source("single", "single_gws_masks") if train_masks_available(config) else None,
        (2, "Single G_sr"): Source("single", "single_gsr"),
        (4, "SVD"): Source("baselines", "svd"),
        (4, "HiFST"): Source("baselines", "hifst"),
        (4, "Ours"): Source(main, "gws_O3"),
        (4, "LBP (Yi & Eramian)"): Source("baselines", "lbp"),
        (5, "Ours"): Source(main, "gsr_O3"),
        (2, "Defocused input"): Source("baselines", "input"),
        (5, "Defocused input"): Source("baselines", "input"),
    }
    for table, stage in ((1, "release_gws"), (4, "release_gws"), (2, "release_gsr"), (5, "release_gsr")):
        sources[(table, RELEASE_ROW)] = Source(RELEASE_RUN, stage)
    for n in (1, 2, 3):
        sources[(1, f"G_ws_O{n}")] = Source(main, f"gws_O{n}")
        sources[(2, f"G_sr_O{n}")] = Source(main, f"gsr_O{n}")
    variants = {"ugan": "U-GAN", "dcgan": "DC-GAN", "cdfgan": "CDF-GAN", "ufat": "UFAT-GAN"}
    for variant, row in variants.items():
        sources[(3, row)] = Source(variant, "gsr_O3") if variant in config["train"]["ablation_variants"] else None
    return sources


def paper_values() -> pd.DataFrame:
    with resources.files("apl.report").joinpath("paper_tables.csv").open() as handle:
        return pd.read_csv(handle, dtype={"value": float})


def required_metrics(config: dict) -> list[Path]:
    """Relative metrics files every table needs (Snakemake's `tables` rule asks for exactly these)."""
    return sorted({path for src in row_sources(config).values() if src is not None
                   for path in src.paths(Path("."), config["seeds"])})


def protocol(metric: str, dataset: str, config: dict) -> str:
    """The evaluation protocol behind one metric, in words (the CSV's `protocol` column)."""
    size = config["evaluation"]["size"]
    if metric == "Fmax":
        return ("authors' protocol: mean over images of the maximum F_beta (beta^2 = 0.3) over thresholds i/255, "
                "map resized to the GT and divided by its maximum, GT >= 0.1 positive")
    if metric == "MAE" and dataset in ("CUHK", "DUT"):
        return f"authors' protocol: mean absolute error of the map at {size}x{size} against the GT binarised at 125/255"
    if metric == "PSNR pooled":
        return (f"10 log10(1 / MSE) of the mean squared error over all pairs (8-bit RGB at {size}x{size}): unlike the "
                "mean of per-image PSNRs, not dominated by pairs whose input is already sharp")
    if metric in ("PSNR", "SSIM", "MAE"):
        return (f"output and sharp target as 8-bit RGB at {size}x{size}; PSNR on [0, 1], SSIM (7x7 uniform window, "
                "data_range 1, over colour channels), MAE over the three channels")
    if metric == "seconds":
        return "mean wall time of the method's call per test image (see the table's timing note)"
    if metric == "clipped":
        return "share of the output's 8-bit channel values at 0 or 255, mean over images (saturation)"
    return ""


def absent_datasets(config: dict) -> set[str]:
    """Names (as in the tables) of the test sets this profile does not have."""
    return {name for name, key in SET_OF_DATASET.items() if key in absent_sets(config)}


def not_run_status(source: Source, metrics_dir: Path, seeds) -> str | None:
    """The status a results file gives for a row it did not run (the release's absent weights), else None."""
    if source.seeded:
        return None
    (path, made_by), = source.made_by_each(metrics_dir, seeds)
    data = read_json(path, made_by=made_by)
    return data.get("status", WEIGHTS_ABSENT) if data.get("absent") else None


def _value(path: Path, made_by: str, dataset: str, metric: str) -> float:
    data = read_json(path, made_by=made_by)
    key = METRIC_KEYS[metric]
    try:
        return float(data[key]) if metric == "seconds" else float(data["datasets"][dataset][key])
    except KeyError:
        raise ValueError(f"{path} holds no {metric} for {dataset}; rerun the rule `{made_by}`") from None


def _reproduced(source: Source, metrics_dir: Path, seeds, dataset: str, metric: str) -> list[float]:
    """The value of every training seed (one value for a baseline)."""
    return [_value(path, made_by, dataset, metric) for path, made_by in source.made_by_each(metrics_dir, seeds)]


def seed_summary(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) over seeds; the deviation is NaN for a single seed."""
    series = pd.Series(values, dtype=float)
    return float(series.mean()), float(series.std(ddof=1)) if len(series) > 1 else float("nan")


def build_long(config: dict, metrics_dir: str | Path) -> pd.DataFrame:
    """One row per (table, row, dataset, metric): paper value, reproduced value (the mean over the training
    seeds), its standard deviation over them, every seed's value, difference, status."""
    metrics_dir = Path(metrics_dir)
    sources = row_sources(config)
    absent = absent_datasets(config)
    seeds = config["seeds"]
    paper = paper_values()
    records = []
    keys = list(dict.fromkeys(zip(paper["table"], paper["row"])))
    keys += [key for key in sources if key not in keys]   # rows we add (e.g. the LBP baseline)
    for table, row in keys:
        source = sources.get((table, row))
        cells = paper[(paper["table"] == table) & (paper["row"] == row)]
        shape = cells[["dataset", "metric"]].values.tolist()
        if not shape:  # a row the paper does not have: the same cells as the table's first row
            first = paper[paper["table"] == table]["row"].iloc[0]
            shape = paper[(paper["table"] == table) & (paper["row"] == first)][["dataset", "metric"]].values.tolist()
        if table in DEBLUR_TABLES and config["data"]["heldout_fullclear"]:
            shape = shape + [[HELDOUT_SET[1], metric] for metric in HELDOUT_METRICS]
        for dataset, metric in shape:
            paper_value = cells[(cells["dataset"] == dataset) & (cells["metric"] == metric)]["value"]
            paper_value = float(paper_value.iloc[0]) if len(paper_value) else float("nan")
            values = []
            if source is None:
                status = ("reported" if (table, row) not in sources
                          else NOT_RUN.get(row, "not run (not in train.ablation_variants)"))
            elif (not_run := not_run_status(source, metrics_dir, seeds)) is not None:
                status = not_run
            elif dataset in absent:
                status = ABSENT_STATUS
            else:
                status = "reproduced"
                values = _reproduced(source, metrics_dir, seeds, "DP" if dataset == "-" else dataset, metric)
            reproduced, std = seed_summary(values) if values else (float("nan"), float("nan"))
            records.append({"table": table, "row": row, "dataset": dataset, "metric": metric,
                            "protocol": protocol(metric, dataset, config), "paper": paper_value,
                            "reproduced": reproduced, "std": std, "seeds": len(values),
                            "per_seed": ";".join(f"{v:.6g}" for v in values),
                            "difference": reproduced - paper_value, "status": status,
                            "results_file": ";".join(str(p) for p in source.paths(metrics_dir, seeds)) if source else ""})
    return pd.DataFrame.from_records(records)


def _fmt(value: float, metric: str, signed: bool = False) -> str:
    if pd.isna(value):
        return "-"
    sign = "+" if signed else ""
    if metric == "clipped":
        return f"{value:{sign}.2%}"
    if metric == "seconds":
        return f"{value:{sign}.3g}" if abs(value) >= 1e-4 or value == 0 else f"{value:{sign}.1e}"
    return f"{value:{sign}.{2 if metric.startswith('PSNR') else 3}f}"


def cell_text(paper: float, reproduced: float, metric: str, status: str = "", std: float = float("nan")) -> str:
    """'paper / reproduced (difference)'; '0.420 (paper)' for a reported cell; '0.875 (ours)' for a new row;
    '0.420 (paper) / not run: data absent' for a test set the profile does not have. Over several seeds the
    reproduced value is 'mean ± std'."""
    if not pd.isna(reproduced) and not pd.isna(std):
        shown = f"{_fmt(reproduced, metric)} ± {_fmt(std, metric)}"
        if pd.isna(paper):
            return f"{shown} (ours)"
        return f"{_fmt(paper, metric)} / {shown} ({_fmt(reproduced - paper, metric, signed=True)})"
    if status in (ABSENT_STATUS, WEIGHTS_ABSENT):
        return f"{_fmt(paper, metric)} (paper) / {status}" if not pd.isna(paper) else status
    if pd.isna(reproduced) and pd.isna(paper):
        return "-"
    if pd.isna(reproduced):
        return f"{_fmt(paper, metric)} (paper)"
    if pd.isna(paper):
        return f"{_fmt(reproduced, metric)} (ours)"
    return f"{_fmt(paper, metric)} / {_fmt(reproduced, metric)} ({_fmt(reproduced - paper, metric, signed=True)})"


def wide(long: pd.DataFrame, table: int) -> pd.DataFrame:
    """The table in the paper's layout: one row per method / setting, a `source` column, one column per cell."""
    part = long[long["table"] == table]
    part = part.assign(column=[METRIC_LABELS[m] if d == "-" else f"{d} {METRIC_LABELS[m]}"
                               for d, m in zip(part["dataset"], part["metric"])],
                       cell=[cell_text(p, r, m, s, d) for p, r, m, s, d in
                             zip(part["paper"], part["reproduced"], part["metric"], part["status"], part["std"])])
    order = list(dict.fromkeys(part["row"]))
    columns = list(dict.fromkeys(part["column"]))
    grid = part.pivot(index="row", columns="column", values="cell").reindex(index=order, columns=columns)
    # a row's source: a reproduced cell's where it has one (an absent test set does not make a run "not run")
    ranked = part.assign(rank=(part["status"] != "reproduced").astype(int)).sort_values("rank", kind="stable")
    first = ranked.groupby("row", sort=False)[["status", "results_file"]].first().reindex(order)
    grid.insert(0, "source", [_source_text(status, path) for status, path in zip(first["status"], first["results_file"])])
    grid.index.name = "method" if table in (4, 5) else "setting"
    grid.columns.name = None
    return grid.fillna("-")


def _size_text(sizes: dict) -> str:
    common = sorted(sizes.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{count} x {size}" for size, count in common[:3])
    return text + (f" and {len(common) - 3} other sizes" if len(common) > 3 else "")


def timing_note(long: pd.DataFrame, table: int) -> str:
    """Where, on what inputs and at what working resolution the seconds of a table were measured,
    read from the results files themselves."""
    rows = long[(long["table"] == table) & (long["metric"] == "seconds") & (long["status"] == "reproduced")]
    if rows.empty:
        return ""
    machines, inputs, working = {}, {}, []
    for row, paths in zip(rows["row"], rows["results_file"]):
        data = read_json(paths.split(";")[0])
        timing = data.get("timing", {})
        device = timing.get("device", data.get("device", "?"))
        machines.setdefault(timing.get("machine", "machine not recorded"), []).append(f"{row} on {device}")
        inputs.setdefault(_size_text(timing.get("input_sizes", {})) or "not recorded", []).append(row)
        if data.get("variant") == "baseline":
            working.append(f"{row}: {data.get('working_resolution', 'not recorded')}")
        else:
            scale = data.get("scale") or {"mode": "squash"}
            size = data.get("image_size", "?")
            working.append(f"{row}: network input the whole test image at a longer side of {scale['longer_side']} px "
                           f"(trained on {size}x{size} crops)" if scale["mode"] == "photo"
                           else f"{row}: network input {size}x{size}")
    where = "; ".join(f"{machine} ({', '.join(who)})" for machine, who in machines.items())
    if len(inputs) == 1:
        sizes = next(iter(inputs))
    else:
        sizes = "; ".join(f"{', '.join(who)}: {text}" for text, who in inputs.items())
    return ("Seconds: mean wall time per test image of the method's call (decoded image in, map out; one warm-up "
            f"call excluded) over the detection test sets. Measured by this run on {where}. Inputs: the test "
            f"images at their stored size ({sizes}). Working resolution: {'; '.join(working)}. "
            "The paper's seconds were measured on an RTX 2080Ti workstation.")


def legend(table: int, config: dict) -> str:
    size = config["evaluation"]["size"]
    cells = ("Cells: paper / reproduced (reproduced - paper); '(paper)': the paper's number only; "
             "'(ours)': a row or column the paper does not have.")
    absent = sorted(absent_datasets(config))
    if absent:
        cells += (f" {' and '.join(absent)}: '{ABSENT_STATUS}' (this profile has no such data: "
                  + ", ".join(f"data.sets.{SET_OF_DATASET[name]}: none" for name in absent) + ").")
    if table in (1, 2, 4, 5):
        cells += (f" {RELEASE_ROW}: the checkpoints of github.com/wdzhao123/APL (trained by the authors on their "
                  "data at 160x160), run at 160x160 as the release does and scored with this protocol on this "
                  f"run's test images; '{WEIGHTS_ABSENT}' where they were not placed (config release.dbd, "
                  "release.deblur).")
    if table in (1, 4):
        return (f"{cells}{seeds_text(config)} Datasets: CUHK and DUT test sets. Protocol (the authors' evaluation code): F_max = mean "
                "over images of the maximum F_beta (beta^2 = 0.3) over thresholds i/255 of the map divided by its "
                f"maximum; MAE of the map at {size}x{size} against the GT binarised at 125/255.")
    text = (f"{cells}{seeds_text(config)} Dataset: DP (DPDD) test set. Protocol: output (the composite R(1 - M) + I M) and sharp "
            f"target as 8-bit RGB at {size}x{size}; PSNR on [0, 1]; SSIM (7x7 uniform window, over colour "
            "channels); MAE over the three channels.")
    if config["data"]["heldout_fullclear"]:
        text += (f" {HELDOUT_SET[1]}: {config['data']['heldout_fullclear']} full-clear photographs held out of D's "
                 "real set and of the pretraining pairs, each blurred once with the pretraining synthesis (Gaussian "
                 f"defocus of part of the image, at {config['image_size']}x{config['image_size']}); same protocol, "
                 "not comparable with DP or the paper; 'clipped': share of output channel values at 0 or 255.")
    return text


def _seed_cell(values: list[float]) -> str:
    mean, std = seed_summary(values)
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def seeds_text(config: dict) -> str:
    """The legend's sentence on seeds, where there are several."""
    seeds = config["seeds"]
    if len(seeds) == 1:
        return ""
    return (f" Trained rows: mean ± standard deviation over {len(seeds)} training seeds ({', '.join(map(str, seeds))}); "
            "every seed's value is in the CSV's per_seed column.")


def validation_markdown(config: dict, metrics_dir: str | Path) -> str:
    """The validation split's scores of every detection row of Tables 1 and 4 (empty without a split);
    mean ± std over the training seeds where there are several."""
    if not config["data"]["validation"]:
        return ""
    metrics_dir, name = Path(metrics_dir), VALIDATION_SET[1]
    lines = [f"| setting / method | {name} F_max | {name} MAE | results file |", "|---|---|---|---|"]
    seen = set()
    for (table, row), source in sorted(row_sources(config).items(), key=lambda item: item[0][0]):
        if table not in (1, 4) or source is None or source in seen:
            continue
        seen.add(source)
        if not_run_status(source, metrics_dir, config["seeds"]) is not None:
            lines.append(f"| {row} | {not_run_status(source, metrics_dir, config['seeds'])} | | |")
            continue
        made = source.made_by_each(metrics_dir, config["seeds"])
        paths = [path for path, _ in made]
        cells = [_seed_cell([_value(path, by, name, metric) for path, by in made]) for metric in ("Fmax", "MAE")]
        lines.append(f"| {row} | {cells[0]} | {cells[1]} | {'; '.join(str(p) for p in paths)} |")
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    replacements = {"±": r"$\pm$", "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(replacements.get(char, char) for char in str(text))


def to_latex(grid: pd.DataFrame, caption: str, label: str, notes: list[str]) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); every text is escaped."""
    header = [grid.index.name or ""] + list(grid.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             r"\begin{tabular}{l" + "l" * len(grid.columns) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for name, values in grid.iterrows():
        lines.append(" & ".join(latex_escape(v) for v in [name, *values]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip\footnotesize {latex_escape(note)}" for note in notes if note]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_tables(config: dict, metrics_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every table as CSV (long form), Markdown and LaTeX; return the written paths."""
    out_dir, metrics_dir = Path(out_dir), Path(metrics_dir)
    long = build_long(config, metrics_dir)
    written = []
    for table in sorted(long["table"].unique()):
        grid = wide(long, table)
        notes = [legend(table, config), timing_note(long, table)]
        stem = out_dir / f"table{table}"
        markdown = f"### {TITLES[table]}\n\n{grid.to_markdown()}\n\n" + "\n\n".join(n for n in notes if n) + "\n"
        outputs = {
            stem.with_suffix(".csv"): long[long["table"] == table].to_csv(index=False),
            stem.with_suffix(".md"): markdown,
            stem.with_suffix(".tex"): to_latex(grid, TITLES[table], f"tab:apl-{table}", notes),
        }
        for path, text in outputs.items():
            write_text(path, text)
            written.append(path)
    return written
