"""The discriminator's random translation: exact shifts, zeros shifted in, gradients flow back."""

import chainer
import chainer.functions as F
import numpy as np
import pytest

from training.augment import random_shifts, translate


def shifted_reference(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image moved by (dy, dx) with plain numpy slicing, zero-filled."""
    out = np.zeros_like(images)
    height, width = images.shape[2:]
    for i, (dy, dx) in enumerate(shifts):
        rows_to = slice(max(dy, 0), height + min(dy, 0))
        rows_from = slice(max(-dy, 0), height + min(-dy, 0))
        cols_to = slice(max(dx, 0), width + min(dx, 0))
        cols_from = slice(max(-dx, 0), width + min(-dx, 0))
        out[i, :, rows_to, cols_to] = images[i, :, rows_from, cols_from]
    return out


def test_a_single_pixel_lands_where_its_shift_says():
    image = np.zeros((1, 1, 28, 28), np.float32)
    image[0, 0, 10, 20] = 1
    moved = translate(image, np.array([[2, -3]])).array
    assert moved.shape == image.shape
    assert np.argwhere(moved[0, 0] == 1).tolist() == [[12, 17]] and moved.sum() == 1


def test_random_shifts_match_the_numpy_reference_for_every_image():
    rng = np.random.RandomState(0)
    images = rng.rand(40, 3, 9, 7).astype(np.float32)
    shifts = random_shifts(rng, len(images), 3)
    np.testing.assert_array_equal(translate(images, shifts).array, shifted_reference(images, shifts))


def test_zero_shifts_leave_the_images_alone():
    images = np.random.RandomState(1).rand(5, 1, 28, 28).astype(np.float32)
    np.testing.assert_array_equal(translate(images, np.zeros((5, 2), int)).array, images)


def test_a_pixel_shifted_out_of_the_picture_is_gone():
    image = np.ones((1, 1, 4, 4), np.float32)
    moved = translate(image, np.array([[0, 2]])).array[0, 0]
    assert moved[:, :2].sum() == 0 and np.all(moved[:, 2:] == 1)


def test_the_gradient_is_the_weights_shifted_back():
    """Shifting is a partial permutation: its adjoint moves the upstream gradient by -shift."""
    rng = np.random.RandomState(2)
    x = chainer.Variable(rng.rand(6, 2, 8, 8).astype(np.float32))
    weights = rng.rand(6, 2, 8, 8).astype(np.float32)
    shifts = random_shifts(rng, 6, 2)
    F.sum(translate(x, shifts) * weights).backward()
    np.testing.assert_array_equal(x.grad, shifted_reference(weights, -shifts))


@pytest.mark.parametrize("max_shift", [1, 2, 4])
def test_random_shifts_cover_exactly_the_allowed_range(max_shift):
    shifts = random_shifts(np.random.RandomState(3), 5000, max_shift)
    assert shifts.shape == (5000, 2)
    for axis in range(2):
        assert sorted(set(shifts[:, axis])) == list(range(-max_shift, max_shift + 1))
    again = random_shifts(np.random.RandomState(3), 5000, max_shift)
    np.testing.assert_array_equal(shifts, again)
