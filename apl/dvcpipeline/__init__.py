"""DVC's view of the Snakemake workflow: the DAG is defined once, in workflow/, and DVC reads it from there.

    dag.py         the jobs of one profile's Snakemake DAG, as plain data (Snakemake's own DAG builder)
    generate.py    one DVC stage per Snakemake job -> dvc.yaml (paper) and pipelines/<profile>/dvc.yaml;
                   `apl dvc-pipeline` writes them, `apl dvc-pipeline --check` fails when one is stale
    plotdata.py    the files behind DVC's plots (PR / F-measure curves, losses per epoch) and their definitions
    timestamps.py  after `dvc pull` / `dvc checkout`: give the restored outputs modification times that
                   tell Snakemake they are up to date (verified against dvc.lock first)

Profiles: config/config.yaml alone is the paper profile, whose stages are the repository's dvc.yaml
(`dvc repro`); every other config/*.yaml with a `profile:` key is merged on top of it and gets
pipelines/<profile>/dvc.yaml (`dvc repro pipelines/demo/dvc.yaml`).
"""
from __future__ import annotations

from pathlib import Path

import yaml

BASE_CONFIG = "config/config.yaml"
PROFILE_DIR = "pipelines"


def dvc_yaml_path(profile: str, config_files: list[str]) -> str:
    """Where a profile's stages live, relative to the repository root."""
    if list(config_files) == [BASE_CONFIG]:
        return "dvc.yaml"
    return f"{PROFILE_DIR}/{profile}/dvc.yaml"


def profiles(root: str | Path = ".") -> dict[str, list[str]]:
    """{profile: config files} for the base profile and every config/*.yaml that names a profile."""
    root = Path(root)
    found = {_profile_name(root / BASE_CONFIG): [BASE_CONFIG]}
    for path in sorted((root / "config").glob("*.yaml")):
        relative = path.relative_to(root).as_posix()
        if relative == BASE_CONFIG:
            continue
        name = _profile_name(path)
        if name is None:
            continue   # not a profile (e.g. the datasets' checksum lock)
        if name in found:
            raise ValueError(f"{relative}: profile {name!r} is also defined by {found[name][-1]}")
        found[name] = [BASE_CONFIG, relative]
    return found


def _profile_name(path: Path) -> str | None:
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("profile"), str):
        return data["profile"]
    return None
