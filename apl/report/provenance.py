"""Where and with what a result was made: machine, device, git commit, package versions, stage times."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "scikit-image", "pillow", "matplotlib", "pysodmetrics",
            "pandas", "snakemake", "dvc")
_FINISHED = re.compile(r"apl: (?P<command>[\w-]+) finished in (?P<seconds>[0-9.]+) s")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device: str = "cpu") -> str:
    """One line naming the machine a timing was measured on: CPU, cores, and the GPU when one was used."""
    text = f"{cpu_name()}, {os.cpu_count()} logical cores, {platform.system()}"
    if str(device).startswith("cuda"):
        try:
            import torch
            text = f"{torch.cuda.get_device_name(torch.device(device))} GPU; {text}"
        except (ImportError, RuntimeError, AssertionError):
            text = f"{device}; {text}"
    return text


def git_commit(where: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=where)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=where)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions(packages=PACKAGES) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def stage_times(logs_dir: str | os.PathLike) -> list[dict]:
    """Wall time of every pipeline step, read from the last 'apl: <command> finished in N s' line of each
    rule's log (the apl CLI writes it when a step succeeds); one dict per log: log, command, seconds."""
    logs_dir = Path(logs_dir)
    rows = []
    for path in sorted(logs_dir.rglob("*.log")):
        try:
            matches = list(_FINISHED.finditer(path.read_text(errors="replace")))
        except OSError:
            continue
        if matches:
            last = matches[-1]
            rows.append({"log": path.relative_to(logs_dir).with_suffix("").as_posix(),
                         "command": last["command"], "seconds": float(last["seconds"])})
    return rows
