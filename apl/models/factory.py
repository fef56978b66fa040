"""Build the three networks from the config's `models` section (paper scale by default)."""
from __future__ import annotations

from pathlib import Path

import torch

from apl.models.deblurrer import SelfReferencedDeblurrer
from apl.models.detector import DefocusDetector
from apl.models.discriminator import Discriminator


def build(name: str, config: dict, variant: str = "ufat") -> torch.nn.Module:
    models = config["models"]
    if name == "gws":
        gws = models["gws"]
        kind = _kind(gws, "gws")
        return DefocusDetector(width=gws["width"], pretrained=gws["pretrained"], align_corners=kind == "release")
    if name == "gsr":
        gsr = models["gsr"]
        if _kind(gsr, "gsr") == "release":   # the authors' released generator (apl.models.release)
            from apl.models.release import ReleaseDeblurrer
            if variant != "ufat":
                raise ValueError(f"models.gsr.kind: release is the release's UFAT generator; variant {variant!r} "
                                 "needs models.gsr.kind: paper")
            return ReleaseDeblurrer(width=gsr["width"], stages=tuple(gsr["stages"]))
        return SelfReferencedDeblurrer(variant=variant, width=gsr["width"], stages=tuple(gsr["stages"]),
                                       skip=gsr["skip"], clamp=gsr["clamp"])
    if name == "d":
        d = models["discriminator"]
        return Discriminator(width=d["width"], kind=d["kind"], image_size=config["image_size"], fc_width=d["fc_width"])
    raise ValueError(f"unknown network {name!r}; use gws, gsr or d")


NETWORK_KINDS = ("paper", "release")


def _kind(section: dict, name: str) -> str:
    """models.<name>.kind: paper (default, also for configs without the key) | release (the authors' layout)."""
    kind = section.get("kind", "paper")
    if kind not in NETWORK_KINDS:
        raise ValueError(f"unknown models.{name}.kind {kind!r}; valid: {', '.join(NETWORK_KINDS)}")
    return kind


def configure_torch(config: dict) -> torch.device:
    """Apply the config's thread count and return the device every stage runs on."""
    threads = config["train"]["num_threads"]
    if threads:
        # Small networks on a shared CPU: more threads than cores makes OpenMP spin and slows tiny ops 100x.
        torch.set_num_threads(threads)
    return pick_device(config["device"])


def pick_device(setting: str) -> torch.device:
    """`auto` takes CUDA when present, else the CPU; an explicit CUDA request without CUDA is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config key 'device' asks for {setting!r} but no CUDA device is available; use auto or cpu")
    return torch.device(setting)


def cpu_has_bf16_matrix_units(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 matrix units (x86 AMX-BF16), the only CPU bf16 that `bf16: auto` takes. Measured
    on 2-core Xeons (README, speed switches): without AVX512-BF16 oneDNN emulates bf16 and a paper-scale step
    runs at 0.30x the speed of fp32; with AVX512-BF16 but no AMX its bf16 convolutions run at 150 GFLOP/s
    against fp32's 250 and a step still runs at 0.65x. Arm BF16 is not measured, so auto leaves it off too."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:   # not Linux: no way to tell, so no
        return False
    return any("amx_bf16" in line.split() for line in text.splitlines() if line.startswith("flags"))


def bf16_enabled(setting, device: torch.device) -> bool:
    """train.bf16: `auto` takes bf16 autocast on CUDA and on CPUs with bf16 matrix units; true or false force it."""
    if setting == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_matrix_units())
    return bool(setting)
