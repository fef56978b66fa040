"""The probe of the promoting mechanism (apl/probe.py, `apl probe`, REPORT.md's "Does D teach the true map?") on
hand-built cases whose answer is known, and on the test profile's pipeline run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from apl.probe import measure, reference_deblurrer, unsharp

SIZE = 32
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]


def local_energy(x: torch.Tensor) -> torch.Tensor:
    """Laplacian energy of the grey image in 8x8 patches."""
    grey = F.pad(x.mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(F.conv2d(grey, LAPLACIAN) ** 2, 8)


def box(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)


@pytest.fixture()
def half_blurred():
    """Textured crops whose right half is blurred (GT: left in focus), and the natural texture's energy."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(12, 1, SIZE, SIZE, generator=generator).repeat(1, 3, 1, 1)
    sharp = 0.25 + 0.5 * box(noise)           # a texture that stays within [0, 1] when sharpened
    blurred = sharp.clone()
    soft = box(sharp)
    blurred[..., SIZE // 2:] = soft[..., SIZE // 2:]
    masks = torch.zeros(12, 1, SIZE, SIZE)
    masks[..., : SIZE // 2] = 1.0
    natural = local_energy(sharp).mean()
    return blurred, masks, sharp, natural


@pytest.mark.parametrize("verdict", ["global", "patch"])
def test_a_d_that_knows_natural_sharpness_teaches_the_true_map(half_blurred, verdict):
    """D scores how close each patch's sharpness is to natural photographs'; G_sr sharpens (an unsharp mask).
    Then sharpening the blurred half is rewarded and over-sharpening the sharp half is not: D prefers the GT mask
    to deblurring everywhere (M = 0) and to nothing (M = 1), and minus its gradient points toward GT - M. The same
    holds for a patch D (models.discriminator.kind patch), one logit per 8 x 8 patch."""
    images, masks, sharp, natural = half_blurred

    def d(x):   # a logit: high where every patch has natural sharpness (or one per patch)
        logits = 4.0 - 40.0 * (local_energy(x) / natural - 1.0).abs().flatten(1)
        return logits if verdict == "patch" else logits.mean(1)

    assert (unsharp(images) - images)[..., SIZE // 2:].abs().mean() > 0.005   # the reference really sharpens
    start = torch.full_like(masks, 0.5)
    result = measure(start, reference_deblurrer, d, images, masks, priors=start.clone(), reals=sharp,
                     prior_weight=1.0, reduction="sum")
    assert result["gt_beats"]["zeros"] == 1.0 and result["gt_beats"]["ones"] == 1.0
    assert result["gt_beats"]["inverted_gt"] == 1.0
    cosine = result["gradient"]["cosine_adversarial"]
    assert cosine["mean"] > 0.3 and cosine["share_positive"] == 1.0
    assert result["gradient"]["adversarial_per_pixel"] > 0
    # the prior is B(I) = 0.5 here, where the map already is: no prior gradient, and the ratio says so
    assert result["gradient"]["prior_per_pixel"] == 0 and np.isnan(result["gradient"]["ratio"])
    # the unsharp mask changes blurred pixels, and sharp ones more (it sharpens every pixel, map or not)
    levels = result["restoration_levels"]
    assert 0 < levels["defocused"] < levels["in_focus"]
    assert result["deblurred_vs_input"]["share_preferred"] == 1.0   # sharpening the blurred half is preferred


def test_a_constant_d_gives_no_gradient_and_no_preference(half_blurred):
    images, masks, sharp, _ = half_blurred
    prior = masks.clone()
    start = torch.full_like(masks, 0.5)
    result = measure(start, reference_deblurrer, lambda x: torch.zeros(len(x)), images, masks, priors=prior,
                     reals=sharp, prior_weight=1.0, reduction="sum")
    assert result["gradient"]["adversarial_per_pixel"] == 0 and result["gradient"]["ratio"] == 0
    assert result["gradient"]["cosine_adversarial"]["mean"] == 0
    assert result["d"]["accuracy"] == 0.5                     # a logit of 0 is neither real nor fake
    assert all(share == 0 for share in result["gt_beats"].values())   # ties: the GT mask beats nothing
    # the prior's gradient, at a map of 0.5 with B(I) = GT, points straight at the truth
    assert result["gradient"]["cosine_prior"]["mean"] == pytest.approx(1.0)
    assert result["gradient"]["prior_per_pixel"] == pytest.approx(1.0 / len(images))   # summed L1, batch mean


def test_the_pipeline_probes_every_adversarial_stage_and_reports_it(pipeline_run):
    from apl.train.schedule import PHASES
    finished = pipeline_run / "results" / "test"
    for stage in PHASES:
        probe = json.loads((finished / "probe" / "seed0" / "ufat" / f"{stage}.json").read_text())
        assert probe["stage"] == stage and probe["images"] in ("val", "train")
        for which in ("trained_gsr", "reference_gsr"):
            result = probe[which]
            assert result["n_crops"] == 8 and 0 <= result["d"]["accuracy"] <= 1
            assert -1 <= result["gradient"]["cosine_adversarial"]["mean"] <= 1
            assert result["gradient"]["prior_per_pixel"] > 0
    report = (finished / "REPORT.md").read_text()
    section = report.split("## Does D teach the true map?")[1].split("\n## ")[0]
    assert all(f"| {stage} | 1 |" in section for stage in PHASES)
    assert "(#does-d-teach-the-true-map)" in report
    assert "](figures/probe.png)" in section and (finished / "figures" / "probe.pdf").stat().st_size > 0


def _probe(stage: str, seed: int, accuracy: float, ratio: float) -> dict:
    result = {"d": {"accuracy": accuracy}, "gt_beats": {"zeros": 0.25, "prior": 0.5},
              "gradient": {"ratio": ratio, "cosine_adversarial": {"mean": 0.01 * seed}}}
    return {"stage": stage, "seed": seed, "variant": "guard", "trained_gsr": result, "reference_gsr": result}


def test_the_probe_figure_draws_each_phase_mean_over_seeds(tmp_path):
    from apl.report import figures
    files = []
    for seed, accuracy in ((0, 0.5), (1, 0.7)):
        for stage in ("gsr_O1", "gws_O1"):   # drawn in the schedule's order, whatever the files' order
            path = tmp_path / f"seed{seed}" / f"{stage}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(_probe(stage, seed, accuracy, ratio=10.0 ** -(seed + 5))))
            files.append(path)
    png, pdf = figures.probe_figure(files, tmp_path / "probe.png")
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    fig = figures.draw_probe_figure(figures._probe_groups(files))
    accuracy, ratio = fig.axes[0].lines[0], fig.axes[2].lines[0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0].startswith("G$_{ws}$ O1")
    assert accuracy.get_ydata() == pytest.approx([0.6, 0.6])                 # the mean of the seeds
    assert ratio.get_ydata() == pytest.approx([10 ** -5.5, 10 ** -5.5])      # geometric on the log axis
    with pytest.raises(ValueError, match="at least one probe file"):
        figures.probe_figure([], tmp_path / "none.png")
