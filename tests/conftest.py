"""Shared fixtures: the smallest profile's config, its data, and its whole pipeline, each built once per test session."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apl import config as config_module

ROOT = Path(__file__).resolve().parents[1]
TEST_PROFILE = [ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml"]


def write_override(path: Path, override: dict) -> list[Path]:
    """Config files for the test profile plus an extra override file."""
    path.write_text(yaml.safe_dump(override))
    return TEST_PROFILE + [path]


@pytest.fixture(scope="session")
def test_config() -> dict:
    return config_module.load(TEST_PROFILE)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, test_config):
    """datasets/, synthetic/ and cache/ of the test profile, built by the same functions the rules call."""
    from apl.data.cache import build_cache
    from apl.data.demo import build_demo
    from apl.data.layout import FOLDERS
    from apl.data.synthesis import synthesize_dataset

    root = tmp_path_factory.mktemp("tiny")
    build_demo(test_config, root / "datasets")
    synthesis = test_config["synthesis"]
    synthesize_dataset(root / "datasets" / FOLDERS["fullclear"], root / "synthetic", per_image=synthesis["per_image"],
                       size=test_config["image_size"], seed=0, sigma_range=tuple(synthesis["sigma"]),
                       window=synthesis["window"], blurred_fraction_range=tuple(synthesis["blurred_fraction"]), workers=1,
                       scale=test_config["scale"])
    for which in ("train", "fullclear"):
        build_cache(which, root / "datasets", root / "cache" / f"{which}.npz", test_config, workers=1)
    build_cache("synthetic", root / "synthetic", root / "cache" / "synthetic.npz", test_config, workers=1)
    return root


# --- the test profile's whole DAG, run once per session --------------------------------------------------

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The stages call `apl`: the console script of this installation, as with an activated environment.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}
REPOSITORY_FILES = ["Snakefile", "profiles", "workflow", "config", "environment.yml", "dvc.yaml", "pipelines", ".dvcignore",
                    ".dvc/config", ".dvc/.gitignore"]


def copy_repository(target: Path) -> Path:
    """The workflow, configs and DVC files of this working tree (uncommitted changes included) in a new git repo."""
    target.mkdir(parents=True, exist_ok=True)
    for name in REPOSITORY_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("dvc.lock", "__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)
    (target / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=target, env=ENV, check=True, capture_output=True)
    return target


def copy_run(run: Path, target: Path) -> Path:
    """A copy of a finished run to change: every file, .git and .snakemake included, with its times."""
    shutil.copytree(run, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory) -> Path:
    """A repository copy (copy_repository) where Snakemake ran the test profile's whole DAG, once per session.

    tests/test_pipeline.py reads it as it is (and only adds Snakemake's own bookkeeping); tests that change
    files (tests/test_dvc.py: `dvc commit`, push, pull) work on a copy_run of it.
    """
    work = copy_repository(tmp_path_factory.mktemp("pipeline_run") / "work")
    result = subprocess.run([*SNAKEMAKE, "--cores", "2", "--configfile", "config/test.yaml"], cwd=work, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work
