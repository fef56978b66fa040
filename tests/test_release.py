"""`apl import-release`: the authors' released DBD.pth / deblur.pth as an apl weights file (docs/release.md).

No file of the release is used: the state dicts are built here with the release's key names and shapes
(as read from its model definitions) and random values, and a reference forward written here from the
release's equations (plain torch.nn.functional on those state dicts) is what the imported networks and
`apl predict` must reproduce.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from apl.cli import main
from apl.models import release
from apl.predict import Model, full_size_outputs
from apl.train import checkpoint

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# ------------------------------------------------------------------------------- the release's key tables
def _base_conv(table: dict, name: str, cin: int, cout: int, kernel: int) -> None:
    """Their conv wrapper: a conv with bias and a BatchNorm (present even where it is switched off)."""
    table[f"{name}.conv.weight"] = (cout, cin, kernel, kernel)
    table[f"{name}.conv.bias"] = (cout,)
    for key in BN:
        table[f"{name}.bn.{key}"] = () if key == "num_batches_tracked" else (cout,)


ENCODER = [("conv1_1_2", 3, 64), ("conv1_2_2", 64, 64), ("conv2_1_2", 64, 128), ("conv2_2_2", 128, 128),
           ("conv3_1_2", 128, 256), ("conv3_2_2", 256, 256), ("conv3_3_2", 256, 256),
           ("conv4_1_2", 256, 512), ("conv4_2_2", 512, 512), ("conv4_3_2", 512, 512)]
DECODER = [("conv1_2", 512, 256, 1), ("conv2_2", 256, 256, 3), ("conv3_2", 512, 128, 1), ("conv4_2", 128, 128, 3),
           ("conv5_2", 256, 64, 1), ("conv6_2", 64, 64, 3), ("conv7_2", 64, 32, 3),
           ("conv_out_base_1", 32, 32, 3), ("conv_out_base_2", 32, 32, 3), ("conv_out_base_3", 32, 1, 1)]
STAGE_BLOCKS = {1: 2, 2: 3, 3: 3, 4: 2}


def dbd_table() -> dict:
    table = {}
    for name, cin, cout in ENCODER:
        _base_conv(table, f"U_Net_for_DBD.base1.{name}", cin, cout, 3)
    for name, cin, cout, kernel in DECODER:
        _base_conv(table, f"U_Net_for_DBD.base2.{name}", cin, cout, kernel)
    return table


def deblur_table() -> dict:
    g = "Net_for_Generator.base2."
    table = {f"{g}input.weight": (128, 3, 3, 3), f"{g}output.weight": (3, 128, 3, 3)}
    for stage, blocks in STAGE_BLOCKS.items():
        for b in range(blocks):
            table[f"{g}residual_layer_{stage}.{b}.conv.weight"] = (128, 128, 3, 3)
            for key in BN:
                table[f"{g}residual_layer_{stage}.{b}.BN.{key}"] = () if key == "num_batches_tracked" else (128,)
    for fuse in (1, 2, 3):
        for conv in ("conv0", "conv1"):
            table[f"{g}fuse_layer_{fuse}.{conv}.weight"] = (128, 128, 3, 3)
            table[f"{g}fuse_layer_{fuse}.{conv}.bias"] = (128,)
        for sft in ("sft0", "sft1"):
            for layer in (1, 2, 3, 4):
                for j in (1, 2, 3):
                    cin = (3 if layer in (1, 3) else 256) if j == 1 else 128
                    _base_conv(table, f"{g}fuse_layer_{fuse}.{sft}.layer{layer}_{j}", cin, 128, 3)
            for fc in ("fc1_1", "fc1_2", "fc2_1", "fc2_2"):
                _base_conv(table, f"{g}fuse_layer_{fuse}.{sft}.{fc}", 128, 128, 1)
    return table


def unused_keys(table: dict) -> set[str]:
    """What the release's forward never reads: disabled BatchNorms, layer3_*, stage 3 and fuse layer 3."""
    disabled_bn = (".conv_out_base_3.bn.", ".fc1_1.bn.", ".fc1_2.bn.", ".fc2_1.bn.", ".fc2_2.bn.")
    never_called = (".layer3_", "residual_layer_3.", "fuse_layer_3.")
    return {key for key in table if any(part in key for part in disabled_bn + never_called)}


