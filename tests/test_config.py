from pathlib import Path

import pytest
import yaml

from apl import config as config_module
from apl.config import ConfigError, load, validate

ROOT = Path(__file__).resolve().parents[1]


def test_profiles_are_valid_and_only_override():
    paper = load([ROOT / "config" / "config.yaml"])
    demo = load([ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml"])
    assert paper["profile"] == "paper" and demo["profile"] == "demo"
    assert paper["train"]["optimizer"] == {"name": "adam", "lr": 2.0e-4, "momentum": 0.9, "beta2": 0.999}
    assert paper["train"]["epochs"] == {"pretrain": 100, "phase": 100, "single": 100, "single_gsr": 100}
    # The demo keeps every key it does not override: same optimiser family, same prior, same synthesis sigma.
    assert {k: v for k, v in demo["train"]["optimizer"].items() if k != "lr"} == \
        {k: v for k, v in paper["train"]["optimizer"].items() if k != "lr"}
    assert demo["prior"] == paper["prior"] and demo["synthesis"]["sigma"] == paper["synthesis"]["sigma"]
    assert demo["models"]["gws"]["width"] < paper["models"]["gws"]["width"]


@pytest.mark.parametrize("profile", ["config.yaml", "demo.yaml", "test.yaml", "cuhk.yaml"])
def test_every_profile_mattes_its_prior_at_its_working_size(profile):
    """B(I)'s matting runs at the size the networks see (image_size), in every squashing profile; the real-data
    profile's photographs (longer side 320) are matted at a longer side of 160, which it can afford."""
    files = [ROOT / "config" / "config.yaml"] + ([ROOT / "config" / profile] if profile != "config.yaml" else [])
    config = load(files)
    expected = 160 if profile == "cuhk.yaml" else "working"
    assert config["prior"]["refine"] == "matting" and config["prior"]["matting_at"] == expected


def test_unknown_and_wrong_keys_are_named(tmp_path):
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    base["train"]["optimizer"]["name"] = "adamw"
    base["models"]["gws"]["widht"] = 3
    with pytest.raises(ConfigError) as err:
        validate(base)
    text = str(err.value)
    assert "train.optimizer.name" in text and "adamw" in text
    assert "widht" in text and "models.gws" in text


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load([tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load([ROOT / "config" / "config.yaml", bad])


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = config_module.merge(base, {"a": {"b": 5}, "d": [2]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_schema_is_shared_with_snakemake():
    link = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert link.resolve() == config_module.SCHEMA_PATH.resolve()


def test_default_config_is_packaged_so_apl_runs_from_any_folder(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)   # no config/ here
    assert config_module.DEFAULT_CONFIG.read_text() == (root / "config" / "config.yaml").read_text()
    assert config_module.load() == config_module.load([root / "config" / "config.yaml"])
