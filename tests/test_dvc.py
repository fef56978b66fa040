"""DVC's view of the workflow: generated from the Snakemake DAG, in step with it, run, shared, and timed.

The fast tests read the workflow and the committed dvc.yaml files. The module-scoped `tracked` fixture
is a copy of the session's Snakemake run of the test profile (conftest's `pipeline_run`, a copy of the
repository), recorded with `dvc commit`; the tests on it check what DVC then says (`dvc repro` has nothing
to run, `dvc status` is clean, `dvc metrics show`, `dvc plots show`), push to and pull from a local-folder
remote, and check that Snakemake does not rerun what `dvc pull` / `dvc checkout` restored (and still reruns
what really changed). The last test has DVC itself run a stage of every `apl` command the stages call (with
all that follows from it) on the pulled copy; `dvc repro` then has nothing to run and `dvc status` is clean:
what `make dvc-test` checks after running the whole profile through DVC, serially.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from apl.dvcpipeline import dvc_yaml_path, generate, plotdata, profiles, timestamps
from conftest import ENV, ROOT, SNAKEMAKE, copy_repository, copy_run

TEST_YAML = "pipelines/test/dvc.yaml"
DVC = [sys.executable, "-m", "dvc"]


def run(command, cwd, check=True, env=None):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc_status(cwd) -> dict:
    out = run([*DVC, "status", "--json", TEST_YAML], cwd).stdout
    return json.loads(out[out.index("{"):])


# --- the generated files ------------------------------------------------------------------------------

def test_committed_dvc_files_match_the_workflow():
    problems = generate.check(ROOT)
    assert not problems, "run `make dvc-pipeline`:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def test_dag():
    return generate.read_dag(ROOT, profiles(ROOT)["test"])


@pytest.fixture(scope="module")
def test_stages():
    return yaml.safe_load((ROOT / TEST_YAML).read_text())


def test_every_job_is_one_stage_with_its_command_inputs_and_outputs(test_dag, test_stages):
    stages = test_stages["stages"]
    jobs = [job for job in test_dag["jobs"] if job["shell"]]
    assert len(stages) == len(jobs) > 50
    for job in jobs:
        stage = stages[generate.stage_name(job)]
        assert stage["wdir"] == "../.."
        *prepare, command = stage["cmd"]
        assert command == job["shell"].replace(test_dag["apl"], "apl")
        assert command.startswith("apl ") and sys.executable not in command
        made = prepare[0].split()[2:] if prepare else []
        for path in [o["path"] for o in job["output"]] + job["log"]:
            folder = os.path.dirname(path)   # made by `mkdir -p` of itself or of a folder inside it
            assert any(f == folder or f.startswith(folder + "/") for f in made), path
        assert stage.get("deps", []) == list(dict.fromkeys(job["input"]))
        outs = [o if isinstance(o, str) else next(iter(o)) for o in stage.get("outs", [])]
        assert sorted(outs + stage.get("metrics", [])) == sorted(o["path"] for o in job["output"])
        assert stage.get("metrics", []) == [o["path"] for o in job["output"] if o["name"] in ("metrics", "probe")]


def test_params_are_the_config_sections_each_rule_reads(test_stages):
    stages = test_stages["stages"]

    def params(name):
        return {file: keys for entry in stages[name].get("params", []) for file, keys in entry.items()}

    assert params("evaluate-0-ufat-gws_O3") == {"config/config.yaml": ["evaluation"], "config/test.yaml": ["evaluation"]}
    assert params("cache-synthetic") == {"config/config.yaml": ["image_size", "scale"],
                                         "config/test.yaml": ["image_size", "scale"]}
    assert "prior" in params("cache-train")["config/config.yaml"]
    assert {"seed", "models", "train"} <= set(params("train_gws-0-ufat-1")["config/config.yaml"])
    assert "evaluation" not in params("train_gws-0-ufat-1")["config/config.yaml"]
    assert params("figure7") == {} and params("plots_data") == {}
    for name, stage in stages.items():
        for file, keys in params(name).items():
            assert f"-c {file}" in stage["cmd"][-1], name          # only files the command reads
            present = yaml.safe_load((ROOT / file).read_text())
            assert keys and all(key in present for key in keys), (name, file)   # DVC needs every key in the file


def test_paper_profile_is_the_default_pipeline_and_tracks_the_raw_datasets():
    assert profiles(ROOT)["paper"] == ["config/config.yaml"]
    assert dvc_yaml_path("paper", ["config/config.yaml"]) == "dvc.yaml"
    paper = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert {"data/raw": {"persist": True}} in paper["download"]["outs"]
    assert all("config/demo.yaml" not in s["cmd"][-1] and "config/test.yaml" not in s["cmd"][-1] for s in paper.values())
    assert "wdir" not in paper["prepare"]
    assert any(name.startswith("train_gsr-0-ufat") for name in paper)   # rule, training seed, variant, round


def test_check_reports_a_workflow_change(tmp_path):
    """A rule whose command changes makes the committed files stale, and `check` says where."""
    work = copy_repository(tmp_path / "repo")
    rules = work / "workflow" / "rules" / "dvc.smk"
    text = rules.read_text()
    assert "--out {params.out}" in text
    rules.write_text(text.replace("--out {params.out}", "--out  {params.out}"))
    problems = generate.check(work)
    assert len(problems) == len(profiles(ROOT)) and all(": stale" in p for p in problems), problems
    assert "--out  results/" in problems[0]
    assert generate.write(work) and not generate.check(work)


# --- the plots' data ---------------------------------------------------------------------------------

def test_plot_tables(tmp_path):
    losses = tmp_path / "runs" / "ufat" / "gws_O1" / "losses.csv"
    losses.parent.mkdir(parents=True)
    losses.write_text("epoch,step,d,adv,g_total\n1,1,1.0,2.0,3.0\n1,2,3.0,,5.0\n2,1,0.5,1.0,1.5\n")
    assert plotdata.epoch_means(losses) == "epoch,d,adv,g_total\n1,2,2,4\n2,0.5,1,1.5\n"
    metrics = tmp_path / "metrics" / "ufat" / "gws_O1.json"
    metrics.parent.mkdir(parents=True)
    curve = {"threshold": [0, 0.5], "precision": [0.25, 0.75], "recall": [1, 0.5], "fmeasure": [0.3, 0.7]}
    metrics.write_text(json.dumps({"datasets": {"CUHK": {"pr_curve": curve}, "DUT": {"pr_curve": curve}}}))
    written = plotdata.export(tmp_path / "plots", [str(losses)], [str(metrics)])
    assert written == [(tmp_path / "plots/losses/ufat/gws_O1.csv").as_posix(),
                       (tmp_path / "plots/curves/CUHK/ufat-gws_O1.csv").as_posix(),
                       (tmp_path / "plots/curves/DUT/ufat-gws_O1.csv").as_posix()]
    assert Path(written[1]).read_text() == "threshold,precision,recall,fmeasure\n0,0.25,1,0.3\n0.5,0.75,0.5,0.7\n"
    metrics.write_text(json.dumps({"datasets": {"DP": {"psnr": 20.0}}}))
    with pytest.raises(ValueError, match="pr_curve"):
        plotdata.curve_table(metrics, "CUHK")


def test_plots_read_the_files_plots_data_writes(test_stages):
    written = {path for path in test_stages["stages"]["plots_data"]["outs"]}
    shown = {os.path.normpath(os.path.join("pipelines/test", path))
             for plot in test_stages["plots"] for spec in plot.values() for path in spec["y"]}
    assert shown == written
    ids = [name for plot in test_stages["plots"] for name in plot]
    assert {"precision_recall_CUHK", "fmeasure_DUT", "losses_ufat", "losses_single"} <= set(ids)


# --- timestamps, on a small DVC project ----------------------------------------------------------------

def test_timestamps_are_restored_only_where_dvc_lock_vouches(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    run(["git", "init", "-q"], work)
    run([*DVC, "init", "-q"], work)
    shutil.copy(ROOT / ".dvcignore", work / ".dvcignore")   # DVC ignores Snakemake's .snakemake_timestamp
    (work / "a.txt").write_text("a\n")
    (work / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "first": {"cmd": "cp a.txt b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
        "second": {"cmd": "mkdir -p d && cp b.txt d/c.txt", "deps": ["b.txt"], "outs": ["d"]},
        "third": {"cmd": "cp d/c.txt e.txt", "deps": ["d"], "metrics": ["e.txt"]}}}))
    run([*DVC, "repro", "-q"], work)
    assert timestamps.out_of_order(timestamps.stages("dvc.yaml", work)) == []
    now = time.time_ns()
    for age, name in enumerate(["a.txt", "b.txt", "d", "e.txt"]):   # checked out upstream last: newest first
        os.utime(work / name, ns=(now - age * 10**9,) * 2)
    (work / "d" / timestamps.SNAKEMAKE_TIMESTAMP).touch()   # Snakemake's marker wins over the folder's own time
    os.utime(work / "d" / timestamps.SNAKEMAKE_TIMESTAMP, ns=(now - 2 * 10**9,) * 2)
    assert timestamps.out_of_order(timestamps.stages("dvc.yaml", work)) == ["first", "second", "third"]

    result = timestamps.restore("dvc.yaml", work)
    assert result.restored == ["first", "second", "third"] and not result.changed
    assert timestamps.out_of_order(timestamps.stages("dvc.yaml", work)) == []
    assert timestamps.snakemake_time(work / "d") == timestamps.snakemake_time(work / "e.txt") >= now

    (work / "b.txt").write_text("changed by hand\n")   # a real change: its consumers stay older, to be rerun
    os.utime(work / "e.txt", ns=(now - 10**9,) * 2)
    result = timestamps.restore("dvc.yaml", work)
    assert set(result.changed) == {"first", "second"} and result.restored == ["third"]
    assert timestamps.out_of_order(timestamps.stages("dvc.yaml", work)) == ["second"]
    assert "differ from dvc.lock" in result.summary()


# --- the test profile: Snakemake run, DVC records, pushes, pulls ---------------------------------------------

@pytest.fixture(scope="module")
def tracked(pipeline_run, tmp_path_factory):
    """A repository copy where Snakemake ran the test profile (a copy of the session's run) and `dvc commit`
    recorded it."""
    work = copy_run(pipeline_run, tmp_path_factory.mktemp("dvc") / "work")
    run([*DVC, "commit", "--force", TEST_YAML], work)
    return work


def test_dvc_agrees_with_the_snakemake_run(tracked):
    assert dvc_status(tracked) == {}
    result = run([*DVC, "repro", TEST_YAML], tracked)      # same commands, inputs, outputs, params: nothing to run
    assert "Running stage" not in result.stdout and "up to date" in result.stdout


def test_metrics_show_reads_the_evaluation_jsons(tracked):
    shown = json.loads(run([*DVC, "metrics", "show", "--json", "-R", "results/test/metrics"], tracked).stdout)
    (workspace,) = shown.values()       # one revision: the workspace
    values = workspace["data"]
    detection = json.loads((tracked / "results/test/metrics/seed0/ufat/gws_O3.json").read_text())
    deblurring = json.loads((tracked / "results/test/metrics/seed0/ufat/gsr_O3.json").read_text())
    found = values["results/test/metrics/seed0/ufat/gws_O3.json"]["data"]["datasets"]
    assert found["CUHK"]["fmax"] == detection["datasets"]["CUHK"]["fmax"]
    assert values["results/test/metrics/seed0/ufat/gsr_O3.json"]["data"]["datasets"]["DP"]["psnr"] == \
        deblurring["datasets"]["DP"]["psnr"]


def test_plots_show_draws_figure7_and_the_losses(tracked):
    out = tracked / "results" / "dvc_plots"
    result = run([*DVC, "plots", "show", f"{TEST_YAML}::", "-o", str(out)], tracked)
    assert "failed" not in result.stdout + result.stderr
    page = (out / "index.html").read_text()
    assert "Precision-recall on CUHK (Figure 7)" in page and "Training, run ufat" in page


@pytest.fixture(scope="module")
def pulled(tracked, tmp_path_factory):
    """A clone of `tracked` that got its data with `dvc pull` from a local-folder remote."""
    remote = tmp_path_factory.mktemp("remote")
    run([*DVC, "remote", "add", "--default", "shared", str(remote)], tracked)
    run(["git", "add", "-A"], tracked)
    run(["git", "commit", "-qm", "pipeline run and remote"], tracked)
    run([*DVC, "push", TEST_YAML], tracked)
    assert any(p.is_file() for p in remote.rglob("*"))
    clone = tmp_path_factory.mktemp("clone") / "clone"
    run(["git", "clone", "-q", str(tracked), str(clone)], tmp_path_factory.getbasetemp())
    assert not (clone / "results").exists()
    run([*DVC, "pull", TEST_YAML], clone)
    return clone


def digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_pull_restores_the_same_files(tracked, pulled):
    for name in ("data/test/cache/train.npz", "results/test/runs/seed0/ufat/gsr_O3/weights.pt",
                 "results/test/metrics/seed0/ufat/gws_O1.json", "results/test/tables/table1.csv",
                 "results/test/plots/curves/DUT/ufat-gws_O3.csv"):
        assert digest(pulled / name) == digest(tracked / name), name
    assert dvc_status(pulled) == {}


def _checkout_order_upstream_newest(work: Path):
    """The worst order a checkout can leave: every stage's outputs newer than those of the stages after it."""
    stages = timestamps.stages(TEST_YAML, work)
    now = time.time_ns()
    for age, stage in enumerate(stages.values()):        # dvc.yaml lists stages in DAG order
        for path in stage.outs:
            os.utime(path, ns=(now - age * 10**8,) * 2)


def test_snakemake_does_not_rerun_what_dvc_pull_restored(pulled):
    _checkout_order_upstream_newest(pulled)
    unguarded = run([*SNAKEMAKE, "-n", "--configfile", "config/test.yaml"], pulled,
                    env={**ENV, timestamps.ENV: "0"})
    assert "Nothing to be done" not in unguarded.stdout + unguarded.stderr   # what the times alone would do
    result = run([*SNAKEMAKE, "-n", "--configfile", "config/test.yaml"], pulled)
    text = result.stdout + result.stderr
    assert "Nothing to be done" in text, text[-3000:]
    assert "match dvc.lock one common time" in text
    assert dvc_status(pulled) == {}                          # times only: DVC sees the same files


def test_real_changes_still_rerun_and_dvc_checkout_restores(pulled):
    cache = pulled / "data/test/cache/fullclear.npz"
    with open(cache, "ab") as handle:
        handle.write(b"changed")
    text = "".join(run([*SNAKEMAKE, "-n", "--configfile", "config/test.yaml"], pulled).stdout)
    assert "Nothing to be done" not in text and "train_gws" in text
    changed = dvc_status(pulled)                             # DVC sees the change too, where it is read
    assert f"{TEST_YAML}:cache-fullclear" in changed and f"{TEST_YAML}:train_gws-0-ufat-1" in changed, changed
    run([*DVC, "checkout", "--force", TEST_YAML], pulled)
    result = run([*SNAKEMAKE, "-n", "--configfile", "config/test.yaml"], pulled)
    assert "Nothing to be done" in result.stdout + result.stderr
    assert dvc_status(pulled) == {}


def downstream(stages: dict, name: str) -> set[str]:
    """A stage and every stage that reads, directly or not, one of its outputs (dvc.yaml paths, one wdir)."""
    def outs(spec):
        return [o if isinstance(o, str) else next(iter(o)) for key in ("outs", "metrics", "plots") for o in spec.get(key, [])]

    def reads(reader, made):
        return any(dep == out or dep.startswith(out + "/") for dep in stages[reader].get("deps", []) for out in outs(stages[made]))

    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += [other for other in stages if reads(other, current)]
    return found


# Seeded: run again, these stages write the same bytes, so nothing after them changes. Every other stage's
# outputs differ from run to run (a checkpoint or results file records its run's seconds).
SAME_BYTES = ("apl demo-data", "apl synthesize", "apl cache")


def test_dvc_runs_every_command_of_the_pipeline(pulled, test_stages):
    """DVC itself runs a stage of every `apl` command the stages call, and every stage after it; then `dvc repro`
    has nothing left to run, `dvc status` is clean and Snakemake has nothing to do. (The six training rules all
    run `apl train`: one of them stands for the others, whose commands and files test_every_job_is_one_stage
    checks against Snakemake's jobs, which the session's run ran.)"""
    stages = test_stages["stages"]
    by_command = {}
    for name, stage in stages.items():                       # dvc.yaml order: the DAG's
        by_command.setdefault(" ".join(stage["cmd"][-1].split()[:2]), []).append(name)
    forced = set()
    for command, names in sorted(by_command.items(), key=lambda item: -min(len(downstream(stages, n)) for n in item[1])):
        if command in SAME_BYTES:
            forced.add(names[0])
        elif not forced & set(names):                         # not run yet: its cheapest stage and what follows
            forced |= min((downstream(stages, n) for n in names), key=len)
    targets = [name for name in stages if name in forced]
    assert len(targets) < len(stages) / 3

    result = run([*DVC, "repro", "--force", "--single-item", *(f"{TEST_YAML}:{name}" for name in targets)], pulled)
    for name in targets:
        assert f"Running stage '{TEST_YAML}:{name}'" in result.stdout, name
    for command in by_command:
        assert f"> {command} " in result.stdout, command
    result = run([*DVC, "repro", TEST_YAML], pulled)         # what `make dvc-test` checks after a full `dvc repro`
    assert "Running stage" not in result.stdout and "up to date" in result.stdout, result.stdout[-3000:]
    assert dvc_status(pulled) == {}
    result = run([*SNAKEMAKE, "-n", "--configfile", "config/test.yaml"], pulled)
    assert "Nothing to be done" in result.stdout + result.stderr