def random_state(table: dict, seed: int) -> dict:
    """Random values with non-trivial BatchNorm statistics and conv biases; activations stay O(1)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in table.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000 + len(state))
        elif key.endswith("running_var"):
            state[key] = 0.5 + 1.5 * torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            state[key] = 0.3 * torch.randn(shape, generator=gen)
        elif len(shape) == 4:
            gain = 1.0
            if "conv_out_base_3" in key:
                gain = 0.6      # logits of about +-2: a soft map, where the two composites differ
            elif key.endswith("output.weight"):
                gain = 0.5
            state[key] = torch.randn(shape, generator=gen) * gain * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif ".bn.weight" in key or ".BN.weight" in key:
            state[key] = 0.7 + 0.6 * torch.rand(shape, generator=gen)
        else:   # conv and BatchNorm biases
            state[key] = 0.3 * torch.randn(shape, generator=gen)
    return state


# --------------------------------------------------------------------- the reference forward (release equations)
def _layer(sd, name, x, act, bn=True):
    weight = sd[f"{name}.conv.weight"]
    y = F.conv2d(x, weight, sd[f"{name}.conv.bias"], padding=weight.shape[-1] // 2)
    if bn:
        y = F.batch_norm(y, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"], sd[f"{name}.bn.weight"],
                         sd[f"{name}.bn.bias"], training=False, eps=1e-5)
    return act(y)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def ref_dbd(sd, xn):
    """Focus map of the normalised image xn."""
    e, d = "U_Net_for_DBD.base1.", "U_Net_for_DBD.base2."
    x = _layer(sd, e + "conv1_2_2", _layer(sd, e + "conv1_1_2", xn, lrelu), lrelu)
    x = F.avg_pool2d(x, 2)
    s1 = _layer(sd, e + "conv2_2_2", _layer(sd, e + "conv2_1_2", x, lrelu), lrelu)
    x = F.avg_pool2d(s1, 2)
    for name in ("conv3_1_2", "conv3_2_2", "conv3_3_2"):
        x = _layer(sd, e + name, x, lrelu)
    s2 = x
    x = F.avg_pool2d(s2, 2)
    for name in ("conv4_1_2", "conv4_2_2", "conv4_3_2"):
        x = _layer(sd, e + name, x, lrelu)

    def up(t):
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)

    x = up(_layer(sd, d + "conv2_2", _layer(sd, d + "conv1_2", x, lrelu), lrelu))
    x = up(_layer(sd, d + "conv4_2", _layer(sd, d + "conv3_2", torch.cat([x, s2], 1), lrelu), lrelu))
    x = torch.cat([x, s1], 1)
    for name in ("conv5_2", "conv6_2", "conv7_2"):
        x = _layer(sd, d + name, x, lrelu)
    x = up(x)
    x = _layer(sd, d + "conv_out_base_2", _layer(sd, d + "conv_out_base_1", x, lrelu), lrelu)
    return _layer(sd, d + "conv_out_base_3", x, torch.sigmoid, bn=False)


def _pool(t):
    # the release pools with a fixed 160 x 160 window (stride 1): the global mean at its working size
    return F.avg_pool2d(t, 160, stride=1) if t.shape[-1] == 160 else t.mean((2, 3), keepdim=True)


def _sft(sd, p, i1, i2, out):
    f1, f2 = i1, i2
    for j in (1, 2, 3):
        f1 = _layer(sd, f"{p}.layer1_{j}", f1, lrelu)
        f2 = _layer(sd, f"{p}.layer1_{j}", f2, lrelu)
    cat = torch.cat([f1, f2], 1)
    a, b = cat, cat
    for j in (1, 2, 3):
        a = _layer(sd, f"{p}.layer2_{j}", a, lrelu)
        b = _layer(sd, f"{p}.layer4_{j}", b, lrelu)
    a, b = _pool(a), _pool(b)
    for j in (1, 2):
        a = _layer(sd, f"{p}.fc1_{j}", a, lrelu, bn=False)
        b = _layer(sd, f"{p}.fc2_{j}", b, lrelu, bn=False)
    return torch.sigmoid(a) * out + torch.sigmoid(b)


def ref_generator(sd, xn, m):
    """The release's output in normalised space, from the normalised image xn and the map m."""
    g = "Net_for_Generator.base2."
    blur, clear = xn * (1 - m), xn * m

    def stage(k, h):
        for b in range(STAGE_BLOCKS[k]):
            p = f"{g}residual_layer_{k}.{b}"
            h = F.conv2d(h, sd[f"{p}.conv.weight"], padding=1)
            h = F.relu(F.batch_norm(h, sd[f"{p}.BN.running_mean"], sd[f"{p}.BN.running_var"], sd[f"{p}.BN.weight"],
                                    sd[f"{p}.BN.bias"], training=False, eps=1e-5))
        return h

    def fuse(f, s):
        p = f"{g}fuse_layer_{f}"
        h = _sft(sd, f"{p}.sft0", blur, clear, s)
        h = F.leaky_relu(F.conv2d(h, sd[f"{p}.conv0.weight"], sd[f"{p}.conv0.bias"], padding=1))   # slope 0.01
        h = _sft(sd, f"{p}.sft1", blur, clear, h)
        return s + F.conv2d(h, sd[f"{p}.conv1.weight"], sd[f"{p}.conv1.bias"], padding=1)

    h = lrelu(F.conv2d(blur, sd[f"{g}input.weight"], padding=1))
    h = stage(4, fuse(2, stage(2, fuse(1, stage(1, h)))))
    out = F.conv2d(h, sd[f"{g}output.weight"], padding=1) + blur
    return out * (1 - m) + clear


