"""`apl predict`: focus maps and deblurred images for people's own photographs, at full resolution.

A photograph is read with its EXIF orientation applied. The networks run on a working copy:

* ``auto`` (default): the working scale recorded in the weights when they were exported as a packaged model
  (apl.pretrained: a longer side chosen on validation photographs; a smaller photo runs at its own size),
  else ``train``;
* ``train``: the scale the networks were trained at, exactly what training and the pipeline's evaluation
  do: the photo squashed to their square (image_size x image_size), or, for weights trained with
  ``scale.mode: photo``, the whole photo brought to their longer side (aspect kept), fully convolutionally;
* ``full``: the photo at its own size, fully convolutionally, in overlapping tiles;
* an integer N: the photo with its longer side scaled to N pixels (aspect kept), in tiles if large.

Whatever the working size, every output has the photo's full size. The focus map M is brought back
to full size (bilinear); the deblurred image is the full-size photograph plus what G_sr restores where M
says defocused, ``out = I + (R - I_small)_up * (1 - M)``, with G_sr's change R - I_small upsampled from the
working size: at the photo's own size this is the paper's composite ``R (1 - M) + I M``, and at any smaller
size no pixel loses the photograph's own detail (upsampling R itself returned photographs blurrier than
they came, issue 30). G_sr's change keeps the photo's local mean colour (``keep_local_mean``, ``--keep-mean``):
blur never changes a region's mean, so its low-pass is removed, and with it any colour cast G_sr learnt.
Full-size arrays are produced a strip of rows at a time, and the networks see at most one tile at a time, so a
24-megapixel photo needs a few hundred megabytes, not gigabytes.
"""
from __future__ import annotations

import copy
import glob
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from apl.data.scale import RESAMPLING, resize_image, scaled_shape  # noqa: F401 (resize_image: part of this module's API)
from apl.io import ImageError, atomic_path
from apl.models.factory import build, pick_device
from apl.pretrained import companion_detector
from apl.train import checkpoint

log = logging.getLogger("apl.predict")

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
STRIP_ROWS = 256            # rows of a full-size output computed at once
OVERLAY_TINT = (255, 0, 160)  # blurred regions are tinted magenta, a colour rare in photographs
OVERLAY_STRENGTH = 0.6
KEEP_MEAN_SIGMA = 8.0       # px where G_sr runs: well above the blur it undoes there (CUHK: 1-3.5 px at 640)


# ---------------------------------------------------------------------------------------- inputs
def collect_inputs(items: list[str | Path]) -> dict[str, Path]:
    """stem -> path for every photo named by `items`: files, folders (their photos) or glob patterns.

    Two photos of the same stem would write the same output file: that is an error naming both.
    """
    found: dict[str, Path] = {}

    def add(path: Path) -> None:
        if path.stem in found and found[path.stem].resolve() != path.resolve():
            raise ImageError(f"two inputs would write the same output name {path.stem!r}: {found[path.stem]} and "
                             f"{path}; rename one or run them separately")
        found[path.stem] = path

    for item in items:
        path = Path(item)
        if path.is_dir():
            photos = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES]
            if not photos:
                raise ImageError(f"no photographs ({', '.join(PHOTO_SUFFIXES)}) in folder {path}")
            for photo in photos:
                add(photo)
        elif path.is_file():
            add(path)  # an explicitly named file is tried whatever its suffix
        elif glob.has_magic(str(item)):
            matches = [Path(p) for p in sorted(glob.glob(str(item), recursive=True))]
            matches = [p for p in matches if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES]
            if not matches:
                raise ImageError(f"the pattern {item} matches no photographs ({', '.join(PHOTO_SUFFIXES)})")
            for photo in matches:
                add(photo)
        else:
            raise ImageError(f"input not found: {item} (pass photos, folders of photos, or a quoted pattern such as "
                             "'photos/*.jpg')")
    return found


