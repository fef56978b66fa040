"""results/<profile>/REPORT.md: the page a user reads first (tables, figures, deviations, provenance)."""
from __future__ import annotations

import platform
from importlib import resources
from pathlib import Path

import yaml

from apl.data.layout import HELDOUT_SET, VALIDATION_SET
from apl.data.release_files import RELEASE_RUN, RELEASE_STAGES, WEIGHTS_ABSENT, release_instructions
from apl.io import read_json, write_text
from apl.report import provenance
from apl.report.figures import D_AT_CHANCE
from apl.report.tables import (ABSENT_STATUS, RELEASE_ROW, SET_OF_DATASET, absent_datasets, seed_summary,
                               validation_markdown)

# Figures REPORT.md shows: file stem in figures/ -> (heading, what it shows, the rule that makes it).
FIGURES = {
    "figure7": ("Figure 7: PR and F-measure curves",
                "Precision-recall curves and F-measure curves on CUHK and DUT for every detection method this run "
                "evaluated, in the paper's layout: (a) PR on CUHK, (b) F-measure on CUHK, (c) PR on DUT, "
                "(d) F-measure on DUT (authors' protocol: precision and recall averaged over images at thresholds "
                "1.00, 0.95, ..., 0 of each map divided by its maximum).", "figure7"),
    "figure6": ("Figure 6: defocus detection maps",
                "A fixed set of test images (spread evenly over each test set's sorted names): input, the blur "
                "prior B(I), the classic detectors, Single G_ws, our G_ws after O3, the authors' released model "
                "(where its weights were placed) and the ground truth (white = in focus).", "figure6"),
    "figure9": ("Figure 9: defocus deblurring",
                "A fixed set of DP test images: defocused input, Single G_sr, our G_sr after O3 (the composite "
                "R (1 - M) + I M), the authors' released model (its own output rule; where its weights were placed) "
                "and the sharp target; each output is annotated with its PSNR / SSIM.", "figure9"),
    "training_curves": ("Training curves",
                        "Losses of every phase of the schedule (pretraining, G_ws O1 ... G_sr O3) and of the "
                        "single-task baselines: thin lines every step, thick lines epoch means; panel (b) also shows "
                        "D's balanced accuracy on its training batches (dotted, right axis; 0.5: a coin toss).",
                        "training_curves"),
}


def deviations() -> str:
    return resources.files("apl.report").joinpath("DEVIATIONS.md").read_text()


def _require(path: Path, rule: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"results file missing: {path}; the rule `{rule}` makes it")
    return path


def _training_rows(results: Path) -> list[str]:
    """One line per trained stage with an evaluated weights file: epochs, device, seconds of the last run."""
    from apl.train import checkpoint
    rows = ["| run | stage | epochs x steps | device | seconds (run that finished it) |", "|---|---|---|---|---|"]
    for path in sorted((results / "metrics").rglob("*.json")):
        weights = read_json(path).get("weights")
        if not weights or not Path(weights).exists():
            continue
        meta = checkpoint.load(weights)["meta"]
        if "release" in meta:   # the authors' released weights, imported: not trained here
            continue
        run = path.parent.relative_to(results / "metrics").as_posix()   # seed<N>/<run>
        rows.append(f"| {run} | {meta['stage']} | {meta['epochs']} x {meta['steps_per_epoch']} | "
                    f"{meta['device']} | {meta['seconds_this_run']} |")
    return rows


def _devices(results: Path) -> str:
    """The devices and machines the evaluated methods ran on, from the metrics files."""
    seen = {}
    for path in sorted((results / "metrics").rglob("*.json")):
        data = read_json(path)
        if data.get("absent"):   # not run (the release's weights absent)
            continue
        timing = data.get("timing", {})
        key = (timing.get("device", data.get("device", "?")), timing.get("machine", "machine not recorded"))
        seen.setdefault(key, 0)
        seen[key] += 1
    return "; ".join(f"{device} on {machine} ({count} results files)" for (device, machine), count in seen.items())


