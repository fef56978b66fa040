"""tests/bench_claims.py, the real-data benchmark's claims: an ordering beyond the seeds' spread is "n/a" when a
trained stage has one seed, and is judged when it has several."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_claims  # noqa: E402

SCORES = {"CUHK": {"fmax": 0.8, "mae": 0.12}, "Validation": {"fmax": 0.75, "mae": 0.2},
          "Synthetic held-out": {"psnr_pooled": 30.0, "ssim": 0.9, "clipped": 0.01},
          "Real photographs": {"colour_shift_in_focus": 0.2, "colour_shift_blurred": 0.5}}
BASELINES = ("lbp", "svd", "hifst", "input")
TRAINED = {"single": ("single_gws", "single_gws_masks", "single_gsr"),
           "guard": ("pretrain", *(f"{kind}_O{n}" for n in (1, 2, 3) for kind in ("gws", "gsr")))}


def results(root: Path, seeds: int, gain: float) -> Path:
    """A results folder: every stage scores SCORES, G_ws O3 `gain` F_max above (and MAE below) the rest; seeds
    differ by 0.001."""
    def write(path, shift=0.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        scores = json.loads(json.dumps(SCORES))
        for dataset in ("CUHK", "Validation"):
            scores[dataset]["fmax"] += shift
            scores[dataset]["mae"] -= shift
        path.write_text(json.dumps({"datasets": scores}))
    for name in BASELINES:
        write(root / "metrics" / "baselines" / f"{name}.json")
    for seed in range(seeds):
        for run, stages in TRAINED.items():
            for stage in stages:
                write(root / "metrics" / f"seed{seed}" / run / f"{stage}.json",
                      0.001 * seed + (gain if stage == "gws_O3" else 0.0))
    return root


def verdicts(root: Path) -> dict[str, bool | None]:
    run = bench_claims.main_run(root)
    assert run == "guard"
    return {claim: holds for claim, _, holds in bench_claims.claims(root, run)}


def test_one_seed_gives_no_verdict_on_orderings_beyond_the_spread(tmp_path):
    found = verdicts(results(tmp_path, seeds=1, gain=0.05))
    assert found["CUHK: G_ws O3 above Single beyond 2 std (both metrics)"] is None
    assert found["G_sr O3 above pretraining beyond 2 std"] is None
    # claims that need no spread are still judged
    assert found["CUHK: Single G_ws at most 0.02 below B(I)"] is True


def test_several_seeds_judge_orderings_beyond_the_spread(tmp_path):
    found = verdicts(results(tmp_path / "a", seeds=3, gain=0.05))
    assert found["CUHK: G_ws O3 above Single beyond 2 std (both metrics)"] is True
    found = verdicts(results(tmp_path / "b", seeds=3, gain=0.001))
    assert found["CUHK: G_ws O3 above Single beyond 2 std (both metrics)"] is False
    assert found["G_sr O3 above pretraining beyond 2 std"] is False
