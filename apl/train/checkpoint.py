"""Checkpoints: plain weights for later stages, a separate resume state for interrupted runs.

Both are written atomically (temp file in the same folder, then os.replace), so a process killed at
any moment leaves either the previous complete file or the new complete file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def atomic_save(obj, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, made_by: str | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        hint = f"; the rule `{made_by}` makes it" if made_by else ""
        raise FileNotFoundError(f"checkpoint missing: {path}{hint}")
    return torch.load(path, map_location="cpu", weights_only=False)


def save_weights(path: str | Path, networks: dict[str, torch.nn.Module], meta: dict) -> None:
    """The file later stages read: {"networks": {name: state_dict}, "meta": {...}}."""
    atomic_save({"networks": {name: net.state_dict() for name, net in networks.items()}, "meta": meta}, path)
