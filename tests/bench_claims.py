"""The real-data benchmark's claims (issue 19), checked on a finished run: mean +- std over its training seeds.

    python tests/bench_claims.py results/cuhk            # after: snakemake --cores 2 --configfile config/cuhk.yaml

Reads only the run's metrics files. Every claim is printed with its numbers and whether it holds; an ordering
holds only when it is beyond the spread over the seeds (the difference of the means above twice the larger of
the two standard deviations). Detection claims are checked on the test set and on the validation split.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def values(results: Path, run: str, stage: str, dataset: str, key: str) -> list[float]:
    """One value per seed (one for a baseline)."""
    if run == "baselines":   # learns nothing: one value, no seeds
        paths = [results / "metrics" / "baselines" / f"{stage}.json"]
        return Fixed(float(json.loads(path.read_text())["datasets"][dataset][key]) for path in paths)
    else:
        paths = sorted((results / "metrics").glob(f"seed*/{run}/{stage}.json"))
    if not paths:
        raise SystemExit(f"no metrics for {run}/{stage} under {results / 'metrics'}: run the pipeline first")
    return [float(json.loads(path.read_text())["datasets"][dataset][key]) for path in paths]


def summary(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def text(xs: list[float], digits: int = 3) -> str:
    mean, std = summary(xs)
    return f"{mean:.{digits}f} +- {std:.{digits}f}" if len(xs) > 1 else f"{mean:.{digits}f}"


def beyond(better: list[float], worse: list[float], lower_is_better: bool = False) -> bool | None:
    """better's mean beats worse's by more than twice the larger standard deviation; None (n/a) where a side has
    one value only and so no spread (a trained stage of a one-seed run)."""
    if any(len(xs) < 2 and not _is_fixed(xs) for xs in (better, worse)):
        return None
    (mb, sb), (mw, sw) = summary(better), summary(worse)
    gap = (mw - mb) if lower_is_better else (mb - mw)
    return gap > 2 * max(sb, sw)


def _is_fixed(xs: list[float]) -> bool:   # marked by values(): a baseline, which learns nothing and has no seeds
    return getattr(xs, "fixed", False)


class Fixed(list):
    fixed = True


def main_run(results: Path) -> str:
    """The main run's folder (train.variant: ufat, guard, ...): the one with G_ws O3's metrics."""
    runs = sorted({path.parent.name for path in (results / "metrics").glob("seed*/*/gws_O3.json")})
    if len(runs) != 1:
        raise SystemExit(f"expected one run with gws_O3 under {results / 'metrics'}, found {runs or 'none'}")
    return runs[0]


def probe_claims(results: Path, run: str) -> list[tuple[str, str, bool | None]]:
    """The promoting mechanism (REPORT.md's "Does D teach the true map?"), from the probe's files."""
    rows = []
    probes = {stage: [json.loads(p.read_text())["trained_gsr"] for p in sorted(results.glob(f"probe/seed*/{run}/{stage}.json"))]
              for stage in [f"{kind}_O{n}" for n in (1, 2, 3) for kind in ("gws", "gsr")]}
    if not any(probes.values()):
        return [("D above chance at the end of every phase (probe)", "no probe files: rerun the pipeline", None)]
    accuracy = {stage: [p["d"]["accuracy"] for p in found] for stage, found in probes.items() if found}
    rows.append(("D above chance (balanced accuracy >= 0.6) at the end of every phase",
                 ", ".join(f"{stage} {text(values_, 2)}" for stage, values_ in accuracy.items()),
                 all(summary(v)[0] >= 0.6 for v in accuracy.values())))
    for n in (1, 2, 3):
        found = probes[f"gws_O{n}"]
        if not found:
            continue
        cosine = [p["gradient"]["cosine_adversarial"]["mean"] for p in found]
        ratio = [p["gradient"]["ratio"] for p in found]
        mean, std = summary(cosine)
        rows.append((f"G_ws O{n}: adversarial cosine with (GT - M) above 0 beyond 2 std, gradient ratio >= 0.1",
                     f"cosine {text(cosine, 4)}, ratio {summary(ratio)[0]:.1e} +- {summary(ratio)[1]:.1e}",
                     None if len(cosine) < 2 else (mean > 2 * std and summary(ratio)[0] >= 0.1)))
    return rows


def claims(results: Path, run: str) -> list[tuple[str, str, bool | None]]:
    rows = []
    for dataset in ("CUHK", "Validation"):
        def det(run, stage, key):
            return values(results, run, stage, dataset, key)
        prior_f, prior_m = det("baselines", "lbp", "fmax"), det("baselines", "lbp", "mae")
        single_f, single_m = det("single", "single_gws", "fmax"), det("single", "single_gws", "mae")
        o_f = {n: det(run, f"gws_O{n}", "fmax") for n in (1, 2, 3)}
        o_m = {n: det(run, f"gws_O{n}", "mae") for n in (1, 2, 3)}
        pf, pm = summary(prior_f)[0], summary(prior_m)[0]
        rows.append((f"{dataset}: Single G_ws at most 0.02 below B(I)",
                     f"F_max {text(single_f)} vs {pf:.3f}; MAE {text(single_m)} vs {pm:.3f}",
                     summary(single_f)[0] >= pf - 0.02 and summary(single_m)[0] <= pm + 0.02))
        rows.append((f"{dataset}: G_ws O3 above Single beyond 2 std (both metrics)",
                     f"F_max {text(o_f[3])} vs {text(single_f)}; MAE {text(o_m[3])} vs {text(single_m)}",
                     both(beyond(o_f[3], single_f), beyond(o_m[3], single_m, lower_is_better=True))))
        rows.append((f"{dataset}: G_ws O3 level with B(I) (F_max >= B(I) - 0.01, MAE <= B(I))",
                     f"F_max {text(o_f[3])} vs {pf:.3f}; MAE {text(o_m[3])} vs {pm:.3f}",
                     summary(o_f[3])[0] >= pf - 0.01 and summary(o_m[3])[0] <= pm))
        rows.append((f"{dataset}: G_ws O1 / O2 / O3 (F_max)", " / ".join(text(o_f[n]) for n in (1, 2, 3)),
                     summary(o_f[1])[0] <= summary(o_f[2])[0] <= summary(o_f[3])[0]))

    held = "Synthetic held-out"
    def psnr(run, stage):
        return values(results, run, stage, held, "psnr_pooled")
    o = {n: psnr(run, f"gsr_O{n}") for n in (1, 2, 3)}
    pre, source = psnr(run, "pretrain"), psnr("baselines", "input")
    base = summary(source)[0]
    rows.append(("pretraining and G_sr O3 at least +1.5 dB above the input (held-out pooled PSNR)",
                 f"pretraining {text([v - base for v in pre], 2)} dB, O3 {text([v - base for v in o[3]], 2)} dB "
                 f"(input {base:.2f} dB)", summary(pre)[0] - base >= 1.5 and summary(o[3])[0] - base >= 1.5))
    rows.append(("G_sr O1 <= O2 <= O3 (held-out pooled PSNR, dB)", " / ".join(text(o[n], 2) for n in (1, 2, 3)),
                 summary(o[1])[0] <= summary(o[2])[0] <= summary(o[3])[0]))
    rows.append(("G_sr O3 above pretraining beyond 2 std", f"{text(o[3], 2)} vs {text(pre, 2)}", beyond(o[3], pre)))
    rows.append(("G_sr O3 above the unchanged input", f"{text(o[3], 2)} vs {summary(source)[0]:.2f}",
                 summary(o[3])[0] > summary(source)[0]))
    added = [a - summary(values(results, "baselines", "input", held, "clipped"))[0]
             for a in values(results, run, "gsr_O3", held, "clipped")]
    rows.append(("G_sr O3 saturates under 0.5% of values beyond the input's saturation",
                 f"{text([100 * a for a in added], 2)} %", summary(added)[0] < 0.005))
    shift = values(results, run, "gsr_O3", "Real photographs", "colour_shift_in_focus")
    blurred = values(results, run, "gsr_O3", "Real photographs", "colour_shift_blurred")
    rows.append(("G_sr O3 on real photographs: colour shift under one 8-bit level in focus",
                 f"in focus {text(shift, 2)}, blurred regions {text(blurred, 2)} levels", summary(shift)[0] < 1.0))
    return rows + probe_claims(results, run)


def both(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a and b


def detection_rows(run: str) -> list[tuple[str, str, str]]:
    return [("B(I), the teacher (LBP + matting)", "baselines", "lbp"), ("SVD (ours)", "baselines", "svd"),
            ("HiFST-style (ours)", "baselines", "hifst"), ("Single G_ws", "single", "single_gws"),
            ("Single G_ws on GT masks", "single", "single_gws_masks"),
            *[(f"G_ws O{n}", run, f"gws_O{n}") for n in (1, 2, 3)]]


def deblur_rows(run: str) -> list[tuple[str, str, str]]:
    return [("defocused input, unchanged", "baselines", "input"), ("pretrain", run, "pretrain"),
            ("Single G_sr (U-GAN)", "single", "single_gsr"), *[(f"G_sr O{n}", run, f"gsr_O{n}") for n in (1, 2, 3)]]


def stage_tables(results: Path, run: str) -> str:
    """Every stage's scores, mean +- std over the seeds: detection on CUHK's test set and the validation split,
    deblurring on the held-out synthetic pairs and the real photographs' colour shift."""
    lines = ["| stage | CUHK test F_max | CUHK test MAE | validation F_max | validation MAE |", "|---|---|---|---|---|"]
    for name, run, stage in detection_rows(run):
        try:
            cells = [text(values(results, run, stage, dataset, key)) for dataset in ("CUHK", "Validation")
                     for key in ("fmax", "mae")]
        except SystemExit:
            continue
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| stage | held-out pooled PSNR (dB) | held-out SSIM | saturated values | colour shift in focus / "
              "blurred (8-bit levels, real photographs) |", "|---|---|---|---|---|"]
    for name, run, stage in deblur_rows(run):
        held = "Synthetic held-out"
        cells = [text(values(results, run, stage, held, "psnr_pooled"), 2), text(values(results, run, stage, held, "ssim")),
                 text([100 * v for v in values(results, run, stage, held, "clipped")], 2) + " %",
                 text(values(results, run, stage, "Real photographs", "colour_shift_in_focus"), 2) + " / "
                 + text(values(results, run, stage, "Real photographs", "colour_shift_blurred"), 2)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results/<profile> of a finished run")
    args = parser.parse_args()
    seeds = sorted(p.name for p in (args.results / "metrics").glob("seed*"))
    print(f"{args.results}: {len(seeds)} training seeds ({', '.join(seeds)})\n")
    print("| claim | measured (mean +- std over seeds) | holds |\n|---|---|---|")
    run = main_run(args.results)
    for claim, measured, holds in claims(args.results, run):
        verdict = "n/a" if holds is None else "yes" if holds else "**no**"
        print(f"| {claim} | {measured} | {verdict} |")
    print()
    print(stage_tables(args.results, run))


if __name__ == "__main__":
    main()