def read_photo(path: str | Path) -> np.ndarray:
    """uint8 RGB HxWx3 with the EXIF orientation applied (a portrait shot on a phone comes out upright)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bit before RGB
                values = np.asarray(image, dtype=np.float64).reshape(image.size[1], image.size[0])
                image = Image.fromarray((values / 257.0).round().clip(0, 255).astype(np.uint8))
            elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                # transparent pixels over white, not over whatever colour they happen to store
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"photo not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"cannot read {path} as an image ({err}); apl predict reads JPEG, PNG, TIFF, BMP and WebP, "
                         "convert it to one of those") from None


# ---------------------------------------------------------------------------- sizes and resizing
def working_shape(height: int, width: int, resolution: str | int, train_size: int) -> tuple[int, int]:
    """(h, w) the networks run at for a photo of height x width."""
    if resolution == "train":
        return train_size, train_size
    if resolution == "full":
        return height, width
    longer = int(resolution)
    if longer < 8:
        raise ValueError(f"--resolution must be train, full or a longer side of at least 8 pixels, got {resolution}")
    scale = longer / max(height, width)
    return max(8, round(height * scale)), max(8, round(width * scale))


def parse_resolution(text: str) -> str | int:
    if text in ("auto", "train", "full"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--resolution must be auto, train, full or a number of pixels, got {text!r}") from None
    if value < 8:
        raise ValueError(f"--resolution must be at least 8 pixels, got {value}")
    return value


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear interpolation with half-pixel centres (torch align_corners=False)."""
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1)
    i0 = np.floor(x).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)[:, None]


class Upsampler:
    """A small HxWxC float map brought to full size a strip of rows at a time (bilinear).

    Shrinking (a working size above the photo's) is done whole with Pillow's antialiased filter, which
    costs little because the result is no larger than the working copy.
    """

    def __init__(self, small: np.ndarray, height: int, width: int):
        small = small.astype(np.float32)
        self.height = height
        if small.shape[0] >= height or small.shape[1] >= width:
            if small.shape[:2] != (height, width):
                small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(small[..., c]), mode="F")
                                             .resize((width, height), Image.BILINEAR)) for c in range(small.shape[2])],
                                 axis=-1)
            self.full, self.cols = small, None
            return
        self.full = None
        i0, i1, f = _axis(small.shape[1], width)
        self.cols = small[:, i0] * (1.0 - f[None]) + small[:, i1] * f[None]   # h x W x C, small
        self.rows = _axis(small.shape[0], height)

    def strip(self, top: int, bottom: int) -> np.ndarray:
        if self.full is not None:
            return self.full[top:bottom]
        i0, i1, f = (part[top:bottom] for part in self.rows)
        return self.cols[i0] * (1.0 - f[:, :, None]) + self.cols[i1] * f[:, :, None]


