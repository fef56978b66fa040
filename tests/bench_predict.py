"""Seconds per 12-megapixel photograph for `apl predict` and its peak memory (a benchmark, not a test).

A 4000 x 3000 JPEG is made by upscaling a CUHK photograph from tests/fixtures. Each case runs in a fresh
process with torch limited to --threads (default 2) and times `predict_photos` on that one photo: decoding,
EXIF orientation, the networks, the full-size map / composite and writing the PNG. Peak memory is the
process's maximum resident set (ru_maxrss), which includes the Python interpreter and torch (reported on
its own as "baseline"). Networks have random weights of the profile's sizes: the time does not depend on
their values; profile `default` is the detector (detect) and deblurrer (deblur) apl ships (docs/model.md). "load" is the seconds to build the
Model from its file (torch already imported).

    python tests/bench_predict.py                      # all cases below
    python tests/bench_predict.py --cases default:detect:train default:detect:full
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "fixtures" / "cuhk_original" / "image" / "out_of_focus0001.jpg"
PROFILES = {"paper": ["config/config.yaml"], "demo": ["config/config.yaml", "config/demo.yaml"]}
CASES = ["default:detect:auto", "default:detect:train", "default:detect:full", "default:deblur:auto", "paper:detect:train", "paper:deblur:train", "demo:detect:train", "demo:deblur:train",
         "demo:detect:full", "demo:deblur:full", "demo:detect:full:24"]

CHILD = r"""
import json, resource, sys, time, torch
from pathlib import Path
torch.set_num_threads(int(sys.argv[5]))
from apl.predict import Model, collect_inputs, predict_photos
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load = time.perf_counter()
model = Model(sys.argv[1], device="cpu", resolution=sys.argv[4] if sys.argv[4] in ("auto", "train", "full") else int(sys.argv[4]))
load = time.perf_counter() - load
inputs = collect_inputs([sys.argv[2]])
start = time.perf_counter()
predict_photos(model, inputs, sys.argv[3], Path(sys.argv[6]), progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "load": load, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "baseline_mb": baseline / 1024}))
"""


def make_weights(profile: str, path: Path) -> dict[str, Path]:
    """{task: weights file}: the models apl ships (the deblurrer beside its detector), or random ones."""
    sys.path.insert(0, str(ROOT))
    if profile == "default":
        import shutil
        from apl.pretrained import deblurrer_path, detector_path
        path.mkdir()
        return {"detect": Path(shutil.copy(detector_path(), path)), "deblur": Path(shutil.copy(deblurrer_path(), path))}
    from apl import config as config_module
    from apl.models.factory import build
    from apl.train import checkpoint
    config = config_module.load([ROOT / p for p in PROFILES[profile]])
    nets = {"gws": build("gws", config), "gsr": build("gsr", config, config["train"]["variant"])}
    checkpoint.save_weights(path, nets, {"stage": "bench", "variant": config["train"]["variant"]}, config=config)
    return {"detect": path, "deblur": path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CASES, help="profile:task:resolution[:megapixels]")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = {}
        for mp, size in ((12, (4000, 3000)), (24, (6000, 4000))):
            folder = tmp / f"photo{mp}"
            folder.mkdir()
            Image.open(PHOTO).convert("RGB").resize(size, Image.BICUBIC).save(folder / "photo.jpg", quality=92)
            photos[mp] = folder
        weights = {}
        print("| profile | task | --resolution | photo | seconds | load (s) | peak memory (MB) | of which baseline |")
        print("|---|---|---|---|---|---|---|---|")
        for case in args.cases:
            profile, task, resolution, *mp = case.split(":")
            mp = int(mp[0]) if mp else 12
            if profile not in weights:
                weights[profile] = make_weights(profile, tmp / f"{profile}.pt")
            result = subprocess.run([sys.executable, "-c", CHILD, str(weights[profile][task]), str(photos[mp]), task,
                                     resolution, str(args.threads), str(tmp / "out")],
                                    capture_output=True, text=True, cwd=tmp)
            if result.returncode:
                print(f"| {profile} | {task} | {resolution} | {mp} MP | failed: {result.stderr.strip()[-300:]} |")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"| {profile} | {task} | {resolution} | {mp} MP | {r['seconds']:.1f} | {r['load']:.2f} | {r['peak_mb']:.0f} | "
                  f"{r['baseline_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
