"""The fused functions and losses: the numbers and gradients of the compositions they replace."""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer.link_hooks import SpectralNormalization

from model.net import (
    Activation,
    LabelBatchNormalization,
    ProjectionDiscriminator,
    SpectralNormalizationNode,
    SpectralProjection,
    conditional_affine,
    layer,
)
from training.losses import (
    ClassLoss,
    HingeDiscriminatorLoss,
    class_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    loss_sum,
)


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
@pytest.mark.parametrize("relu", [False, True])
def test_conditional_affine_is_the_broadcast_scale_and_shift_of_the_labels_linear_layers(shape, relu):
    def composed(x, labels, G, B):
        per_channel = (len(x), len(G)) + (1,) * (x.ndim - 2)
        gain, bias = F.linear(labels, G), F.linear(labels, B)
        y = x * F.broadcast_to(F.reshape(gain + 1, per_channel), x.shape) + F.broadcast_to(
            F.reshape(bias, per_channel), x.shape
        )
        return F.relu(y) if relu else y

    def fused(*arrays):
        return conditional_affine(*arrays, Activation("relu") if relu else None)

    arrays = [normal(*shape), normal(4, 10, seed=1), normal(6, 10, seed=2), normal(6, 10, seed=3)]
    assert_same_function(fused, composed, arrays, (0, 2, 3))


def twin_links(make_link, spectral: bool = True) -> tuple:
    """Two equal links: one with this project's spectral norm hook and one with Chainer's, or both
    without."""
    links = []
    for hook in (SpectralNormalizationNode(), SpectralNormalization()):
        np.random.seed(0)
        links.append(make_link().add_hook(hook) if spectral else make_link())
    return tuple(links)


def assert_same_steps(fused, composed, links: tuple, x: np.ndarray, input_grad: bool = True):
    """fused(ours, h) and composed(Chainer's, h) agree over three training steps: outputs, weight,
    bias and input gradients, and the power iteration's vectors where there is one."""
    for step in range(3):
        results = []
        for function, link in zip((fused, composed), links, strict=True):
            link.cleargrads()
            h = chainer.Variable(x.copy(), requires_grad=input_grad)
            y = function(link, h)
            F.sum(y * y).backward()
            results.append((y.array, link.W.grad, link.b.grad, h.grad, getattr(link, "W_u", None)))
        assert (results[0][3] is None) == (results[1][3] is None) == (not input_grad)
        for mine, expected in zip(*results, strict=True):
            if expected is not None:
                np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        for link in links:
            link.W.array -= 0.1 * link.W.grad  # a step that changes the weights' largest singular value