# ------------------------------------------------------------------------------------------ tiles
def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of tiles covering 0..length, neighbours sharing at least `overlap` pixels.

    Every start is a multiple of 8, the detector's pooling grid, so a tile pools exactly the pixels the
    whole image would; the last tile runs to the end (up to 7 pixels longer than `tile`).
    """
    if length <= tile:
        return [(0, length)]
    step = max(8, (tile - overlap) // 8 * 8)
    last = (length - tile) // 8 * 8
    starts = list(range(0, last, step)) + [last]
    return [(start, min(length, start + tile)) for start in starts[:-1]] + [(last, length)]


def _ramp(length: int, fade_start: bool, fade_end: bool, overlap: int) -> np.ndarray:
    """Blending weights along one side of a tile. On a side shared with a neighbour the first quarter of
    the overlap is dropped (0: what the tile's zero padding disturbs most), the next half fades in
    linearly and the neighbour's weights fade out over the same pixels, so the two always sum to 1."""
    weights = np.ones(length, dtype=np.float32)
    skip, fade = overlap // 4, max(1, overlap // 2)
    ramp = np.concatenate([np.zeros(skip, np.float32), (np.arange(fade, dtype=np.float32) + 0.5) / fade])
    ramp = ramp[:length]
    if fade_start:
        weights[:len(ramp)] = np.minimum(weights[:len(ramp)], ramp)
    if fade_end:
        weights[length - len(ramp):] = np.minimum(weights[length - len(ramp):], ramp[::-1])
    return weights


@torch.no_grad()
def run_tiled(fn, x: torch.Tensor, out_channels: int, tile: int, overlap: int, device: torch.device) -> torch.Tensor:
    """fn over 1 x C x H x W `x` (on the CPU) in overlapping tiles, blended with linear fades; CPU result.

    Each tile's borders see zero padding the whole image would not have, so neighbouring tiles share
    `overlap` pixels: the outer quarter of each side is dropped and the next half cross-fades with the
    neighbour (see _ramp), so no seam shows and only one tile is on the device at a time.
    """
    _, _, height, width = x.shape
    if height <= tile and width <= tile:
        return fn(x.to(device)).float().cpu()
    out = torch.zeros(1, out_channels, height, width)
    total = torch.zeros(1, 1, height, width)
    ys, xs = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    for i, (top, bottom) in enumerate(ys):
        for j, (left, right) in enumerate(xs):
            piece = fn(x[:, :, top:bottom, left:right].to(device)).float().cpu()
            weight = torch.from_numpy(np.outer(_ramp(bottom - top, i > 0, i < len(ys) - 1, overlap),
                                               _ramp(right - left, j > 0, j < len(xs) - 1, overlap)))[None, None]
            out[:, :, top:bottom, left:right] += piece * weight
            total[:, :, top:bottom, left:right] += weight
    return out / total


# ---------------------------------------------------------------------------------------- the model
def _no_download(config: dict) -> dict:
    """The saved weights replace the encoder's ImageNet initialisation: never download it here."""
    config["models"]["gws"]["pretrained"] = False
    return config


class Model:
    """The networks of a weights file, ready to run on photographs of any size."""

    def __init__(self, weights: str | Path, config: dict | None = None, device: str = "auto",
                 resolution: str | int = "auto", tile: int = 512, overlap: int = 128,
                 keep_mean: float | None = None):
        self.weights = Path(weights)
        if keep_mean is not None and keep_mean < 0:
            raise ValueError(f"--keep-mean must be 0 (off) or a Gaussian sigma in pixels, got {keep_mean}")
        states, self.meta, config = checkpoint.load_weights(self.weights, config)
        # an exported deblurrer runs with the exported detector beside it (apl.pretrained): its G_ws, its scale
        detector = companion_detector(self.weights, self.meta)
        detector_meta = {}
        if detector is not None and "gws" not in states:
            detector_states, detector_meta, _ = checkpoint.load_weights(detector)
            states = {"gws": detector_states["gws"], **states}
        self.config = copy.deepcopy(config)
        # weights saved before scale.mode existed were trained on squashed squares
        self.config.setdefault("scale", {"mode": "squash", "longer_side": self.config["image_size"]})
        _no_download(self.config)
        self.train_size = int(self.meta.get("image_size", self.config["image_size"]))
        self.variant = self.meta.get("variant") or self.config["train"]["variant"]
        self.device = pick_device(device)
        if tile < 64 or tile % 8 or overlap < 0 or overlap >= tile // 2:
            raise ValueError(f"--tile must be a multiple of 8 of at least 64 and --overlap below half of it "
                             f"(got tile {tile}, overlap {overlap})")
        # auto: the working scale chosen for these weights on validation photographs, if any, never above the
        # photo's own size (upscaling a small photo to it measured worse than running at its size)
        recorded = (self.meta.get("export", {}).get("working_longer_side")
                    or detector_meta.get("export", {}).get("working_longer_side"))
        self.no_upscaling = resolution == "auto" and bool(recorded)
        # an exported deblurrer may record a working scale of its own for G_sr (chosen on validation photographs,
        # apl.pretrained.export_deblurrer): the blur it was trained to undo spans a few pixels at that scale
        self.deblur_side = (self.meta.get("export", {}).get("deblur_longer_side")
                            if resolution == "auto" else None)
        if resolution == "auto":
            resolution = recorded or "train"
        self.resolution, self.tile, self.overlap = resolution, tile, overlap
        # How the photo meets the networks and how the deblurred image is formed (meta of imported weights,
        # apl.models.release): "paper" composites R clipped to [0, 1]; "release" composites the release's
        # unclipped Q and clips after, which is the release's own output at the working size.
        self.resample = self.meta.get("resize", "bicubic")
        self.output_rule = self.meta.get("output", "paper")
        if self.resample not in RESAMPLING or self.output_rule not in ("paper", "release"):
            raise checkpoint.WeightsError(f"{self.weights} asks for resize {self.resample!r} / output "
                                          f"{self.output_rule!r}, which this apl does not know; update apl")
        # the authors' imported weights reproduce their own output unless asked otherwise
        self.keep_mean = float(keep_mean if keep_mean is not None else
                               0.0 if self.output_rule == "release" else KEEP_MEAN_SIGMA)
        if self.meta.get("resolution", resolution) != resolution:
            log.warning("%s is defined at --resolution %s (%dx%d); running at %s goes beyond what it computes",
                        self.weights, self.meta["resolution"], self.train_size, self.train_size, resolution)
        self.nets = {}
        for name, state in states.items():
            if name not in ("gws", "gsr"):
                continue  # D is only needed for training
            net = build(name, _no_download(detector_meta["config"]) if name == "gws" and detector_meta else self.config,
                        self.variant)
            checkpoint.load_state(net, state, name, self.weights)
            self.nets[name] = net.to(self.device).eval()

    def describe(self) -> str:
        nets = " + ".join({"gws": "G_ws", "gsr": f"G_sr ({self.variant})"}[n] for n in self.nets)
        if "release" in self.meta:
            nets += f" of the authors' release ({self.meta['release'].get('url', 'imported')})"
        if "export" in self.meta:
            export = self.meta["export"]
            which = "deblurrer, with its detector" if export.get("detector") else "detector"
            nets += f" (apl's default {which}: {export['stage']} of the {export['profile']} profile, docs/model.md)"
        scale = self.config["scale"]
        trained = (f"{self.train_size}x{self.train_size} crops of photos at a longer side of {scale['longer_side']} px"
                   if scale["mode"] == "photo" else f"{self.train_size}x{self.train_size}")
        return (f"{self.weights}: {nets}, trained at {trained}"
                f"{', apl ' + self.meta['apl_version'] if 'apl_version' in self.meta else ''}; running at "
                f"{self.resolution} resolution on {self.device}")

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)

    @torch.no_grad()
    def _focus_small(self, small: np.ndarray) -> np.ndarray:
        """G_ws at the working size (h x w float32), or the blur prior where the weights hold no G_ws."""
        if "gws" in self.nets:
            gws = self.nets["gws"]
            return run_tiled(gws, self._tensor(small), 1, self.tile, self.overlap, self.device)[0, 0].numpy()
        from apl.priors import prior_map
        # The LBP prior's windows are defined at photo sizes like the training sets' (about 640 px).
        shape = working_shape(*small.shape[:2], 640, 0) if max(small.shape[:2]) > 640 else small.shape[:2]
        prior = prior_map(resize_image(small, shape), self.config["prior"], working_size=self.train_size)
        return np.asarray(Image.fromarray(prior, mode="F").resize((small.shape[1], small.shape[0]), Image.BILINEAR))

    @torch.no_grad()
    def _restoration_small(self, small: np.ndarray, focus: np.ndarray) -> np.ndarray:
        """What G_sr restores at the working size: its reconstruction R minus the working copy, R - I_small
        (h x w x 3 float32, in units of [0, 1]). R is clipped to [0, 1] first ("paper"), or left as the release's
        unclipped Q ("release": the output is clipped after compositing, as the release does)."""
        gsr = self.nets["gsr"]
        image = self._tensor(small)
        x = torch.cat([image, torch.from_numpy(np.array(focus, dtype=np.float32))[None, None]], dim=1)

        def reconstruct(both: torch.Tensor) -> torch.Tensor:
            return gsr(both[:, :3], both[:, 3:])["reconstruction"]

        recon = run_tiled(reconstruct, x, 3, self.tile, self.overlap, self.device)
        recon = recon[0] if self.output_rule == "release" else recon[0].clamp_(0, 1)
        return (recon - image[0]).permute(1, 2, 0).numpy()

    def predict(self, photo: np.ndarray, task: str) -> tuple[tuple[int, int], Upsampler, Upsampler | None]:
        """(working shape, focus upsampler, restoration upsampler (R - I at the working size) or None) of a photo."""
        self.check_task(task)
        height, width = photo.shape[:2]
        if self.resolution == "train" and self.config["scale"]["mode"] == "photo":
            shape = scaled_shape(height, width, self.config)
        elif self.no_upscaling and max(height, width) <= int(self.resolution):
            shape = (height, width)
        else:
            shape = working_shape(height, width, self.resolution, self.train_size)
        small = resize_image(photo, shape, self.resample)
        focus = self._focus_small(small)
        restoration = None
        if task == "deblur":
            guide = focus
            shape_sr = self.deblur_shape(height, width) if self.deblur_side else shape
            if shape_sr != shape:   # G_sr at its own scale, the map brought to it
                small = resize_image(photo, shape_sr, self.resample)
                guide = np.asarray(Image.fromarray(focus, mode="F").resize((shape_sr[1], shape_sr[0]), Image.BILINEAR))
            if self.variant == "ugan":  # U-GAN takes no map and composites nothing: its output is R itself
                focus = guide = np.zeros_like(guide)
            restoration = keep_local_mean(self._restoration_small(small, guide), self.keep_mean)
            restoration = Upsampler(restoration, height, width)
        return shape, Upsampler(focus[..., None], height, width), restoration

    def deblur_shape(self, height: int, width: int) -> tuple[int, int]:
        """Where G_sr runs at `auto` when the deblurrer records a scale of its own: the photo's size up to that
        longer side, never upscaled."""
        if max(height, width) <= int(self.deblur_side):
            return height, width
        return working_shape(height, width, int(self.deblur_side), self.train_size)

    def focus_map(self, photo: np.ndarray) -> np.ndarray:
        """The photo's full-size 8-bit focus map (white = in focus), as `apl predict` writes it."""
        _, focus, _ = self.predict(photo, "detect")
        return full_size_outputs(photo, focus, None, want_map=True, want_overlay=False)["map"]

    def check_task(self, task: str) -> None:
        """A clear error when the weights lack the network `task` needs."""
        if task == "detect" and "gws" not in self.nets:
            raise ValueError(f"{self.weights} holds no defocus detector (G_ws); use the weights of a G_ws or later "
                             "stage (e.g. gws_O1, gsr_O3) for --task detect")
        if task == "deblur" and "gsr" not in self.nets and "release" in self.meta:
            raise ValueError(f"{self.weights} holds only the release's detector; import deblur.pth too "
                             "(apl import-release --dbd DBD.pth --deblur deblur.pth --out ...) for --task deblur")
        if task == "deblur" and "gsr" not in self.nets:
            raise ValueError(f"{self.weights} holds no deblurring generator (G_sr); use the weights of a G_sr stage "
                             "(e.g. gsr_O3) for --task deblur")


