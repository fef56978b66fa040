"""Training: losses fall, runs are deterministic, and a run killed mid-way resumes to the same weights."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from apl import config as config_module
from apl.train import checkpoint, schedule
from apl.train.loop import TrainingError, train_stage
from conftest import write_override


def run_stage(config, stage, data, out, init=None, variant="ufat"):
    return train_stage(config, stage, variant, data / "cache", init, out)


def weights(path):
    return checkpoint.load(path)["networks"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs"


@pytest.fixture(scope="module")
def longer_config(tmp_path_factory):
    files = write_override(tmp_path_factory.mktemp("cfg") / "longer.yaml",
                           {"train": {"epochs": {"pretrain": 6, "phase": 2, "single": 20}, "batch_size": 2,
                                      "optimizer": {"lr": 5.0e-3}}})
    return files, config_module.load(files)


def test_prior_loss_falls_for_single_gws(tiny_data, tmp_path, longer_config):
    _, config = longer_config
    run_stage(config, "single_gws", tiny_data, tmp_path)
    losses = pd.read_csv(tmp_path / "losses.csv")
    per_epoch = losses.groupby("epoch")["prior"].mean()
    assert len(per_epoch) == 20
    assert per_epoch.iloc[-1] < 0.8 * per_epoch.iloc[0]


def test_pretraining_loss_falls(tiny_data, tmp_path, longer_config):
    _, config = longer_config
    run_stage(config, "pretrain", tiny_data, tmp_path)
    per_epoch = pd.read_csv(tmp_path / "losses.csv").groupby("epoch")["pixel"].mean()
    assert per_epoch.iloc[-1] < per_epoch.iloc[0]


@pytest.mark.parametrize("variant", ["ufat", "guard"])
def test_alternation_chain_and_frozen_networks(tiny_data, tmp_path, test_config, variant):
    run_stage(test_config, "pretrain", tiny_data, tmp_path / "pretrain", variant=variant)
    run_stage(test_config, "gws_O1", tiny_data, tmp_path / "gws_O1", init=tmp_path / "pretrain" / "weights.pt",
              variant=variant)
    run_stage(test_config, "gsr_O1", tiny_data, tmp_path / "gsr_O1", init=tmp_path / "gws_O1" / "weights.pt",
              variant=variant)
    pre, ws, sr = (weights(tmp_path / s / "weights.pt") for s in ("pretrain", "gws_O1", "gsr_O1"))
    assert set(ws) == {"gws", "gsr", "d"}
    assert_same_weights({"gsr": pre["gsr"]}, {"gsr": ws["gsr"]})        # G_sr frozen while G_ws trains
    assert_same_weights({"gws": ws["gws"]}, {"gws": sr["gws"]})         # G_ws frozen while G_sr trains
    # D keeps learning in both phases
    assert any(not torch.equal(ws["d"][key], sr["d"][key]) for key in ws["d"] if ws["d"][key].is_floating_point())
    columns = set(pd.read_csv(tmp_path / "gws_O1" / "losses.csv").columns)
    assert {"d", "adv", "prior", "g_total"} <= columns


def test_same_seed_same_weights(tiny_data, tmp_path, test_config):
    run_stage(test_config, "single_gws", tiny_data, tmp_path / "a")
    run_stage(test_config, "single_gws", tiny_data, tmp_path / "b")
    assert_same_weights(weights(tmp_path / "a" / "weights.pt"), weights(tmp_path / "b" / "weights.pt"))


def test_missing_init_is_a_clear_error(tiny_data, tmp_path, test_config):
    with pytest.raises(FileNotFoundError, match="weights.pt"):
        run_stage(test_config, "gws_O1", tiny_data, tmp_path, init=tmp_path / "nowhere" / "weights.pt")


def test_nan_loss_stops_with_phase_epoch_and_step(tiny_data, tmp_path, test_config):
    import copy
    config = copy.deepcopy(test_config)
    config["train"]["optimizer"]["lr"] = float("inf")
    with pytest.raises(TrainingError, match=r"stage single/single_gws epoch 1 step"):
        run_stage(config, "single_gws", tiny_data, tmp_path)
    assert not (tmp_path / "weights.pt").exists()


def test_kill_9_then_rerun_gives_the_uninterrupted_weights(tiny_data, tmp_path, longer_config):
    files, config = longer_config
    run_stage(config, "pretrain", tiny_data, tmp_path / "straight")

    command = [sys.executable, "-m", "apl", "train", *sum((["-c", str(f)] for f in files), []),
               "--stage", "pretrain", "--cache-dir", str(tiny_data / "cache"), "--out-dir", str(tmp_path / "killed")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = tmp_path / "killed" / "resume.pt"
    deadline = time.time() + 120
    while not resume.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert resume.exists(), "the run finished (or never checkpointed) before it could be killed"
    assert checkpoint.load(resume)["epoch"] < 6
    assert not (tmp_path / "killed" / "weights.pt").exists()

    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert_same_weights(weights(tmp_path / "straight" / "weights.pt"), weights(tmp_path / "killed" / "weights.pt"))
    assert len(pd.read_csv(tmp_path / "killed" / "losses.csv")) == len(pd.read_csv(tmp_path / "straight" / "losses.csv"))
    assert not resume.exists()


def test_schedule_order():
    assert schedule.ALTERNATION == ("pretrain", "gws_O1", "gsr_O1", "gws_O2", "gsr_O2", "gws_O3", "gsr_O3")
    assert schedule.previous_run("gws_O2", "dcgan") == ("dcgan", "gsr_O1")
    assert schedule.previous_run("single_gsr", "ufat") == ("ugan", "pretrain")
    assert schedule.previous_run("single_gws", "ufat") is None
    with pytest.raises(ValueError, match="unknown stage"):
        schedule.get("gws_O4")


def test_d_reals_from_the_photographs_own_in_focus_regions(tiny_data, tmp_path, test_config):
    """train.d_real_in_focus: that share of D's real batch is cut from the training photographs where B(I) is above
    the threshold everywhere in the crop; the rest are full-clear crops; squashed images are refused."""
    import numpy as np
    from apl.data.cache import load_cache
    from apl.train.loop import StageTrainer
    config = {**test_config, "train": {**test_config["train"], "d_real_in_focus": 0.5, "d_real_threshold": 0.3,
                                       "batch_size": 4}}
    trainer = StageTrainer(config, "gws_O1", "ufat", tiny_data / "cache", None, tmp_path / "a")
    windows = trainer.in_focus_windows
    assert windows is not None and len(windows) > 0
    priors, crop = load_cache(tiny_data / "cache" / "train.npz")["priors"], trainer.crop
    for i, top, left in windows.tolist():
        assert priors[i, top:top + crop, left:left + crop].astype(np.float32).min() > 0.3
    real = trainer._real_batch(4, torch.Generator().manual_seed(0))
    assert real.shape == (4, 3, crop, crop)
    # the last two are the photographs' own crops: each equals a window of a training image (up to a flip)
    images = trainer.inputs.permute(0, 3, 1, 2).float() / 255
    for piece in real[2:]:
        assert any(torch.equal(piece, images[i, :, t:t + crop, l:l + crop]) or
                   torch.equal(piece, images[i, :, t:t + crop, l:l + crop].flip(2)) for i, t, l in windows.tolist())
    squashed = {**config, "scale": {"mode": "squash", "longer_side": config["image_size"]}}
    with pytest.raises(TrainingError, match="d_real_in_focus"):
        StageTrainer(squashed, "gws_O1", "ufat", tiny_data / "cache", None, tmp_path / "b")


def test_d_fakes_include_g_sr_run_everywhere_on_in_focus_crops(tiny_data, tmp_path, test_config):
    """train.d_fake_sharpened: that share of D's fake batch is G_sr's output on in-focus windows of the training
    photographs with M = 0 (what "deblur everywhere" does to sharp content); the rest are the composites."""
    from apl.train.loop import StageTrainer
    config = {**test_config, "train": {**test_config["train"], "d_fake_sharpened": 0.5, "d_real_threshold": 0.3,
                                       "batch_size": 4}}
    trainer = StageTrainer(config, "gws_O1", "ufat", tiny_data / "cache", None, tmp_path / "a")
    assert trainer.in_focus_windows is not None and trainer.train_cfg["d_real_in_focus"] == 0
    crop = trainer.crop
    composites = torch.rand(4, 3, crop, crop)
    fake = trainer._fake_batch(composites, torch.Generator().manual_seed(0))
    assert fake.shape == composites.shape and torch.equal(fake[:2], composites[2:])
    images = trainer.inputs.permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        outputs = [trainer.nets["gsr"](images[i:i + 1, :, t:t + crop, l:l + crop], torch.zeros(1, 1, crop, crop))["out"][0]
                   for i, t, l in trainer.in_focus_windows.tolist()]
    for piece in fake[2:]:
        assert any(torch.allclose(piece, out, atol=1e-5) or torch.allclose(piece, out.flip(2), atol=1e-5)
                   for out in outputs)
    plain = StageTrainer(test_config, "gws_O1", "ufat", tiny_data / "cache", None, tmp_path / "b")
    assert plain._fake_batch(composites, torch.Generator()) is composites   # the paper: composites only
