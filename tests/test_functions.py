"""The fused functions and losses: the numbers and gradients of the compositions they replace."""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer.link_hooks import SpectralNormalization

from model.net import SpectralNormalizationNode, conditional_affine, projection_logit
from training.losses import class_loss, hinge_discriminator_loss, hinge_generator_loss


def outputs_and_gradients(function, arrays: list[np.ndarray], differentiable: tuple[int, ...]):
    """function(*arrays), and its `differentiable` inputs' gradients for a fixed random output gradient."""
    inputs = [chainer.Variable(a.copy(), requires_grad=i in differentiable) for i, a in enumerate(arrays)]
    y = function(*inputs)
    y.grad = np.random.RandomState(9).normal(size=y.shape).astype(y.dtype)
    y.backward()
    return y.array, [inputs[i].grad for i in differentiable]


def assert_same_function(fused, composed, arrays: list[np.ndarray], differentiable: tuple[int, ...]):
    ours, theirs = (outputs_and_gradients(f, arrays, differentiable) for f in (fused, composed))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6, atol=1e-7)
    assert ours[0].dtype == theirs[0].dtype
    for mine, expected in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-7)
        assert mine.dtype == expected.dtype


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 3, 3)], ids=["features", "channels"])
def test_conditional_affine_is_the_broadcast_scale_and_shift(shape):
    def composed(x, gain, bias):
        per_channel = gain.shape + (1,) * (x.ndim - 2)
        return x * F.broadcast_to(F.reshape(gain + 1, per_channel), x.shape) + F.broadcast_to(
            F.reshape(bias, per_channel), x.shape
        )

    arrays = [normal(*shape), normal(4, 6, seed=1), normal(4, 6, seed=2)]
    assert_same_function(conditional_affine, composed, arrays, (0, 1, 2))


def test_projection_logit_is_the_unconditional_logit_plus_the_inner_product():
    def composed(unconditional, embedded, h):
        return unconditional[:, 0] + F.sum(embedded * h, axis=1)

    arrays = [normal(5, 1), normal(5, 7, seed=1), normal(5, 7, seed=2)]
    assert_same_function(projection_logit, composed, arrays, (0, 1, 2))


def test_hinge_losses_are_the_relu_and_mean_compositions():
    y_real, y_fake = 1.5 * normal(16), 1.5 * normal(16, seed=1)  # some inside the margin, some outside
    assert_same_function(
        hinge_discriminator_loss,
        lambda r, f: F.mean(F.relu(1 - r)) + F.mean(F.relu(1 + f)),
        [y_real, y_fake],
        (0, 1),
    )
    assert_same_function(hinge_generator_loss, lambda f: -F.mean(f), [y_fake], (0,))


@pytest.mark.parametrize("weight", [1.0, 0.1])
def test_class_loss_is_the_weighted_cross_entropy_composition(weight):
    soft_labels = np.random.RandomState(3).dirichlet(np.ones(10), 6).astype(np.float32)
    assert_same_function(
        lambda x, t: class_loss(x, t, weight),
        lambda x, t: weight * (-F.sum(t * F.log_softmax(x)) / len(t)),
        [normal(6, 10), soft_labels],
        (0,),
    )


@pytest.mark.parametrize(
    "make_link",
    [
        lambda: L.Linear(12, 5),
        lambda: L.Convolution2D(3, 4, 3, 2, 1),
        lambda: L.Deconvolution2D(3, 4, 4, 2, 1),  # spectral norm reads its weight's axis 1
    ],
    ids=["linear", "convolution", "deconvolution"],
)
def test_spectral_normalization_node_follows_chainers_hook(make_link):
    """Same outputs, weight and input gradients, and power-iteration vectors as Chainer's own hook,
    over several training steps (each forward pass moves the vector on)."""
    links = []
    for hook in (SpectralNormalizationNode(), SpectralNormalization()):
        np.random.seed(0)
        links.append(make_link().add_hook(hook))
    x = normal(2, 12) if isinstance(links[0], L.Linear) else normal(2, 3, 6, 6)
    for step in range(3):
        results = []
        for link in links:
            link.cleargrads()
            h = chainer.Variable(x.copy())
            y = link(h)
            F.sum(y * y).backward()
            results.append((y.array, link.W.grad, h.grad, link.W_u.copy()))
        for mine, expected in zip(*results, strict=True):
            np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        for link in links:
            link.W.array -= 0.1 * link.W.grad  # a step that changes the weights' largest singular value


def test_spectral_normalization_node_leaves_the_vector_alone_outside_training():
    link = L.Linear(12, 5).add_hook(SpectralNormalizationNode())
    before = link.W_u.copy()
    with chainer.using_config("train", False):
        link(normal(2, 12))
    np.testing.assert_array_equal(link.W_u, before)