def _wall_times(results: Path) -> list[str]:
    """Seconds per apl command (summed over its steps), then every step in a collapsed block."""
    rows = provenance.stage_times(results / "logs")
    if not rows:
        return ["(no rule log with a finished step found)"]
    totals: dict[str, list[float]] = {}
    for row in rows:
        totals.setdefault(row["command"], []).append(row["seconds"])
    lines = ["| apl command (pipeline stage) | steps | seconds, total | seconds, longest step |", "|---|---|---|---|"]
    lines += [f"| {command} | {len(values)} | {sum(values):.1f} | {max(values):.1f} |"
              for command, values in sorted(totals.items(), key=lambda kv: -sum(kv[1]))]
    lines.append(f"| **all** | {len(rows)} | **{sum(row['seconds'] for row in rows):.1f}** | |")
    lines += ["", "<details><summary>Every step</summary>", "", "| step (rule log) | apl command | seconds |",
              "|---|---|---|"]
    lines += [f"| {row['log']} | {row['command']} | {row['seconds']:.1f} |" for row in rows]
    lines += ["", "</details>"]
    return lines


def _data_notes(config: dict) -> list[str]:
    """Absent test sets and the synthetic held-out check, said once near the top."""
    lines = []
    absent = sorted(absent_datasets(config))
    if absent:
        keys = ", ".join(f"`data.sets.{SET_OF_DATASET[name]}: none`" for name in absent)
        lines += [f"> **Data absent: {', '.join(absent)}** ({keys}). These test sets were not run: their table "
                  f"columns say \"{ABSENT_STATUS}\" and the figures leave them out.", ""]
    if config["data"]["heldout_fullclear"]:
        lines += [f"> **{HELDOUT_SET[1]}**: deblurring is also checked on {config['data']['heldout_fullclear']} "
                  "synthetic defocus pairs made from full-clear photographs held out of D's real set and of the "
                  "pretraining pairs (`data.heldout_fullclear`); their columns in Tables 2, 3 and 5 (with the share of "
                  "clipped output values) stand beside DP, never mixed with it, and Figure 9 shows some of them.", ""]
    if config["data"]["validation"]:
        lines += [f"> **{VALIDATION_SET[1]}**: scores on the validation split are under their own heading below "
                  "the tables, not in Table 1's test columns.", ""]
    return lines


def release_section(config: dict, results: Path) -> list[str]:
    """What the row "authors' released model" means, and whether this run has it."""
    lines = ["### The authors' released model (their weights, our evaluation)", "",
             f"The row \"{RELEASE_ROW}\" of Tables 1, 2, 4 and 5 (and a curve of Figure 7, a column of Figures 6 "
             "and 9) runs the checkpoints the authors published with their code (github.com/wdzhao123/APL: "
             "`DBD.pth`, `deblur.pth`), imported with `apl import-release` and scored with this run's protocol on "
             "this run's test images. Those weights were trained by the authors on their data at 160x160 (1204 "
             "training images, 500 full-clear images) and run here at 160x160, as the release does, with the "
             "release's own output rule. So the row shows how far this run's training is from theirs under one "
             "evaluation; it is not the paper's numbers, which stay in the paper column.", ""]
    absent = []
    for stage in RELEASE_STAGES:
        path = results / "metrics" / RELEASE_RUN / f"{stage}.json"
        if path.exists() and read_json(path).get("absent"):
            absent += read_json(path).get("missing", [])
    if absent:
        lines += [f"> **{WEIGHTS_ABSENT}**: {', '.join(f'`{p}`' for p in dict.fromkeys(absent))} not found, so the "
                  f"row says \"{WEIGHTS_ABSENT}\" where it needs them (config keys `release.dbd`, `release.deblur`).",
                  "", "```text", release_instructions(config, indent=""), "```", ""]
    return lines



def _mean_std(values: list[float], digits: int = 3, signed: bool = False, kind: str = "f") -> str:
    """mean ± std over the seeds (tables.seed_summary) of the values that are numbers; kind "e" for sizes
    spanning decades."""
    values = [v for v in values if v == v]   # not nan
    if not values:
        return "-"
    mean, std = seed_summary(values)
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}{kind}}" + ("" if std != std else f" ± {std:.{digits}{kind}}")


