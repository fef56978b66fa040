"""The training speed levers of issue 14 (train.bf16, channels_last, fused_ufat, frozen_maps_once,
fused_optimizer) change how fast a step runs, not what it computes: each is checked against the
reference loop (every lever off) on the test profile's tiny data. Their speed is a benchmark
(tests/bench_training.py), not a test.
"""
from __future__ import annotations

import copy

import pytest
import torch

from apl import config as config_module
from apl.models import factory
from apl.models.deblurrer import UFAT, SelfReferencedDeblurrer, fuse_ufat_branches
from apl.train import budget, schedule
from apl.train.loop import DIAGNOSTIC_KEYS, StageTrainer

LEVERS = ("channels_last", "fused_ufat", "frozen_maps_once", "fused_optimizer")
# A short run with every lever on stays this close (relative) to the reference's losses: fused Adam/SGD and
# the fused UFAT change the last bits of a step, and a few steps carry them into the losses (README).
LEVER_RTOL = 1e-4
# bf16 autocast keeps 8 bits of mantissa: losses after a few steps move by about 1% (measured 0.6% at demo scale)
BF16_RTOL = 5e-2


def reference(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["train"].update({name: False for name in LEVERS}, bf16=False, compile=False)
    return config


def run_steps(config: dict, stage: str, data, out, steps: int = 6) -> tuple[list[dict], StageTrainer]:
    t = StageTrainer(config, stage, "ufat", data / "cache", None, out)
    generator = torch.Generator().manual_seed(0)
    t.epoch = t.step_in_epoch = 0
    batches = torch.arange(len(t.inputs)).split(t.train_cfg["batch_size"])
    return [t._step(batches[k % len(batches)], generator) for k in range(steps)], t


def assert_close_losses(a: list[dict], b: list[dict], rtol: float) -> None:
    for step, (x, y) in enumerate(zip(a, b)):
        for key in x.keys() - set(DIAGNOSTIC_KEYS):
            assert y[key] == pytest.approx(x[key], rel=rtol), f"step {step + 1}, {key}: {x[key]} vs {y[key]}"


def test_fused_ufat_branches_compute_the_same_and_keep_the_state_dict():
    torch.manual_seed(0)
    ufat = UFAT(width=8)
    x, i_f, i_df = torch.rand(2, 8, 12, 12), torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    outputs, grads = [], []
    for fused in (False, True):
        ufat.fused_branches = fused
        ufat.zero_grad()
        out = ufat(x, i_f, i_df)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append({name: p.grad.clone() for name, p in ufat.named_parameters()})
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:   # each branch's own weights get their own gradient through the stacked kernels
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    net = SelfReferencedDeblurrer("ufat", width=8, stages=(1, 1))
    keys = list(net.state_dict())
    fuse_ufat_branches(net, True)
    assert list(net.state_dict()) == keys and all(m.fused_branches for m in net.modules() if isinstance(m, UFAT))


@pytest.mark.parametrize("stage", ["gws_O1", "gsr_O1", "pretrain"])
def test_levers_on_reach_the_reference_losses(tiny_data, tmp_path, test_config, stage):
    fast = copy.deepcopy(test_config)
    fast["train"].update({name: True for name in LEVERS})
    ref_losses, _ = run_steps(reference(test_config), stage, tiny_data, tmp_path / "ref")
    fast_losses, _ = run_steps(fast, stage, tiny_data, tmp_path / "fast")
    assert_close_losses(ref_losses, fast_losses, LEVER_RTOL)


def test_frozen_maps_are_computed_once_per_image_and_equal_the_per_step_maps(tiny_data, tmp_path, test_config):
    # random crops (scale.mode photo, the test profile) differ at every step, so their maps are never kept
    assert not StageTrainer(test_config, "gsr_O1", "ufat", tiny_data / "cache", None, tmp_path / "crops").maps_once
    test_config = copy.deepcopy(test_config)
    test_config["scale"]["mode"] = "squash"   # whole cached images: an image's map is the same all phase long
    on = copy.deepcopy(reference(test_config))
    on["train"]["frozen_maps_once"] = True
    ref_losses, ref = run_steps(reference(test_config), "gsr_O1", tiny_data, tmp_path / "ref", steps=1)
    t = StageTrainer(on, "gsr_O1", "ufat", tiny_data / "cache", None, tmp_path / "on")
    calls = []
    t.nets["gws"].register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    generator = torch.Generator().manual_seed(0)
    t.epoch = t.step_in_epoch = 0
    batch = torch.arange(t.train_cfg["batch_size"])
    losses = [t._step(batch, generator) for _ in range(3)]
    assert calls == [len(batch)], "the frozen G_ws must map each image once per stage"
    assert losses[0] == ref_losses[0], "a kept map must be the map the step would have computed (CPU: bit for bit)"
    with torch.no_grad():
        torch.testing.assert_close(t._maps[batch], t.nets["gws"](t._prep(t.inputs[batch])), rtol=0, atol=0)


def test_bf16_autocast_on_cpu_stays_near_fp32(tiny_data, tmp_path, test_config):
    forced = reference(test_config)
    forced["train"]["bf16"] = True
    ref_losses, _ = run_steps(reference(test_config), "gws_O1", tiny_data, tmp_path / "ref", steps=3)
    bf16_losses, t = run_steps(forced, "gws_O1", tiny_data, tmp_path / "bf16", steps=3)
    assert t.bf16
    assert_close_losses(ref_losses, bf16_losses, BF16_RTOL)


# AVX512-BF16 without AMX is slower than fp32 (README, speed switches): auto leaves it off
@pytest.mark.parametrize("flags, native", [("fpu sse2 avx512f avx512_vnni", False), ("fpu avx512f avx512_bf16", False),
                                           ("fpu avx512_bf16 amx_bf16 amx_tile", True), ("fp asimd bf16 i8mm", False)])
def test_bf16_auto_follows_the_cpu(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert factory.cpu_has_bf16_matrix_units(cpuinfo) is native
    assert factory.bf16_enabled("auto", torch.device("cuda")) is True
    assert factory.bf16_enabled(True, torch.device("cpu")) is True
    assert factory.bf16_enabled(False, torch.device("cuda")) is False


def test_bf16_setting_is_validated(test_config):
    for good in ("auto", True, False):
        config_module.validate({**test_config, "train": {**test_config["train"], "bf16": good}})
    with pytest.raises(config_module.ConfigError, match="train.bf16"):
        config_module.validate({**test_config, "train": {**test_config["train"], "bf16": "yes"}})


def test_compile_setting_takes_a_torch_compile_mode(tiny_data, tmp_path, test_config, monkeypatch):
    for good in (True, False, "reduce-overhead", "max-autotune"):
        config_module.validate({**test_config, "train": {**test_config["train"], "compile": good}})
    with pytest.raises(config_module.ConfigError, match="train.compile"):
        config_module.validate({**test_config, "train": {**test_config["train"], "compile": "fast"}})
    modes = []   # what each network was compiled with (recorded, not compiled: that is the benchmark's job)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda net, **kwargs: modes.append(kwargs.get("mode")))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    for setting, mode in ((True, None), ("reduce-overhead", "reduce-overhead")):
        config = reference(test_config)
        config["train"]["compile"] = setting
        modes.clear()
        t = StageTrainer(config, "gws_O1", "ufat", tiny_data / "cache", None, tmp_path / str(setting))
        assert modes == [mode] * len(t.nets)


def test_budget_counts_the_demo_data_of_a_demo_profile(test_config):
    train, counts = test_config["train"], test_config["data"]["demo"]["counts"]
    assert budget.iterations(test_config, "gws_O1") == train["epochs"]["phase"] * (counts["train"] // train["batch_size"])


def test_budget_counts_the_profile_iterations():
    config = config_module.load(None)
    train, counts = config["train"], config["data"]["expected_counts"]
    phase_steps = (counts["train"] - config["data"]["validation"]) // train["batch_size"]
    assert budget.iterations(config, "gsr_O2") == train["epochs"]["phase"] * phase_steps
    synthetic = (counts["fullclear"] - config["data"]["heldout_fullclear"]) * config["synthesis"]["per_image"]
    assert budget.iterations(config, "pretrain") == train["epochs"]["pretrain"] * synthetic // train["batch_size"]
    jobs = budget.runs(config)
    variants = set(budget.variants(config))
    assert len(jobs) == len(variants) * len(schedule.ALTERNATION) + ("ugan" not in variants) + 2
    seconds = {(variant, schedule.get(stage).kind): 2.0 for variant, stage in jobs}
    rows = budget.project(config, seconds)
    assert sum(row["hours"] for row in rows) == pytest.approx(2.0 * sum(row["iterations"] for row in rows) / 3600)
    assert "total" in budget.describe(config, seconds, "cpu")


def test_apl_budget_projects_from_measured_seconds_and_names_what_is_missing(capsys):
    from apl.cli import main
    measured = ["pretrain=1", "gws=2", "gsr=2", "single_gws=1", "single_gsr=1", "ugan/gsr=0.5"]
    assert main(["budget", "--seconds", *measured]) == 0   # the paper profile (the default config)
    text = capsys.readouterr().out
    config = config_module.load(None)
    rows = budget.project(config, budget.parse_seconds(config, measured))
    assert f"{sum(r['hours'] for r in rows):.1f} h" in text
    assert {r["seconds_per_iteration"] for r in rows if r["run"] == "ugan" and r["kind"] == "gsr"} == {0.5}
    assert {r["seconds_per_iteration"] for r in rows if r["run"] == "ufat" and r["kind"] == "gsr"} == {2.0}
    assert main(["budget", "--seconds", "pretrain=1", "gws=2"]) == 1
    error = capsys.readouterr().err
    assert "gsr" in error and "single_gws" in error and "pretrain," not in error.split("kind(s)")[1].split(":")[0]
