"""The Snakemake profiles of workflow/profiles/: they parse, a dry run with each lists every stage, and the
SLURM profile submits what it should (stand-ins for sbatch, srun, sacct, squeue on PATH record each
submission and run the job here, on the test profile)."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from test_pipeline import ROOT, SNAKEMAKE, copy_workflow

PROFILES = ROOT / "workflow" / "profiles"
STANDIN = ROOT / "tests" / "fixtures" / "slurm_standin.py"
PAPER_RULES = ("download", "prepare", "synthesize", "cache", "pretrain_gsr", "train_gws", "train_gsr", "single_gws",
               "single_gsr", "evaluate", "evaluate_baseline", "tables", "figure7", "figure6", "figure9",
               "training_curves", "report", "plots_data")


def gpu_rules() -> set[str]:
    """Rules that hold the gpu resource (`gpu=GPU` in workflow/rules/*.smk)."""
    found = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^\s*rule ", path.read_text(), flags=re.MULTILINE)[1:]:
            if re.search(r"^\s+gpu=GPU,", block, re.MULTILINE):
                found.add(block.split(":", 1)[0].strip())
    return found


def parsed(*argv):
    """Snakemake's own reading of the command line and profiles (run in a subprocess: it prints)."""
    code = ("import json, sys; from snakemake.cli import parse_args\n"
            "_, a = parse_args(sys.argv[1:])\n"
            "r = lambda d: {k: (v if isinstance(v, (int, str, type(None))) else getattr(v, 'raw', str(v)))"
            " for k, v in (d or {}).items()}\n"
            "print(json.dumps({'cores': a.cores, 'executor': a.executor, 'resources': r(a.resources),"
            " 'default_resources': r(a.default_resources), 'show_failed_logs': a.show_failed_logs,"
            " 'set_resources': {k: r(v) for k, v in (a.set_resources or {}).items()}}, default=str))")
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_default_profile_is_what_a_plain_snakemake_gets():
    args = parsed()
    assert args["cores"] == os.cpu_count()   # cores: all
    assert args["resources"] == {"gpu": 1} and args["show_failed_logs"] is True
    assert args["executor"] is None


def test_slurm_profile_requests_a_gpu_runtime_and_memory_for_every_gpu_rule():
    args = parsed("--workflow-profile", "workflow/profiles/slurm")
    assert args["executor"] == "slurm"
    assert args["resources"] == {}   # no cap on GPU jobs: the cluster schedules them
    assert gpu_rules() == {"pretrain_gsr", "train_gws", "train_gsr", "single_gws", "single_gws_masks", "single_gsr", "evaluate",
                           "evaluate_baseline", "evaluate_release"}
    for rule in gpu_rules() - {"evaluate_baseline"}:
        settings = args["set_resources"][rule]
        assert settings["gpu"] == 1 and settings["slurm_partition"] == "gpu", rule
        assert settings["runtime"] >= 60 and settings["mem_mb"] >= 8000, rule
    # the classic detectors run on a CPU partition (the default), with no GPU
    assert args["set_resources"]["evaluate_baseline"]["gpu"] == 0
    assert "slurm_partition" not in args["set_resources"]["evaluate_baseline"]
    text = (PROFILES / "slurm" / "config.yaml").read_text()
    assert yaml.safe_load(text)["default-resources"]["slurm_partition"] == "cpu" and "EDIT" in text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("profiles"))


@pytest.fixture(scope="module")
def slurm_bin(tmp_path_factory):
    """A folder of stand-in SLURM commands, and the folder where they record what they were asked."""
    folder = tmp_path_factory.mktemp("slurm")
    (folder / "bin").mkdir()
    for name in ("sbatch", "srun", "sacct", "squeue", "sinfo"):
        script = folder / "bin" / name
        script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "
                          f"{shlex.quote(str(folder / 'state'))} {name} \"$@\"\n")
        script.chmod(0o755)
    (folder / "state").mkdir()
    return folder


def snakemake(workdir, slurm_bin, *args):
    env = {**os.environ, "PATH": f"{slurm_bin / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_dry_run_with_each_profile_lists_every_stage(workdir, slurm_bin, profile):
    result = snakemake(workdir, slurm_bin, "-n", "--workflow-profile", f"workflow/profiles/{profile}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = result.stdout + result.stderr
    assert f"workflow/profiles/{profile}" in text
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", text, re.MULTILINE))   # the job-count table
    for rule in PAPER_RULES:
        assert int(jobs.get(rule, 0)) >= 1, (rule, jobs)


def submissions(slurm_bin) -> dict[str, list[str]]:
    """{rule: sbatch arguments} of every submission the stand-in recorded."""
    found = {}
    for line in (slurm_bin / "state" / "submitted.jsonl").read_text().splitlines():
        record = json.loads(line)
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", record["argv"][record["argv"].index("--comment") + 1]).group(1)
        found[rule] = " ".join(record["argv"])
    return found


def test_slurm_profile_submits_each_job_with_its_resources_and_runs_it(workdir, slurm_bin):
    target = "results/test/metrics/seed0/ufat/pretrain.json"
    result = snakemake(workdir, slurm_bin, target, "--configfile", "config/test.yaml",
                       "--workflow-profile", "workflow/profiles/slurm",
                       "--slurm-init-seconds-before-status-checks", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((workdir / target).read_text())["stage"] == "pretrain"   # the jobs ran, here
    sent = submissions(slurm_bin)
    assert set(sent) == {"demo_data", "synthesize", "cache", "pretrain_gsr", "evaluate"}
    for rule in ("pretrain_gsr", "evaluate"):   # one GPU each, on the GPU partition, with time and memory
        assert "--gpus=1" in sent[rule] and "-p gpu" in sent[rule] and "--mem 16000" in sent[rule], sent[rule]
    assert "-t 720" in sent["pretrain_gsr"] and "-t 60" in sent["evaluate"]
    for rule in ("demo_data", "synthesize", "cache"):   # CPU jobs: CPU partition, no GPU
        assert "--gpus" not in sent[rule] and "--gres" not in sent[rule] and "-p cpu" in sent[rule], sent[rule]
    assert "--mem 8000" in sent["synthesize"] and "-t 120" in sent["synthesize"]
    assert "--cpus-per-task=2" in sent["synthesize"]   # threads: 2
    steps = [json.loads(line) for line in (slurm_bin / "state" / "srun.jsonl").read_text().splitlines()]
    assert len(steps) == len(sent)   # each job ran its step through srun, inside its allocation
