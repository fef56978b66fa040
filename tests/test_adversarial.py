"""One-step checks of the adversarial phases' directions: a swapped label or an inverted target fails here.

Each test builds a StageTrainer on the test profile's tiny data and looks at what a few steps do to the
quantity the paper's losses say must move (D's real/fake gap, G_ws's distance to B(I), the gradient that
reaches G_ws through the frozen G_sr, G_sr's value range).
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from apl import config as config_module
from apl.models.deblurrer import clipped_share
from apl.train.loop import StageTrainer, to_float, train_stage
from conftest import write_override


def trainer(config, stage, data, out, init=None):
    return StageTrainer(config, stage, "ufat", data / "cache", init, out)


def run_steps(t: StageTrainer, steps: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    t.epoch = t.step_in_epoch = 0
    return [t._step(torch.arange(len(t.inputs))[:t.train_cfg["batch_size"]], generator) for _ in range(steps)]


@pytest.fixture(scope="module")
def pretrained(tiny_data, tmp_path_factory):
    """A G_sr pretrained for a few epochs: a fresh one is the identity, which passes no gradient to G_ws."""
    files = write_override(tmp_path_factory.mktemp("cfg") / "pre.yaml",
                           {"train": {"epochs": {"pretrain": 4}, "optimizer": {"lr": 2.0e-3}}})
    out = tmp_path_factory.mktemp("pretrain")
    train_stage(config_module.load(files), "pretrain", "ufat", tiny_data / "cache", None, out)
    return out / "weights.pt"


def _override(tmp_path, train: dict) -> dict:
    """The test profile with `train` overridden, on whole cached images (scale.mode squash: no random crops), so
    a quantity measured on t.inputs is one the steps trained on."""
    return config_module.load(write_override(tmp_path / "o.yaml", {"train": train, "scale": {"mode": "squash"}}))


def test_d_learns_real_is_full_clear_and_fake_is_the_composite(tiny_data, tmp_path, pretrained):
    config = _override(tmp_path, {"optimizer": {"lr": 1.0e-2}})
    t = trainer(config, "gws_O1", tiny_data, tmp_path, init=pretrained)
    real = to_float(t.fullclear[:4])
    with torch.no_grad():
        fake = t.nets["gsr"](to_float(t.inputs[:4]), t.nets["gws"](to_float(t.inputs[:4])))["out"]

    def gap():
        with torch.no_grad():
            return (t.nets["d"](real).mean() - t.nets["d"](fake).mean()).item()

    before = gap()
    run_steps(t, 10)
    assert gap() > before + 0.5, "D's logit gap real - fake must grow: real = full-clear, fake = composite"


def test_gws_phase_moves_the_map_towards_the_prior(tiny_data, tmp_path, pretrained):
    config = _override(tmp_path, {"optimizer": {"lr": 2.0e-3}, "prior_weight": 1.0, "prior_reduction": "sum"})
    t = trainer(config, "gws_O1", tiny_data, tmp_path, init=pretrained)
    index = torch.arange(len(t.inputs))[:t.train_cfg["batch_size"]]

    def distance():  # batch statistics (train mode): the running ones lag behind a few steps
        with torch.no_grad():
            return (t.nets["gws"](to_float(t.inputs[index])) - t.gws_targets[index].unsqueeze(1)).abs().mean().item()

    before = distance()
    run_steps(t, 20)
    assert distance() < before - 0.01, "the prior term must pull G_ws towards B(I), not away from it"


def test_gws_gets_gradient_through_the_frozen_gsr(tiny_data, tmp_path, pretrained):
    config = _override(tmp_path, {"prior_weight": 0.0})
    t = trainer(config, "gws_O1", tiny_data, tmp_path, init=pretrained)
    gsr_before = {k: v.clone() for k, v in t.nets["gsr"].state_dict().items()}
    image = to_float(t.inputs[:2])
    focus = t.nets["gws"](image)
    out = t.nets["gsr"](image, focus)["out"]
    t.nets["d"].requires_grad_(False)
    (-t.nets["d"](out).mean()).backward()
    grads = [p.grad for p in t.nets["gws"].parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0, "with lambda = 0 G_ws learns only through G_sr and D"
    assert all(p.grad is None for p in t.nets["gsr"].parameters()), "G_sr is frozen in a G_ws phase"
    t.nets["d"].requires_grad_(True)
    run_steps(t, 1)
    assert all(torch.equal(v, t.nets["gsr"].state_dict()[k]) for k, v in gsr_before.items())


def test_gsr_output_stays_in_range_without_saturating(tiny_data, tmp_path, pretrained):
    """A G_sr phase of the profile's own settings must not push the composite out of [0, 1] (the flat red /
    yellow images of issue 11) nor flatten it: compared on every training image before and after."""
    config = _override(tmp_path, {"epochs": {"phase": 3}})
    gws_dir, out = tmp_path / "gws", tmp_path / "gsr"
    train_stage(config, "gws_O1", "ufat", tiny_data / "cache", pretrained, gws_dir)
    train_stage(config, "gsr_O1", "ufat", tiny_data / "cache", gws_dir / "weights.pt", out)

    def composite(weights):
        t = trainer(config, "gsr_O1", tiny_data, tmp_path / "x", init=weights)
        image = to_float(t.inputs)
        with torch.no_grad():
            result = t.nets["gsr"].eval()(image, t.nets["gws"].eval()(image))
        raw = result["unclamped"]
        return image, result["out"], clipped_share(raw)

    image, before, clipped_before = composite(gws_dir / "weights.pt")
    _, after, clipped_after = composite(out / "weights.pt")
    assert after.min() >= 0 and after.max() <= 1
    assert clipped_after <= clipped_before + 0.01, "the adversarial phase pushes G_sr's values out of [0, 1]"
    assert clipped_after < 0.05
    assert pd.read_csv(out / "losses.csv")["clipped"].notna().all()
    # not flat colours: the composite keeps the photographs' contrast
    assert after.std(dim=(2, 3)).mean() > 0.8 * image.std(dim=(2, 3)).mean()


def test_single_gws_masks_trains_on_the_masks_not_the_prior(tiny_data, tmp_path, test_config):
    """The release's supervision (train.gws_target: masks / the single_gws_masks stage) reads the GT masks."""
    import numpy as np

    from apl.data.cache import load_cache
    cache = load_cache(tiny_data / "cache" / "train.npz")
    t = trainer(test_config, "single_gws_masks", tiny_data, tmp_path)
    assert torch.equal(t.gws_targets, torch.from_numpy(cache["masks"].astype(np.float32)))
    assert not torch.equal(t.gws_targets, torch.from_numpy(cache["priors"].astype(np.float32)))
    assert torch.equal(trainer(test_config, "single_gws", tiny_data, tmp_path).gws_targets,
                       torch.from_numpy(cache["priors"].astype(np.float32)))


