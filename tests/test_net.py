"""The networks: shapes, value ranges, continuous labels, the discriminator's projection and spectral norm."""

import chainer
import numpy as np
import pytest

from model.net import Generator, LabelBatchNormalization, ProjectionDiscriminator
from model.sampling import NOISE_RULE, Z_SIZE, generate, one_hot, seed_noise, seeds_noise, slerp


@pytest.fixture(scope="module")
def gen() -> Generator:
    np.random.seed(0)
    return Generator(ch=16)


def test_generator_draws_one_28x28_image_in_0_1_per_row(gen):
    images = generate(gen, seeds_noise(range(5)), one_hot([0, 1, 2, 3, 4]))
    assert images.shape == (5, 1, 28, 28)
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize(
    "labels",
    [np.zeros(10), np.ones(10), np.r_[0.5, 0.5, np.zeros(8)], np.linspace(0, 1, 10)],
    ids=["all zeros", "all ones", "half 0 half 1", "ramp"],
)
def test_generator_accepts_any_continuous_label_vector(gen, labels):
    images = generate(gen, seeds_noise([7]), labels[None].astype(np.float32))
    assert images.shape == (1, 1, 28, 28)
    assert np.isfinite(images).all()


def test_generator_output_moves_with_a_soft_label(gen):
    z = seeds_noise([3, 3, 3])
    labels = np.zeros((3, 10), np.float32)
    labels[:, 0] = [1.0, 0.5, 0.0]
    labels[:, 1] = [0.0, 0.5, 1.0]
    a, mid, b = generate(gen, z, labels)
    assert not np.allclose(a, mid) and not np.allclose(mid, b)


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 3, 3)], ids=["features", "channels"])
def test_label_batch_norm_scales_and_shifts_each_channel_by_the_labels_mixture_of_gains_and_biases(shape):
    bn = LabelBatchNormalization(6, 10)
    rng = np.random.default_rng(0)
    for param in (bn.gain.W, bn.bias.W):
        param.array[...] = rng.normal(0, 1, param.shape)
    h = rng.normal(0, 1, shape).astype(np.float32)
    labels = 0.3 * one_hot([2, 2, 0, 9]) + 0.7 * one_hot([5, 1, 0, 9])
    with chainer.using_config("train", False):
        normalized = bn.bn(h).array
        out = bn(h, labels).array
    per_channel = (4, 6) + (1,) * (len(shape) - 2)
    gain = 1 + (labels @ bn.gain.W.array.T).reshape(per_channel)
    bias = (labels @ bn.bias.W.array.T).reshape(per_channel)
    np.testing.assert_allclose(out, normalized * gain + bias, rtol=1e-5, atol=1e-5)


def tiny_discriminator_and_images() -> tuple[ProjectionDiscriminator, np.ndarray]:
    """A seeded 8-channel discriminator and four random images for it."""
    np.random.seed(0)
    return ProjectionDiscriminator(ch=8), np.random.RandomState(1).rand(4, 1, 28, 28).astype(np.float32)


def test_projection_discriminator_gives_one_logit_per_image_linear_in_the_label():
    dis, x = tiny_discriminator_and_images()
    with chainer.using_config("train", False):
        as_zero = dis(x, one_hot([0] * 4)).array
        as_seven = dis(x, one_hot([7] * 4)).array
        mixed = dis(x, 0.3 * one_hot([0] * 4) + 0.7 * one_hot([7] * 4)).array
    assert as_zero.shape == (4,)
    assert not np.allclose(as_zero, as_seven)
    np.testing.assert_allclose(mixed, 0.3 * as_zero + 0.7 * as_seven, rtol=1e-5, atol=1e-6)


def test_projection_discriminator_weights_are_spectrally_normalized():
    dis, x = tiny_discriminator_and_images()
    for _ in range(100):  # each training forward pass runs one power iteration per weight
        dis(x, one_hot([1, 2, 3, 4]))
    links = list(dis.children())
    assert len(links) == 4
    for link in links:
        hook = link.local_link_hooks["SpectralNormalization"]
        with chainer.using_config("train", False):
            weight = hook.normalize_weight(link).array
        largest = np.linalg.svd(weight.reshape(len(weight), -1), compute_uv=False)[0]
        assert largest == pytest.approx(1.0, rel=1e-3), link.name


def test_slerp_keeps_its_ends_and_the_norm_of_orthogonal_vectors():
    a, b = np.array([1, 0, 0], np.float32), np.array([0, 1, 0], np.float32)
    np.testing.assert_array_equal(slerp(a, b, 0.0), a)
    np.testing.assert_array_equal(slerp(a, b, 1.0), b)
    assert np.linalg.norm(slerp(a, b, 0.3)) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1])
def test_the_documented_noise_rule_is_the_noise_the_code_draws(seed):
    documented = eval(NOISE_RULE, {"numpy": np, "float32": np.float32, "seed": seed, "z_size": Z_SIZE})
    np.testing.assert_array_equal(documented, seed_noise(seed))
