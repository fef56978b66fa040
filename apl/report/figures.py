"""The paper's figures rebuilt from the pipeline's results files.

* Figure 7: PR curves and F-measure curves on the detection test sets, the paper's 2x2 layout
  ((a) PR on CUHK, (b) F-measure on CUHK, (c) PR on DUT, (d) F-measure on DUT); a test set the profile
  does not have is left out (one row of panels), and the validation split is never drawn.
* Figure 6 (qualitative detection): input | every method's focus map | GT, for a fixed set of test images.
* Figure 9 (qualitative deblurring): input | every method's output (the composite) | sharp target.
* Training curves: the losses of every phase of the schedule.

Every figure reads only results files: metrics JSONs (which name the folders of the saved maps and of
the ground truth), the saved maps and images, and the losses.csv of each stage. PNG and PDF are written.
A results file saying `absent` (the authors' released model without its weights) is left out of every figure.
"""
from __future__ import annotations

import copy
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from apl.data.layout import (DEBLUR_SET, DETECTION_SETS, FOLDERS, HELDOUT_SET, MASK_FOLDERS, REAL_PHOTOS,  # noqa: E402
                             pick_stems)
from apl.io import atomic_path, list_images, read_image, read_json, read_mask  # noqa: E402
from apl.metrics.detection import read_prediction  # noqa: E402
from apl.report.tables import seed_summary  # noqa: E402

LABELS = {"single_gws": "Single G_ws", "single_gws_masks": "Single G_ws (GT masks)", "gws_O1": "G_ws O1", "gws_O2": "G_ws O2", "gws_O3": "Ours (G_ws O3)",
          "single_gsr": "Single G_sr", "gsr_O1": "G_sr O1", "gsr_O2": "G_sr O2", "gsr_O3": "Ours (G_sr O3)",
          "pretrain": "Pretrained G_sr",
          "lbp": "LBP prior B(I) (Yi & Eramian)", "svd": "SVD (Su et al.)", "hifst": "HiFST-style (DCT)",
          "input": "Defocused input",
          "release_gws": "Authors' released model (their weights)", "release_gsr": "Authors' released model (their weights)"}
SHORT = {"lbp": "B(I) (LBP prior)", "svd": "SVD", "hifst": "HiFST-style", "single_gws": "Single G_ws",
         "gws_O3": "Ours (G_ws O3)", "single_gsr": "Single G_sr", "gsr_O3": "Ours (G_sr O3)",
         "release_gws": "Authors' release", "release_gsr": "Authors' release"}
# one fixed style per method, so a method looks the same in every panel and every run
STYLES = {
    "gws_O3": {"color": "#d62728", "linewidth": 2.8, "linestyle": "-", "zorder": 5},
    "release_gws": {"color": "#000000", "linewidth": 2.2, "linestyle": "--", "zorder": 4},
    "single_gws": {"color": "#1f77b4", "linewidth": 1.8, "linestyle": "-"},
    "gws_O1": {"color": "#9e9e9e", "linewidth": 1.2, "linestyle": ":"},
    "gws_O2": {"color": "#616161", "linewidth": 1.2, "linestyle": "--"},
    "lbp": {"color": "#9467bd", "linewidth": 1.8, "linestyle": "-."},
    "svd": {"color": "#2ca02c", "linewidth": 1.8, "linestyle": "-", "marker": "o", "markersize": 3},
    "hifst": {"color": "#ff7f0e", "linewidth": 1.8, "linestyle": "-", "marker": "s", "markersize": 3},
}
VARIANT_LABELS = {"ugan": "U-GAN", "dcgan": "DC-GAN", "cdfgan": "CDF-GAN", "ufat": "UFAT-GAN",
                  "guard": "guarded U-GAN"}   # apl.models.deblurrer.VARIANTS (no torch here)
FALLBACK_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def label(result: dict) -> str:
    """A method's name in legends; G_sr O3 of a variant other than UFAT is named by its variant."""
    stage, variant = result["stage"], result.get("variant")
    if stage == "gsr_O3" and variant in VARIANT_LABELS and variant != "ufat":
        return f"{VARIANT_LABELS[variant]} (G_sr O3)"
    return LABELS.get(stage, stage)


