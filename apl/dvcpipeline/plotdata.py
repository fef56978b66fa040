"""The files behind DVC's plots, written by `apl plots-data` (rule plots_data, workflow/rules/dvc.smk).

DVC plots read flat tables, one row per point. The evaluation JSONs hold each PR / F-measure curve as
columns nested under datasets.<set>.pr_curve, and a training stage's losses.csv holds one row per step
(about 120,000 in the paper profile, too many to draw). So, under <results>/plots/:

    curves/<set>/<run>-<stage>.csv      threshold, precision, recall, fmeasure   (one per detection JSON and set)
    losses/<run>/<stage>.csv            epoch, then the mean of every loss column over the epoch

`outputs()` names these files from the inputs; Snakemake's rule and `export()` both call it, so the
rule's outputs and what the command writes cannot drift apart. `definitions()` is the plots section
of dvc.yaml (Figure 7's curves per test set, the total generator loss of every stage per run).
"""
from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from apl.data.layout import DETECTION_SETS
from apl.io import write_text
from apl.train import schedule

BASELINES = "baselines"       # metrics/baselines/<method>.json; every other metrics folder is a training run,
RELEASE = "release"           # except the authors' released model's (metrics/release/), left out of the plots:
                              # its results may say "not run: weights absent", and a plot's files are fixed outputs

CURVE_COLUMNS = ("threshold", "precision", "recall", "fmeasure")
LOSS_PLOTTED = "g_total"      # the total generator loss: the one column every training stage writes
NOT_LOSSES = ("epoch", "step")


def detection_sets(absent: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The detection test sets' names, less the folder keys in `absent` (layout.absent_sets of the profile)."""
    return [name for key, name in DETECTION_SETS.items() if key not in absent]


def _sets_in(metrics: str | Path) -> list[str]:
    """The detection test sets an evaluation JSON holds (a profile's absent sets are not evaluated)."""
    held = json.loads(Path(metrics).read_text()).get("datasets", {})
    return [name for name in detection_sets() if name in held]


def curve_file(out: str | Path, metrics: str | Path, dataset: str) -> str:
    """<out>/curves/<set>/<run>-<stage>.csv for <results>/metrics/<run>/<stage>.json."""
    metrics = Path(metrics)
    return (Path(out) / "curves" / dataset / f"{metrics.parent.name}-{metrics.stem}.csv").as_posix()


def losses_file(out: str | Path, losses: str | Path) -> str:
    """<out>/losses/<run>/<stage>.csv for <results>/runs/<run>/<stage>/losses.csv."""
    losses = Path(losses)
    return (Path(out) / "losses" / losses.parent.parent.name / f"{losses.parent.name}.csv").as_posix()


def sources(metrics: list[str], metrics_dir: str, losses_file: Callable[[str, str], str],
            run_order: list[str]) -> tuple[list[str], list[str]]:
    """(the losses.csv of every training job, the detection metrics JSONs) behind the pipeline's metrics.

    Training jobs are the evaluated stages and, recursively, the stages their weights start from
    (schedule.previous_run); `losses_file(run, stage)` is the workflow's path of a stage's losses.
    """
    from apl.baselines import METHODS

    prefix = metrics_dir.rstrip("/") + "/"
    paths = {(Path(path).parent.name, Path(path).stem): path
             for path in dict.fromkeys(str(m) for m in metrics)
             if str(path).startswith(prefix) and Path(path).parent.name != RELEASE}
    named = list(paths)
    trained = set()
    todo = [(group, name) for group, name in named if group != BASELINES]
    while todo:
        run, stage = todo.pop()
        if (run, stage) not in trained:
            trained.add((run, stage))
            previous = schedule.previous_run(stage, run)
            if previous:
                todo.append(previous)
    runs = list(dict.fromkeys([*run_order, *sorted(run for run, _ in trained)]))
    stages = list(schedule.STAGES)
    ordered = sorted(trained, key=lambda rs: (runs.index(rs[0]), stages.index(rs[1])))

    def detection(group: str, name: str) -> bool:
        if group == BASELINES:
            return METHODS[name][0] == "detection"
        return schedule.get(name).task == "detection"

    curves = [paths[group, name] for group, name in named if detection(group, name)]
    return [losses_file(run, stage) for run, stage in ordered], curves


def plots_root(plot_file: str | Path) -> str:
    """The plots folder a file of outputs() lies in (two levels up: curves/<set>/, losses/<run>/)."""
    return Path(plot_file).parents[2].as_posix()


def outputs(out: str | Path, losses: list[str], metrics: list[str], absent=()) -> dict[str, list[str]]:
    """{input file: the plot files made from it}, in input order; `absent`: the profile's absent set keys."""
    made: dict[str, list[str]] = OrderedDict()
    for path in losses:
        made[str(path)] = [losses_file(out, path)]
    for path in metrics:
        made[str(path)] = [curve_file(out, path, dataset) for dataset in detection_sets(absent)]
    every = [file for files in made.values() for file in files]
    if len(every) != len(set(every)):
        raise ValueError("two inputs would give the same plot file; run and stage names must be unique")
    return made


def epoch_means(losses: str | Path) -> str:
    """losses.csv (one row per step) -> CSV text with one row per epoch: the mean of every loss column."""
    with open(losses, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c not in NOT_LOSSES]
        if "epoch" not in (reader.fieldnames or []):
            raise ValueError(f"{losses}: no epoch column")
        sums: dict[int, dict[str, float]] = OrderedDict()
        counts: dict[int, dict[str, int]] = {}
        for row in reader:
            epoch = int(row["epoch"])
            total = sums.setdefault(epoch, {c: 0.0 for c in columns})
            count = counts.setdefault(epoch, {c: 0 for c in columns})
            for column in columns:
                if row.get(column) not in (None, ""):
                    total[column] += float(row[column])
                    count[column] += 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *columns])
    for epoch, total in sums.items():
        writer.writerow([epoch, *(_number(total[c] / counts[epoch][c]) if counts[epoch][c] else "" for c in columns)])
    return buffer.getvalue()