def test_masks_target_without_masks_is_a_clear_error(tiny_data, tmp_path, test_config):
    import shutil

    from apl.data.cache import load_cache, save_npz
    from apl.train.loop import TrainingError
    cache = {k: v for k, v in load_cache(tiny_data / "cache" / "train.npz").items() if k != "masks"}
    (tmp_path / "cache").mkdir()
    save_npz(tmp_path / "cache" / "train.npz", **cache)
    shutil.copy(tiny_data / "cache" / "fullclear.npz", tmp_path / "cache" / "fullclear.npz")
    with pytest.raises(TrainingError, match="holds none"):
        StageTrainer(test_config, "single_gws_masks", "ufat", tmp_path / "cache", None, tmp_path / "out")


def test_d_augment_changes_what_d_sees_and_keeps_the_generators_gradient(tiny_data, tmp_path, pretrained):
    """train.d_augment: the same step with and without it differs in D's losses (D saw other images), and
    the generator still learns through the augmented D (G_ws with lambda = 0: D's gradient alone)."""
    def one_step(augment):
        config = _override(tmp_path, {"d_augment": augment, "prior_weight": 0.0})
        t = trainer(config, "gws_O1", tiny_data, tmp_path / str(len(augment)), init=pretrained)
        before = [p.clone() for p in t.nets["gws"].parameters()]
        values = run_steps(t, 1)[0]
        moved = sum((p - q).abs().sum().item() for p, q in zip(t.nets["gws"].parameters(), before))
        return values, moved

    plain, _ = one_step([])
    augmented, moved = one_step(["colour", "translation", "cutout"])
    assert augmented["d"] != pytest.approx(plain["d"], abs=1e-6)
    assert moved > 0, "the generator must receive D's gradient through the augmentation"


def test_pretrain_camera_degrades_the_blurred_input_and_keeps_the_target_clean(tiny_data, tmp_path):
    config = _override(tmp_path, {"pretrain_camera": {"noise": [3.0, 3.0], "jpeg": [80, 80]}})
    t = trainer(config, "pretrain", tiny_data, tmp_path)
    seen, forward = {}, t.nets["gsr"].forward

    def spy(image, guide):
        seen["image"], seen["result"] = image.detach().clone(), forward(image, guide)
        return seen["result"]
    t.nets["gsr"].forward = spy
    losses = run_steps(t, 1)[0]
    index = torch.arange(len(t.inputs))[:t.train_cfg["batch_size"]]
    change = (seen["image"] - to_float(t.inputs[index])).abs().mean().item() * 255
    assert 1.0 < change < 10.0, f"the input should carry about 3 levels of noise and JPEG, changed {change:.2f}"
    recon = seen["result"]["reconstruction"].detach()   # the loss is measured against the clean sharp image
    assert losses["pixel"] == pytest.approx(torch.nn.functional.l1_loss(recon, to_float(t.targets[index])).item(),
                                            rel=1e-5)


def test_d_warm_up_trains_d_alone_and_only_where_d_starts_fresh(tiny_data, tmp_path, pretrained):
    config = _override(tmp_path, {"d_warmup_steps": 6, "optimizer": {"lr": 1.0e-2}})
    t = trainer(config, "gws_O1", tiny_data, tmp_path, init=pretrained)
    assert "d" not in t.loaded
    frozen = {name: {k: v.clone() for k, v in t.nets[name].state_dict().items()} for name in ("gws", "gsr")}
    d_before = {k: v.clone() for k, v in t.nets["d"].state_dict().items()}
    summary = t._warm_up_d()
    assert summary["steps"] == 6 and 0.0 <= summary["d_acc_real"] <= 1.0
    for name, state in frozen.items():   # weights and BatchNorm statistics alike
        assert all(torch.equal(state[k], v) for k, v in t.nets[name].state_dict().items()), name
    assert t.nets["gws"].training, "G_ws trains again in the phase after the warm-up"
    assert any(not torch.equal(d_before[k], v) for k, v in t.nets["d"].state_dict().items())
    meta = t.run()
    assert meta["d_warmup"]["steps"] == 6
    later = trainer(config, "gws_O2", tiny_data, tmp_path / "o2", init=tmp_path / "weights.pt")
    assert "d" in later.loaded   # D carried over from gws_O1: no warm-up
