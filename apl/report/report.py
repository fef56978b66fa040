"""results/<profile>/REPORT.md: the page a user reads first (tables, figures, deviations, provenance)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata, resources
from pathlib import Path

from apl.io import read_json

PACKAGES = ("torch", "torchvision", "numpy", "scikit-image", "pysodmetrics", "snakemake", "dvc", "pandas")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _versions() -> str:
    rows = []
    for name in PACKAGES:
        try:
            rows.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            rows.append(f"{name} (not installed)")
    return ", ".join(rows)


def _training_rows(results: Path) -> list[str]:
    rows = ["| run | stage | epochs | device | seconds |", "|---|---|---|---|---|"]
    for path in sorted((results / "metrics").glob("*/*.json")):
        data = read_json(path)
        weights = data.get("weights")
        if not weights:
            continue
        import torch  # only for reading the stage's metadata
        meta = torch.load(weights, map_location="cpu", weights_only=False)["meta"]
        rows.append(f"| {path.parent.name} | {meta['stage']} | {meta['epochs']} x {meta['steps_per_epoch']} steps | "
                    f"{meta['device']} | {meta['seconds_this_run']} |")
    return rows


def deviations() -> str:
    return resources.files("apl.report").joinpath("DEVIATIONS.md").read_text()


def write_report(config: dict, config_files: list, results: str | Path, out: str | Path) -> Path:
    results, out = Path(results), Path(out)
    tables = [(results / "tables" / f"table{n}.md").read_text() for n in range(1, 6)]
    lines = [f"# APL reproduction report: profile `{config['profile']}`", "",
             f"Data source: `{config['data']['source']}`; image size {config['image_size']}; "
             f"G_sr variant of the main model: `{config['train']['variant']}`.", "",
             "## Tables", ""]
    for text in tables:
        lines += [text, ""]
    lines += ["## Figure 7", "", "PR curves (top) and F-measure curves (bottom), authors' protocol.", "",
              "![Figure 7](figures/figure7.png)", "", deviations(), "",
              "## Provenance", "",
              f"- config files: {', '.join(str(p) for p in config_files)}",
              f"- git commit: {_git_commit()}",
              f"- python {platform.python_version()} on {platform.platform()}",
              f"- packages: {_versions()}",
              "", "Training stages (time of the run that finished each stage):", ""]
    lines += _training_rows(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out
