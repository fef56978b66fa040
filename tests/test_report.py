"""Tables 1-5, the figures and REPORT.md, built from a results folder this test makes.

The metrics files are written by the project's own evaluation code (apl.evaluate) on the test profile's
demo images: the classic baselines for real, and stand-in "stages" (simple maps and blurs whose scores
differ from stage to stage) where the pipeline would evaluate trained networks.
"""
import json
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from apl.cli import main
from conftest import TEST_PROFILE
from apl.data.release_files import RELEASE_RUN, WEIGHTS_ABSENT, absent_result
from apl.evaluate import evaluate_baseline, score_deblurring_method, score_detection_method
from apl.io import write_json
from apl.report import figures, provenance, report, tables
from apl.train import schedule
from apl.train.loop import write_losses

def stand_in_detector(seed: int):
    """A focus map that is a noisy version of the image's local contrast; the noise differs per stage."""
    def detect(image):
        gray = image.mean(axis=2) / 255.0
        contrast = ndimage.uniform_filter(np.abs(ndimage.laplace(gray)), 5)
        noise = np.random.default_rng(seed).random(gray.shape)
        weight = 0.15 * seed
        return np.clip((1 - weight) * contrast / (contrast.max() + 1e-9) + weight * noise, 0, 1).astype(np.float32)
    return detect


