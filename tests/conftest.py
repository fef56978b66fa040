"""Shared fixtures: the smallest profile's config and its data, built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apl import config as config_module

ROOT = Path(__file__).resolve().parents[1]
TEST_PROFILE = [ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml"]


def write_override(path: Path, override: dict) -> list[Path]:
    """Config files for the test profile plus an extra override file."""
    path.write_text(yaml.safe_dump(override))
    return TEST_PROFILE + [path]


@pytest.fixture(scope="session")
def test_config() -> dict:
    return config_module.load(TEST_PROFILE)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, test_config):
    """datasets/, synthetic/ and cache/ of the test profile, built by the same functions the rules call."""
    from apl.data.cache import build_cache
    from apl.data.demo import build_demo
    from apl.data.layout import FOLDERS
    from apl.data.synthesis import synthesize_dataset

    root = tmp_path_factory.mktemp("tiny")
    build_demo(test_config, root / "datasets")
    synthesis = test_config["synthesis"]
    synthesize_dataset(root / "datasets" / FOLDERS["fullclear"], root / "synthetic", per_image=synthesis["per_image"],
                       size=test_config["image_size"], seed=0, sigma_range=tuple(synthesis["sigma"]),
                       window=synthesis["window"], blurred_fraction_range=tuple(synthesis["blurred_fraction"]), workers=1,
                       scale=test_config["scale"])
    for which in ("train", "fullclear"):
        build_cache(which, root / "datasets", root / "cache" / f"{which}.npz", test_config, workers=1)
    build_cache("synthetic", root / "synthetic", root / "cache" / "synthetic.npz", test_config, workers=1)
    return root
