"""One training stage: pretraining, an adversarial phase, or a single-task baseline.

Resumable: after every epoch the resume state (networks, optimisers, losses so far, RNG state) is
saved atomically; a rerun continues from the last finished epoch and ends with the same weights as
an uninterrupted run on CPU, because each epoch's data order is derived from (seed, stage, epoch).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from apl.data.cache import load_cache
from apl.data.scale import cut, random_crops
from apl.models.deblurrer import clipped_share, fuse_ufat_branches
from apl.io import write_text
from apl.models.factory import bf16_enabled, build, configure_torch
from apl.train import checkpoint, schedule
from apl.train.augment import augment, camera

log = logging.getLogger("apl.train")
RESUME = "resume.pt"
WEIGHTS = "weights.pt"
LOSSES = "losses.csv"
# While a stage runs, its losses so far go to a file of another name: the final losses.csv is a
# Snakemake output, and an output that exists after a kill would block the resume as "incomplete".
LOSSES_SO_FAR = "losses.partial.csv"


class TrainingError(RuntimeError):
    pass


def stable_seed(*parts) -> int:
    """A seed from names and numbers that is the same in every process (unlike hash())."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def make_optimizer(params, settings: dict, fused: bool = False) -> torch.optim.Optimizer:
    # fused: one kernel per step for all of a network's weights instead of several passes per tensor
    if settings["name"] == "adam":
        return torch.optim.Adam(params, lr=settings["lr"], betas=(settings["momentum"], settings["beta2"]),
                                fused=fused or None)
    return torch.optim.SGD(params, lr=settings["lr"], momentum=settings["momentum"], fused=fused or None)


def adversarial(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE GAN loss (Eq. 6) on D's raw logits."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


# What _step reports besides the losses (see diagnostics)
DIAGNOSTIC_KEYS = ("d_acc_real", "d_acc_fake", "clipped", "map_mean", "map_std")


@torch.no_grad()
def diagnostics(real_logits, fake_logits, unclamped, focus) -> dict[str, float]:
    """What shows a collapse as it happens: D's accuracy on real and fake, the share of G_sr's output
    values that the [0, 1] clamp cuts, and the mean and spread of G_ws's map."""
    values = {"d_acc_real": (real_logits > 0).float().mean().item(),
              "d_acc_fake": (fake_logits < 0).float().mean().item(),
              "clipped": clipped_share(unclamped)}
    if focus is not None:
        values.update(map_mean=focus.float().mean().item(), map_std=focus.float().std().item())
    return values


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0,1]."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


