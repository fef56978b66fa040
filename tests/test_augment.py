"""D's input augmentation (train.d_augment): what it changes, what it keeps, and that G gets its gradient."""
from __future__ import annotations

import pytest
import torch

from apl.train.augment import OPERATIONS, augment, camera


def images(n=4, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_no_operations_is_the_identity():
    x = images()
    assert augment(x, [], torch.Generator().manual_seed(0)) is x


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_keeps_shape_changes_values_and_passes_gradient(name):
    x = images().requires_grad_(True)
    y = augment(x, [name], torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_seed_same_draw_and_images_get_their_own_draws():
    x = images()
    a = augment(x, list(OPERATIONS), torch.Generator().manual_seed(3))
    b = augment(x, list(OPERATIONS), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    same = images(1).expand(4, -1, -1, -1)
    c = augment(same, list(OPERATIONS), torch.Generator().manual_seed(3))
    assert not torch.allclose(c[0], c[1])


def test_translation_moves_content_without_resampling_it():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8, 8] = 1.0
    y = augment(x, ["translation"], torch.Generator().manual_seed(5))
    assert y.sum() == pytest.approx(3.0)   # the bright pixel moved intact (at most 2 px: it stays in the frame)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_colour_keeps_a_grey_image_grey_and_edges_as_sharp_in_relative_terms():
    x = torch.zeros(2, 3, 16, 16)
    x[..., :, 8:] = 1.0
    y = augment(x, ["colour"], torch.Generator().manual_seed(2))
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    # a step edge stays a step: two values per image, no intermediate ones
    for image in y:
        assert len(image[0].unique()) == 2


# -- what a camera adds to G_sr's pretraining inputs (train.pretrain_camera) ---------------------------------
def smooth_photos(n=4, size=64):
    """uint8 NHWC images of a smooth gradient: no detail for noise or JPEG to hide in."""
    ramp = torch.linspace(40, 200, size)
    image = (ramp[None, :, None] + ramp[:, None, None] * 0.2).expand(size, size, 3)
    return image.round().to(torch.uint8).expand(n, -1, -1, -1).contiguous()


def test_camera_without_noise_or_jpeg_is_the_identity():
    x = smooth_photos()
    assert torch.equal(camera(x, [0.0, 0.0], None, torch.Generator().manual_seed(0)), x)


def test_camera_noise_has_the_drawn_spread_and_each_image_its_own():
    x = smooth_photos(n=2, size=128)
    y = camera(x, [2.0, 2.0], None, torch.Generator().manual_seed(0))
    difference = y.float() - x.float()
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert 1.8 < difference.std().item() < 2.2 and abs(difference.mean().item()) < 0.05
    assert not torch.equal(difference[0], difference[1])


def test_camera_jpeg_adds_block_artefacts_and_the_draw_repeats_with_the_seed():
    x = smooth_photos()
    x[:, 20:44, 20:44] = 255 - x[:, 20:44, 20:44]      # edges for JPEG to ring around
    y = camera(x, [0.0, 0.0], [30, 30], torch.Generator().manual_seed(5))
    assert 0.3 < (y.float() - x.float()).abs().mean().item() < 10
    assert torch.equal(y, camera(x, [0.0, 0.0], [30, 30], torch.Generator().manual_seed(5)))
    high = camera(x, [0.0, 0.0], [100, 100], torch.Generator().manual_seed(5))
    assert (high.float() - x.float()).abs().mean() < (y.float() - x.float()).abs().mean()
