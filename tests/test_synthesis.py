"""Tests of the simulated defocus pairs (apl/data/synthesis.py, paper Sec. 4.1)."""
import csv

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data

from apl.data.synthesis import (disc_kernel, gaussian_kernel, random_focus_mask, stem_seed_sequence, synthesize_dataset,
                                synthesize_pair)
from apl.io import ImageError, list_images, read_image


def _photo(size: int = 96) -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC))


def test_mask_share_is_exact_and_binary():
    rng = np.random.default_rng(1)
    for fraction in (0.6, 0.65, 0.7, 0.0, 1.0):
        mask = random_focus_mask(160, 120, fraction, rng)
        assert mask.dtype == np.float32 and mask.shape == (160, 120)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert abs((1.0 - mask.mean()) - fraction) <= 1.0 / mask.size


def test_mask_is_a_few_smooth_regions():
    rng = np.random.default_rng(2)
    for _ in range(5):
        mask = random_focus_mask(160, 160, 0.65, rng)
        # boundary length is small compared with a noisy split (smooth region, not salt and pepper)
        edges = np.count_nonzero(np.diff(mask, axis=0)) + np.count_nonzero(np.diff(mask, axis=1))
        assert edges < 0.1 * mask.size
        _, n_focus = ndimage.label(mask)
        assert 1 <= n_focus <= 20


def test_gaussian_kernel_window():
    k = gaussian_kernel(10.0, 15)
    assert k.shape == (15,) and k.sum() == pytest.approx(1.0) and k[7] == k.max()
    with pytest.raises(ValueError):
        gaussian_kernel(1.0, 14)


def test_disc_kernel_has_the_gaussians_spread():
    for sigma in (0.5, 1.0, 2.0, 3.0):
        k = disc_kernel(sigma, 15)
        assert k.shape == (15, 15) and k.sum() == pytest.approx(1.0) and np.allclose(k, k.T) and np.allclose(k, k[::-1])
        x = np.arange(-7, 8)
        variance = float((k.sum(axis=0) * x ** 2).sum())   # per-axis variance: a disc of radius r has r^2 / 4,
        assert variance == pytest.approx(sigma ** 2 + 1 / 12, rel=0.05 if sigma >= 1 else 0.25)   # + a pixel's
    disc = disc_kernel(3.0, 15)
    assert disc[7, 7] == pytest.approx(disc[7, 9]) and disc[7, 0] == 0.0   # flat inside, nothing at radius 7 > 6
    with pytest.raises(ValueError, match="unknown blur kernel"):
        synthesize_pair(_photo(), np.random.default_rng(0), kernel="box")


def test_a_gaussian_pair_is_the_papers_and_mixed_draws_both_kernels():
    sharp = _photo()
    paper = synthesize_pair(sharp, np.random.default_rng(3))
    same = synthesize_pair(sharp, np.random.default_rng(3), kernel="gaussian")
    assert np.array_equal(paper[0], same[0]) and paper[2]["kernel"] == "gaussian"
    disc = synthesize_pair(sharp, np.random.default_rng(3), kernel="disc")
    assert np.array_equal(disc[1], paper[1]) and disc[2]["sigma"] == paper[2]["sigma"]   # same draws, other blur
    assert not np.array_equal(disc[0], paper[0]) and disc[2]["kernel"] == "disc"
    rng = np.random.default_rng(4)
    drawn = [synthesize_pair(sharp, rng, kernel="mixed")[2]["kernel"] for _ in range(20)]
    assert set(drawn) == {"gaussian", "disc"}


