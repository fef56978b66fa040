"""Tests of the LBP blur prior B(I) (apl/priors/lbp.py)."""
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data

from apl.priors import prior_map
from apl.priors.lbp import (blur_prior, lbp_codes, lbp_sharpness, matting_laplacian, multiscale_sharpness,
                            refine_with_matting, to_gray)

T255 = 0.016 * 255  # 4.08 grey levels


def _centre_code(patch) -> int:
    return int(lbp_codes(np.asarray(patch, dtype=np.float64))[1, 1])


def test_lbp_code_hand_checked():
    # Top row brighter by 100: the neighbours up (100) and, interpolated, up-left / up-right
    # (weight 1/sqrt(2) on the top row -> 70.7) exceed the centre by > 4.08; the other five do not.
    # Bits (circular): 3 consecutive ones -> 2 transitions -> uniform -> code = 3.
    assert _centre_code([[100, 100, 100], [0, 0, 0], [0, 0, 0]]) == 3
    # Centre 50, up and down 100, the rest 50. Diagonal neighbours interpolate
    # a^2*50 + 2*a*(1-a)*(mix of 100 and 50) + (1-a)^2*50 = 50 + a(1-a)*50 = 60.4 (a = 1/sqrt(2)):
    # the three top and three bottom neighbours are set, left and right are not ->
    # bits 0,1,1,1,0,1,1,1 -> 4 transitions -> non-uniform -> code 9.
    assert _centre_code([[50, 100, 50], [50, 50, 50], [50, 100, 50]]) == 9
    # Only the right neighbour brighter: the diagonals right-up / right-down interpolate
    # 50 + a(1-a)*(100-50) = 60.4 as well -> three consecutive bits -> code 3.
    assert _centre_code([[50, 50, 50], [50, 50, 100], [50, 50, 50]]) == 3
    # A darker centre than every neighbour: all 8 bits set -> code 8. Flat patch: code 0.
    assert _centre_code([[9, 9, 9], [9, 0, 9], [9, 9, 9]]) == 8
    assert _centre_code([[7, 7, 7], [7, 7, 7], [7, 7, 7]]) == 0


def test_lbp_threshold_is_strict_and_signed():
    # the axis neighbours test the threshold exactly (no interpolation): 4 < 4.08 -> not set.
    below = np.zeros((3, 3)); below[1, 2] = 4.0
    assert int(lbp_codes(below)[1, 1]) == 0
    # left neighbour 5 brighter -> set; interpolated up-left/down-left = 5 * a(1-a) = 1.04 -> not
    # set; one bit, uniform -> code 1.
    above = np.zeros((3, 3)); above[1, 0] = 5.0
    assert int(lbp_codes(above)[1, 1]) == 1
    # darker neighbours never set a bit (signed difference g_p - g_c)
    darker = np.full((3, 3), 0.0); darker[1, 1] = 100.0
    assert int(lbp_codes(darker)[1, 1]) == 0


def _half_blurred(sigma: float) -> tuple[np.ndarray, slice]:
    """A textured photo (skimage's grass) whose right half is Gaussian-blurred with `sigma`."""
    texture = data.grass()[:128, :160].astype(np.float64)
    image = texture.copy()
    image[:, 80:] = ndimage.gaussian_filter(texture, sigma)[:, 80:]
    return image, slice(80 + 12, 160)  # blurred columns away from the seam


def test_sharp_half_scores_higher():
    image, blur_cols = _half_blurred(2.0)
    for window in (11, 15, 21):
        m = lbp_sharpness(image, window)
        assert m[:, :80 - 12].mean() > m[:, blur_cols].mean() + 0.3


def test_blurred_score_decreases_with_sigma():
    # The LBP measure saturates early: with T_LBP = 0.016 almost no code 6-9 survives sigma >= 3
    # on this texture, so the monotonicity is checked at sigma 0.5, 1, 2.
    scores = []
    for sigma in (0.5, 1.0, 2.0):
        image, blur_cols = _half_blurred(sigma)
        prior = blur_prior(np.clip(image.round(), 0, 255).astype(np.uint8))
        scores.append(float(prior[:, blur_cols].mean()))
    assert scores[0] > scores[1] > scores[2]
    assert scores[0] > 1.5 * scores[2]


def test_output_range_dtype_and_photo():
    image = data.astronaut()[::2, ::2]
    prior = blur_prior(image)
    assert prior.dtype == np.float32 and prior.shape == image.shape[:2]
    assert 0.0 <= prior.min() and prior.max() <= 1.0
    maps = multiscale_sharpness(to_gray(image))
    for m in maps:
        assert m.dtype == np.float32 and m.min() == 0.0 and m.max() == pytest.approx(1.0)
    assert np.allclose(prior, np.mean(maps, axis=0), atol=1e-6)
    # single-channel input is accepted
    assert blur_prior(to_gray(image).round().astype(np.uint8)).shape == prior.shape


