"""Tables 1-5 of the paper, rebuilt from the pipeline's results files beside the paper's numbers.

A reproduced number enters a table only when a metrics JSON holds it. Rows the pipeline cannot run
(other authors' methods) keep the paper's value and are marked "reported".
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from apl.io import read_json

# Metric names of the paper -> keys of the metrics JSON (the authors' protocol).
METRIC_KEYS = {"Fmax": "fmax", "MAE": "mae", "PSNR": "psnr", "SSIM": "ssim", "seconds": "seconds_per_image"}
LOWER_IS_BETTER = {"MAE", "seconds"}
TITLES = {
    1: "Table 1. Defocus detection through the mutual promotion (F_max / MAE, authors' protocol)",
    2: "Table 2. Defocus deblurring through the mutual promotion (DP test set)",
    3: "Table 3. G_sr variants: how the focused area is referenced (DP test set, after G_sr O3)",
    4: "Table 4. Comparison with unsupervised defocus detectors",
    5: "Table 5. Comparison with defocus deblurring methods (DP test set)",
}


@dataclass(frozen=True)
class Source:
    """Where a table row's reproduced numbers come from: a run folder and stage, and the rule that makes it."""
    run: str
    stage: str

    def path(self, metrics_dir: Path) -> Path:
        return metrics_dir / self.run / f"{self.stage}.json"

    @property
    def rule(self) -> str:
        return "evaluate_baseline" if self.run == "baselines" else "evaluate"


def row_sources(config: dict) -> dict[tuple[int, str], Source | None]:
    """(table, row) -> Source; None marks a row reported from the paper only."""
    main = config["train"]["variant"]
    sources: dict[tuple[int, str], Source | None] = {
        (1, "Single G_ws"): Source("single", "single_gws"),
        (2, "Single G_sr"): Source("single", "single_gsr"),
        (4, "Ours"): Source(main, "gws_O3"),
        (4, "LBP (Yi & Eramian)"): Source("baselines", "lbp"),
        (5, "Ours"): Source(main, "gsr_O3"),
        (2, "Defocused input"): Source("baselines", "input"),
        (5, "Defocused input"): Source("baselines", "input"),
    }
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
    return sorted({src.path(Path(".")) for src in row_sources(config).values() if src is not None})


def _reproduced(source: Source, metrics_dir: Path, dataset: str, metric: str) -> float:
    path = source.path(metrics_dir)
    data = read_json(path, made_by=source.rule)
    key = METRIC_KEYS[metric]
    if metric == "seconds":
        return float(data[key])
    try:
        return float(data["datasets"][dataset][key])
    except KeyError:
        raise KeyError(f"{path} holds no {metric} for {dataset}; rerun the rule `{source.rule}`") from None


def build_long(config: dict, metrics_dir: str | Path) -> pd.DataFrame:
    """One row per (table, row, dataset, metric): paper value, reproduced value, difference, status."""
    metrics_dir = Path(metrics_dir)
    sources = row_sources(config)
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
        for dataset, metric in shape:
            paper_value = cells[(cells["dataset"] == dataset) & (cells["metric"] == metric)]["value"]
            paper_value = float(paper_value.iloc[0]) if len(paper_value) else float("nan")
            if source is None:
                status = "reported" if (table, row) not in sources else "not run (not in train.ablation_variants)"
                reproduced = float("nan")
            else:
                status = "reproduced"
                reproduced = _reproduced(source, metrics_dir, "DP" if dataset == "-" else dataset, metric)
            records.append({"table": table, "row": row, "dataset": dataset, "metric": metric, "paper": paper_value,
                            "reproduced": reproduced, "difference": reproduced - paper_value, "status": status,
                            "results_file": str(source.path(metrics_dir)) if source else ""})
    return pd.DataFrame.from_records(records)


def _cell(paper: float, reproduced: float, metric: str) -> str:
    digits = 2 if metric == "PSNR" else 3
    fmt = lambda v: "-" if pd.isna(v) else f"{v:.{digits}f}"   # noqa: E731
    if pd.isna(reproduced):
        return f"{fmt(paper)} (paper)"
    if pd.isna(paper):
        return f"{fmt(reproduced)} (ours)"
    return f"{fmt(paper)} / {fmt(reproduced)} ({reproduced - paper:+.{digits}f})"


def wide(long: pd.DataFrame, table: int) -> pd.DataFrame:
    part = long[long["table"] == table]
    part = part.assign(column=[m if d == "-" else f"{d} {m}" for d, m in zip(part["dataset"], part["metric"])],
                       cell=[_cell(p, r, m) for p, r, m in zip(part["paper"], part["reproduced"], part["metric"])])
    order = list(dict.fromkeys(part["row"]))
    columns = list(dict.fromkeys(part["column"]))
    grid = part.pivot(index="row", columns="column", values="cell").reindex(index=order, columns=columns)
    status = part.groupby("row", sort=False)["status"].first().reindex(order)
    grid.insert(0, "source", status)
    return grid.fillna("-")


def write_tables(config: dict, metrics_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every table as CSV (long form), Markdown and LaTeX; return the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    long = build_long(config, metrics_dir)
    written = []
    for table in sorted(long["table"].unique()):
        grid = wide(long, table)
        stem = out_dir / f"table{table}"
        legend = ("Cells: paper / reproduced (difference). Detection: authors' protocol (mean of per-image "
                  "max F_beta, beta^2 = 0.3; MAE at {0}x{0}). Deblurring: PSNR / SSIM / MAE at {0}x{0}.")
        outputs = {
            stem.with_suffix(".csv"): long[long["table"] == table].to_csv(index=False),
            stem.with_suffix(".md"): f"### {TITLES[table]}\n\n{grid.to_markdown()}\n\n"
                                     f"{legend.format(config['evaluation']['size'])}\n",
            stem.with_suffix(".tex"): grid.to_latex(caption=TITLES[table], label=f"tab:{table}"),
        }
        for path, text in outputs.items():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            written.append(path)
    return written