def curve_table(metrics: str | Path, dataset: str) -> str:
    """One detection set's PR / F-measure curve of an evaluation JSON -> CSV text, one row per threshold."""
    data = json.loads(Path(metrics).read_text())
    try:
        curve = data["datasets"][dataset]["pr_curve"]
    except KeyError:
        raise ValueError(f"{metrics}: no datasets.{dataset}.pr_curve (is it a detection stage's metrics?)") from None
    lengths = {len(curve[column]) for column in CURVE_COLUMNS}
    if len(lengths) != 1:
        raise ValueError(f"{metrics}: the columns of datasets.{dataset}.pr_curve differ in length")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for row in zip(*(curve[column] for column in CURVE_COLUMNS)):
        writer.writerow([_number(value) for value in row])
    return buffer.getvalue()


def export(out: str | Path, losses: list[str], metrics: list[str]) -> list[str]:
    """Write every plot file named by outputs(); returns their paths."""
    made = OrderedDict()
    for path in losses:
        made[str(path)] = [losses_file(out, path)]
    for path in metrics:
        made[str(path)] = [curve_file(out, path, dataset) for dataset in _sets_in(path)]
    written = []
    for path in losses:
        target = made[str(path)][0]
        write_text(target, epoch_means(path))
        written.append(target)
    for path in metrics:
        for dataset, target in zip(_sets_in(path), made[str(path)]):
            write_text(target, curve_table(path, dataset))
            written.append(target)
    return written


def definitions(out: str | Path, losses: list[str], metrics: list[str], absent=()) -> list[dict]:
    """dvc.yaml's top-level plots (paths relative to the repository root)."""
    plots = []
    for dataset in detection_sets(absent):
        files = [curve_file(out, path, dataset) for path in metrics]
        plots.append({f"precision_recall_{dataset}": {
            "title": f"Precision-recall on {dataset} (Figure 7)", "template": "simple",
            "x": "recall", "y": {file: "precision" for file in files}}})
        plots.append({f"fmeasure_{dataset}": {
            "title": f"F-measure over thresholds on {dataset} (Figure 7)", "template": "simple",
            "x": "threshold", "y": {file: "fmeasure" for file in files}}})
    runs: dict[str, list[str]] = OrderedDict()
    for path in losses:
        runs.setdefault(Path(path).parent.parent.name, []).append(losses_file(out, path))
    for run, files in runs.items():
        plots.append({f"losses_{run}": {
            "title": f"Training, run {run}: mean total generator loss ({LOSS_PLOTTED}) per epoch, every stage",
            "template": "simple", "x": "epoch", "y": {file: LOSS_PLOTTED for file in files}}})
    return plots


def _number(value) -> str:
    return f"{float(value):.6g}"