def short_label(result: dict) -> str:
    """A method's name as a column header of the qualitative figures."""
    full = label(result)
    return SHORT.get(result["stage"], full) if full == LABELS.get(result["stage"]) else full


def save_figure(fig, out_png: str | Path, dpi: int = 150) -> list[Path]:
    """Write the figure as PNG and as PDF beside it (atomically); return both paths."""
    out_png = Path(out_png)
    written = []
    for path in (out_png, out_png.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix[1:])
        written.append(path)
    plt.close(fig)
    return written


# --------------------------------------------------------------------------------------------- Figure 7
def _present(metrics_files) -> list[dict]:
    """The results files' contents, less those of a method that was not run (the release's weights absent)."""
    return [result for result in (read_json(path) for path in metrics_files) if not result.get("absent")]


def _detection_results(metrics_files) -> list[dict]:
    results = [r for r in _present(metrics_files) if r["task"] == "detection"]
    if not results:
        raise ValueError("this figure needs at least one detection results file")
    return results


def test_sets(result: dict) -> dict[str, str]:
    """{folder key: name} of the detection test sets a results file holds (absent sets are not in it)."""
    return {key: name for key, name in DETECTION_SETS.items() if name in result["datasets"]}


def figure7(metrics_files: list[str | Path], out_png: str | Path) -> list[Path]:
    """Every detection method's curves in the paper's 2x2 layout; PNG and PDF. Results files of one method
    from several training seeds give one curve, their mean."""
    return save_figure(draw_figure7(mean_over_seeds(_detection_results(metrics_files))), out_png)


def mean_over_seeds(results: list[dict]) -> list[dict]:
    """One result per (stage, variant), in first-seen order: the curves of several seeds averaged point by point
    (every curve is sampled at the same thresholds), with `seeds` the number averaged."""
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        groups.setdefault((result["stage"], result.get("variant")), []).append(result)
    merged = []
    for members in groups.values():
        first = copy.deepcopy(members[0])
        first["seeds"] = len(members)
        for dataset, scores in first["datasets"].items():
            if "pr_curve" not in scores:
                continue
            for key in scores["pr_curve"]:
                scores["pr_curve"][key] = np.mean([m["datasets"][dataset]["pr_curve"][key] for m in members],
                                                  axis=0).tolist()
        merged.append(first)
    return merged


