"""apl predict on people's own photographs: self-describing weights, full-size outputs, the README's commands."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from apl.cli import main
from apl.io import ImageError
from apl.predict import Model, Upsampler, collect_inputs, full_size_outputs, read_photo, run_tiled, working_shape
from apl.train import checkpoint

ROOT = Path(__file__).resolve().parents[1]
CUHK = Path(__file__).parent / "fixtures" / "cuhk_original"
PHOTO = CUHK / "image" / "out_of_focus0001.jpg"     # a real CUHK photograph, 640 x 427


def apl(*args, cwd=None):
    """`apl ...` in a child process (as a user runs it), from `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "apl", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def weights(tiny_data, tmp_path_factory, test_config):
    """A test-profile chain pretrain -> gws_O1 -> gsr_O1: gsr_O1's weights hold G_ws and G_sr, like gsr_O3's."""
    from apl.train.loop import train_stage
    root = tmp_path_factory.mktemp("runs")
    init = None
    for stage in ("pretrain", "gws_O1", "gsr_O1"):
        train_stage(test_config, stage, "ufat", tiny_data / "cache", init, root / stage)
        init = root / stage / "weights.pt"
    return {"gsr": init, "gws": root / "gws_O1" / "weights.pt", "pretrain": root / "pretrain" / "weights.pt"}


# ------------------------------------------------------------------------------- self-describing weights
def test_weights_record_what_rebuilds_them(weights, test_config):
    meta = checkpoint.load(weights["gsr"])["meta"]
    assert meta["format"] == checkpoint.FORMAT and meta["apl_version"]
    assert meta["image_size"] == test_config["image_size"] == 32
    assert meta["config"]["models"] == test_config["models"]
    assert meta["architecture"]["gws"]["width"] == 4
    assert meta["architecture"]["gsr"] == {"class": "SelfReferencedDeblurrer", "width": 8, "variant": "ufat",
                                           "stages": [1, 1, 1]}


def test_predict_needs_no_config_and_runs_from_any_folder(weights, tmp_path):
    result = apl("predict", "--weights", weights["gsr"], "--input", PHOTO, "--out", "maps", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = Image.open(tmp_path / "maps" / "out_of_focus0001.png")
    assert written.mode == "L" and written.size == Image.open(PHOTO).size   # the photo's size, not 32 x 32


def test_old_weights_without_settings_need_the_config(weights, tmp_path):
    saved = checkpoint.load(weights["gsr"])
    old = tmp_path / "old.pt"
    torch.save({"networks": saved["networks"], "meta": {"stage": "gsr_O1", "variant": "ufat"}}, old)
    result = apl("predict", "--weights", old, "--input", PHOTO, "--out", tmp_path / "a", cwd=tmp_path)
    assert result.returncode == 1 and str(old) in result.stderr and "-c config/config.yaml" in result.stderr
    profile = ["-c", ROOT / "config" / "config.yaml"]
    result = apl("predict", *profile, "-c", ROOT / "config" / "test.yaml", "--weights", old, "--input", PHOTO,
                 "--out", tmp_path / "b", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the wrong profile: one line saying what to pass, not a page of size mismatches
    result = apl("predict", *profile, "-c", ROOT / "config" / "demo.yaml", "--weights", old, "--input", PHOTO,
                 "--out", tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 1 and "does not fit" in result.stderr and str(old) in result.stderr
    assert len(result.stderr.splitlines()) <= 3


@pytest.mark.parametrize("content", [b"", b"\x50\x4b\x03\x04 truncated zip", b"just text"])
def test_corrupt_or_foreign_weights_are_named(content, tmp_path, capsys):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(content)
    assert main(["predict", "--weights", str(bad), "--input", str(PHOTO), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_resume_state_is_not_taken_for_weights(tmp_path, capsys):
    resume = tmp_path / "resume.pt"
    torch.save({"stage": "gws_O1", "optimizers": {}, "networks": {}}, resume)
    assert main(["predict", "--weights", str(resume), "--input", str(PHOTO), "--out", str(tmp_path / "o")]) == 1
    assert "not an apl weights file" in capsys.readouterr().err


def test_a_stage_without_the_network_says_which_to_use(weights, tmp_path, capsys):
    assert main(["predict", "--weights", str(weights["pretrain"]), "--task", "detect", "--input", str(PHOTO),
                 "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "holds no defocus detector (G_ws)" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- inputs
def test_exif_orientation_is_applied(weights, tmp_path):
    photo = Image.open(PHOTO)
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 CW to display": a phone portrait stored sideways
    folder = tmp_path / "in"
    folder.mkdir()
    photo.save(folder / "portrait.jpg", exif=exif)
    assert read_photo(folder / "portrait.jpg").shape[:2] == (photo.size[0], photo.size[1])   # W x H swapped
    assert main(["predict", "--weights", str(weights["gsr"]), "--input", str(folder), "--task", "deblur",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert Image.open(tmp_path / "out" / "portrait.png").size == (photo.size[1], photo.size[0])


def test_formats_globs_lists_and_an_unreadable_file(weights, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.open(PHOTO).convert("RGB")
    for suffix in ("png", "tif", "bmp", "webp", "JPG"):
        photo.save(folder / f"p_{suffix.lower()}.{suffix}")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored: not a photo")
    code = main(["predict", "--weights", str(weights["gws"]), "--input", str(folder), "--out", str(tmp_path / "m"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "broken.jpg" in err and "1 of 6" in err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [f"p_{s}.png" for s in ("bmp", "jpg", "png", "tif",
                                                                                         "webp")]
    assert sorted(collect_inputs([str(folder / "*.png"), str(folder / "p_bmp.bmp")])) == ["p_bmp", "p_png"]
    with pytest.raises(ImageError, match="same output name"):
        other = tmp_path / "other"
        other.mkdir()
        shutil.copy(folder / "p_png.png", other / "p_png.jpg")
        collect_inputs([folder, other])
    with pytest.raises(ImageError, match="input not found"):
        collect_inputs([tmp_path / "nowhere"])


# ----------------------------------------------------------------------------------- full-size outputs
def test_upsampler_strips_match_torch_bilinear():
    small = np.random.default_rng(0).random((13, 17, 3)).astype(np.float32)
    up = Upsampler(small, 100, 211)
    strips = np.concatenate([up.strip(top, min(100, top + 32)) for top in range(0, 100, 32)])
    expected = F.interpolate(torch.from_numpy(small).permute(2, 0, 1)[None], size=(100, 211), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(strips, expected, atol=1e-5)


def test_deblurred_keeps_in_focus_pixels_and_adds_the_restoration_at_full_size():
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    height, width = photo.shape[:2]
    focus = np.zeros((32, 32, 1), np.float32)
    focus[:, :16] = 1.0                                    # left half in focus
    restoration = np.full((32, 32, 3), 20 / 255, np.float32)   # G_sr brightens by 20 levels everywhere
    out = full_size_outputs(photo, Upsampler(focus, height, width), Upsampler(restoration, height, width),
                            want_map=True, want_overlay=True, bits=16)
    sharp = slice(0, width // 2 - width // 32)             # clear of the bilinear transition
    np.testing.assert_array_equal(out["deblurred"][:, sharp], photo[:, sharp])
    right = np.s_[:, -width // 4:]                         # the photograph's own detail, plus the restoration
    np.testing.assert_array_equal(out["deblurred"][right], np.clip(photo[right].astype(int) + 20, 0, 255))
    assert out["map"].dtype == np.uint16 and out["map"][0, 0] == 65535 and out["map"][0, -1] == 0
    assert np.array_equal(out["overlay"][:, sharp], photo[:, sharp])
    assert not np.array_equal(out["overlay"][:, -10:], photo[:, -10:])


class _Blurrer(torch.nn.Module):
    """A stand-in G_ws / G_sr pair for the deblur path's known cases: a fixed map, and an ideal deblurrer
    that returns the sharp original (at whatever size it is asked for) where the photograph was blurred."""

    def __init__(self, sharp: np.ndarray, focus: float | None = None):
        super().__init__()
        self.sharp, self.focus = sharp, focus

    def forward(self, image, focus_map=None):
        if focus_map is None:                             # as G_ws: the map
            return torch.full_like(image[:, :1], self.focus)
        size = (image.shape[2], image.shape[3])
        sharp = F.interpolate(torch.from_numpy(self.sharp).permute(2, 0, 1)[None].float() / 255, size=size,
                              mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return {"reconstruction": sharp}


@pytest.mark.parametrize("resolution", ["auto", "train", "96", "full"])
def test_deblur_path_known_cases(weights, resolution):
    """An all-in-focus map returns the photograph unchanged; with an ideal deblurrer and an all-defocused map the
    output is closer to the sharp original than the input, at every --resolution (the path never throws away
    the photograph's own detail, which upsampling R itself did: issue 30)."""
    from scipy.ndimage import gaussian_filter
    from apl.data.scale import resize_image
    from apl.predict import parse_resolution
    sharp = read_photo(PHOTO)
    blurred = np.clip(np.rint(gaussian_filter(sharp.astype(float), sigma=(2, 2, 0))), 0, 255).astype(np.uint8)
    model = Model(weights["gsr"], device="cpu", resolution=parse_resolution(resolution), tile=1024)  # one tile: the
    # stand-in deblurrer returns the whole sharp photograph at the size it is given
    model.nets["gws"], model.nets["gsr"] = _Blurrer(sharp, focus=1.0), _Blurrer(sharp)
    _, focus, restoration = model.predict(sharp, "deblur")
    out = full_size_outputs(sharp, focus, restoration, want_map=False, want_overlay=False)["deblurred"]
    np.testing.assert_array_equal(out, sharp)             # in focus everywhere: nothing changes
    model.nets["gws"] = _Blurrer(sharp, focus=0.0)
    _, focus, restoration = model.predict(blurred, "deblur")
    out = full_size_outputs(blurred, focus, restoration, want_map=False, want_overlay=False)["deblurred"]

    def error(image):
        return np.mean((image.astype(float) - sharp) ** 2)
    assert error(out) < error(blurred), (resolution, error(out), error(blurred))
    if resolution == "full":
        assert error(out) < 0.2 * error(blurred)
    else:   # what upsampling the reconstruction itself gave: the working copy's loss of detail, everywhere
        small = model.predict(blurred, "deblur")[0]
        upsampled = resize_image(resize_image(sharp, small), sharp.shape[:2])
        assert error(upsampled) > error(out)


class _CastingBlurrer(_Blurrer):
    """The ideal deblurrer with a colour cast on top: red raised by 12.75 levels everywhere."""

    def forward(self, image, focus_map=None):
        out = super().forward(image, focus_map)
        if isinstance(out, dict):
            out["reconstruction"] = out["reconstruction"] + torch.tensor([0.05, 0.0, 0.0]).view(1, 3, 1, 1)
        return out


def test_the_restoration_keeps_the_photos_local_mean(weights):
    """Blur never moves a region's mean colour: G_sr's cast is removed, its restored detail kept (--keep-mean);
    with --keep-mean 0 the cast goes through, as the paper's composite would have it."""
    from scipy.ndimage import gaussian_filter
    sharp = read_photo(PHOTO)
    blurred = np.clip(np.rint(gaussian_filter(sharp.astype(float), sigma=(2, 2, 0))), 0, 255).astype(np.uint8)

    def deblurred(keep_mean):
        model = Model(weights["gsr"], device="cpu", resolution="full", tile=1024, keep_mean=keep_mean)
        model.nets["gws"], model.nets["gsr"] = _Blurrer(sharp, focus=0.0), _CastingBlurrer(sharp)
        _, focus, restoration = model.predict(blurred, "deblur")
        return full_size_outputs(blurred, focus, restoration, want_map=False, want_overlay=False)["deblurred"]

    def shift(image):   # mean change of each channel, in levels
        return (image.astype(float) - blurred).reshape(-1, 3).mean(axis=0)

    def error(image):
        return np.mean((image.astype(float) - sharp) ** 2)
    kept, cast = deblurred(8.0), deblurred(0.0)
    assert np.abs(shift(kept)).max() < 0.5, shift(kept)
    assert shift(cast)[0] > 10 and np.abs(shift(cast)[1:]).max() < 0.5, shift(cast)
    assert error(kept) < 0.3 * error(blurred) and error(kept) < error(cast)
    with pytest.raises(ValueError, match="--keep-mean"):
        Model(weights["gsr"], device="cpu", keep_mean=-1)


def test_tiles_blend_without_seams():
    from apl import config as config_module
    from apl.models.factory import build
    torch.manual_seed(0)
    gws = build("gws", config_module.load([ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml"])).eval()
    for module in gws.modules():   # sharper weights than the N(0, 0.01) start, so tiles could disagree
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, a=0.2)
    x = torch.rand(1, 3, 300, 420)
    with torch.no_grad():
        whole = gws(x)
    blended = (run_tiled(gws, x, 1, 160, 128, torch.device("cpu")) - whole).abs()
    butted = (run_tiled(gws, x, 1, 160, 0, torch.device("cpu")) - whole).abs()
    assert blended.mean() < 0.005 and blended.max() < 0.1
    assert butted.max() > 0.3     # without overlap the tiles' borders show


def test_working_shapes():
    assert working_shape(427, 640, "train", 160) == (160, 160)
    assert working_shape(427, 640, "full", 160) == (427, 640)
    assert working_shape(3000, 4000, 800, 160) == (600, 800)


@pytest.mark.parametrize("resolution", ["train", "full", "96"])
def test_every_resolution_gives_full_size_maps_and_images(weights, tmp_path, resolution):
    for task in ("detect", "deblur"):
        assert main(["predict", "--weights", str(weights["gsr"]), "--input", str(PHOTO), "--task", task,
                     "--resolution", resolution, "--tile", "64", "--overlap", "16", "--out", str(tmp_path / task),
                     "--quiet"]) == 0
        assert Image.open(tmp_path / task / "out_of_focus0001.png").size == Image.open(PHOTO).size


def test_pretrain_weights_deblur_with_the_blur_prior(weights, tmp_path):
    assert main(["predict", "--weights", str(weights["pretrain"]), "--task", "deblur", "--input", str(PHOTO),
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert Image.open(tmp_path / "out_of_focus0001.png").size == Image.open(PHOTO).size


def test_sixteen_bit_maps_and_overlays(weights, tmp_path):
    assert main(["predict", "--weights", str(weights["gsr"]), "--input", str(PHOTO), "--bits", "16",
                 "--overlay", str(tmp_path / "look"), "--out", str(tmp_path / "maps"), "--quiet"]) == 0
    map16 = Image.open(tmp_path / "maps" / "out_of_focus0001.png")
    assert map16.mode.startswith("I") and np.asarray(map16).max() > 255
    assert Image.open(tmp_path / "look" / "out_of_focus0001.jpg").size == Image.open(PHOTO).size


def test_model_runs_on_the_requested_device(weights):
    model = Model(weights["gsr"], device="cpu")
    assert all(next(net.parameters()).device.type == "cpu" for net in model.nets.values())
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            Model(weights["gsr"], device="cuda")


# ------------------------------------------------------------------------------- scoring others' maps
def test_eval_detection_reads_blur_maps_of_any_size_and_grey_format(tmp_path):
    focus, blur = tmp_path / "focus", tmp_path / "blur"
    focus.mkdir(), blur.mkdir()
    for index, path in enumerate(sorted((CUHK / "gt").iterdir())):
        gt = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0   # CUHK: white = blurred
        noisy = np.clip((1.0 - gt) * 0.8 + 0.1 + np.random.default_rng(index).normal(0, 0.05, gt.shape), 0, 1)
        Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(focus / path.name)
        small = Image.fromarray((1.0 - noisy).astype(np.float32), mode="F").resize((97, 61))   # float, other size
        small.save(blur / f"{path.stem}_blur.tif")
    scores = {}
    for name, extra in (("focus", []), ("blur", ["--pred-polarity", "blur-white", "--pred-suffix", "_blur"])):
        out = tmp_path / f"{name}.json"
        assert main(["eval-detection", "--pred", str(tmp_path / name), "--gt", str(CUHK / "gt"),
                     "--gt-polarity", "blur-white", "--out", str(out), *extra]) == 0
        scores[name] = json.loads(out.read_text())
    assert scores["focus"]["fmax"] > 0.9 and scores["blur"]["fmax"] > 0.9
    assert scores["blur"]["pred_polarity"] == "blur-white"
    wrong = tmp_path / "wrong.json"
    main(["eval-detection", "--pred", str(blur), "--gt", str(CUHK / "gt"), "--gt-polarity", "blur-white",
          "--pred-suffix", "_blur", "--out", str(wrong)])
    assert json.loads(wrong.read_text())["fmax"] < scores["blur"]["fmax"] - 0.2


# ------------------------------------------------------------------------------- the README, as printed
def readme_commands() -> list[str]:
    text = (ROOT / "docs" / "your-images.md").read_text()   # the page README's "Your own images" row links to
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_your_own_images_commands_run_as_printed(weights, tmp_path):
    """Each command of docs/your-images.md's first block, verbatim but for `.venv/bin/apl`, in a fresh folder
    outside the repository that holds what a user would have: the demo weights, photos, masks, sharp images."""
    (tmp_path / "results/demo/runs/seed0/ufat/gsr_O3").mkdir(parents=True)
    shutil.copy(weights["gsr"], tmp_path / "results/demo/runs/seed0/ufat/gsr_O3/weights.pt")
    shutil.copytree(CUHK / "image", tmp_path / "photos")
    shutil.copytree(CUHK / "gt", tmp_path / "gt")               # CUHK's masks: white = blurred
    shutil.copytree(CUHK / "image", tmp_path / "sharp")          # stands in for sharp references
    commands = readme_commands()
    assert len(commands) >= 5 and all(c.startswith(".venv/bin/apl ") for c in commands)
    for command in commands:
        result = apl(*shlex.split(command)[1:], cwd=tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert json.loads((tmp_path / "detection.json").read_text())["n_images"] == 6
    assert json.loads((tmp_path / "deblur.json").read_text())["n_images"] == 6
    assert Image.open(tmp_path / "maps16" / "out_of_focus0001.png").mode.startswith("I")
    assert (tmp_path / "overlays" / "out_of_focus0001.jpg").exists()
    for folder in ("maps", "deblurred"):
        for photo in (tmp_path / "photos").iterdir():
            assert Image.open(tmp_path / folder / f"{photo.stem}.png").size == Image.open(photo).size