def stand_in_deblurrer(sigma: float):
    return lambda image: np.clip(ndimage.gaussian_filter(image.astype(float), (sigma, sigma, 0)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def made(tmp_path_factory, test_config):
    """datasets/ (demo data of the test profile) and results/ with every metrics file the tables need."""
    from apl.data.demo import build_demo
    root = tmp_path_factory.mktemp("report")
    datasets = root / "datasets"
    build_demo(test_config, datasets)
    results = root / "results"
    metrics = results / "metrics"
    size = test_config["evaluation"]["size"]
    for index, path in enumerate(tables.required_metrics(test_config)):
        run, stage = path.parent.name, path.stem
        maps = results / "maps" / path.parent / stage
        if run == RELEASE_RUN:   # the authors' checkpoints are not placed: what evaluate_release then writes
            write_json(metrics / path, absent_result(stage, ["data/raw/release/DBD.pth"]))
            continue
        if run == "baselines":
            result = evaluate_baseline(test_config, stage, datasets, maps)
        elif schedule.get(stage).task == "detection":
            result = score_detection_method(stand_in_detector(index % 6), datasets, maps, size)
            result.update(stage=stage, variant=run, weights="", device="cpu", image_size=test_config["image_size"],
                          scale=test_config["scale"])
        else:
            result = score_deblurring_method(stand_in_deblurrer(0.3 * (index % 5)), datasets, maps, size)
            result.update(stage=stage, variant=run, weights="", device="cpu", image_size=test_config["image_size"],
                          scale=test_config["scale"])
        write_json(metrics / path, result)
    for stage in schedule.ALTERNATION:
        losses = results / "runs" / "ufat" / stage
        columns = {"pretrain": ("pixel",), "gws": ("d", "adv", "prior"), "gsr": ("d", "adv")}["pretrain" if stage == "pretrain" else stage[:3]]
        rows = [{"epoch": 1 + step // 5, "step": 1 + step % 5, **{c: 1.0 / (1 + step) + len(c) for c in columns}}
                for step in range(15)]
        write_losses(losses / "losses.csv", rows)
    (results / "logs" / "ufat").mkdir(parents=True)
    (results / "logs" / "ufat" / "gws_O1.log").write_text("progress\rtrained\nINFO apl: train finished in 12.5 s\n")
    (results / "logs" / "tables.log").write_text("INFO apl: tables finished in 0.4 s\n")
    return {"datasets": datasets, "results": results, "metrics": metrics}


@pytest.fixture(scope="module")
def long(made, test_config):
    return tables.build_long(test_config, made["metrics"])


def _json_value(path, metric, dataset):
    data = json.loads(Path(path).read_text())
    if metric == "seconds":
        return data["seconds_per_image"]
    return data["datasets"][dataset][tables.METRIC_KEYS[metric]]


# ------------------------------------------------------------------------------------------------- tables
def test_every_reproduced_cell_is_the_number_its_results_file_holds(made, test_config, tmp_path):
    written = tables.write_tables(test_config, made["metrics"], tmp_path)
    assert sorted(p.name for p in written) == sorted(f"table{n}.{e}" for n in range(1, 6) for e in ("csv", "md", "tex"))
    long = pd.concat(pd.read_csv(tmp_path / f"table{n}.csv") for n in range(1, 6))
    reproduced = long[long["status"] == "reproduced"]
    assert not reproduced.empty
    for _, cell in reproduced.iterrows():
        value = _json_value(cell["results_file"], cell["metric"], "DP" if cell["dataset"] == "-" else cell["dataset"])
        assert cell["reproduced"] == pytest.approx(value)
        assert cell["difference"] == pytest.approx(value - cell["paper"], nan_ok=True)
        assert cell["protocol"]   # every cell names its protocol
    # the paper's values ship with the package and stand beside ours
    paper = tables.paper_values()
    svd = long[(long["row"] == "SVD") & (long["metric"] == "Fmax") & (long["dataset"] == "CUHK")].iloc[0]
    assert svd["paper"] == paper[(paper["row"] == "SVD") & (paper["metric"] == "Fmax")
                                 & (paper["dataset"] == "CUHK")]["value"].iloc[0] == 0.764


def test_table4_runs_svd_and_hifst_and_reports_the_others(long):
    table4 = long[long["table"] == 4]
    status = table4.groupby("row")["status"].first().to_dict()
    assert {row for row, s in status.items() if s == "reproduced"} == {"SVD", "HiFST", "Ours", "LBP (Yi & Eramian)"}
    assert {row for row, s in status.items() if s == "reported"} == {"KSFV", "SS", "DBDF", "SGNet"}
    assert table4[table4["status"] == "reported"]["reproduced"].isna().all()
    assert set(table4[table4["row"] == "SVD"]["results_file"].map(lambda p: Path(p).name)) == {"svd.json"}
    seconds = table4[(table4["metric"] == "seconds") & (table4["status"] == "reproduced")]
    assert len(seconds) == 4 and (seconds["reproduced"] > 0).all()
    table5 = long[long["table"] == 5]
    assert set(table5[table5["status"] == "reproduced"]["row"]) == {"Ours", "Defocused input"}
    assert set(table5[table5["status"] == "reported"]["row"]) == {"EBDB", "DMENet", "DPDNet", "IFANet", "KPAC"}


def test_markdown_and_latex_show_paper_ours_difference_and_the_timing_setup(made, test_config, tmp_path):
    tables.write_tables(test_config, made["metrics"], tmp_path)
    markdown = (tmp_path / "table4.md").read_text()
    assert "Table 4." in markdown
    assert re.search(r"\| KSFV +\| reported \(paper only, not run here\) +\| 0\.420 \(paper\)", markdown)
    assert re.search(r"\| SVD +\| reproduced \(our implementation\) +\| 0\.764 / \d\.\d{3} \([+-]\d\.\d{3}\)", markdown)
    from apl.data.demo import demo_shape
    height, width = demo_shape(test_config)
    counts = test_config["data"]["demo"]["counts"]
    assert f"{counts['cuhk'] + counts['dut']} x {width}x{height}" in markdown       # input size of the timing
    assert f"whole test image at a longer side of {test_config['scale']['longer_side']} px" in markdown
    assert provenance.machine() in markdown and "longer side at most 320 px" in markdown
    assert "CUHK and DUT" in markdown and "beta^2 = 0.3" in markdown            # dataset and protocol named
    assert "DP (DPDD)" in (tmp_path / "table5.md").read_text()
    latex = (tmp_path / "table1.tex").read_text()
    assert latex.count(r"\begin{table}") == latex.count(r"\end{table}") == 1
    assert r"G\_ws\_O1" in latex and "toprule" in latex
    text = latex.replace(r"\\", "").replace(" & ", " ")   # row ends and column separators
    assert not re.search(r"(?<!\\)[_&%#]", text), "unescaped LaTeX special character"


def test_a_missing_results_file_is_an_error_naming_the_rule_that_makes_it(made, test_config, tmp_path, capsys):
    metrics = tmp_path / "metrics"
    shutil.copytree(made["metrics"], metrics)
    (metrics / "baselines" / "hifst.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"hifst\.json; the rule `evaluate_baseline \(method=hifst\)`"):
        tables.write_tables(test_config, metrics, tmp_path / "out")
    shutil.copy(made["metrics"] / "baselines" / "hifst.json", metrics / "baselines" / "hifst.json")
    (metrics / "seed0" / "single" / "single_gsr.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"`evaluate \(seed=0, run=single, stage=single_gsr\)`"):
        tables.build_long(test_config, metrics)
    assert not (tmp_path / "out" / "table1.csv").exists()   # nothing half-written
    # through the command line: exit status 1 and the rule's name on stderr
    flags = [part for path in TEST_PROFILE for part in ("-c", str(path))]
    assert main(["tables", *flags, "--metrics", str(metrics), "--out", str(tmp_path / "cli")]) == 1
    assert "evaluate (seed=0, run=single, stage=single_gsr)" in capsys.readouterr().err


def test_a_results_file_without_the_metric_is_an_error(made, test_config, tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(made["metrics"], metrics)
    path = metrics / "seed0" / "ufat" / "gsr_O3.json"
    data = json.loads(path.read_text())
    del data["datasets"]["DP"]["ssim"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"gsr_O3\.json holds no SSIM for DP"):
        tables.build_long(test_config, metrics)


def test_variants_left_out_of_the_config_are_marked_not_run(made, test_config):
    config = json.loads(json.dumps(test_config))
    config["train"]["ablation_variants"] = ["ufat"]
    long = tables.build_long(config, made["metrics"])
    table3 = long[long["table"] == 3].groupby("row")["status"].first()
    assert table3["UFAT-GAN"] == "reproduced"
    assert table3["DC-GAN"].startswith("not run")


# ------------------------------------------------------------------------------------------------ figures
def _metrics(made, *names):
    """Results files by run/stage: a training run's of the first seed (metrics/seed0/<run>/), a baseline's."""
    return [made["metrics"] / (name if name.startswith("baselines/") else f"seed0/{name}") for name in names]


DETECTION = ("single/single_gws.json", "ufat/gws_O1.json", "ufat/gws_O2.json", "ufat/gws_O3.json",
             "baselines/lbp.json", "baselines/svd.json", "baselines/hifst.json")


def test_figure7_has_the_papers_2x2_layout_with_every_method(made, tmp_path):
    results = [json.loads(p.read_text()) for p in _metrics(made, *DETECTION)]
    fig = figures.draw_figure7(results)
    axes = fig.get_axes()
    assert [a.get_title() for a in axes] == ["(a) PR curve on CUHK", "(b) F-measure curve on CUHK",
                                             "(c) PR curve on DUT", "(d) F-measure curve on DUT"]
    for axis in axes:
        assert len(axis.get_lines()) == len(results)
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == [figures.label(r) for r in results]
    assert "SVD (Su et al.)" in legend and "HiFST-style (DCT)" in legend and "Ours (G_ws O3)" in legend
    cuhk = results[3]["datasets"]["CUHK"]["pr_curve"]
    line = axes[0].get_lines()[3]
    np.testing.assert_allclose(line.get_xdata(), cuhk["recall"])
    np.testing.assert_allclose(line.get_ydata(), cuhk["precision"])
    plt.close(fig)
    png, pdf = figures.figure7(_metrics(made, *DETECTION), tmp_path / "figures" / "figure7.png")
    assert Image.open(png).size[0] >= 1200 and pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="detection"):
        figures.figure7(_metrics(made, "ufat/gsr_O3.json"), tmp_path / "x.png")


def test_figure6_shows_input_maps_and_gt_for_a_fixed_set_of_images(made, tmp_path):
    results = [json.loads(p.read_text()) for p in _metrics(made, *DETECTION[4:], DETECTION[0], DETECTION[3])]
    fig = figures.draw_figure6(results, made["datasets"], per_set=2)
    axes = fig.get_axes()
    assert len(axes) == 2 * 2 * (len(results) + 2)
    headers = [a.get_title() for a in axes[: len(results) + 2]]
    assert headers == ["Input", "B(I) (LBP prior)", "SVD", "HiFST-style", "Single G_ws", "Ours (G_ws O3)", "GT"]
    # the GT column shows the mask of the row's image
    stem = figures.pick_stems(figures.list_images(made["datasets"] / "cuhk" / "masks"), 2)[0]
    mask = np.asarray(Image.open(made["datasets"] / "cuhk" / "masks" / f"{stem}.png").convert("L")) / 255.0
    np.testing.assert_allclose(axes[len(results) + 1].get_images()[0].get_array(), mask, atol=1e-6)
    plt.close(fig)
    png, pdf = figures.figure6(_metrics(made, *DETECTION[4:]), made["datasets"], tmp_path / "figure6.png")
    assert png.exists() and pdf.exists()


def test_pick_stems_is_fixed_and_spread_over_the_set():
    stems = [f"img{i:03d}" for i in range(10)]
    assert figures.pick_stems(reversed(stems), 3) == ["img000", "img004", "img009"]
    assert figures.pick_stems(stems[:2], 5) == stems[:2]


def note(axis) -> str:
    """The note drawn inside an image's bottom edge (figures._grid), or ''."""
    return axis.texts[0].get_text() if axis.texts else ""


def test_figure9_shows_input_outputs_with_scores_and_target(made, tmp_path):
    results = [json.loads(p.read_text()) for p in _metrics(made, "single/single_gsr.json", "ufat/gsr_O3.json")]
    fig = figures.draw_figure9(results, made["datasets"], count=2)
    axes = fig.get_axes()
    assert len(axes) == (2 + 2) * 4        # two DP images, then two real defocused photographs (CUHK's test set)
    assert [a.get_title() for a in axes[:4]] == ["Defocused input", "Single G_sr", "Ours (G_sr O3)", "Sharp target (GT)"]
    assert note(axes[2]).startswith("PSNR ")
    assert "CUHK test image" in axes[8].get_ylabel() and note(axes[10]).startswith("colour shift ")
    assert note(axes[11]) == "GT mask (white = in focus)"      # real photographs have no sharp target
    plt.close(fig)
    bad = json.loads(json.dumps(results[1]))
    shutil.copytree(bad["datasets"]["DP"]["pred_dir"], tmp_path / "partial")
    first = sorted((tmp_path / "partial").glob("*.png"))[0]
    first.unlink()
    bad["datasets"]["DP"]["pred_dir"] = str(tmp_path / "partial")
    with pytest.raises(FileNotFoundError, match=first.stem):
        figures.draw_figure9([bad], made["datasets"], count=10)


def test_training_curves_draw_every_phase(made, tmp_path):
    files = [made["results"] / "runs" / "ufat" / stage / "losses.csv" for stage in schedule.ALTERNATION]
    stages = [("ufat", path.parent.name, figures.read_losses(path)) for path in files]
    fig = figures.draw_training_curves(stages)
    by_title = {a.get_title(): a for a in fig.get_axes()}
    # two lines (steps, epoch means) per stage that has the loss
    assert len(by_title["(a) G_sr pretraining on synthetic pairs"].get_lines()) == 2 + 1      # + the phase boundary
    assert len(by_title["(d) G_ws prior loss (Eq. 7)"].get_lines()) == 3 * 3
    assert len(by_title["(b) Discriminator D"].get_lines()) == 6 * 3
    plt.close(fig)
    png, pdf = figures.training_curves(files, tmp_path / "training_curves.png")
    assert png.exists() and pdf.exists()
    with pytest.raises(FileNotFoundError, match="training rule of stage gws_O9"):
        figures.training_curves([made["results"] / "runs" / "ufat" / "gws_O9" / "losses.csv"], tmp_path / "t.png")


def test_training_curves_phase_names_never_overlap():
    """Three short G_ws phases beside a long Single G_ws (the real-data profile's panel (d)): each short phase's
    name shrinks to fit its span, and no two names overlap."""
    def frame(steps):
        return pd.DataFrame({"step": range(steps), "epoch": [i // 10 for i in range(steps)],
                             "prior": np.linspace(1.0, 0.5, steps)})
    stages = [("guard", f"gws_O{n}", frame(250)) for n in (1, 2, 3)] + [("guard", "single_gws", frame(4000))]
    fig = figures.draw_training_curves(stages)
    axis = next(a for a in fig.get_axes() if a.get_title().startswith("(d)"))
    renderer = fig.canvas.get_renderer()
    names = [t for t in axis.texts if t.get_text()]
    boxes = sorted((t.get_window_extent(renderer) for t in names), key=lambda box: box.x0)
    assert [t.get_text() for t in names] == ["O1", "O2", "O3", "Single G$_{ws}$"]
    assert all(left.x1 <= right.x0 for left, right in zip(boxes, boxes[1:]))
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- report
def test_report_has_tables_figures_deviations_and_provenance(made, test_config, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(made["results"], results)
    tables.write_tables(test_config, results / "metrics", results / "tables")
    with pytest.raises(FileNotFoundError, match="the rule `figure7` makes it"):
        report.write_report(test_config, ["config/config.yaml", "config/test.yaml"], results, results / "REPORT.md")
    for stem in report.FIGURES:
        path = results / "figures" / f"{stem}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(path)
    out = report.write_report(test_config, ["config/config.yaml", "config/test.yaml"], results, results / "REPORT.md")
    text = out.read_text()
    for n in range(1, 6):
        assert f"### Table {n}." in text
    for stem in report.FIGURES:
        assert f"](figures/{stem}.png)" in text and f"figures/{stem}.pdf" in text
    assert "## Deviations from the paper" in text and "### Baselines (Table 4)" in text
    assert "`config/config.yaml`, `config/test.yaml`" in text and "git commit:" in text
    assert "numpy " in text and "torch " in text and provenance.machine() in text
    assert "| train | 1 | 12.5 | 12.5 |" in text and "| ufat/gws_O1 | train | 12.5 |" in text   # from the logs
    assert "Demo data" in text and "profile: test" in text   # the merged config


def test_stage_times_read_the_last_finished_line_of_every_log(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.log").write_text("INFO apl: train finished in 3.0 s\nresumed\nINFO apl: train finished in 4.5 s\n")
    (tmp_path / "failed.log").write_text("Traceback ...\n")
    assert provenance.stage_times(tmp_path) == [{"log": "a/x", "command": "train", "seconds": 4.5}]


# ------------------------------------------------------------------------------ the authors' released model
def test_release_rows_say_weights_absent_when_its_checkpoints_were_not_placed(made, test_config, tmp_path):
    long = tables.build_long(test_config, made["metrics"])
    rows = long[long["row"] == tables.RELEASE_ROW]
    assert set(rows["table"]) == {1, 2, 4, 5}
    assert set(rows["status"]) == {WEIGHTS_ABSENT} and rows["reproduced"].isna().all()
    tables.write_tables(test_config, made["metrics"], tmp_path)
    for n in (1, 2, 4, 5):
        markdown = (tmp_path / f"table{n}.md").read_text()
        assert re.search(rf"\| {re.escape(tables.RELEASE_ROW)} +\| {WEIGHTS_ABSENT} +\| {WEIGHTS_ABSENT} ", markdown), n
    assert tables.RELEASE_ROW not in (tmp_path / "table3.md").read_text()
    # the figures leave it out
    paths = [made["metrics"] / "release" / "release_gws.json", *_metrics(made, "baselines/svd.json")]
    assert [r["stage"] for r in figures._detection_results(paths)] == ["svd"]
    # REPORT.md says what the row means and where the files go
    results = tmp_path / "results"
    shutil.copytree(made["results"], results)
    tables.write_tables(test_config, results / "metrics", results / "tables")
    for stem in report.FIGURES:
        (results / "figures").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(results / "figures" / f"{stem}.png")
    text = report.write_report(test_config, ["config/config.yaml"], results, results / "REPORT.md").read_text()
    assert "### The authors' released model (their weights, our evaluation)" in text
    assert "1204 training images, 500 full-clear images" in text and "not the paper's numbers" in text
    assert f"**{WEIGHTS_ABSENT}**" in text and "drive.google.com/drive/folders/" in text
    assert "data/raw/release/DBD.pth" in text


def test_release_rows_hold_the_numbers_of_its_results_files(made, test_config, tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(made["metrics"], metrics)
    for stage, source in (("release_gws", "baselines/svd.json"), ("release_gsr", "baselines/input.json")):
        data = json.loads((metrics / source).read_text())   # fabricated: another method's numbers
        data.update(stage=stage, variant="release", image_size=160, scale={"mode": "squash", "longer_side": 160})
        write_json(metrics / "release" / f"{stage}.json", data)
    long = tables.build_long(test_config, metrics)
    rows = long[long["row"] == tables.RELEASE_ROW]
    assert set(rows["status"]) == {"reproduced"} and set(rows["table"]) == {1, 2, 4, 5}
    for _, cell in rows.iterrows():
        assert cell["results_file"] == str(metrics / "release" / ("release_gws.json" if cell["table"] in (1, 4)
                                                                  else "release_gsr.json"))
        value = _json_value(cell["results_file"], cell["metric"], "DP" if cell["dataset"] == "-" else cell["dataset"])
        assert cell["reproduced"] == pytest.approx(value) and cell["seeds"] == 1
    grid = tables.wide(long, 4)
    assert grid.loc[tables.RELEASE_ROW, "source"] == "reproduced (the authors' released weights, this run's evaluation)"
    assert grid.loc[tables.RELEASE_ROW, "CUHK F_max"].endswith("(ours)")   # no paper value: a row the paper lacks
    assert f"{tables.RELEASE_ROW}: network input 160x160" in tables.timing_note(long, 4)
    fig = figures.draw_figure7(figures._detection_results([metrics / "release" / "release_gws.json"]))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Authors' released model (their weights)"]
    plt.close(fig)