def keep_local_mean(restoration: np.ndarray, sigma: float) -> np.ndarray:
    """G_sr's change R - I (h x w x 3) less its local mean: a Gaussian low-pass of sigma px (0: unchanged).

    A defocus kernel sums to one, so blur keeps every region's mean colour and undoing it adds detail, never a
    shift of the mean. What G_sr adds at scales well above the blur is a cast it learnt (the adversarial phases move
    a colour channel by 1.7-2.9 levels on real photographs), not restoration: removing it cost the profile's
    deblurrers no sharpness and gained up to 0.5 dB on synthetic pairs (docs/real-photographs.md)."""
    if sigma <= 0:
        return restoration
    from scipy.ndimage import gaussian_filter
    return restoration - gaussian_filter(restoration, sigma=(sigma, sigma, 0), mode="reflect")


# ------------------------------------------------------------------------------------- full-size outputs
def full_size_outputs(photo: np.ndarray, focus: Upsampler, restoration: Upsampler | None, *, want_map: bool,
                      want_overlay: bool, bits: int = 8) -> dict[str, np.ndarray]:
    """The full-size map (uint8 or uint16), deblurred image and overlay, a strip of rows at a time.

    The deblurred image is the full-resolution photograph plus what G_sr restores where the map says
    defocused: out = I + (R - I_small)_up (1 - M). At the photo's own size this is the paper's composite
    R (1 - M) + I M exactly; at a smaller working size it keeps every detail of the photograph that G_sr did
    not change, where upsampling R itself would replace the photograph with a blurrier copy."""
    height, width = photo.shape[:2]
    scale = 65535.0 if bits == 16 else 255.0
    out = {}
    if want_map:
        out["map"] = np.empty((height, width), dtype=np.uint16 if bits == 16 else np.uint8)
    if restoration is not None:
        out["deblurred"] = np.empty_like(photo)
    if want_overlay:
        out["overlay"] = np.empty_like(photo)
    tint = np.asarray(OVERLAY_TINT, dtype=np.float32)
    for top in range(0, height, STRIP_ROWS):
        bottom = min(height, top + STRIP_ROWS)
        m = np.clip(focus.strip(top, bottom), 0.0, 1.0)            # rows x W x 1
        if want_map:
            out["map"][top:bottom] = np.rint(m[..., 0] * scale)
        image = photo[top:bottom].astype(np.float32)
        if restoration is not None:
            restored = image + restoration.strip(top, bottom) * 255.0 * (1.0 - m)
            out["deblurred"][top:bottom] = np.rint(np.clip(restored, 0, 255))
        if want_overlay:
            a = OVERLAY_STRENGTH * (1.0 - m)
            out["overlay"][top:bottom] = np.rint(image * (1.0 - a) + tint * a)
    return out