def probe_section(results: Path, run: str) -> list[str]:
    """REPORT.md's "Does D teach the true map?": every adversarial stage's probe (apl/probe.py), mean ± std over
    the seeds, and a warning for each phase whose D ends at chance."""
    from apl.train.schedule import PHASES
    found = {stage: sorted(results.glob(f"probe/seed*/{run}/{stage}.json")) for stage in PHASES}
    if not any(found.values()):
        return []
    _require(results / "figures" / "probe.png", "probe_figure")
    lines = ["## Does D teach the true map?", "",
             "APL's claim is that D's verdict on G_sr's composite C(M) = R (1 - M) + I M pushes G_ws toward the true "
             "map. `apl probe` (apl/probe.py) measures it on each adversarial stage's frozen G_ws, G_sr and D, on "
             "crops of photographs with masks that are never test images: D's balanced accuracy on held-out "
             "full-clear crops against composites made with G_ws's map (0.5: a coin toss); the share of crops where "
             "the GT mask gives a lower generator loss -log sigmoid(D(C(M))) than all-defocused (M = 0) and than "
             "B(I); the cosine of minus the adversarial term's gradient on the map (at M = G_ws(I)) with GT - M "
             "(above 0: a step on it moves the map toward the truth) and its size against the weighted prior "
             "term's; how much G_sr changes defocused and in-focus pixels (8-bit levels; the composite depends on "
             "the map only where R differs from I); the share of crops where D prefers the composite with the GT "
             "mask to the untouched input. The last two columns put a fixed unsharp mask in G_sr's place, which "
             "separates \"the mechanism holds\" from \"this G_sr is strong enough\". Files: "
             "`probe/seed<N>/<run>/<stage>.json`." + (" Mean ± std over the seeds." if any(
                 len(v) > 1 for v in found.values()) else ""), "",
             "| stage | seeds | D accuracy | GT beats M = 0 / B(I) | adversarial cosine (share > 0) | gradient ratio "
             "adversarial / prior | G_sr change, defocused / in focus | D prefers deblurred | unsharp mask: cosine, "
             "GT beats M = 0 |",
             "|---|---|---|---|---|---|---|---|---|"]
    warnings = []
    for stage, files in found.items():
        if not files:
            continue
        probes = [read_json(path) for path in files]
        t = [p["trained_gsr"] for p in probes]
        r = [p["reference_gsr"] for p in probes]
        accuracy = [x["d"]["accuracy"] for x in t]
        mean_accuracy = seed_summary(accuracy)[0]
        lines.append(
            f"| {stage} | {len(probes)} | {_mean_std(accuracy, 2)} "
            f"| {_mean_std([x['gt_beats']['zeros'] for x in t], 2)} / {_mean_std([x['gt_beats']['prior'] for x in t], 2)} "
            f"| {_mean_std([x['gradient']['cosine_adversarial']['mean'] for x in t], 4, True)} "
            f"({_mean_std([x['gradient']['cosine_adversarial']['share_positive'] for x in t], 2)}) "
            f"| {_mean_std([x['gradient']['ratio'] for x in t], 1, kind='e')} "
            f"| {_mean_std([x['restoration_levels']['defocused'] for x in t], 1)} / "
            f"{_mean_std([x['restoration_levels']['in_focus'] for x in t], 1)} "
            f"| {_mean_std([x['deblurred_vs_input']['share_preferred'] for x in t], 2)} "
            f"| {_mean_std([x['gradient']['cosine_adversarial']['mean'] for x in r], 4, True)}, "
            f"{_mean_std([x['gt_beats']['zeros'] for x in r], 2)} |")
        if mean_accuracy < D_AT_CHANCE:
            warnings.append(f"{stage} ({mean_accuracy:.2f})")
    lines += ["", f"![Does D teach the true map?](figures/probe.png)", "",
              "PNG: [figures/probe.png](figures/probe.png), PDF: [figures/probe.pdf](figures/probe.pdf): per phase, "
              "(a) D's accuracy, (b) the adversarial cosine with this G_sr and with the unsharp mask, (c) the gradient "
              "ratio, (d) the share of crops where the GT mask beats M = 0 and B(I).", ""]
    if warnings:
        lines += [f"> **Warning: D ends these phases at chance** (balanced accuracy below {D_AT_CHANCE}): "
                  f"{', '.join(warnings)}. Those phases carry no adversarial signal: G_ws phases train on the prior "
                  "alone and G_sr phases move by noise.", ""]
    return lines


