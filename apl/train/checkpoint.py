"""Checkpoints: plain weights for later stages, a separate resume state for interrupted runs.

Both are written atomically (apl.io.atomic_path), so a process killed at any moment leaves either
the previous complete file or the new complete file.

A weights file describes itself: beside the state dicts its `meta` records the format, the project
version, the networks' architecture (widths, stages, variant), the working resolution and the whole
resolved config the stage was trained with, so `apl predict --weights W` rebuilds the networks with
nothing else. Files written before this (no `format` key) still load when the caller passes the
config they were trained with.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from apl.io import atomic_path

FORMAT = "apl-weights"
FORMAT_VERSION = 1


class WeightsError(ValueError):
    """A weights file is missing, corrupt, of another format, or does not fit the networks; names the file."""


def atomic_save(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, made_by: str | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        hint = f"; the rule `{made_by}` makes it" if made_by else ""
        raise FileNotFoundError(f"checkpoint missing: {path}{hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, AttributeError, ImportError,
            ValueError, KeyError, IndexError, TypeError) as err:
        # torch.load raises any of these for a truncated file, a file of another kind or another pickle.
        raise WeightsError(f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err}); the file is "
                           "corrupt or not a weights.pt: copy it again or rerun the stage that makes it") from None


def architecture(networks: dict[str, torch.nn.Module]) -> dict:
    """What rebuilds each network, read from the modules themselves (for people and for checks)."""
    arch = {}
    for name, net in networks.items():
        entry = {"class": type(net).__name__}
        for attr, key in (("width", "width"), ("variant", "variant"), ("stages_spec", "stages"), ("kind", "kind")):
            value = getattr(net, attr, None)
            if isinstance(value, (int, str, tuple, list)):
                entry[key] = list(value) if isinstance(value, tuple) else value
        arch[name] = entry
    return arch


def save_weights(path: str | Path, networks: dict[str, torch.nn.Module], meta: dict, config: dict | None = None) -> None:
    """The file later stages and `apl predict` read: {"networks": {name: state_dict}, "meta": {...}}.

    With `config` (the resolved config the stage trained with) the file is self-describing: meta also
    holds format, apl_version, architecture, image_size (the working resolution) and config.
    """
    from apl import __version__
    meta = dict(meta)
    if config is not None:
        meta.update(format=FORMAT, format_version=FORMAT_VERSION, apl_version=__version__,
                    architecture=architecture(networks), image_size=config["image_size"], config=config)
    atomic_save({"networks": {name: net.state_dict() for name, net in networks.items()}, "meta": meta}, path)


def load_weights(path: str | Path, config: dict | None = None) -> tuple[dict, dict, dict]:
    """(state dicts by network, meta, the config to build the networks with) of a weights file.

    Self-describing files use the config recorded in them; `config` is only needed (and only used)
    for files saved before weights recorded it. Anything else is a WeightsError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path} is a folder; pass a weights file, e.g. results/demo/runs/seed0/ufat/gsr_O3/weights.pt")
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    saved = load(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("networks"), dict) or not saved["networks"]:
        what = "a resume state (resume.pt)" if isinstance(saved, dict) and "optimizers" in saved else "another format"
        raise WeightsError(f"{path} is not an apl weights file (it is {what}); pass the weights.pt a training stage "
                           "wrote, e.g. results/<profile>/runs/seed0/ufat/gsr_O3/weights.pt")
    meta = saved.get("meta") or {}
    if meta.get("format") == FORMAT:
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise WeightsError(f"{path} has weights format version {meta['format_version']}, newer than this apl "
                               f"({FORMAT_VERSION}); update apl")
        return saved["networks"], meta, meta["config"]
    if config is None:
        raise WeightsError(f"{path} was saved before weights files recorded their settings, so the networks' widths "
                           "are unknown: pass the config files it was trained with, e.g. "
                           "-c config/config.yaml -c config/demo.yaml for the demo profile")
    return saved["networks"], meta, config


def load_state(net: torch.nn.Module, state: dict, name: str, path: str | Path) -> None:
    """load_state_dict with an error that says what to do instead of a page of size mismatches."""
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise WeightsError(f"network {name!r} in {path} does not fit the networks built from the config ({first} ...); "
                           "pass the config files the weights were trained with (-c ...), e.g. "
                           "-c config/config.yaml -c config/demo.yaml for the demo profile") from None