def draw_figure7(results: list[dict]):
    """The Figure 7 matplotlib figure of detection results (one curve per result in every panel)."""
    sets = list(test_sets(results[0]).values())
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 0.6 + 4.3 * len(sets)), squeeze=False)
    panels = "abcd"
    handles = {}
    for row, dataset in enumerate(sets):
        pr_axis, f_axis = axes[row, 0], axes[row, 1]
        for index, result in enumerate(results):
            style = STYLES.get(result["stage"], {"color": FALLBACK_COLORS[index % len(FALLBACK_COLORS)],
                                                 "linewidth": 1.5})
            curve = result["datasets"][dataset]["pr_curve"]
            name = label(result) + (f" (mean of {result['seeds']} seeds)" if result.get("seeds", 1) > 1 else "")
            line, = pr_axis.plot(curve["recall"], curve["precision"], label=name, **style)
            f_axis.plot(curve["threshold"], curve["fmeasure"], **style)
            handles.setdefault(name, line)
        pr_axis.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
        f_axis.set(xlabel="Threshold (map / its maximum)", ylabel="F-measure", xlim=(0, 1), ylim=(0, 1.02))
        pr_axis.set_title(f"({panels[2 * row]}) PR curve on {dataset}", fontsize=12)
        f_axis.set_title(f"({panels[2 * row + 1]}) F-measure curve on {dataset}", fontsize=12)
        for axis in (pr_axis, f_axis):
            axis.grid(alpha=0.3)
            axis.tick_params(labelsize=10)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(4, len(handles)),
               fontsize=10, frameon=False)
    fig.suptitle("Figure 7: PR and F-measure curves (authors' protocol: precision and recall averaged over images)",
                 fontsize=12)
    rows_of_legend = -(-len(handles) // 4)
    fig.tight_layout(rect=(0, 0.035 + 0.03 * rows_of_legend, 1, 0.97))
    return fig


# ------------------------------------------------------------------------------------ Figures 6 and 9
def _one(folder: str | Path, stem: str) -> Path:
    """The image of `stem` in a results folder; a missing one is an error naming both."""
    found = list_images(folder)
    if stem not in found:
        raise FileNotFoundError(f"no image named {stem!r} in {folder}; rerun the rule that wrote this folder")
    return found[stem]


def _fit(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map or image resized (bilinear) to `shape` (height, width) for display."""
    if array.shape[:2] == tuple(shape):
        return array
    if array.ndim == 2:
        return np.asarray(Image.fromarray(array.astype(np.float32)).resize((shape[1], shape[0]), Image.BILINEAR))
    return np.asarray(Image.fromarray(array).resize((shape[1], shape[0]), Image.BILINEAR))


def _grid(rows: list[list[tuple[np.ndarray, str]]], headers: list[str], row_labels: list[str], title: str):
    """A grid of images without ticks; column headers on top, row labels on the left."""
    n_rows, n_cols = len(rows), len(headers)
    aspect = np.mean([cells[0][0].shape[0] / cells[0][0].shape[1] for cells in rows])
    width = 1.75
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols + 0.6, width * aspect * n_rows + 0.9),
                             squeeze=False)
    for r, cells in enumerate(rows):
        for c, (array, note) in enumerate(cells):
            axis = axes[r, c]
            if array.ndim == 2:
                axis.imshow(array, cmap="gray", vmin=0.0, vmax=1.0, interpolation="bilinear")
            else:
                axis.imshow(array, interpolation="bilinear")
            axis.set_xticks([])
            axis.set_yticks([])
            if note:   # inside the image's bottom edge: a label below it would fall under the next row's images
                axis.text(0.5, 0.02, note, transform=axis.transAxes, ha="center", va="bottom", fontsize=7,
                          bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
            if r == 0:
                axis.set_title(headers[c], fontsize=9)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=0.6, w_pad=0.3)
    return fig


def figure6(metrics_files: list[str | Path], datasets: str | Path, out_png: str | Path, per_set: int = 3) -> list[Path]:
    """Input | each detection method's saved map (in the order given) | GT, for `per_set` fixed test
    images of each detection set. The maps and GT come from the folders the metrics files name."""
    return save_figure(draw_figure6(_detection_results(metrics_files), datasets, per_set), out_png)


def draw_figure6(results: list[dict], datasets: str | Path, per_set: int = 3):
    datasets = Path(datasets)
    rows, row_labels = [], []
    for folder, name in test_sets(results[0]).items():
        gt_dir = Path(results[0]["datasets"][name]["gt_dir"])
        gts = list_images(gt_dir)
        for stem in pick_stems(gts, per_set):
            image = read_image(_one(datasets / FOLDERS[folder], stem))
            shape = image.shape[:2]
            cells = [(image, "")]
            for result in results:
                focus = read_prediction(_one(result["datasets"][name]["pred_dir"], stem))
                cells.append((np.clip(_fit(focus, shape), 0, 1), ""))
            cells.append((_fit(read_mask(gts[stem], results[0]["datasets"][name]["gt_polarity"]), shape), ""))
            rows.append(cells)
            row_labels.append(f"{name}\n{stem}")
    headers = ["Input"] + [short_label(r) for r in results] + ["GT"]
    return _grid(rows, headers, row_labels, "Figure 6: defocus detection maps (white = in focus)")


def figure9(metrics_files: list[str | Path], datasets: str | Path, out_png: str | Path, count: int = 4) -> list[Path]:
    """Defocused input | each deblurring method's saved output (the composite) | sharp target, for
    `count` fixed DP test images; each output is annotated with its PSNR / SSIM from the metrics file."""
    results = [r for r in _present(metrics_files) if r["task"] == "deblurring"]
    if not results:
        raise ValueError("figure 9 needs at least one deblurring results file")
    return save_figure(draw_figure9(results, datasets, count), out_png)


def draw_figure9(results: list[dict], datasets: str | Path, count: int = 4):
    """`count` images of DP and of the synthetic held-out pairs, each where the results hold it."""
    datasets = Path(datasets)
    rows, row_labels = [], []
    for key, name in (DEBLUR_SET, HELDOUT_SET):
        if name not in results[0]["datasets"]:
            continue
        targets = list_images(results[0]["datasets"][name]["gt_dir"])
        for stem in pick_stems(targets, count):
            image = read_image(_one(datasets / FOLDERS[key], stem))
            shape = image.shape[:2]
            cells = [(image, "")]
            for result in results:
                output = read_image(_one(result["datasets"][name]["pred_dir"], stem))
                scores = {entry["name"]: entry for entry in result["datasets"][name].get("per_image", [])}
                note = f"PSNR {scores[stem]['psnr']:.2f}, SSIM {scores[stem]['ssim']:.3f}" if stem in scores else ""
                cells.append((_fit(output, shape), note))
            cells.append((read_image(targets[stem]), ""))
            rows.append(cells)
            row_labels.append(f"{name.replace(' ', chr(10))}\n{stem}")
    real = results[0]["datasets"].get(REAL_PHOTOS)
    if real is not None:   # real defocused photographs: no sharp target; the GT mask (white = in focus) instead
        key = next(key for key, name in DETECTION_SETS.items() if name == real["set"])
        stems = pick_stems(list_images(real["pred_dir"]), min(count, 3))
        for stem in stems:
            image = read_image(_one(datasets / FOLDERS[key], stem))
            cells = [(image, "")]
            for result in results:
                shift = result["datasets"][REAL_PHOTOS]
                note = (f"colour shift {shift['colour_shift_in_focus']:.1f} / {shift['colour_shift_blurred']:.1f}"
                        if stem == stems[0] else "")
                cells.append((_fit(read_image(_one(shift["pred_dir"], stem)), image.shape[:2]), note))
            mask = read_mask(_one(datasets / MASK_FOLDERS[key], stem), "focus-white")
            cells.append((np.repeat((mask[..., None] * 255).astype(np.uint8), 3, axis=2), "GT mask (white = in focus)"))
            rows.append(cells)
            row_labels.append(f"{real['set']} test image\n(no target)\n{stem}")
    if not rows:
        raise ValueError("figure 9 needs DP, synthetic held-out or real-photograph results; these results hold none")
    headers = ["Defocused input"] + [short_label(r) for r in results] + ["Sharp target (GT)"]
    return _grid(rows, headers, row_labels, "Figure 9: defocus deblurring (output = R (1 - M) + I M)")


def showcase(results_dir: str | Path, datasets: str | Path, out_png: str | Path, weights: str | Path | None = None,
             count: int = 3) -> Path:
    """The README's picture, from a finished run of a profile with CUHK's test images (config/cuhk.yaml): for
    `count` fixed test photographs, the photograph, its blur prior B(I) (the run's saved LBP maps), the map of
    the detector `apl predict` runs (`weights`; default: the one apl ships) and the GT mask, each map scored."""
    from apl.metrics.detection import evaluate_detection
    from apl.predict import Model, read_photo
    from apl.pretrained import detector_path
    model = Model(weights or detector_path(), device="cpu")
    lbp = read_json(Path(results_dir) / "metrics" / "baselines" / "lbp.json")
    folder, name = next(iter(test_sets(lbp).items()))
    entry = lbp["datasets"][name]
    masks = list_images(entry["gt_dir"])
    rows, labels = [], []
    for stem in pick_stems(masks, count):
        photo = read_photo(_one(Path(datasets) / FOLDERS[folder], stem))
        gt = read_mask(masks[stem], entry["gt_polarity"])
        prior = np.clip(_fit(read_prediction(_one(entry["pred_dir"], stem)), gt.shape), 0, 1)
        ours = model.focus_map(photo) / 255.0
        cells = [(_fit(photo, gt.shape), "")]
        for array in (prior, ours):
            score = evaluate_detection([array], [gt])
            cells.append((array, f"F_max {score['fmax']:.2f}, MAE {score['mae']:.2f}"))
        rows.append(cells + [(gt, "")])
        labels.append(f"{name}\n{stem}")
    fig = _grid(rows, ["Photograph", "Blur prior B(I)", "apl predict (default model)", "Ground truth"], labels,
                "Defocus maps of CUHK test photographs (white = in focus)")
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out_png


# ------------------------------------------------------------------------------------- training curves
PHASE_NAMES = {"pretrain": "pretrain", "single_gws": "Single G$_{ws}$", "single_gsr": "Single G$_{sr}$",
               **{f"{kind}_O{n}": f"G$_{{{kind[1:]}}}$ O{n}" for kind in ("gws", "gsr") for n in (1, 2, 3)}}
LOSS_NAMES = {"pixel": "pixel loss to the sharp image", "d": "D loss", "adv": "adversarial loss (generator)",
              "prior": "prior loss |G_ws(I) - B(I)|_1"}


def read_losses(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"losses file missing: {path}; the training rule of stage {path.parent.name} "
                                f"(run {path.parent.parent.name}) makes it")
    frame = pd.read_csv(path)
    if frame.empty or not {"epoch", "step"} <= set(frame.columns):
        raise ValueError(f"{path} holds no per-step losses (columns epoch, step expected)")
    return frame


def training_curves(losses_files: list[str | Path], out_png: str | Path) -> list[Path]:
    """Losses per phase: (a) G_sr pretraining, (b) D, (c) generator adversarial, (d) prior L1.

    Stages are drawn one after another in the order given (runs/<run>/<stage>/losses.csv); each phase is
    shaded and named; thin lines are single steps, thick lines the mean of each epoch. Stages of other
    runs (e.g. the single-task baselines) are drawn dashed after the schedule.
    """
    stages = []
    for path in losses_files:
        path = Path(path)
        stages.append((path.parent.parent.name, path.parent.name, read_losses(path)))
    return save_figure(draw_training_curves(stages), out_png)


def draw_training_curves(stages: list[tuple[str, str, pd.DataFrame]]):
    """The training-curves figure of (run, stage, losses) triples, drawn in the order given."""
    if not stages:
        raise ValueError("the training curves need at least one losses file")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = {"pixel": axes[0, 0], "d": axes[0, 1], "adv": axes[1, 0], "prior": axes[1, 1]}
    titles = {"pixel": "(a) G_sr pretraining on synthetic pairs", "d": "(b) Discriminator D",
              "adv": "(c) Generator adversarial loss", "prior": "(d) G_ws prior loss (Eq. 7)"}
    offsets = {key: 0 for key in panels}
    seen = {key: [] for key in panels}   # values drawn per panel, for robust axis limits
    labels = {key: [] for key in panels}  # (first step, steps, phase name, colour) over each phase's span
    colors = {"gws": "#1f77b4", "gsr": "#d62728", "pretrain": "#2ca02c", "single_gws": "#9467bd",
              "single_gsr": "#8c564b"}
    main_run = stages[0][0]
    # D's accuracy on its own training batches (augmented as D saw them), epoch means on a second axis of (b):
    # 0.5 is a D that answers one constant for every image (REPORT.md's probe measures it on held-out crops)
    accuracy_axis, accuracy_drawn = panels["d"].twinx(), False
    for run, stage, frame in stages:
        kind = stage.split("_O")[0] if "_O" in stage else stage
        color = colors.get(kind, "#7f7f7f")
        dashed = run != main_run
        steps_per_epoch = int(frame.groupby("epoch")["step"].count().max())
        for key, axis in panels.items():
            if key not in frame.columns:
                continue
            x = offsets[key] + np.arange(len(frame))
            values = frame[key].to_numpy(dtype=float)
            axis.plot(x, values, color=color, alpha=0.25, linewidth=0.7)
            means = frame.groupby("epoch")[key].mean()
            centres = offsets[key] + (np.arange(len(means)) + 0.5) * steps_per_epoch
            axis.plot(centres, means.to_numpy(), color=color, linewidth=2.0, linestyle="--" if dashed else "-",
                      marker="o" if len(means) <= 30 else None, markersize=3)
            seen[key] += [values, means.to_numpy()]
            if key == "d" and {"d_acc_real", "d_acc_fake"} <= set(frame.columns):
                accuracy = (0.5 * (frame["d_acc_real"] + frame["d_acc_fake"])).groupby(frame["epoch"]).mean()
                accuracy_axis.plot(centres, accuracy.to_numpy(), color="#212121", linestyle=":", linewidth=1.5,
                                   marker="x", markersize=3, label=None if accuracy_drawn else
                                   "D's balanced accuracy, training batches (epoch means)")
                accuracy_drawn = True
            axis.axvspan(offsets[key], offsets[key] + len(frame), color=color, alpha=0.05)
            axis.axvline(offsets[key], color="#bdbdbd", linewidth=0.8)
            labels[key].append((offsets[key], len(frame), PHASE_NAMES.get(stage, stage), color))
            offsets[key] += len(frame)
    if accuracy_drawn:
        accuracy_axis.set(ylim=(0, 1.05), ylabel="D's balanced accuracy")
        accuracy_axis.axhline(0.5, color="#212121", linewidth=0.6, alpha=0.4)
        accuracy_axis.legend(loc="lower right", fontsize=8)
    else:
        accuracy_axis.set_visible(False)
    for key, axis in panels.items():
        axis.set_title(titles[key], fontsize=11, pad=16)
        axis.set(xlabel="training step (phases one after another)", ylabel=LOSS_NAMES[key])
        axis.grid(alpha=0.3)
        if seen[key]:   # a few exploding steps must not flatten every curve: clip at the 99th percentile
            values = np.concatenate(seen[key])
            means = np.concatenate(seen[key][1::2])
            top = max(np.percentile(values, 99), means.max())
            bottom = min(np.percentile(values, 1), means.min())
            margin = 0.08 * (top - bottom if top > bottom else abs(top) + 1e-3)
            axis.set_ylim(bottom - margin, top + margin)
        if offsets[key] == 0:
            axis.text(0.5, 0.5, "no stage of these files has this loss", ha="center", va="center",
                      transform=axis.transAxes, color="#757575")
    fig.suptitle(f"Training losses per phase (run {main_run}; thin: every step, thick: epoch means)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    for key, axis in panels.items():   # once the axes have their final size: narrow phases get short names
        _label_phases(axis, labels[key])
    return fig


def _label_phases(axis, labels: list[tuple[int, int, str, str]]) -> None:
    """Each phase's name over the middle of its span; where it is wider than the span (a short phase beside a long
    one), only its last word ("O2"), so neighbouring names never overlap."""
    renderer = axis.figure.canvas.get_renderer()
    for start, steps, name, color in labels:
        text = axis.text(start + steps / 2, 1.0, name, transform=axis.get_xaxis_transform(), ha="center",
                         va="bottom", fontsize=8, color=color)
        left, right = axis.transData.transform([(start, 0), (start + steps, 0)])[:, 0]
        if text.get_window_extent(renderer).width > right - left:
            text.set_text(name.split()[-1])


# --------------------------------------------------------------------------------------------- the probe
D_AT_CHANCE = 0.6   # a D whose balanced accuracy ends a phase below this gives that phase no adversarial signal


def probe_figure(probe_files: list[str | Path], out_png: str | Path) -> list[Path]:
    """REPORT.md's "Does D teach the true map?" as a figure: per adversarial phase, mean and std over the seeds
    (dots: each seed) of (a) D's balanced accuracy, (b) the adversarial gradient's cosine with GT - M, with
    this run's G_sr and with the fixed unsharp mask in its place, (c) that gradient's size against the weighted
    prior term's, (d) the share of crops where the GT mask beats all-defocused (M = 0) and B(I)."""
    stages = _probe_groups(probe_files)
    if not stages:
        raise ValueError("the probe figure needs at least one probe file (rule probe: probe/seed<N>/<run>/<stage>.json)")
    return save_figure(draw_probe_figure(stages), out_png)


def _probe_groups(probe_files: list[str | Path]) -> list[tuple[str, list[dict]]]:
    """(stage, its probes over the seeds) in the schedule's order."""
    from apl.train.schedule import PHASES
    by_stage: dict[str, list[dict]] = {}
    for path in probe_files:
        probe = read_json(path)
        by_stage.setdefault(probe["stage"], []).append(probe)
    return [(stage, by_stage[stage]) for stage in PHASES if stage in by_stage]


def draw_probe_figure(stages: list[tuple[str, list[dict]]]):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    x = np.arange(len(stages))
    seeds = max(len(probes) for _, probes in stages)

    def series(axis, pick, label, color, offset=0.0, marker="o", log=False):
        """Mean and std over seeds; on a log axis those of log10 (a geometric mean, a factor either side)."""
        values = [[pick(p) for p in probes] for _, probes in stages]
        scaled = [np.log10(np.maximum(v, 1e-12)) if log else np.asarray(v, dtype=float) for v in values]
        means, stds = (np.nan_to_num(np.array(column)) for column in zip(*map(seed_summary, scaled)))
        centre, errors = (10 ** means, [10 ** means - 10 ** (means - stds), 10 ** (means + stds) - 10 ** means]) \
            if log else (means, stds)
        axis.errorbar(x + offset, centre, yerr=errors, color=color, marker=marker, capsize=4, linewidth=1.8,
                      label=label)
        for i, v in enumerate(values):
            axis.scatter(np.full(len(v), i + offset), v, color=color, s=10, alpha=0.45, zorder=3)

    variant = stages[0][1][0].get("variant")
    trained = f"this run's G_sr ({VARIANT_LABELS.get(variant, variant)})" if variant else "this run's G_sr"
    axis = axes[0, 0]
    series(axis, lambda p: p["trained_gsr"]["d"]["accuracy"], "D, full-clear vs composites", "#1f77b4")
    axis.axhline(0.5, color="#616161", linestyle=":", label="chance")
    axis.axhline(D_AT_CHANCE, color="#d62728", linestyle="--", linewidth=1, label=f"warning below {D_AT_CHANCE}")
    axis.set(title="(a) Does D learn?", ylabel="D's balanced accuracy, held-out crops", ylim=(0.3, 1.02))
    axis = axes[0, 1]
    series(axis, lambda p: p["trained_gsr"]["gradient"]["cosine_adversarial"]["mean"], trained, "#d62728", -0.08)
    series(axis, lambda p: p["reference_gsr"]["gradient"]["cosine_adversarial"]["mean"], "unsharp mask as G_sr",
           "#ff7f0e", 0.08, "s")
    axis.axhline(0.0, color="#616161", linestyle=":")
    axis.set(title="(b) Does it point at the true map?", ylabel="cosine of -grad adversarial with GT - M")
    axis = axes[1, 0]
    series(axis, lambda p: p["trained_gsr"]["gradient"]["ratio"], trained, "#d62728", -0.08, log=True)
    series(axis, lambda p: p["reference_gsr"]["gradient"]["ratio"], "unsharp mask as G_sr", "#ff7f0e", 0.08, "s",
           log=True)
    axis.axhline(0.1, color="#2ca02c", linestyle="--", linewidth=1, label="0.1 (issue 26's target)")
    axis.set_yscale("log")
    axis.set(title="(c) Is it heard against the prior?", ylabel="|grad adversarial| / |grad weighted prior|")
    axis = axes[1, 1]
    series(axis, lambda p: p["trained_gsr"]["gt_beats"]["zeros"], "GT beats M = 0 (deblur everywhere)", "#9467bd")
    series(axis, lambda p: p["trained_gsr"]["gt_beats"]["prior"], "GT beats B(I)", "#8c564b", 0.08, "s")
    axis.axhline(0.5, color="#616161", linestyle=":")
    axis.set(title="(d) Does D prefer the GT map?", ylabel="share of crops", ylim=(-0.02, 1.02))
    for axis in axes.ravel():
        axis.set_xticks(x, [PHASE_NAMES.get(stage, stage) for stage, _ in stages])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    fig.suptitle("Does D teach the true map? (apl probe; " + (f"mean ± std over {seeds} seeds, dots: each seed)"
                 if seeds > 1 else "one seed)"), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