def write_report(config: dict, config_files: list, results: str | Path, out: str | Path) -> Path:
    """Write REPORT.md from the tables and figures in `results` (each missing one is an error naming its rule)."""
    results, out = Path(results), Path(out)
    tables = [_require(results / "tables" / f"table{n}.md", "tables").read_text() for n in range(1, 6)]
    for stem, (_, _, rule) in FIGURES.items():
        _require(results / "figures" / f"{stem}.png", rule)
    demo = config["data"]["source"] == "demo"
    lines = [f"# APL reproduction report: profile `{config['profile']}`", "",
             "Reproduction of Zhao et al., *United Defocus Blur Detection and Deblurring via Adversarial Promoting "
             "Learning* (ECCV 2022). Every reproduced number below was read from a results file of this run; "
             "each cell shows the paper's value, ours and the difference.", "",
             f"Data source: `{config['data']['source']}`; working resolution {config['image_size']}x"
             f"{config['image_size']}; evaluation size {config['evaluation']['size']}x{config['evaluation']['size']}; "
             f"G_sr variant of the main model: `{config['train']['variant']}`.", ""]
    if demo:
        lines += ["> **Demo data.** These numbers come from small networks trained for minutes on synthetic "
                  "defocus images made from scikit-image photographs: they show that the pipeline runs end to end, "
                  "not the paper's accuracy, and they are not comparable with the paper's columns.", ""]
    lines += _data_notes(config)
    flags = " ".join(f"--configfile {p}" for p in config_files[1:])
    lines += [f"The same tables and figures with captions, as one HTML page: `snakemake {flags} --report report.html`"
              .replace("  ", " "), ""]
    validation = validation_markdown(config, results / "metrics")
    lines += ["Contents: [Tables](#tables) | "
              + ("[Validation split](#validation-split-not-a-test-set) | " if validation else "")
              + ("[Does D teach the true map?](#does-d-teach-the-true-map) | "
                 if list(results.glob("probe/seed*/*/*.json")) else "")
              + "[Figures](#figures) | [Deviations](#deviations-from-the-paper-and-"
              "choices-where-it-is-silent) | [Provenance](#provenance)", "", "## Tables", "",
              "Files: `tables/table{1..5}.csv` (one line per cell: dataset, metric, protocol, paper, reproduced, "
              "difference, status, results file), `.md` and `.tex` (booktabs).", ""]
    for text in tables:
        lines += [text, ""]
    lines += ["### What did the authors' release supervise G_ws with?", "",
              "The paper trains G_ws on a blur prior B(I) (Eq. 7), without masks. The authors' released training reads "
              "G_ws's pixel target from `train_data/1204gt`; in their packed archive that folder appears to hold the "
              "ground-truth masks of the 1204 training images (public code using the same archive trains segmentation "
              "on it). If so, the released model is supervised by detection ground truth, and the paper's Table 1 may "
              "measure that rather than weak supervision. Table 1's row \"Single G_ws on GT masks (release's 1204gt; "
              "ours)\" trains the same network on the training masks (`single_gws_masks`; `train.gws_target: masks` "
              "does so for every G_ws stage): its gap to \"Single G_ws\" is what mask supervision adds at this "
              "run's scale. Where the prepared training set has no masks the row says so.", ""]
    lines += release_section(config, results)
    if validation:
        lines += ["## Validation split (not a test set)", "",
                  f"{config['data']['validation']} of CUHK's training images, held out of training with their masks "
                  f"(`data.validation`, chosen by seed {config['seed']}; names in `datasets/lists/val.csv`): every "
                  "choice of this run is made on these scores, never on the test columns of Tables 1 and 4. "
                  "Same protocol as Table 1.", "", validation, ""]
    lines += probe_section(results, config["train"]["variant"])
    lines += ["## Figures", ""]
    for stem, (heading, text, _) in FIGURES.items():
        lines += [f"### {heading}", "", text, "", f"![{heading}](figures/{stem}.png)", "",
                  f"PNG: [figures/{stem}.png](figures/{stem}.png), PDF: [figures/{stem}.pdf](figures/{stem}.pdf)", ""]
    lines += [deviations(), "", "## Provenance", "",
              f"- config files (merged in this order): {', '.join(f'`{p}`' for p in config_files)}",
              f"- git commit: {provenance.git_commit()}",
              f"- python {platform.python_version()} on {platform.platform()}",
              f"- machine writing this report: {provenance.machine()}",
              f"- devices of the evaluated results: {_devices(results) or 'none'}",
              "- packages: " + ", ".join(f"{name} {version}" for name, version in provenance.versions().items()),
              "", "### Wall time per step", "",
              "Read from each rule's log (`logs/`), where the `apl` command notes its time when it succeeds (the "
              "whole process: start-up, data loading, work); a step resumed after an interruption shows the time "
              "of the run that finished it. Steps run in parallel when Snakemake has several cores.", ""]
    lines += _wall_times(results)
    lines += ["", "### Trained stages", ""]
    lines += _training_rows(results)
    lines += ["", "<details><summary>Merged configuration</summary>", "", "```yaml",
              yaml.safe_dump(config, sort_keys=False).rstrip(), "```", "", "</details>"]
    write_text(out, "\n".join(lines) + "\n")
    return out