def test_constant_map_guard():
    flat = np.full((40, 50), 128.0)
    m = lbp_sharpness(flat, 11)
    assert m.dtype == np.float32 and np.all(m == 0.0)
    # a texture sharp everywhere with the same fraction keeps its raw value, not NaN
    assert np.all(np.isfinite(blur_prior(np.full((20, 20, 3), 7, np.uint8))))


def test_refine_options():
    image = data.astronaut()[:64, :64]
    with pytest.raises(ValueError, match="unknown prior refinement"):
        blur_prior(image, refine="mrf")
    with pytest.raises(ValueError, match="0-255"):
        blur_prior(image.astype(np.float32) / 255.0)


def test_matting_laplacian_properties():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (12, 10, 3))
    lap = matting_laplacian(image)
    assert lap.shape == (120, 120)
    assert abs(lap - lap.T).max() < 1e-8  # symmetric
    assert np.abs(np.asarray(lap.sum(axis=1))).max() < 1e-6  # constants are in the null space
    x = rng.standard_normal(120)
    assert x @ (lap @ x) >= -1e-8  # positive semi-definite
    assert matting_laplacian(image[..., 0]).shape == (120, 120)  # grey works too


def test_matting_fills_unknown_band_by_colour():
    # red left half, blue right half; trimap known sharp at the far left, known blurred at the far
    # right, unknown in between: the unknown red pixels become ~1, the unknown blue ones ~0.
    image = np.zeros((24, 24, 3), np.uint8)
    image[:, :12, 0] = 200
    image[:, 12:, 2] = 200
    sharpness = np.full((24, 24), 0.1)
    sharpness[:, :3] = 1.0
    sharpness[:, 21:] = 0.0
    alpha = refine_with_matting(image, sharpness)
    assert alpha.dtype == np.float32 and 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert alpha[:, 3:10].min() > 0.9 and alpha[:, 14:21].max() < 0.1


def test_blur_prior_with_matting():
    image, blur_cols = _half_blurred(2.0)
    image = np.clip(image[:48, 40:120].round(), 0, 255).astype(np.uint8)  # seam at column 40
    prior = blur_prior(image, refine="matting")
    assert prior.dtype == np.float32 and prior.shape == image.shape
    assert 0.0 <= prior.min() and prior.max() <= 1.0
    assert prior[:, :28].mean() > prior[:, 52:].mean() + 0.3


def test_matting_at_a_working_size_keeps_the_photographs_own_measurement():
    """prior.matting_at: working: the LBP sharpness is still measured on the photograph, only the matting runs
    at the working size; it fills the sharp half that the plain map marks only in part, and keeps the blurred
    half dark."""
    image, _ = _half_blurred(2.0)
    rgb = np.repeat(np.clip(image.round(), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    settings = {"windows": [11, 15, 21], "threshold": 0.016, "refine": "matting", "matting_at": "working"}
    matted = prior_map(rgb, settings, working_size=32)
    assert matted.shape == (32, 32) and matted.dtype == np.float32
    plain = prior_map(rgb, {**settings, "refine": "none"}, size=32)
    sharp, blurred = slice(0, 13), slice(19, 32)   # columns away from the seam at 16
    assert matted[:, sharp].mean() > 0.9 > plain[:, sharp].mean()
    assert matted[:, blurred].mean() < 0.1
    # the same prior measured on the 32-px image instead cannot tell the halves apart as well
    small = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.BICUBIC))
    on_small = blur_prior(small)
    assert on_small[:, sharp].mean() - on_small[:, blurred].mean() < matted[:, sharp].mean() - matted[:, blurred].mean() - 0.3


def test_matting_size_is_checked():
    image, _ = _half_blurred(2.0)
    with pytest.raises(ValueError, match="matting_size"):
        blur_prior(np.clip(image.round(), 0, 255).astype(np.uint8), refine="matting", matting_size=2)


def test_working_matting_follows_the_size_it_is_given_and_photo_keeps_the_image_size():
    image, _ = _half_blurred(2.0)
    rgb = np.repeat(np.clip(image.round(), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    settings = {"windows": [11, 15, 21], "threshold": 0.016, "refine": "matting", "matting_at": "working"}
    assert prior_map(rgb, settings, size=24).shape == (24, 24)   # the working size defaults to `size`
    assert prior_map(rgb, settings, working_size=20).shape == (20, 20)
    assert prior_map(rgb, {**settings, "matting_at": "photo"}).shape == rgb.shape[:2]
