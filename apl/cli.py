"""`apl`: one subcommand per pipeline stage (argument parsing only), plus tools for users' own images.

Every subcommand takes the config files (`-c/--config`, merged in order) and explicit paths, so a
stage runs, and is tested, the same with or without Snakemake.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from apl import config as config_module
from apl.io import write_json


def _config(args) -> dict:
    return config_module.load(args.config)


def _gpu_job_config(args) -> dict:
    """The config of a job that runs on the GPU: `device: auto` becomes a CUDA device no other job holds."""
    from apl.devices import for_job
    config = _config(args)
    config["device"] = for_job(config["device"], config["jobs_per_gpu"])
    return config


def cmd_demo_data(args):
    from apl.data.demo import build_demo
    manifest = build_demo(_config(args), args.out)
    print(f"demo datasets in {args.out}: {manifest['counts']}")


def cmd_download(args):
    from apl.data.download import download
    found = download(_config(args))
    write_json(args.out, found)
    print(f"raw datasets in place ({', '.join(f'{name}: {layout}' for name, layout in found['sets'].items())}): "
          f"{', '.join(found['folders'])}")
    from apl.data.release_files import release_instructions
    print(release_instructions(_config(args), indent=""))   # the authors' weights: where to get them, where to put them


def cmd_prepare(args):
    from apl.data.prepare import prepare
    manifest = prepare(_config(args), args.raw, args.out)
    print(f"prepared datasets in {args.out}: {manifest['counts']}")


def cmd_synthesize(args):
    from apl.data.layout import FOLDERS
    from apl.data.synthesis import synthesize_dataset
    config = _config(args)
    synthesis = config["synthesis"]
    result = synthesize_dataset(Path(args.datasets) / FOLDERS["fullclear"], args.out, per_image=synthesis["per_image"],
                                size=config["image_size"], seed=config["seed"], sigma_range=tuple(synthesis["sigma"]),
                                window=synthesis["window"], blurred_fraction_range=tuple(synthesis["blurred_fraction"]),
                                scale=config["scale"], kernel=synthesis["kernel"])
    print(f"synthesized {result['pairs']} defocus pairs from {result['sources']} full-clear images in {args.out}")


def cmd_cache(args):
    from apl.data.cache import build_cache
    result = build_cache(args.set, args.source, args.out, _config(args))
    print(f"cached {result['images']} {args.set} images at {result['size']}px in {args.out}")


def cmd_train(args):
    from apl.train.loop import train_stage
    meta = train_stage(_gpu_job_config(args), args.stage, args.variant, args.cache_dir, args.init, args.out_dir,
                       seed=args.seed, init_gws=args.init_gws)
    print(f"trained {meta['run']}: {meta['epochs']} epochs x {meta['steps_per_epoch']} steps "
          f"on {meta['device']} in {meta['seconds_this_run']} s")


def cmd_evaluate(args):
    from apl.evaluate import evaluate_stage
    result = evaluate_stage(_gpu_job_config(args), args.stage, args.variant, args.weights, args.datasets, args.maps)
    write_json(args.out, result)
    _print_scores(result)


def cmd_probe(args):
    from apl.models.factory import configure_torch
    from apl.probe import probe_stage, summary_line
    config = _config(args)
    configure_torch(config)   # the config's thread count (the probe runs on the CPU)
    result = probe_stage(args.weights, args.datasets, config["probe"]["crops"], seed=config["seed"])
    write_json(args.out, result)
    print(summary_line(result))


def cmd_evaluate_release(args):
    from apl.evaluate import evaluate_release
    from apl.data.release_files import release_instructions
    config = _gpu_job_config(args)
    results = evaluate_release(config, args.run_dir, args.datasets, args.maps)
    for stage, result in results.items():
        write_json(Path(args.out_dir) / f"{stage}.json", result)
        if result.get("absent"):
            print(f"{stage}: {result['status']} ({', '.join(result['missing'])} missing)")
        else:
            _print_scores(result)
    print(release_instructions(config, indent=""))


def cmd_baseline(args):
    from apl.evaluate import evaluate_baseline
    result = evaluate_baseline(_config(args), args.method, args.datasets, args.maps)
    write_json(args.out, result)
    _print_scores(result)


def _print_scores(result: dict):
    for dataset, scores in result["datasets"].items():
        shown = {k: round(v, 4) for k, v in scores.items() if k in ("fmax", "mae", "fmax_sod", "psnr", "ssim")}
        print(f"{result['stage']} on {dataset}: {shown}")


def cmd_tables(args):
    from apl.report.tables import write_tables
    for path in write_tables(_config(args), args.metrics, args.out):
        print(path)


def cmd_figure7(args):
    from apl.report.figures import figure7
    for path in figure7(args.metrics, args.out):
        print(path)


def cmd_figure6(args):
    from apl.report.figures import figure6
    for path in figure6(args.metrics, args.datasets, args.out, per_set=args.per_set):
        print(path)


def cmd_figure9(args):
    from apl.report.figures import figure9
    for path in figure9(args.metrics, args.datasets, args.out, count=args.count):
        print(path)


def cmd_showcase(args):
    from apl.report.figures import showcase
    print(showcase(args.results, args.datasets, args.out, args.weights))


def cmd_training_curves(args):
    from apl.report.figures import training_curves
    for path in training_curves(args.losses, args.out):
        print(path)


def cmd_probe_figure(args):
    from apl.report.figures import probe_figure
    for path in probe_figure(args.probes, args.out):
        print(path)


def cmd_report(args):
    from apl.report.report import write_report
    print(write_report(_config(args), args.config or [config_module.DEFAULT_CONFIG], args.results, args.out))


def cmd_eval_detection(args):
    from apl.metrics.detection import score_detection_dirs
    result = score_detection_dirs(args.pred, args.gt, args.gt_polarity, args.mae_size,
                                  pred_polarity=args.pred_polarity, pred_suffix=args.pred_suffix)
    write_json(args.out, result)
    print(f"F_max {result['fmax']:.4f}  MAE {result['mae']:.4f}  (salient-object convention: "
          f"F_max {result['fmax_sod']:.4f}  MAE {result['mae_sod']:.4f})  n={result['n_images']} -> {args.out}")


def cmd_eval_deblur(args):
    from apl.metrics.deblurring import score_deblur_dirs
    result = score_deblur_dirs(args.pred, args.gt, args.size, pred_suffix=args.pred_suffix)
    write_json(args.out, result)
    print(f"PSNR {result['psnr']:.3f}  SSIM {result['ssim']:.4f}  MAE {result['mae']:.4f}  n={result['n_images']} -> {args.out}")


def cmd_models_summary(args):
    from apl.models import VARIANTS, summarize
    from apl.models.factory import build
    from apl.models.summary import format_summary
    config = _config(args)
    config["image_size"] = args.size
    networks = {"G_ws": build("gws", config)}
    networks.update({f"G_sr ({variant})": build("gsr", config, variant) for variant in VARIANTS})
    for kind in ("paper", "release"):
        config["models"]["discriminator"]["kind"] = kind
        networks[f"D ({kind})"] = build("d", config)
    print(format_summary(summarize(networks, size=args.size)))


def cmd_budget(args):
    from apl.train import budget
    config = _config(args)
    print(budget.describe(config, budget.parse_seconds(config, args.seconds), args.device))


def cmd_predict(args):
    from apl.predict import Model, collect_inputs, parse_resolution, predict_photos
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.weights is None:   # the models apl ships (docs/model.md)
        from apl.pretrained import deblurrer_path, detector_path
        args.weights = deblurrer_path() if args.task == "deblur" else detector_path()
    # Self-describing weights carry their config; -c is only read for weights saved before they did.
    config = config_module.load(args.config) if args.config else None
    model = Model(args.weights, config, device=args.device, resolution=parse_resolution(args.resolution),
                  tile=args.tile, overlap=args.overlap, keep_mean=args.keep_mean)
    if args.config and "config" in model.meta:
        logging.getLogger("apl").info("%s records the config it was trained with; -c is not needed and was not used",
                                      args.weights)
    inputs = collect_inputs(args.input)
    print(model.describe())
    result = predict_photos(model, inputs, args.task, args.out, bits=args.bits, overlay_dir=args.overlay,
                            progress=not args.quiet)
    print(f"{result['written']} photo(s) -> {args.out}" + (f" (overlays in {args.overlay})" if args.overlay else ""))


def cmd_export_model(args):
    from apl.data.layout import FOLDERS, MASK_FOLDERS, MASK_POLARITY, VALIDATION_SET
    from apl.io import list_images, read_json, read_mask
    from apl.predict import read_photo
    from apl.pretrained import WORKING_SIDES, choose, export_detector
    if len(args.weights) != len(args.metrics):
        raise ValueError(f"--weights and --metrics pair up: got {len(args.weights)} weights and {len(args.metrics)} "
                         "metrics files")
    candidates = dict(zip(map(str, args.weights), args.metrics))
    best, scores = choose(candidates)
    chosen = read_json(candidates[best])
    validation = list_images(args.datasets / FOLDERS[VALIDATION_SET[0]])
    mask_files = list_images(args.datasets / MASK_FOLDERS[VALIDATION_SET[0]])
    photos = [read_photo(validation[stem]) for stem in sorted(validation)]
    masks = [read_mask(mask_files[stem], MASK_POLARITY) for stem in sorted(validation)] if mask_files else None
    sides = tuple(args.sides or WORKING_SIDES)
    record = export_detector(best, args.out, photos, {
        "profile": _config(args)["profile"], "stage": chosen["stage"],
        "chosen_on": "validation F_max, then MAE (never the test images)", "candidates": scores,
        "scores": {name: {key: entry[key] for key in ("fmax", "mae", "n_images") if key in entry}
                   for name, entry in chosen["datasets"].items() if "fmax" in entry}}, masks=masks, sides=sides)
    write_json(args.record, record)
    print(f"{args.out}: G_ws of {best} (validation F_max {scores[best]['validation_fmax']:.3f}, MAE "
          f"{scores[best]['validation_mae']:.3f}; best of {len(scores)}), float16 storage, {args.out.stat().st_size / 1e6:.2f} MB, "
          f"maps within {record['max_map_change_levels']:.0f} level(s) of float32 on {len(photos)} validation photographs; "
          f"runs at a longer side of {record.get('working_longer_side', 'train')} px by default")
    if args.deblurrers:
        export_default_deblurrer(args, best, photos, masks, sides)


def export_default_deblurrer(args, detector: str, photos: list, masks: list | None, sides: tuple) -> None:
    """The deblurring stage of the chosen detector's seed, exported beside it (apl.pretrained.export_deblurrer)."""
    from apl.pretrained import export_deblurrer
    from apl.train import checkpoint
    if args.deblurrer_out is None or args.deblurrer_record is None:
        raise ValueError("--deblurrers needs --deblurrer-out and --deblurrer-record")
    if args.deblurrer_out.parent.resolve() != args.out.parent.resolve():
        raise ValueError(f"--deblurrer-out {args.deblurrer_out} must sit beside --out {args.out}: the deblurrer runs "
                         "with that detector's map")
    seed = checkpoint.load_weights(detector)[1].get("seed")
    metas = {path: checkpoint.load_weights(path)[1] for path in args.deblurrers}
    weights = next((path for path, meta in metas.items() if meta.get("seed") == seed), None)
    if weights is None:
        raise ValueError(f"none of --deblurrers ({', '.join(map(str, args.deblurrers))}) has the chosen detector's "
                         f"seed {seed}: pass the deblurring stage of every seed")
    stage = metas[weights].get("stage")
    every = max(1, len(photos) // 25)   # 25 validation photographs choose G_sr's working scale
    record = export_deblurrer(weights, args.deblurrer_out, photos[::every], {
        "profile": _config(args)["profile"], "stage": stage, "seed": seed,
        "chosen_on": "the seed of the default detector (chosen on validation); the stage is config model.deblurrer"},
        masks=masks[::every] if masks else None, sides=sides)
    write_json(args.deblurrer_record, record)
    print(f"{args.deblurrer_out}: G_sr of {weights} ({stage}, seed {seed}), float16 storage, "
          f"{args.deblurrer_out.stat().st_size / 1e6:.2f} MB, deblurred photographs within "
          f"{record['max_output_change_levels']:.0f} level(s) of float32; runs with {args.out.name}'s map"
          + (f", G_sr at a longer side of {record['deblur_longer_side']} px by default" if masks else ""))


def cmd_import_release(args):
    from apl.models.release import import_release
    meta = import_release(args.dbd, args.deblur, args.out)
    for which, name in (("dbd", "G_ws"), ("deblur", "G_sr")):
        if which in meta["release"]:
            source = meta["release"][which]
            print(f"{name} <- {source['file']} ({source['class']}): {source['used']} of {source['keys']} keys used, "
                  f"{source['unused']} stored but unused by the release's forward")
    print(f"{args.out}: the release's networks at {meta['resolution']} resolution (160x160); run "
          f"apl predict --weights {args.out} --input PHOTOS --out DIR [--task deblur]")


def cmd_plots_data(args):
    from apl.dvcpipeline.plotdata import export
    written = export(args.out, [str(p) for p in args.losses], [str(p) for p in args.metrics])
    print(f"{len(written)} plot files in {args.out}")


def cmd_dvc_pipeline(args):
    from apl.dvcpipeline import generate
    if args.check:
        problems = generate.check(args.root)
        for problem in problems:
            print(problem)
        if problems:
            raise ValueError("the DVC pipeline files differ from the Snakemake workflow; regenerate them with "
                             "`apl dvc-pipeline` (make dvc-pipeline) and commit them")
        print("the DVC pipeline files match the Snakemake workflow")
        return
    changed = generate.write(args.root)
    print("\n".join(changed) if changed else "the DVC pipeline files were already current")


def cmd_dvc_timestamps(args):
    from apl.dvcpipeline import dvc_yaml_path, profiles
    from apl.dvcpipeline.timestamps import restore
    targets = args.dvc_yaml or [dvc_yaml_path(name, files) for name, files in profiles(args.root).items()]
    for target in targets:
        if (args.root / target).with_name("dvc.lock").exists():
            print(restore(target, args.root, dry_run=args.dry_run).summary())
        else:
            print(f"{target}: no dvc.lock yet, nothing to do")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="apl", description=__doc__.splitlines()[0])
    top.add_argument("-v", "--verbose", action="store_true")
    sub = top.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, config=True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("-c", "--config", action="append", type=Path, default=None,
                           help="config file(s), merged in order (default: config/config.yaml)")
        p.set_defaults(func=func)
        return p

    p = add("demo-data", cmd_demo_data, "build the embedded demo datasets from scikit-image photographs")
    p.add_argument("--out", type=Path, required=True)
    p = add("download", cmd_download, "find, download, verify and extract the paper profile's raw datasets")
    p.add_argument("--out", type=Path, required=True, help="JSON listing the raw folders found")
    p = add("prepare", cmd_prepare, "turn raw datasets into the canonical prepared layout")
    p.add_argument("--raw", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = add("synthesize", cmd_synthesize, "synthesize Gaussian-defocused pairs from the full-clear images")
    p.add_argument("--datasets", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = add("cache", cmd_cache, "decode and resize a training set once (with its blur priors) into .npz")
    p.add_argument("--set", choices=("train", "fullclear", "synthetic"), required=True)
    p.add_argument("--source", type=Path, required=True, help="the datasets folder (or the synthetic folder)")
    p.add_argument("--out", type=Path, required=True)
    p = add("train", cmd_train, "train one stage of the schedule (resumes after an interruption)")
    p.add_argument("--stage", required=True)
    p.add_argument("--variant", default="ufat", help="G_sr variant: ugan | dcgan | cdfgan | ufat | guard")
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--init", type=Path, default=None, help="weights of the previous stage")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--init-gws", type=Path, default=None,
                   help="weights whose G_ws this stage's G_ws starts from (train.gws_start: single_gws)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the first of the config's seeds)")
    for name, func, text in (("evaluate", cmd_evaluate, "run a trained stage on the test sets and score it"),):
        p = add(name, func, text)
        p.add_argument("--stage", required=True)
        p.add_argument("--variant", default="ufat")
        p.add_argument("--weights", type=Path, required=True)
        p.add_argument("--datasets", type=Path, required=True)
        p.add_argument("--maps", type=Path, required=True, help="folder for the saved maps / images")
        p.add_argument("--out", type=Path, required=True)
    p = add("probe", cmd_probe, "does D teach the true map? D's accuracy, its verdict on six maps and the direction of "
            "its gradient on the map, for an adversarial stage's frozen networks (apl/probe.py)")
    p.add_argument("--weights", type=Path, required=True, help="an adversarial stage's weights.pt (gws_O1 ... gsr_O3)")
    p.add_argument("--datasets", type=Path, required=True,
                   help="data/<profile>/datasets: the validation split (else the training images with masks) and the "
                        "held-out full-clear photographs")
    p.add_argument("--out", type=Path, required=True, help="the probe's JSON")
    p = add("evaluate-release", cmd_evaluate_release, "import the authors' released DBD.pth / deblur.pth (config "
            "release.dbd, release.deblur) and score them on the test sets like a stage; absent files give results "
            "files saying 'not run: weights absent'")
    p.add_argument("--datasets", type=Path, required=True)
    p.add_argument("--run-dir", type=Path, required=True, help="folder for the imported weights.pt and import.json")
    p.add_argument("--maps", type=Path, required=True, help="folder for the saved maps / images")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for release_gws.json and release_gsr.json")
    p = add("baseline", cmd_baseline, "run a method of apl.baselines (classic detectors, the defocused input) "
                                      "on its test sets, time it and score it")
    p.add_argument("--method", required=True)
    p.add_argument("--datasets", type=Path, required=True)
    p.add_argument("--maps", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = add("tables", cmd_tables, "build Tables 1-5 (CSV, Markdown, LaTeX) from the metrics files")
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = add("figure7", cmd_figure7, "draw Figure 7 (PR and F-measure curves on CUHK and DUT; PNG and PDF)",
            config=False)
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="detection metrics JSONs, one per curve")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the PDF is written beside it")
    p = add("figure6", cmd_figure6, "draw Figure 6 (input | each method's focus map | GT for fixed test images)",
            config=False)
    p.add_argument("--metrics", type=Path, nargs="+", required=True,
                   help="detection metrics JSONs, one per column (they name the folders of the saved maps)")
    p.add_argument("--datasets", type=Path, required=True, help="the prepared datasets folder (the input images)")
    p.add_argument("--per-set", type=int, default=3, help="images per detection test set")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the PDF is written beside it")
    p = add("figure9", cmd_figure9, "draw Figure 9 (defocused input | each method's output | sharp target)",
            config=False)
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="deblurring metrics JSONs, one per column")
    p.add_argument("--datasets", type=Path, required=True, help="the prepared datasets folder (the input images)")
    p.add_argument("--count", type=int, default=4, help="DP test images shown")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the PDF is written beside it")
    p = add("showcase", cmd_showcase, "the README's picture: CUHK test photographs, B(I), the default detector's "
            "map and GT, from a finished run of the real-data profile (make readme-figure)", config=False)
    p.add_argument("--results", type=Path, required=True, help="results/<profile> of a finished run (its B(I) maps)")
    p.add_argument("--datasets", type=Path, required=True, help="data/<profile>/datasets")
    p.add_argument("--weights", type=Path, default=None, help="the detector to show (default: the one apl ships)")
    p.add_argument("--out", type=Path, required=True, help="the PNG")
    p = add("training-curves", cmd_training_curves, "plot the losses of every training phase (PNG and PDF)",
            config=False)
    p.add_argument("--losses", type=Path, nargs="+", required=True,
                   help="runs/<run>/<stage>/losses.csv files, drawn in this order")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the PDF is written beside it")
    p = add("probe-figure", cmd_probe_figure, "plot the probes of every adversarial phase and seed (PNG and PDF)",
            config=False)
    p.add_argument("--probes", type=Path, nargs="+", required=True, help="probe/seed<N>/<run>/<stage>.json files")
    p.add_argument("--out", type=Path, required=True, help="the PNG; the PDF is written beside it")
    p = add("report", cmd_report, "write REPORT.md from the tables, figures, deviations and provenance")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = add("eval-detection", cmd_eval_detection, "score a folder of any method's focus maps", config=False)
    p.add_argument("--pred", type=Path, required=True)
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--gt-polarity", choices=("focus-white", "blur-white"), required=True,
                   help="what white means in the GT files (original CUHK masks: blur-white)")
    p.add_argument("--pred-polarity", choices=("focus-white", "blur-white"), default="focus-white",
                   help="what white means in the predicted maps (apl's: focus-white; many methods publish "
                        "blur maps: blur-white)")
    p.add_argument("--pred-suffix", default="", help="removed from prediction names before matching (e.g. _focus)")
    p.add_argument("--mae-size", type=int, default=160)
    p.add_argument("--out", type=Path, required=True)
    p = add("eval-deblur", cmd_eval_deblur, "score a folder of any method's deblurred images", config=False)
    p.add_argument("--pred", type=Path, required=True)
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--pred-suffix", default="", help="removed from prediction names before matching (e.g. _deblurred)")
    p.add_argument("--out", type=Path, required=True)
    p = add("models-summary", cmd_models_summary, "parameter counts and forward GFLOPs of every network")
    p.add_argument("--size", type=int, default=160)
    p = add("budget", cmd_budget, "the profile's training iterations and projected wall time from measured "
            "seconds per iteration (tests/bench_training.py --project measures them and prints this command)")
    p.add_argument("--seconds", nargs="+", required=True, metavar="KIND=S",
                   help="seconds per iteration by stage kind (pretrain, gws, gsr, single_gws, single_gsr), "
                        "optionally per variant (ugan/gsr=0.4)")
    p.add_argument("--device", default="the measured device", help="what the seconds were measured on, for the heading")
    p = add("predict", cmd_predict, "focus maps or deblurred images for your own photographs, at their full size")
    p.add_argument("--weights", type=Path, default=None,
                   help="a stage's weights.pt (gsr_O3 holds G_ws and G_sr); it records how to rebuild its networks. "
                        "Default: the defocus detector shipped with apl (docs/model.md; detection only)")
    p.add_argument("--input", nargs="+", required=True,
                   help="photos, folders of photos and/or quoted patterns ('photos/*.jpg'); JPEG PNG TIFF BMP WebP")
    p.add_argument("--task", choices=("detect", "deblur"), default="detect",
                   help="detect: focus map, white = in focus; deblur: the composite R(1-M) + I M")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.png, one per photo, at the photo's size")
    p.add_argument("--resolution", default="auto",
                   help="where the networks run: auto (default: the longer side the weights record, chosen on "
                        "validation photographs, as the default detector does; else train), train (the scale they "
                        "were trained at: the square, or the longer side of scale.mode photo), full (the photo's own "
                        "size, in tiles) or N (longer side N pixels, aspect kept)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present) | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bit depth of the focus-map PNGs")
    p.add_argument("--overlay", type=Path, default=None,
                   help="also write <name>.jpg here: the photo with its blurred regions tinted magenta")
    p.add_argument("--tile", type=int, default=512, help="largest side the networks see at once (memory bound)")
    p.add_argument("--overlap", type=int, default=128, help="pixels neighbouring tiles share and cross-fade over")
    p.add_argument("--keep-mean", type=float, default=None, metavar="SIGMA",
                   help="deblur: G_sr's change keeps the photo's local mean colour (blur never moves it): its "
                        "Gaussian low-pass of SIGMA px where G_sr runs is removed, and with it any colour cast "
                        "(default: apl.predict.KEEP_MEAN_SIGMA, 8 px; 0 for the authors' imported weights, whose own "
                        "output apl reproduces); 0: G_sr's output as it is, the paper's composite")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = add("export-model", cmd_export_model, "the default detector apl predict ships: the candidate with the best "
            "validation score, G_ws only, large tensors float16 (docs/model.md; make model)")
    p.add_argument("--weights", type=Path, nargs="+", required=True, help="the candidates' weights.pt files")
    p.add_argument("--metrics", type=Path, nargs="+", required=True,
                   help="their metrics JSONs, in the same order (the choice reads only their validation scores)")
    p.add_argument("--datasets", type=Path, required=True, help="data/<profile>/datasets: its validation photographs "
                   "check that float16 storage moves no map by more than one 8-bit level, and with their masks choose "
                   "the working scale apl predict runs the model at")
    p.add_argument("--out", type=Path, required=True, help="the exported weights file")
    p.add_argument("--record", type=Path, required=True, help="a JSON of what was exported, from what, and why")
    p.add_argument("--deblurrers", type=Path, nargs="+", default=None,
                   help="weights.pt of the deblurring stage (config model.deblurrer), one per seed: the chosen detector's "
                        "seed is exported beside it as the default deblurrer (G_sr only)")
    p.add_argument("--deblurrer-out", type=Path, default=None, help="the exported deblurrer (beside --out)")
    p.add_argument("--deblurrer-record", type=Path, default=None, help="a JSON of what was exported as the deblurrer")
    p.add_argument("--sides", type=int, nargs="+", default=None,
                   help="the working longer sides tried on the validation photographs for each model (default: "
                        "apl.pretrained.WORKING_SIDES, 320-640 px)")
    p = add("import-release", cmd_import_release, "convert the authors' released DBD.pth (and deblur.pth) into a "
            "weights file apl predict reads (docs/release.md)", config=False)
    p.add_argument("--dbd", type=Path, required=True, help="the release's detector state dict (CNN_for_DBD), DBD.pth")
    p.add_argument("--deblur", type=Path, default=None,
                   help="the release's deblurring generator state dict (CNN_for_Generator), deblur.pth")
    p.add_argument("--out", type=Path, required=True, help="the weights file to write, e.g. data/release/release.pt")
    p = add("plots-data", cmd_plots_data, "write the tables behind DVC's plots (PR / F curves, losses per epoch)",
            config=False)
    p.add_argument("--losses", type=Path, nargs="*", default=[], help="runs/<run>/<stage>/losses.csv files")
    p.add_argument("--metrics", type=Path, nargs="*", default=[], help="detection metrics JSONs")
    p.add_argument("--out", type=Path, required=True, help="the plots folder (results/<profile>/plots)")
    p = add("dvc-pipeline", cmd_dvc_pipeline, "write dvc.yaml and pipelines/<profile>/dvc.yaml from the Snakemake "
            "workflow (--check: fail if they differ)", config=False)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a file is stale")
    p.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    p = add("dvc-timestamps", cmd_dvc_timestamps, "after dvc pull / dvc checkout: give the outputs that match "
            "dvc.lock times that tell Snakemake they are up to date (Snakemake also does this when it starts)",
            config=False)
    p.add_argument("dvc_yaml", nargs="*", help="dvc.yaml files (default: every profile's)")
    p.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    p.add_argument("--dry-run", action="store_true", help="only report")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        args.func(args)
    except (config_module.ConfigError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"apl {args.command}: error: {err}", file=sys.stderr)
        return 1
    logging.getLogger("apl").info("%s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