def save(path: Path, array: np.ndarray) -> None:
    """Atomic write by suffix; a uint16 grey map becomes a 16-bit PNG, JPEG is written at quality 92."""
    suffix = path.suffix.lower()
    image = Image.fromarray(array)  # uint16 HxW -> mode I;16
    with atomic_path(path) as tmp:
        if suffix in (".jpg", ".jpeg"):
            image.save(tmp, format="JPEG", quality=92)
        else:
            image.save(tmp, format=Image.registered_extensions()[suffix])


def predict_photos(model: Model, inputs: dict[str, Path], task: str, out_dir: Path, *, bits: int = 8,
                   overlay_dir: Path | None = None, progress: bool = True) -> dict:
    """Run `task` on every photo and write `<out_dir>/<stem>.png` (and overlays); unreadable photos are
    skipped, named, and reported at the end."""
    from tqdm import tqdm
    out_dir = Path(out_dir)
    model.check_task(task)
    done, failed = [], []
    bar = tqdm(inputs.items(), total=len(inputs), desc=f"apl predict ({task})", unit="photo", disable=not progress,
               dynamic_ncols=True)
    for stem, path in bar:
        try:
            photo = read_photo(path)
        except ImageError as err:
            failed.append(str(err))
            bar.write(f"skipped: {err}")
            continue
        _, focus, restoration = model.predict(photo, task)
        outputs = full_size_outputs(photo, focus, restoration, want_map=task == "detect",
                                    want_overlay=overlay_dir is not None, bits=bits)
        save(out_dir / f"{stem}.png", outputs["map"] if task == "detect" else outputs["deblurred"])
        if overlay_dir is not None:
            save(Path(overlay_dir) / f"{stem}.jpg", outputs["overlay"])
        done.append(stem)
    bar.close()
    if failed:
        raise ImageError(f"{len(failed)} of {len(inputs)} input(s) could not be read ({len(done)} written to "
                         f"{out_dir}):\n  " + "\n  ".join(failed))
    return {"written": len(done), "out": str(out_dir)}