def test_pair_determinism():
    sharp = _photo()
    a = synthesize_pair(sharp, np.random.default_rng(5))
    b = synthesize_pair(sharp, np.random.default_rng(5))
    c = synthesize_pair(sharp, np.random.default_rng(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[1], c[1]) and a[2]["sigma"] != c[2]["sigma"]


def test_pair_content_and_ranges():
    sharp = _photo()
    rng = np.random.default_rng(7)
    for _ in range(10):
        defocused, mask, info = synthesize_pair(sharp, rng, sigma_range=(3.0, 6.0))
        assert defocused.dtype == np.uint8 and defocused.shape == sharp.shape
        assert mask.dtype == np.float32 and mask.shape == sharp.shape[:2]
        assert 3.0 <= info["sigma"] <= 6.0
        assert 0.6 - 1e-3 <= info["blurred_fraction"] <= 0.7 + 1e-3
        assert info["blurred_fraction"] == pytest.approx(1.0 - mask.mean(), abs=1e-6)
        focus = mask == 1.0
        assert np.array_equal(defocused[focus], sharp[focus])  # every in-focus pixel is exact
        far = ndimage.distance_transform_edt(mask == 0.0) > 8  # blurred, beyond the feather ramp
        assert far.any()
        diff = np.abs(defocused.astype(int) - sharp.astype(int))[far].mean()
        assert diff > 2.0


def test_sigma_range_respected_over_many_draws():
    sharp = _photo(32)
    rng = np.random.default_rng(8)
    sigmas = [synthesize_pair(sharp, rng)[2]["sigma"] for _ in range(200)]
    assert min(sigmas) >= 0.1 and max(sigmas) <= 10.0
    assert max(sigmas) - min(sigmas) > 8.0  # spread over the range


def test_stem_seed_is_stable():
    a = np.random.default_rng(stem_seed_sequence(0, "img1", 0)).random()
    assert a == np.random.default_rng(stem_seed_sequence(0, "img1", 0)).random()
    assert a != np.random.default_rng(stem_seed_sequence(0, "img2", 0)).random()
    assert a != np.random.default_rng(stem_seed_sequence(1, "img1", 0)).random()


@pytest.fixture()
def source_dir(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    Image.fromarray(data.astronaut()[:200, :300]).save(folder / "astro.jpg")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    Image.fromarray(data.chelsea()).save(folder / "cat.bmp")
    return folder


def _read_tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dataset_layout_csv_and_determinism(source_dir, tmp_path):
    out = tmp_path / "synth"
    summary = synthesize_dataset(source_dir, out, per_image=5, size=48, seed=3, workers=1)
    assert summary == {"pairs": 15, "sources": 3}
    names = {f"{stem}_{k}" for stem in ("astro", "coffee", "cat") for k in range(5)}
    for sub in ("blurred", "sharp", "masks"):
        assert set(list_images(out / sub)) == names
    assert not (tmp_path / ".synth.partial").exists()
    with open(out / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["name"] for r in rows} == names and len(rows) == 15
    assert list(rows[0]) == ["name", "source", "sigma", "blurred_fraction", "kernel"]
    assert {r["kernel"] for r in rows} == {"gaussian"}
    for row in rows:
        assert row["source"].split(".")[0] == row["name"].rsplit("_", 1)[0]
        assert 0.1 <= float(row["sigma"]) <= 10.0 and 0.59 <= float(row["blurred_fraction"]) <= 0.71
        mask = np.asarray(Image.open(out / "masks" / f"{row['name']}.png"))
        assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255}
        assert abs((mask == 0).mean() - float(row["blurred_fraction"])) < 1e-6
        sharp = read_image(out / "sharp" / f"{row['name']}.png")
        blurred = read_image(out / "blurred" / f"{row['name']}.png")
        assert np.array_equal(blurred[mask == 255], sharp[mask == 255])
    first = _read_tree(out)

    # same seed, two processes, existing output replaced -> identical files; other seed -> different
    synthesize_dataset(source_dir, out, per_image=5, size=48, seed=3, workers=2)
    assert _read_tree(out) == first
    other = tmp_path / "synth_other"
    synthesize_dataset(source_dir, other, per_image=5, size=48, seed=4, workers=1)
    assert _read_tree(other)["masks/cat_0.png"] != first["masks/cat_0.png"]


def test_dataset_order_independent(source_dir, tmp_path):
    # the pairs of one stem do not depend on which other images are present
    synthesize_dataset(source_dir, tmp_path / "all", per_image=2, size=32, seed=0, workers=1)
    single = tmp_path / "single"
    single.mkdir()
    (single / "coffee.png").write_bytes((source_dir / "coffee.png").read_bytes())
    synthesize_dataset(single, tmp_path / "one", per_image=2, size=32, seed=0, workers=1)
    for sub in ("blurred", "masks"):
        assert (tmp_path / "all" / sub / "coffee_1.png").read_bytes() == \
            (tmp_path / "one" / sub / "coffee_1.png").read_bytes()


def test_unreadable_source_is_named(source_dir, tmp_path):
    (source_dir / "broken.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "synth"
    with pytest.raises(ImageError, match="broken.jpg"):
        synthesize_dataset(source_dir, out, per_image=1, size=32, workers=1)
    assert not out.exists() and not (tmp_path / ".synth.partial").exists()
    with pytest.raises(ImageError, match="broken.jpg"):
        synthesize_dataset(source_dir, out, per_image=1, size=32, workers=2)
    assert not out.exists()


def test_stale_partial_folder_is_replaced(source_dir, tmp_path):
    stale = tmp_path / ".synth.partial"
    (stale / "blurred").mkdir(parents=True)
    (stale / "blurred" / "junk_0.png").write_bytes(b"junk")
    synthesize_dataset(source_dir, tmp_path / "synth", per_image=1, size=32, workers=1)
    assert not stale.exists()
    assert "junk_0" not in list_images(tmp_path / "synth" / "blurred")
