"""Configuration: load profile files, merge them in order, validate against the one schema.

Snakemake reads the same files (`configfile:` + `--configfile`) and validates with the same
schema, so the pipeline and the CLI can never disagree about a value.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"
# The paper profile, packaged with apl (a link to config/config.yaml, copied into built wheels), so `apl`
# works from any folder without -c.
DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key."""


def merge(base: dict, override: dict) -> dict:
    """Deep-merge `override` into a copy of `base` (nested dicts merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate(config: dict, source: str = "configuration") -> dict:
    """Raise ConfigError naming the offending key; return the config unchanged when valid."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
            lines.append(f"  key '{key}': {error.message}")
        raise ConfigError(f"invalid {source}:\n" + "\n".join(lines) + "\nfix these keys (documented in " f"{SCHEMA_PATH})")
    for key in ("sigma", "blurred_fraction"):
        low, high = config["synthesis"][key]
        if not low <= high:
            raise ConfigError(f"invalid {source}: key 'synthesis.{key}' must be [low, high] with low <= high")
    _check_data(config["data"], source)
    return config


def _check_data(data: dict, source: str) -> None:
    """What the schema cannot say: absent sets expect no images; the splits need real data to split."""
    for name in ("dut", "dp"):
        absent, want = data["sets"][name] == "none", data["expected_counts"][name]
        if absent and want not in (0, None):
            raise ConfigError(f"invalid {source}: data.sets.{name} is none (absent) but "
                              f"data.expected_counts.{name} is {want}; set it to 0")
        if not absent and want == 0:
            raise ConfigError(f"invalid {source}: data.expected_counts.{name} is 0 but data.sets.{name} is "
                              f"{data['sets'][name]!r}; set data.sets.{name}: none for an absent set")
    if data["validation"] and (data["source"] != "download" or data["sets"]["train"] == "packed"):
        raise ConfigError(f"invalid {source}: data.validation needs CUHK's own training images and masks "
                          "(data.source: download, data.sets.train: original or original_cuhk); set it to 0")
    if data["heldout_fullclear"] and data["source"] != "download":
        raise ConfigError(f"invalid {source}: data.heldout_fullclear needs data.source: download; set it to 0")


def load(paths: list[str | os.PathLike] | None = None) -> dict:
    """Merge the config files in order (the first is the full paper profile) and validate."""
    if not paths:
        paths = [DEFAULT_CONFIG]
    paths = [Path(p) for p in paths]
    config: dict = {}
    for path in paths:
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys")
        config = merge(config, data)
    return validate(config, source=" + ".join(str(p) for p in paths))


def dataset_counts(config: dict) -> dict:
    """The image counts each prepared set must have (the demo builds exactly its own counts)."""
    data = config["data"]
    return data["demo"]["counts"] if data["source"] == "demo" else data["expected_counts"]