LAYERS = {
    "linear": (lambda: L.Linear(12, 5), (2, 12)),
    "convolution": (lambda: L.Convolution2D(3, 4, 4, 2, 1), (2, 3, 8, 8)),
    "deconvolution": (lambda: L.Deconvolution2D(3, 4, 4, 2, 1), (2, 3, 5, 5)),
}
ACTIVATIONS = {"relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.2), "sigmoid": F.sigmoid}


@pytest.mark.parametrize(
    "kind, input_grad",
    # Chainer's own Deconvolution2DFunction.backward fails when only the weights' gradient is asked for
    [
        (kind, input_grad)
        for kind in LAYERS
        for input_grad in (True, False)
        if input_grad or kind != "deconvolution"
    ],
)
@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
@pytest.mark.parametrize("spectral", [True, False], ids=["spectral-norm", "plain"])
@pytest.mark.parametrize("flat", [False, True])
def test_a_layer_is_its_link_and_activation(kind, input_grad, activation, spectral, flat):
    make_link, shape = LAYERS[kind]

    def composed(link, x):
        y = link(x) if activation is None else ACTIVATIONS[activation](link(x))
        return F.reshape(y, (len(y), -1)) if flat else y

    def fused(link, x):
        return layer(link, x, None if activation is None else Activation(activation), flat)

    assert_same_steps(fused, composed, twin_links(make_link, spectral), normal(*shape), input_grad)


def test_spectral_projection_is_the_hooked_layers_projection_logit():
    fcs, embeds = twin_links(lambda: L.Linear(7, 1)), twin_links(lambda: L.Linear(10, 7, nobias=True))
    labels = np.random.RandomState(3).dirichlet(np.ones(10), 5).astype(np.float32)
    for step in range(3):
        results = []
        for fused, fc, embed in zip((True, False), fcs, embeds, strict=True):
            fc.cleargrads()
            embed.cleargrads()
            h = chainer.Variable(normal(5, 7, seed=step))
            if fused:
                y = SpectralProjection(fc, embed).apply((h, labels, fc.W, fc.b, embed.W))[0]
            else:
                y = fc(h)[:, 0] + F.sum(embed(labels) * h, axis=1)
            F.sum(y * y).backward()
            results.append(
                (y.array, h.grad, fc.W.grad, fc.b.grad, embed.W.grad, fc.W_u.copy(), embed.W_u.copy())
            )
        for mine, expected in zip(*results, strict=True):
            np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        for link in (*fcs, *embeds):
            link.W.array -= 0.1 * link.W.grad


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


def test_a_fused_gradient_is_a_node_only_where_a_graph_of_it_is_asked_for():
    """A plain backward pass gets the gradients without a node's work; double backpropagation gets
    the same numbers from one gradient node."""
    arrays = [normal(4, 6, 3, 3), normal(4, 10, seed=1), normal(6, 10, seed=2), normal(6, 10, seed=3)]
    grads = []
    for graph in (False, True):
        x = chainer.Variable(arrays[0].copy())
        y = conditional_affine(x, *arrays[1:])
        (gx,) = chainer.grad([F.sum(y * y)], [x], enable_double_backprop=graph)
        assert (gx.creator is not None) == graph
        grads.append(gx.array)
    np.testing.assert_array_equal(*grads)


def test_passes_in_one_node_are_the_calls_one_after_another():
    """features_of and judge_each of two batches: the numbers, gradients and power-iteration
    vectors of two calls of features and judge, bit for bit."""
    x, labels = normal(3, 1, 28, 28), np.eye(10, dtype=np.float32)[[1, 5, 7]]
    results = []
    for together in (True, False):
        np.random.seed(0)
        dis = ProjectionDiscriminator(ch=4)
        for _ in range(2):  # two steps: the vectors and weights move
            dis.cleargrads()
            batches = (x, x[::-1] * 0.5)
            if together:
                logits = dis.judge_each(dis.features_of(batches), labels)
            else:
                logits = [dis.judge(dis.features(batch), labels) for batch in batches]
            F.sum(logits[0] * logits[1]).backward()
            results.append([y.array for y in logits] + [p.grad for p in dis.params()] + [dis.c2.W_u.copy()])
            for param in dis.params():
                param.array -= 0.1 * param.grad
    for mine, expected in zip(results[:2], results[2:], strict=True):
        for a, b in zip(mine, expected, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_loss_sum_is_the_losses_added_bit_for_bit():
    y_real, y_fake = 1.5 * normal(6), 1.5 * normal(6, seed=1)
    soft_labels = np.random.RandomState(3).dirichlet(np.ones(10), 6).astype(np.float32)
    arrays = [y_real, y_fake, normal(6, 10, seed=2), soft_labels]

    def fused(y_real, y_fake, logits, labels):
        return loss_sum((HingeDiscriminatorLoss(), (y_real, y_fake)), (ClassLoss(0.1), (logits, labels)))

    def added(y_real, y_fake, logits, labels):
        return hinge_discriminator_loss(y_real, y_fake) + class_loss(logits, labels, 0.1)

    ours, theirs = (outputs_and_gradients(f, arrays, (0, 1, 2)) for f in (fused, added))
    np.testing.assert_array_equal(ours[0], theirs[0])
    for mine, expected in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_array_equal(mine, expected)


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 3, 3)], ids=["features", "channels"])
def test_label_batch_norm_in_training_is_one_node_with_the_links_numbers(shape):
    """Outputs, the gradients of h and of the label layers, and the running statistics: as the
    batch norm link's call followed by the scale and shift, bit for bit, over two steps."""
    labels = np.random.RandomState(3).dirichlet(np.ones(10), 4).astype(np.float32)
    results = []
    for fused in (True, False):
        bn = LabelBatchNormalization(6, 10)
        for param, seed in ((bn.gain.W, 1), (bn.bias.W, 2)):
            param.array[...] = normal(6, 10, seed=seed)
        for step in range(2):
            bn.cleargrads()
            h = chainer.Variable(normal(*shape, seed=step))
            if fused:
                y = bn(h, labels, Activation("relu"))
            else:
                y = conditional_affine(bn.bn(h), labels, bn.gain.W, bn.bias.W, Activation("relu"))
            F.sum(y * y).backward()
            results.append(
                [y.array, h.grad, bn.gain.W.grad, bn.bias.W.grad, bn.bn.avg_mean.copy(), bn.bn.avg_var.copy()]
            )
    for mine, expected in zip(results[:2], results[2:], strict=True):
        for a, b in zip(mine, expected, strict=True):
            np.testing.assert_array_equal(a, b)
