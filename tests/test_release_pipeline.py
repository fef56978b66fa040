"""The authors' released model in the pipeline (rule evaluate_release, `apl evaluate-release`).

Random-valued checkpoints with the release's key names (tests/test_release.py) are placed at the paths of
config keys release.dbd / release.deblur; the command the rule runs imports them and scores them on the test
profile's demo data with the protocol of every stage. Without them it writes results files that say
"not run: weights absent", and never fails.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from apl.cli import main
from apl.data.release_files import RELEASE_PAGES, WEIGHTS_ABSENT, release_fingerprint, release_instructions
from apl.io import list_images, read_image
from apl.predict import resize_image
from conftest import TEST_PROFILE
from test_release import dbd_table, deblur_table, normalise, random_state, ref_dbd, ref_generator, unnormalise_clip


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, test_config):
    """The test profile's demo datasets, each test set cut to its first KEEP images: the release's networks are
    full size (their shapes are the release's) and run at 160 x 160, some seconds a photo on one CPU thread."""
    from apl.data.demo import build_demo
    root = tmp_path_factory.mktemp("release_data") / "datasets"
    build_demo(test_config, root)
    for folders in (("cuhk/images", "cuhk/masks"), ("dut/images", "dut/masks"), ("dp/source", "dp/target")):
        for folder in folders:
            for path in sorted(list_images(root / folder).values())[KEEP:]:
                path.unlink()
    return root


KEEP = 1


def profile(tmp_path, release_dir):
    """The test profile's config files plus one that moves release.* into `release_dir`."""
    override = tmp_path / "release.yaml"
    override.write_text(yaml.safe_dump({"release": {"dbd": str(release_dir / "DBD.pth"),
                                                    "deblur": str(release_dir / "deblur.pth")}}))
    return [str(path) for path in TEST_PROFILE] + [str(override)]


def evaluate_release(files, datasets, out):
    """The evaluate_release rule's command, called in this process."""
    flags = [part for path in files for part in ("-c", path)]
    assert main(["evaluate-release", *flags, "--datasets", str(datasets), "--run-dir", str(out / "runs" / "release"),
                 "--maps", str(out / "maps" / "release"), "--out-dir", str(out / "metrics" / "release")]) == 0
    return {stage: json.loads((out / "metrics" / "release" / f"{stage}.json").read_text())
            for stage in ("release_gws", "release_gsr")}


def test_without_the_checkpoints_the_results_say_weights_absent(datasets, tmp_path, capsys):
    files = profile(tmp_path, tmp_path / "nowhere")
    results = evaluate_release(files, datasets, tmp_path / "out")
    for stage, result in results.items():
        assert result["absent"] is True and result["status"] == WEIGHTS_ABSENT and result["datasets"] == {}
        assert str(tmp_path / "nowhere" / "DBD.pth") in result["missing"]
    assert str(tmp_path / "nowhere" / "deblur.pth") in results["release_gsr"]["missing"]
    assert not (tmp_path / "out" / "runs" / "release" / "weights.pt").exists()
    printed = capsys.readouterr().out
    for page in RELEASE_PAGES:   # where to get them and where to put them
        assert page in printed
    assert f"put it at {tmp_path / 'nowhere' / 'DBD.pth'}" in printed


def test_placed_checkpoints_are_imported_and_scored_on_every_test_set(datasets, tmp_path):
    release_dir = tmp_path / "raw" / "release"
    release_dir.mkdir(parents=True)
    states = {"DBD.pth": random_state(dbd_table(), 1), "deblur.pth": random_state(deblur_table(), 2)}
    files = profile(tmp_path, release_dir)
    config = {"release": {"dbd": str(release_dir / "DBD.pth"), "deblur": str(release_dir / "deblur.pth")}}
    assert release_fingerprint(config) == {"dbd": None, "deblur": None}
    for name, state in states.items():
        torch.save(state, release_dir / name)
    assert all(release_fingerprint(config).values())       # placing the files changes the rule's params
    assert "are in place" in release_instructions(config)
    out = tmp_path / "out"
    results = evaluate_release(files, datasets, out)
    detection, deblurring = results["release_gws"], results["release_gsr"]
    assert detection["task"] == "detection" and {"CUHK", "DUT"} <= set(detection["datasets"])
    assert deblurring["task"] == "deblurring" and "DP" in deblurring["datasets"]
    for result in results.values():
        assert not result.get("absent") and result["variant"] == "release" and result["seconds_per_image"] > 0
        assert result["image_size"] == 160 and result["scale"]["mode"] == "squash"   # the release's 160 x 160
        assert result["release"]["dbd"]["file"] == "DBD.pth"
        assert result["timing"]["images"] > 0
    assert detection["datasets"]["CUHK"]["n_images"] == detection["datasets"]["DUT"]["n_images"] == KEEP
    assert deblurring["datasets"]["DP"]["n_images"] == KEEP
    assert 0 <= detection["datasets"]["DUT"]["fmax"] <= 1 and np.isfinite(deblurring["datasets"]["DP"]["psnr"])
    assert (out / "runs" / "release" / "weights.pt").exists()
    assert json.loads((out / "runs" / "release" / "import.json").read_text())["present"] == {"dbd": True, "deblur": True}
    # the saved deblurred image is the release's own output at 160 x 160 (not composited again)
    folder = datasets / "dp" / "source"
    stem, source = sorted(list_images(folder).items())[0]
    saved = np.asarray(Image.open(deblurring["datasets"]["DP"]["pred_dir"] + f"/{stem}.png"), dtype=np.float64) / 255
    photo = resize_image(read_image(source), (160, 160), "bilinear")
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        m = ref_dbd(states["DBD.pth"], normalise(x))
        expected = unnormalise_clip(ref_generator(states["deblur.pth"], normalise(x), m))[0].permute(1, 2, 0).numpy()
    assert saved.shape == (160, 160, 3)
    assert np.abs(saved - expected).max() <= 2 / 255
    maps = list_images(detection["datasets"]["CUHK"]["pred_dir"])
    assert len(maps) == KEEP and read_image(next(iter(maps.values()))).shape[:2] == (160, 160)