class StageTrainer:
    def __init__(self, config: dict, stage: str, variant: str, cache_dir: str | Path,
                 init: str | Path | None, out_dir: str | Path, seed: int | None = None,
                 init_gws: str | Path | None = None):
        self.config, self.train_cfg = config, config["train"]
        # the training seed (one of config `seeds`); config `seed` is the data's
        self.seed = config["seeds"][0] if seed is None else int(seed)
        self.crop = config["image_size"] if config["scale"]["mode"] == "photo" else None
        self.stage = schedule.get(stage)
        self.variant = schedule.gsr_variant(stage, variant)
        self.label = f"{schedule.run_variant(stage, variant)}/{stage}"   # the run folder, for messages
        self.out_dir = Path(out_dir)
        self.device = configure_torch(config)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = self.train_cfg["cudnn_benchmark"]
        torch.manual_seed(stable_seed(self.seed, self.variant, stage, "init"))
        self.nets = {name: build(name, config, self.variant) for name in self.stage.networks}
        self.loaded: set[str] = set()   # the networks that come from `init`
        if init is not None:
            self._load_init(Path(init))
        if init_gws is not None:   # train.gws_start: single_gws
            saved = checkpoint.load(init_gws, made_by="the single_gws training rule")["networks"]
            if "gws" not in saved:
                raise TrainingError(f"{init_gws} holds no 'gws' network for stage {self.stage.name} to start from")
            self.nets["gws"].load_state_dict(saved["gws"])
        self.bf16 = bf16_enabled(self.train_cfg["bf16"], self.device)
        self.channels_last = self.train_cfg["channels_last"]
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        for name, net in self.nets.items():
            net.to(self.device, memory_format=memory)
            trained = name in self.stage.trained
            net.train(trained)
            net.requires_grad_(trained)
        self.optimizers = {name: make_optimizer(self.nets[name].parameters(), self._optimizer_settings(name),
                                                self.train_cfg["fused_optimizer"])
                           for name in self.stage.trained}
        if "gsr" in self.nets:
            fuse_ufat_branches(self.nets["gsr"], self.train_cfg["fused_ufat"])
        # G_sr phases: the frozen G_ws (eval mode) maps an image to the same map all phase long, so each map is
        # computed once, at the image's first batch, and kept on the device (not for random crops)
        self.maps_once = self.stage.kind == "gsr" and self.train_cfg["frozen_maps_once"] and self.crop is None
        self._maps: torch.Tensor | None = None
        self._mapped: torch.Tensor | None = None
        compile_mode = self.train_cfg["compile"]
        self.cuda_graphs = compile_mode == "reduce-overhead"
        if compile_mode:
            if self.device.type == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
                raise TrainingError(f"train.compile: {compile_mode} needs a C++ compiler (g++ or clang++) on the PATH "
                                    "to build the CPU kernels; install one or set train.compile: false")
            for net in self.nets.values():
                # in place: state_dict keys stay those of the plain network; "reduce-overhead" replays CUDA graphs
                net.compile(mode=None if compile_mode is True else compile_mode)
        self._load_data(Path(cache_dir))
        self.epochs = self.train_cfg["epochs"][self.stage.epochs_key]
        n = len(self.inputs)
        self.steps = self.train_cfg["steps_per_epoch"] or max(1, n // self.train_cfg["batch_size"])

    # -- setup -------------------------------------------------------------------------------
    def _optimizer_settings(self, name: str) -> dict:
        """train.optimizer for every network, except G_sr against D when train.gsr_adversarial_optimizer is set:
        Adam's per-weight steps move every channel shift of a pretrained G_sr at the full rate, and D's gradient
        then turns it into a colour translation (DEVIATIONS.md)."""
        special = self.train_cfg["gsr_adversarial_optimizer"]
        if name == "gsr" and self.stage.kind in ("gsr", "single_gsr") and special:
            return special
        if name == "d" and self.train_cfg["d_optimizer"]:
            return self.train_cfg["d_optimizer"]
        return self.train_cfg["optimizer"]

    def _load_init(self, path: Path) -> None:
        saved = checkpoint.load(path, made_by="the previous stage's training rule")["networks"]
        for name, net in self.nets.items():
            if name in saved:
                net.load_state_dict(saved[name])
                self.loaded.add(name)
            elif name not in self.stage.trained:
                raise TrainingError(f"{path} holds no '{name}' network, which stage {self.stage.name} needs frozen")

    def _load_data(self, cache_dir: Path) -> None:
        on = self.device
        if self.stage.kind == "pretrain":
            synthetic = load_cache(cache_dir / "synthetic.npz")
            self.inputs = torch.from_numpy(synthetic["blurred"]).to(on)
            self.shapes = _shapes(synthetic, "blurred")
            self.targets = torch.from_numpy(synthetic["sharp"]).to(on)
            self.masks = torch.from_numpy(synthetic["masks"].astype(np.float32)).to(on)
            return
        train = load_cache(cache_dir / "train.npz")
        self.inputs = torch.from_numpy(train["images"]).to(on)
        self.shapes = _shapes(train, "images")
        # G_ws's pixel target: B(I) (Eq. 7), or the GT masks the release's `1204gt` folder appears to hold
        masks = (self.stage.gws_target or self.train_cfg["gws_target"]) == "masks"
        if masks and "masks" not in train:
            raise TrainingError(f"stage {self.label} trains G_ws on the training images' GT masks, but "
                                f"{cache_dir / 'train.npz'} holds none: the prepared training set has masks only for "
                                "the demo and data.sets.train: original_cuhk (train.gws_target: prior otherwise)")
        target = train["masks"] if masks else train["priors"]
        self.gws_targets = torch.from_numpy(target.astype(np.float32)).to(on)
        if "d" in self.nets:
            fullclear = load_cache(cache_dir / "fullclear.npz")
            self.fullclear = torch.from_numpy(fullclear["images"]).to(on)
            self.fullclear_shapes = _shapes(fullclear, "images")
            self.in_focus_windows = None
            if self.train_cfg["d_real_in_focus"] > 0 or self.train_cfg["d_fake_sharpened"] > 0:
                self.in_focus_windows = self._in_focus_windows(train, cache_dir)

    def _in_focus_windows(self, train: dict, cache_dir: Path) -> torch.Tensor:
        """(image, top, left) of every crop window (on an 8-pixel grid) of the training photographs whose B(I) is
        above train.d_real_threshold everywhere in it: the photographs' own in-focus regions, D's second source
        of real samples (train.d_real_in_focus), so that blur, not content, tells real from fake."""
        if self.crop is None:
            raise TrainingError("train.d_real_in_focus and train.d_fake_sharpened cut crops of the training "
                                "photographs: they need scale.mode: photo (set them to 0 for squashed images)")
        threshold, found = self.train_cfg["d_real_threshold"], []
        for i, (height, width) in enumerate(train["shapes"].tolist()):
            prior = torch.from_numpy(train["priors"][i, :height, :width].astype(np.float32))
            # the smallest B(I) in each window: max-pool of the negated map
            lowest = -F.max_pool2d(-prior[None, None], self.crop, stride=8)[0, 0]
            for top, left in (lowest > threshold).nonzero().tolist():
                found.append((i, top * 8, left * 8))
        if not found:
            raise TrainingError(f"no {self.crop}x{self.crop} window of the training photographs in {cache_dir} has B(I) "
                                f"above train.d_real_threshold ({threshold}) everywhere: lower it, or set "
                                "train.d_real_in_focus: 0")
        log.info("%s: %d in-focus windows in %d photographs for D's real samples", self.label, len(found),
                 len({i for i, _, _ in found}))
        return torch.tensor(found)

    def _real_batch(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """D's real samples: full-clear crops, and train.d_real_in_focus of them in-focus crops of the training
        photographs (random flips)."""
        n_own = round(n * self.train_cfg["d_real_in_focus"]) if self.in_focus_windows is not None else 0
        real_index = torch.randint(len(self.fullclear), (n - n_own,), generator=generator).to(self.device)
        batches = [self._window([self.fullclear], self.fullclear_shapes, real_index, generator)[0]] if n > n_own else []
        if n_own:
            batches.append(self._in_focus_crops(n_own, generator))
        return self._prep(torch.cat(batches))

    def _in_focus_crops(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n random in-focus windows of the training photographs (uint8 NHWC, random flips)."""
        picks = self.in_focus_windows[torch.randint(len(self.in_focus_windows), (n,), generator=generator)]
        flips = (torch.rand(n, generator=generator) < 0.5).tolist()
        windows = [(top, left, flip) for (_, top, left), flip in zip(picks.tolist(), flips)]
        return cut(self.inputs[picks[:, 0].to(self.device)], windows, self.crop)

    def _fake_batch(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """D's fake samples: the composites, train.d_fake_sharpened of them replaced by G_sr run everywhere on
        in-focus crops of the training photographs (what "deblur everywhere" does to sharp content)."""
        n_sharpened = (round(len(out) * self.train_cfg["d_fake_sharpened"])
                       if self.in_focus_windows is not None else 0)
        if not n_sharpened:
            return out
        crops = self._prep(self._in_focus_crops(n_sharpened, generator))
        with torch.no_grad():
            guide = torch.zeros_like(crops[:, :1]) if "gws" in self.nets else None   # M = 0: G_sr everywhere
            sharpened = self.nets["gsr"](crops, guide)["out"].to(out.dtype)
        return torch.cat([out[n_sharpened:], sharpened])

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _prep(self, batch: torch.Tensor) -> torch.Tensor:
        x = to_float(batch)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _window(self, arrays: list[torch.Tensor], shapes: torch.Tensor, index: torch.Tensor,
                generator: torch.Generator) -> list[torch.Tensor]:
        """The indexed images of aligned arrays (image, its target, its mask): whole (scale.mode squash), or
        the same random image_size crop and flip of each image in all of them (photo)."""
        if self.crop is None:
            return [a[index] for a in arrays]
        windows = random_crops(shapes, index, self.crop, generator)
        return [cut(a[index], windows, self.crop) for a in arrays]

    def _set_learning_rates(self, step: int, total: int) -> None:
        """train.lr_schedule cosine: every optimiser's rate decays from its setting to 0 over the stage."""
        if self.train_cfg["lr_schedule"] != "cosine":
            return
        factor = 0.5 * (1.0 + math.cos(math.pi * step / total))
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self._optimizer_settings(name)["lr"] * factor

    # -- one step ----------------------------------------------------------------------------
    def _step(self, index: torch.Tensor, generator: torch.Generator, d_only: bool = False) -> dict[str, float]:
        """One training step of the stage; `d_only` (D's warm-up) updates D alone, the generators frozen."""
        nets, kind = self.nets, self.stage.kind
        if self.cuda_graphs:
            # CUDA graphs reuse their output buffers from one iteration to the next: say where one begins
            # (torch's guess fails when a step calls the same network several times, as D is here)
            torch.compiler.cudagraph_mark_step_begin()
        losses: dict[str, torch.Tensor] = {}
        if kind == "pretrain":
            image, target, mask = self._window([self.inputs, self.targets, self.masks], self.shapes, index, generator)
            degrade = self.train_cfg["pretrain_camera"]
            if degrade:
                image = camera(image, degrade["noise"], degrade.get("jpeg"), generator)
        elif kind in ("gws", "single_gws"):   # the stages whose loss reads G_ws's pixel target
            image, prior_target = self._window([self.inputs, self.gws_targets], self.shapes, index, generator)
            prior_target = prior_target.unsqueeze(1)
        else:
            image, = self._window([self.inputs], self.shapes, index, generator)
        image = self._prep(image)
        with self._autocast():
            if kind == "pretrain":
                result = nets["gsr"](image, mask.unsqueeze(1))
                # "reconstruction": R is compared with the sharp image everywhere, so G_sr also learns to leave
                # in-focus content alone (a soft map later lets R show through there); "composite": only the
                # composite, whose in-focus pixels are copies of the input (R unsupervised under M = 1)
                out = result["reconstruction" if self.train_cfg["pretrain_target"] == "reconstruction" else "out"]
                target = self._prep(target)
                distance = F.l1_loss if self.train_cfg["pretrain_loss"] == "l1" else F.mse_loss
                losses["g_total"] = losses["pixel"] = distance(out.float(), target)
                if self.train_cfg["pretrain_fft_weight"]:
                    # the fine detail a pixel loss lets a G_sr unsure of the blur smooth away, asked for directly
                    losses["fft"] = (torch.fft.rfft2(out.float(), norm="ortho")
                                     - torch.fft.rfft2(target, norm="ortho")).abs().mean()
                    losses["g_total"] = losses["pixel"] + self.train_cfg["pretrain_fft_weight"] * losses["fft"]
                self._update("gsr", losses["g_total"])
                return {k: v.item() for k, v in losses.items()}
            if kind == "single_gws":
                focus = nets["gws"](image)
                losses["g_total"] = losses["prior"] = self._prior_loss(focus, prior_target)
                self._update("gws", losses["g_total"])
                return {k: v.item() for k, v in losses.items()}

            generator_name = "gws" if kind == "gws" else "gsr"
            with torch.no_grad() if d_only else contextlib.nullcontext():   # the warm-up trains D alone
                if "gws" in nets:
                    if kind == "gws":
                        focus = nets["gws"](image)
                    elif self.maps_once:
                        focus = self._frozen_maps(image, index)
                    else:
                        with torch.no_grad():
                            focus = nets["gws"](image)
                    result = nets["gsr"](image, focus)
                else:  # single_gsr: U-GAN, no detection map
                    focus = None
                    result = nets["gsr"](image, None)
            out = result["out"]
            # D: full-clear images are real, composites are fake (Eq. 6), D loss = 0.5 (real + fake).
            real = self._real_batch(len(index), generator)
            def seen(x):   # what D sees: train.d_augment's random draw, fresh for every image and call
                return augment(x, self.train_cfg["d_augment"], generator)
            real_logits, fake_logits = nets["d"](seen(real)), nets["d"](seen(self._fake_batch(out.detach(), generator)))
            losses["d"] = 0.5 * (adversarial(real_logits, True) + adversarial(fake_logits, False))
            self._update("d", losses["d"])
            if d_only:
                return {"d": losses["d"].item(), **diagnostics(real_logits, fake_logits, result["unclamped"], focus)}
            # The generator of this phase tries to make D call its composite real.
            nets["d"].requires_grad_(False)
            losses["adv"] = adversarial(nets["d"](seen(out)), True)
            nets["d"].requires_grad_(True)
            total = losses["adv"]
            if kind == "gws":
                losses["prior"] = self._prior_loss(focus, prior_target)
                total = total + self.train_cfg["prior_weight"] * losses["prior"]
            losses["g_total"] = total
        self._update(generator_name, total)
        values = {k: v.item() for k, v in losses.items()}
        values.update(diagnostics(real_logits, fake_logits, result["unclamped"], focus))
        return values

    @torch.no_grad()
    def _frozen_maps(self, image: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The frozen G_ws's maps of a batch, each computed at the image's first batch of the stage only."""
        if self._mapped is None:
            self._mapped = torch.zeros(len(self.inputs), dtype=torch.bool, device=self.device)
        new = ~self._mapped[index]
        if new.any():
            fresh = self.nets["gws"](image[new])
            if self._maps is None:
                self._maps = torch.empty((len(self.inputs), *fresh.shape[1:]), dtype=fresh.dtype, device=self.device)
            self._maps[index[new]] = fresh
            self._mapped[index[new]] = True
        maps = self._maps[index]
        return maps.contiguous(memory_format=torch.channels_last) if self.channels_last else maps

    def _prior_loss(self, focus: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """||G_ws(I) - B(I)||_1 of Eq. 7: "sum" is the norm itself (summed over an image's pixels,
        averaged over the batch); "mean" divides it by the number of pixels as well."""
        distance = (focus.float() - target).abs()
        if self.train_cfg["prior_reduction"] == "sum":
            return distance.flatten(1).sum(1).mean()
        return distance.mean()

    def _update(self, name: str, loss: torch.Tensor) -> None:
        self._check_finite(loss, name)
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _check_finite(self, loss: torch.Tensor, name: str) -> None:
        if not torch.isfinite(loss).item():
            raise TrainingError(
                f"stage {self.label} epoch {self.epoch + 1} step {self.step_in_epoch + 1}: "
                f"{name} loss is {loss.item()}; stopped. The last good checkpoint is {self.out_dir / RESUME} "
                f"(epoch {self.epoch}); lower train.optimizer.lr or check the input data")

    # -- resume state ------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {**{key: self.config[key] for key in schedule.TRAINING_KEYS}, "seed": self.seed}

    def _state(self, epoch: int, rows: list[dict]) -> dict:
        return {"stage": self.stage.name, "variant": self.variant, "config": self.config, "seed": self.seed,
                "epoch": epoch,
                "networks": {k: v.state_dict() for k, v in self.nets.items()},
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
                "losses": rows, "torch_rng": torch.get_rng_state()}

    def _resume(self) -> tuple[int, list[dict]]:
        path = self.out_dir / RESUME
        if not path.exists():
            return 0, []
        state = checkpoint.load(path)
        saved = {**{key: state["config"].get(key) for key in schedule.TRAINING_KEYS}, "seed": state.get("seed")}
        if (state["stage"], state["variant"], saved) != (self.stage.name, self.variant, self._settings()):
            log.warning("%s was written with other training settings; starting this stage afresh", path)
            return 0, []
        for name, net in self.nets.items():
            net.load_state_dict(state["networks"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming %s after epoch %d of %d", self.label, state["epoch"], self.epochs)
        return state["epoch"], state["losses"]

    # -- the run -----------------------------------------------------------------------------
    def _warm_up_d(self) -> dict:
        """train.d_warmup_steps steps of D alone against the frozen generators, before a stage whose D starts
        fresh (gws_O1): the phase then opens with a D that already tells the full-clear photographs from the
        composites, instead of one at chance. Not resumable on its own: an interrupted warm-up runs again."""
        steps = self.train_cfg["d_warmup_steps"]
        generator = torch.Generator().manual_seed(stable_seed(self.seed, self.variant, self.stage.name, "d_warmup"))
        batch, values = self.train_cfg["batch_size"], []
        order = torch.randperm(len(self.inputs), generator=generator)
        generators = [net for name, net in self.nets.items() if name != "d" and name in self.stage.trained]
        for net in generators:   # frozen as the phase's frozen networks are: no BatchNorm statistics move
            net.eval()
        for step in tqdm(range(steps), desc=f"{self.label} D warm-up", unit="step", dynamic_ncols=True,
                         mininterval=1.0):
            index = order[(torch.arange(batch) + step * batch) % len(order)].to(self.device)
            values.append(self._step(index, generator, d_only=True))
        for net in generators:
            net.train()
        last = values[-min(100, steps):]
        summary = {"steps": steps, **{key: round(float(np.mean([v[key] for v in last])), 4)
                                      for key in ("d", "d_acc_real", "d_acc_fake")}}
        log.info("%s: D warmed up for %d steps (last 100: loss %.3f, accuracy real %.2f / fake %.2f)", self.label,
                 steps, summary["d"], summary["d_acc_real"], summary["d_acc_fake"])
        return summary

    def run(self) -> dict:
        started = time.perf_counter()
        first_epoch, rows = self._resume()
        warm_up = None
        if first_epoch == 0 and self.train_cfg["d_warmup_steps"] and "d" in self.stage.trained and "d" not in self.loaded:
            warm_up = self._warm_up_d()
        self.epoch, self.step_in_epoch = first_epoch, 0
        total_steps = self.epochs * self.steps
        bar = tqdm(total=total_steps, initial=first_epoch * self.steps, desc=self.label,
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        for epoch in range(first_epoch, self.epochs):
            self.epoch = epoch
            generator = torch.Generator().manual_seed(stable_seed(self.seed, self.variant, self.stage.name, epoch))
            order = torch.randperm(len(self.inputs), generator=generator)
            batch = self.train_cfg["batch_size"]
            epoch_start = time.perf_counter()
            for step in range(self.steps):
                self.step_in_epoch = step
                index = order[(torch.arange(batch) + step * batch) % len(order)].to(self.device)
                self._set_learning_rates(epoch * self.steps + step, total_steps)
                values = self._step(index, generator)
                rows.append({"epoch": epoch + 1, "step": step + 1, **{k: round(v, 6) for k, v in values.items()}})
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
                bar.update()
                if epoch == first_epoch and step == min(4, self.steps - 1):
                    self._warn_if_slow((time.perf_counter() - epoch_start) / (step + 1), total_steps)
            checkpoint.atomic_save(self._state(epoch + 1, rows), self.out_dir / RESUME)
            write_losses(self.out_dir / LOSSES_SO_FAR, rows)
        bar.close()
        meta = {"stage": self.stage.name, "variant": self.variant, "run": self.label, "epochs": self.epochs,
                "steps_per_epoch": self.steps, "device": str(self.device), "seed": self.seed,
                "seconds_this_run": round(time.perf_counter() - started, 2)}
        if warm_up:
            meta["d_warmup"] = warm_up
        checkpoint.save_weights(self.out_dir / WEIGHTS, self.nets, meta, config=self.config)
        write_losses(self.out_dir / LOSSES, rows)
        for leftover in (RESUME, LOSSES_SO_FAR):
            (self.out_dir / leftover).unlink(missing_ok=True)
        return meta

    def _warn_if_slow(self, seconds_per_step: float, total_steps: int) -> None:
        estimate = seconds_per_step * total_steps
        if self.device.type == "cpu" and estimate > 3600:
            stages = len(schedule.ALTERNATION) * len(self.train_cfg["ablation_variants"]) + 2
            log.warning("stage %s on CPU: about %.1f s per step, %.1f hours for this stage (measured); the profile "
                        "runs %d stages of this kind. It needs a GPU; on a CPU try `--configfile config/demo.yaml`.",
                        self.label, seconds_per_step, estimate / 3600, stages)


def write_losses(path: Path, rows: list[dict]) -> None:
    """Per-iteration losses as CSV, rewritten whole (atomically) after every epoch."""
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _shapes(cache: dict, key: str) -> torch.Tensor:
    """Every cached image's (height, width); caches written before scale.mode existed hold whole squares."""
    if "shapes" in cache:
        return torch.from_numpy(cache["shapes"].astype(np.int64))
    return torch.tensor(cache[key].shape[1:3]).repeat(len(cache[key]), 1)


def train_stage(config: dict, stage: str, variant: str, cache_dir, init, out_dir, seed: int | None = None,
                init_gws=None) -> dict:
    return StageTrainer(config, stage, variant, cache_dir, init, out_dir, seed, init_gws).run()
