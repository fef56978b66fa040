"""After `dvc pull` / `dvc checkout`: timestamps that tell Snakemake the restored outputs are up to date.

DVC restores files from its cache with the time of the checkout as modification time, in no particular
order, and Snakemake reruns a job whose input is newer than its output: a fresh clone plus `dvc pull`
would retrain everything. DVC knows better. Where `dvc status` says a stage's dependencies and outputs
are exactly those recorded in dvc.lock (changed params or command do not matter here: they are not a
question of time, and Snakemake's own params / code triggers are left as they are), the outputs were made
from those dependencies, so every such stage's outputs get one common time, no older than any of their
dependencies: no input is then newer than an output. Stages whose files differ from dvc.lock keep their
times, so Snakemake still reruns what really changed.

Snakemake reads a directory's time from its `.snakemake_timestamp` file when there is one (DVC ignores
that file, see .dvcignore), else from the directory itself; both are set.

`restore_at_start()` runs whenever Snakemake reads the workflow (workflow/rules/dvc.smk; APL_DVC_TIMESTAMPS=0
turns it off). It only stats files, and only asks DVC (a `dvc status` subprocess) when some stage's
outputs are older than its dependencies; `apl dvc-timestamps` does the same on demand.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ENV = "APL_DVC_TIMESTAMPS"    # "0": Snakemake's start-up hook does nothing
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"
# dvc status's words for a dependency or output that still has the content dvc.lock records.
SAME_CONTENT = ("not in cache",)


@dataclass
class Stage:
    name: str
    deps: list[Path]
    outs: list[Path]


@dataclass
class Result:
    dvc_yaml: str
    out_of_order: list[str] = field(default_factory=list)   # stages with an output older than a dependency
    restored: list[str] = field(default_factory=list)       # stages whose outputs got the common time
    changed: dict[str, str] = field(default_factory=dict)   # stages left alone: what dvc status says differs
    time_ns: int | None = None
    dry_run: bool = False

    def summary(self) -> str:
        if not self.out_of_order:
            return f"{self.dvc_yaml}: timestamps already in order"
        verb = "would give" if self.dry_run else "gave"
        text = (f"{self.dvc_yaml}: {len(self.out_of_order)} stage(s) had outputs older than their dependencies; "
                f"{verb} the outputs of {len(self.restored)} stage(s) that match dvc.lock one common time")
        if self.changed:
            shown = [f"{name} ({why})" for name, why in sorted(self.changed.items())]
            more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
            text += (f"; left the {len(shown)} stage(s) whose files differ from dvc.lock for Snakemake to rerun: "
                     + ", ".join(shown[:3]) + more)
        return text


def stages(dvc_yaml: str | Path, root: str | Path = ".") -> dict[str, Stage]:
    """The stages of a dvc.yaml that dvc.lock records, with their paths relative to `root`."""
    root = Path(root)
    dvc_yaml = Path(dvc_yaml)
    lock = (root / dvc_yaml).with_name("dvc.lock")
    if not lock.exists():
        return {}
    definition = yaml.load((root / dvc_yaml).read_text(), Loader=_Loader) or {}
    locked = (yaml.load(lock.read_text(), Loader=_Loader) or {}).get("stages", {})
    found = {}
    for name, spec in (definition.get("stages") or {}).items():
        if name not in locked:
            continue
        wdir = root / dvc_yaml.parent / spec.get("wdir", ".")
        outs = [entry if isinstance(entry, str) else next(iter(entry))
                for key in ("outs", "metrics", "plots") for entry in spec.get(key, [])]
        found[name] = Stage(name, [_path(wdir, p) for p in spec.get("deps", [])], [_path(wdir, p) for p in outs])
    return found


def snakemake_time(path: Path) -> int | None:
    """A path's modification time as Snakemake reads it (ns), or None when it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        try:
            return os.stat(path / SNAKEMAKE_TIMESTAMP).st_mtime_ns
        except FileNotFoundError:
            pass
    return info.st_mtime_ns


def out_of_order(found: dict[str, Stage]) -> list[str]:
    """Stages whose outputs all exist and one of which is older than one of their dependencies."""
    late = []
    for name, stage in found.items():
        outs = [snakemake_time(path) for path in stage.outs]
        if not outs or None in outs:
            continue   # a missing output is rerun by Snakemake in any case
        deps = [t for t in (snakemake_time(path) for path in stage.deps) if t is not None]
        if deps and max(deps) > min(outs):
            late.append(name)
    return late


def dvc_changes(dvc_yaml: str | Path, root: str | Path = ".") -> dict[str, str]:
    """{stage: what differs} for stages whose dependency or output files differ from dvc.lock."""
    result = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", str(dvc_yaml)], cwd=root,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc status {dvc_yaml} failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    text = result.stdout.strip()
    status = json.loads(text[text.index("{"):]) if "{" in text else {}
    changes = {}
    for address, entries in status.items():
        name = address.rsplit(":", 1)[-1]
        differ = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue   # "changed command", "always changed": not a question of files
            for kind in ("changed deps", "changed outs"):
                for path, state in entry.get(kind, {}).items():
                    if isinstance(state, str) and state not in SAME_CONTENT:   # a dict: changed params
                        differ.append(f"{path} {state}")
        if differ:
            changes[name] = ", ".join(differ)
    return changes


def restore(dvc_yaml: str | Path, root: str | Path = ".", dry_run: bool = False) -> Result:
    """Put the outputs of a profile's stages in order where DVC vouches for them (see the module doc)."""
    root = Path(root)
    result = Result(str(dvc_yaml), dry_run=dry_run)
    found = stages(dvc_yaml, root)
    result.out_of_order = out_of_order(found)
    if not result.out_of_order:
        return result
    changes = dvc_changes(dvc_yaml, root)
    result.changed = {name: why for name, why in changes.items() if name in found}
    consistent = [name for name in found if name not in changes]
    outputs = {path for name in consistent for path in found[name].outs}
    common = time.time_ns()
    for name in consistent:
        for path in found[name].deps:
            if path not in outputs:
                common = max(common, snakemake_time(path) or 0)
    result.time_ns = common
    result.restored = consistent
    if not dry_run:
        for name in consistent:
            for path in found[name].outs:
                _set_time(path, common)
    return result


def restore_at_start(dvc_yaml: str | Path, root: str | Path = ".") -> Result | None:
    """The hook Snakemake runs while reading the workflow: quiet unless it changed something; never fatal."""
    if os.environ.get(ENV, "1") == "0" or not (Path(root) / dvc_yaml).exists():
        return None
    try:
        result = restore(dvc_yaml, root)
    except Exception as err:   # noqa: BLE001 - a broken DVC setup must not stop Snakemake
        print(f"apl: could not check the timestamps of DVC-restored files ({err}); "
              f"Snakemake may rerun stages that `dvc pull` / `dvc checkout` restored", file=sys.stderr)
        return None
    if result.out_of_order:
        print(f"apl: {result.summary()}", file=sys.stderr)
    return result


def _set_time(path: Path, ns: int) -> None:
    if path.is_dir():
        marker = path / SNAKEMAKE_TIMESTAMP
        if marker.exists():
            os.utime(marker, ns=(ns, ns))
    if path.is_symlink():
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
    if path.exists():
        os.utime(path, ns=(ns, ns))


def _path(wdir: Path, path: str) -> Path:
    return Path(os.path.normpath(wdir / path))


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
