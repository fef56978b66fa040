"""Figure 7 of the paper: PR curves (top) and F-measure curves (bottom) on both detection test sets."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apl.data.layout import DETECTION_SETS  # noqa: E402
from apl.io import read_json  # noqa: E402

LABELS = {"single_gws": "Single G_ws", "gws_O1": "G_ws O1", "gws_O2": "G_ws O2", "gws_O3": "Ours (G_ws O3)",
          "lbp": "LBP (Yi & Eramian)"}


def label(result: dict) -> str:
    return LABELS.get(result["stage"], result["stage"])


def figure7(metrics_files: list[str | Path], out_png: str | Path) -> list[Path]:
    """Draw every detection results file's curves in the paper's 2x2 layout; write PNG and PDF."""
    results = [read_json(path) for path in metrics_files]
    results = [r for r in results if r["task"] == "detection"]
    if not results:
        raise ValueError("figure7 needs at least one detection results file")
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), constrained_layout=True)
    for column, dataset in enumerate(DETECTION_SETS.values()):
        pr_axis, f_axis = axes[0, column], axes[1, column]
        for result in results:
            curve = result["datasets"][dataset]["pr_curve"]
            style = {"linewidth": 2.4 if result["stage"] == "gws_O3" else 1.4}
            pr_axis.plot(curve["recall"], curve["precision"], label=label(result), **style)
            f_axis.plot(curve["threshold"], curve["fmeasure"], label=label(result), **style)
        pr_axis.set(title=f"{dataset}: precision-recall", xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
        f_axis.set(title=f"{dataset}: F-measure", xlabel="Threshold", ylabel="F-measure", xlim=(0, 1), ylim=(0, 1.02))
        for axis in (pr_axis, f_axis):
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8, loc="lower left")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for path in (out_png, out_png.with_suffix(".pdf")):
        tmp = path.with_name(f".tmp-{path.name}")
        fig.savefig(tmp, dpi=150, format=path.suffix[1:])
        tmp.replace(path)
        written.append(path)
    plt.close(fig)
    return written