def normalise(x):
    return (x - MEAN) / STD


def unnormalise_clip(x):
    return (x * STD + MEAN).clamp(0, 1)


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    states = {"dbd": random_state(dbd_table(), 1), "deblur": random_state(deblur_table(), 2)}
    paths = {}
    for name, state in states.items():
        paths[name] = root / f"{name}.pth"
        torch.save(state, paths[name])
    paths["weights"] = root / "release.pt"
    assert main(["import-release", "--dbd", str(paths["dbd"]), "--deblur", str(paths["deblur"]),
                 "--out", str(paths["weights"])]) == 0
    return {"root": root, "paths": paths, "states": states}


def smooth_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB image with structure at several scales."""
    gen = np.random.default_rng(seed)
    small = gen.uniform(0, 255, size=(max(2, height // 16), max(2, width // 16), 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.float32)
    noise = gen.normal(0, 12, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------------------------------- tests
def test_tables_and_every_key_is_accounted_for():
    """The importer's plan is exactly the release's layout, and what it leaves unused is what the release's
    forward never reads."""
    for plan, table in ((release.dbd_plan(), dbd_table()), (release.deblur_plan(), deblur_table())):
        assert {key: shape for key, (shape, _) in plan.entries.items()} == table
        assert set(plan.unused()) == unused_keys(table)
    assert len(dbd_table()) == 140 and len(unused_keys(dbd_table())) == 5


def test_weights_file_records_what_predict_needs(files):
    saved = checkpoint.load(files["paths"]["weights"])
    meta = saved["meta"]
    assert meta["format"] == checkpoint.FORMAT and meta["image_size"] == 160
    assert (meta["resolution"], meta["resize"], meta["output"]) == ("train", "bilinear", "release")
    assert meta["config"]["models"]["gws"]["kind"] == meta["config"]["models"]["gsr"]["kind"] == "release"
    assert meta["architecture"]["gsr"] == {"class": "ReleaseDeblurrer", "width": 128, "variant": "ufat",
                                           "stages": [2, 3, 2], "kind": "release"}
    for which, table in (("dbd", dbd_table()), ("deblur", deblur_table())):
        source = meta["release"][which]
        assert source["keys"] == len(table) and source["unused"] == len(unused_keys(table))
        assert source["used"] + source["unused"] == source["keys"] and len(source["sha256"]) == 64
    assert set(saved["networks"]) == {"gws", "gsr"}


def test_imported_networks_compute_the_release_forward(files):
    """At a small size (the networks are fully convolutional): map and output against the reference."""
    nets = {"gws": release.release_detector(files["paths"]["dbd"])[0],
            "gsr": release.release_deblurrer(files["paths"]["deblur"])[0]}
    x = torch.from_numpy(smooth_photo(32, 48)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        m = nets["gws"](x)
        m_ref = ref_dbd(files["states"]["dbd"], normalise(x))
        assert 0.05 < m_ref.min() and m_ref.max() < 0.95 and m_ref.std() > 0.02   # a soft, non-constant map
        assert (m - m_ref).abs().max() < 1e-4
        out = nets["gsr"](x, m_ref)
        out_ref = unnormalise_clip(ref_generator(files["states"]["deblur"], normalise(x), m_ref))
    inside = ((out_ref > 0) & (out_ref < 1)).float().mean()
    assert inside > 0.5                                                           # not all clipped
    assert (out["out"] - out_ref).abs().max() < 1e-4
    assert torch.allclose(out["out"], (out["reconstruction"] * (1 - m_ref) + x * m_ref).clamp(0, 1), atol=1e-5)


def test_predict_on_a_160_photo_gives_the_release_outputs(files, tmp_path):
    photo = smooth_photo(160, 160, seed=3)
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    weights = str(files["paths"]["weights"])
    for task in ("detect", "deblur"):
        assert main(["predict", "--weights", weights, "--input", str(path), "--out", str(tmp_path / task),
                     "--task", task, "--resolution", "train", "--device", "cpu", "--quiet"]) == 0
    focus = np.asarray(Image.open(tmp_path / "detect" / "photo.png"), dtype=np.float64) / 255
    deblurred = np.asarray(Image.open(tmp_path / "deblur" / "photo.png"), dtype=np.float64) / 255
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        m = ref_dbd(files["states"]["dbd"], normalise(x))
        out = unnormalise_clip(ref_generator(files["states"]["deblur"], normalise(x), m))
    m, out = m[0, 0].numpy(), out[0].permute(1, 2, 0).numpy()
    assert focus.shape == (160, 160) and deblurred.shape == (160, 160, 3)
    assert np.abs(focus - m).max() <= 1 / 255
    assert np.abs(deblurred - out).max() <= 2 / 255
    # the test can tell: compositing the release's output again with the paper's formula is far off
    recomposited = out * (1 - m[..., None]) + photo / 255 * m[..., None]
    assert np.abs(recomposited - out).max() > 10 / 255


def test_predict_on_a_photo_of_another_size(files, tmp_path):
    """A 200 x 120 photo: squashed to 160 x 160 (bilinear, as the release's loader), outputs at 200 x 120."""
    photo = smooth_photo(120, 200, seed=4)
    model = Model(files["paths"]["weights"], device="cpu")
    assert model.resample == "bilinear" and model.output_rule == "release" and model.train_size == 160
    assert "release" in model.describe()
    # the plumbing, not the numbers (tested above), is what this checks: a narrow generator keeps it fast
    model.nets["gsr"] = release.ReleaseDeblurrer(width=8, stages=(1, 1, 1)).eval()
    seen = []
    model.nets["gws"].register_forward_hook(lambda net, inputs, out: seen.append(inputs[0]))
    shape, focus, recon = model.predict(photo, "deblur")
    expected = np.array(Image.fromarray(photo).resize((160, 160), Image.BILINEAR), dtype=np.float32) / 255
    assert shape == (160, 160) and np.allclose(seen[0][0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    outputs = full_size_outputs(photo, focus, recon, want_map=True, want_overlay=False)
    assert outputs["map"].shape == (120, 200) and outputs["deblurred"].shape == (120, 200, 3)


def test_dataparallel_prefix_is_accepted(files, tmp_path):
    state = files["states"]["dbd"]
    prefixed = tmp_path / "DBD_dp.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, prefixed)
    plain, _ = release.release_detector(files["paths"]["dbd"])
    wrapped, summary = release.release_detector(prefixed)
    assert summary["used"] + summary["unused"] == len(state)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, wrapped.state_dict()[key]), key


def _error(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_wrong_files_get_one_line_naming_file_and_key(files, tmp_path, capsys):
    paths, states = files["paths"], files["states"]
    out = str(tmp_path / "x.pt")
    # the generator's checkpoint given as the detector's
    err = _error(capsys, ["import-release", "--dbd", str(paths["deblur"]), "--out", out])
    assert str(paths["deblur"]) in err and "'U_Net_for_DBD.base1.conv1_1_2.conv.weight'" in err and "deblur.pth" in err
    # a missing key
    key = "U_Net_for_DBD.base2.conv4_2.bn.running_var"
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in states["dbd"].items() if k != key}, partial)
    err = _error(capsys, ["import-release", "--dbd", str(partial), "--out", out])
    assert str(partial) in err and repr(key) in err
    # an unexpected key
    extra = tmp_path / "extra.pth"
    torch.save({**states["dbd"], "U_Net_for_DBD.base2.conv8_2.conv.weight": torch.zeros(1)}, extra)
    err = _error(capsys, ["import-release", "--dbd", str(extra), "--out", out])
    assert str(extra) in err and "'U_Net_for_DBD.base2.conv8_2.conv.weight'" in err
    # a wrong shape, a file that is no checkpoint, a file that is missing
    shape = tmp_path / "shape.pth"
    torch.save({**states["dbd"], "U_Net_for_DBD.base2.conv1_2.conv.weight": torch.zeros(256, 512, 3, 3)}, shape)
    err = _error(capsys, ["import-release", "--dbd", str(shape), "--out", out])
    assert str(shape) in err and "'U_Net_for_DBD.base2.conv1_2.conv.weight'" in err
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    assert str(text) in _error(capsys, ["import-release", "--dbd", str(text), "--out", out])
    assert "nowhere.pth" in _error(capsys, ["import-release", "--dbd", str(tmp_path / "nowhere.pth"), "--out", out])
    assert not (tmp_path / "x.pt").exists()
