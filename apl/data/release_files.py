"""The authors' released checkpoints as inputs of the pipeline: where they are placed, whether they are there,
where to get them, and the names of their results (rule evaluate_release; apl/models/release.py converts them).

The release (github.com/wdzhao123/APL) offers DBD.pth and deblur.pth on share pages that need a browser, so
nothing here downloads them: a user puts them at the paths of config keys release.dbd / release.deblur.
Absent files are no error anywhere: their results files say "not run: weights absent" and so do the rows.
Light on imports on purpose: the workflow reads this module while Snakemake parses it.
"""
from __future__ import annotations

from pathlib import Path

RELEASE_URL = "https://github.com/wdzhao123/APL"
# where the release's README ("Test": "Here are our parameters") links them
RELEASE_PAGES = (
    "https://drive.google.com/drive/folders/1lPcoIY-lqKAvsfvuYUgB9mmM6YKBy2h8?usp=sharing (Google Drive folder)",
    "https://pan.baidu.com/s/1sAbhPioPCLrsAid1W8UMAg?pwd=t8hq (Baidu share, password t8hq)",
)
RELEASE_FILES = {"dbd": "DBD.pth", "deblur": "deblur.pth"}   # config key release.<key> -> the release's file
# results/<profile>/metrics/release/<stage>.json, one per task (detection needs DBD.pth, deblurring both files)
RELEASE_RUN = "release"
RELEASE_STAGES = {"release_gws": "detection", "release_gsr": "deblurring"}
RELEASE_NEEDS = {"release_gws": ("dbd",), "release_gsr": ("dbd", "deblur")}
WEIGHTS_ABSENT = "not run: weights absent"


def absent_result(stage: str, missing: list[str]) -> dict:
    """The results file of a release stage whose checkpoints are absent: the tables' rows say `status`."""
    return {"absent": True, "status": WEIGHTS_ABSENT, "task": RELEASE_STAGES[stage], "stage": stage,
            "variant": RELEASE_RUN, "datasets": {}, "missing": list(missing)}


def release_files(config: dict) -> dict[str, Path | None]:
    """{"dbd": path, "deblur": path} of the release's checkpoints the config names (release.dbd / .deblur),
    None where the file is not there."""
    return {key: (Path(config["release"][key]) if Path(config["release"][key]).is_file() else None)
            for key in RELEASE_FILES}


def release_fingerprint(config: dict) -> dict[str, list[int] | None]:
    """{key: [bytes, mtime_ns], or None where absent}: a param of rule evaluate_release, so that placing,
    replacing or removing a file reruns it (its inputs cannot name files that may be absent)."""
    return {key: (None if path is None else [path.stat().st_size, path.stat().st_mtime_ns])
            for key, path in release_files(config).items()}


def release_instructions(config: dict, indent: str = "  ") -> str:
    """Where to get the release's checkpoints and the exact paths to put them at (those still missing)."""
    found = release_files(config)
    missing = [key for key, path in found.items() if path is None]
    if not missing:
        return (f"{indent}the authors' released weights are in place ("
                + ", ".join(config["release"][key] for key in RELEASE_FILES)
                + "): rule evaluate_release imports and scores them")
    lines = [f"{indent}the authors' released weights (optional; rows \"authors' released model\" of Tables 1, 2, 4 "
             "and 5) are not in place. They are never downloaded (the pages need a browser):"]
    lines += [f"{indent}  visit {page}" for page in RELEASE_PAGES]
    for key in missing:
        lines.append(f"{indent}    download {RELEASE_FILES[key]} and put it at {Path(config['release'][key]).absolute()}"
                     f"  (config key release.{key})")
    lines.append(f"{indent}  then run snakemake again: rule evaluate_release imports them (apl import-release) and "
                 "scores them on this profile's test sets")
    return "\n".join(lines)
