"""Checkpoints: plain weights for later stages, a separate resume state for interrupted runs.

Both are written atomically (apl.io.atomic_path), so a process killed at any moment leaves either
the previous complete file or the new complete file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from apl.io import atomic_path


def atomic_save(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, made_by: str | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        hint = f"; the rule `{made_by}` makes it" if made_by else ""
        raise FileNotFoundError(f"checkpoint missing: {path}{hint}")
    return torch.load(path, map_location="cpu", weights_only=False)


def save_weights(path: str | Path, networks: dict[str, torch.nn.Module], meta: dict) -> None:
    """The file later stages read: {"networks": {name: state_dict}, "meta": {...}}."""
    atomic_save({"networks": {name: net.state_dict() for name, net in networks.items()}, "meta": meta}, path)
