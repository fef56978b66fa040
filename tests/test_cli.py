"""The apl command line: the tools users run on their own folders, and clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apl.cli import main
from apl.priors.lbp import blur_prior

FIXTURES = Path(__file__).parent / "fixtures"
CUHK = FIXTURES / "cuhk_original"


def test_eval_detection_scores_the_lbp_prior_on_real_cuhk_images(tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    for path in sorted((CUHK / "image").iterdir()):
        prior = blur_prior(np.asarray(Image.open(path).convert("RGB")))
        Image.fromarray((prior * 255).round().astype(np.uint8)).save(maps / f"{path.stem}.png")
    out = tmp_path / "scores.json"
    assert main(["eval-detection", "--pred", str(maps), "--gt", str(CUHK / "gt"), "--gt-polarity", "blur-white",
                 "--out", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["n_images"] == 6 and scores["gt_polarity"] == "blur-white"
    # A real prior on real defocus: clearly better than chance, and the wrong polarity is clearly worse.
    wrong = tmp_path / "wrong.json"
    main(["eval-detection", "--pred", str(maps), "--gt", str(CUHK / "gt"), "--gt-polarity", "focus-white",
          "--out", str(wrong)])
    assert scores["fmax"] > json.loads(wrong.read_text())["fmax"] + 0.1
    assert scores["mae"] < json.loads(wrong.read_text())["mae"]
    assert "F_max" in capsys.readouterr().out


def test_eval_detection_names_a_missing_file(tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    for path in sorted((CUHK / "gt").iterdir())[:-1]:
        Image.open(path).save(maps / path.name)
    code = main(["eval-detection", "--pred", str(maps), "--gt", str(CUHK / "gt"), "--gt-polarity", "blur-white",
                 "--out", str(tmp_path / "x.json")])
    assert code == 1
    assert "out_of_focus0016" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_eval_deblur_identity_and_unreadable_file(tmp_path, capsys):
    sharp, blurred = tmp_path / "sharp", tmp_path / "pred"
    sharp.mkdir(), blurred.mkdir()
    for path in sorted((CUHK / "image").iterdir())[:3]:
        Image.open(path).convert("RGB").save(sharp / f"{path.stem}.png")
        Image.open(path).convert("RGB").save(blurred / f"{path.stem}.png")
    out = tmp_path / "s.json"
    assert main(["eval-deblur", "--pred", str(blurred), "--gt", str(sharp), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ssim"] == pytest.approx(1.0)
    (blurred / "out_of_focus0001.png").write_bytes(b"not an image")
    assert main(["eval-deblur", "--pred", str(blurred), "--gt", str(sharp), "--out", str(out)]) == 1
    assert "out_of_focus0001.png" in capsys.readouterr().err


def test_bad_config_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: 0\n")
    root = Path(__file__).resolve().parents[1]
    assert main(["demo-data", "-c", str(root / "config" / "config.yaml"), "-c", str(bad), "--out", str(tmp_path / "d")]) == 1
    assert "train.batch_size" in capsys.readouterr().err


def test_predict_on_users_photos(tiny_data, tmp_path, test_config):
    from apl.train.loop import train_stage
    train_stage(test_config, "single_gws", "ufat", tiny_data / "cache", None, tmp_path / "run")
    command = [sys.executable, "-m", "apl", "predict", "--weights", str(tmp_path / "run" / "weights.pt"),
               "--input", str(CUHK / "image"), "--out", str(tmp_path / "maps")]
    subprocess.run(command, check=True, capture_output=True)
    maps = sorted((tmp_path / "maps").iterdir())
    # named like the photos, so eval-detection pairs them with CUHK's masks as they are
    assert [m.stem for m in maps] == sorted(p.stem for p in (CUHK / "image").iterdir())
    # single_gws holds no G_sr: asking it to deblur is a clear error, not a crash.
    result = subprocess.run(command[:-2] + ["--task", "deblur", "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert result.returncode == 1 and "no deblurring generator" in result.stderr
