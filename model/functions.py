"""Chainer functions that do in one graph node what the networks would otherwise spell out in many.

A training step is bound by Chainer's work per function application, not by arithmetic: spelled out
with Chainer's functions it took 289 applications, most of them spectral normalization's (a reshape,
two matmuls and a division per use of a weight, and their gradients). Each function here computes
the numbers of the composition it replaces, up to float rounding, and all its input gradients in
one more node.
"""

import chainer
from chainer import backend
from chainer.function_node import FunctionNode
from chainer.link_hooks import SpectralNormalization
from chainer.link_hooks.spectral_normalization import l2normalize


class FusedFunction(FunctionNode):
    """A function node whose gradient is one node, FusedGradient, which calls `gradients`.

    `forward` keeps on the node what `gradients` needs. The gradient is not differentiable again
    (the GAN's steps never ask for a second derivative).
    """

    differentiable: tuple[int, ...] = (0,)  # the inputs that get a gradient

    def gradients(self, gy) -> tuple:
        """The gradients of the `differentiable` inputs, as arrays, given the output's gradient."""
        raise NotImplementedError

    def backward(self, indexes, grad_outputs):
        grads = iter(FusedGradient(self).apply(grad_outputs))
        return tuple(next(grads) if i in self.differentiable else None for i in range(len(self.inputs)))


class FusedGradient(FunctionNode):
    """The gradient of a FusedFunction, as one node."""

    def __init__(self, function: FusedFunction):
        self.function = function

    @property
    def label(self) -> str:
        return f"{self.function.label}Grad"

    def forward(self, inputs):
        return self.function.gradients(*inputs)


def _as_matrix(W, axis: int):
    """`W` with `axis` (its output units) first, flattened to a matrix, as spectral norm reads it."""
    moved = W if axis == 0 else W.swapaxes(0, axis)
    return moved.reshape(len(moved), -1)


class SpectralNormalizedWeight(FusedFunction):
    """W / sigma, where sigma = u M v for W's matrix M and the power iteration's constant vectors u, v."""

    def __init__(self, u, v, axis: int):
        self.u = u
        self.v = v
        self.axis = axis

    def forward(self, inputs):
        (W,) = inputs
        xp = backend.get_array_module(W)
        self.sigma = xp.dot(xp.dot(self.u, _as_matrix(W, self.axis)), self.v)
        self.normalized = W / self.sigma
        return (self.normalized,)

    def gradients(self, gy):
        """(gy - sum(gy * W / sigma) u v^T) / sigma, with u v^T in W's layout."""
        xp = backend.get_array_module(gy)
        moved = self.normalized if self.axis == 0 else self.normalized.swapaxes(0, self.axis)
        outer = xp.outer(self.u, self.v).reshape(moved.shape)
        if self.axis != 0:
            outer = outer.swapaxes(0, self.axis)
        return (((gy - (gy * self.normalized).sum() * outer) / self.sigma).astype(gy.dtype, copy=False),)


class SpectralNormalizationNode(SpectralNormalization):
    """Chainer's spectral normalization hook (one power iteration, eps 1e-6, no gamma), with the
    normalized weight as one graph node instead of Chainer's reshape, two matmuls and a division.

    The power iteration, and the vector it leaves in the link after each training forward pass
    (saved as W_u, as Chainer's hook saves it), are Chainer's own.
    """

    def __init__(self):
        super().__init__()  # Chainer's defaults, the only ones normalize_weight computes

    def normalize_weight(self, link: chainer.Link) -> chainer.Variable:
        W = getattr(link, self.weight_name)
        xp = link.xp
        matrix = _as_matrix(W.array, self.axis)
        with chainer.using_device(link.device):
            v = l2normalize(xp, xp.dot(getattr(link, self.vector_name), matrix), self.eps)
            u = l2normalize(xp, xp.dot(matrix, v), self.eps)
            if chainer.config.train:
                backend.copyto(getattr(link, self.vector_name), u)
        return SpectralNormalizedWeight(u, v, self.axis).apply((W,))[0]


class ConditionalAffine(FusedFunction):
    """x * (1 + gain) + bias, with a gain and a bias per example and channel (n, c) over x (n, c, ...)."""

    differentiable = (0, 1, 2)

    def forward(self, inputs):
        self.x, gain, bias = inputs
        per_channel = gain.shape + (1,) * (self.x.ndim - 2)
        self.scale = (gain + 1).reshape(per_channel)
        return (self.x * self.scale + bias.reshape(per_channel),)

    def gradients(self, gy):
        spatial = tuple(range(2, gy.ndim))
        return gy * self.scale, (gy * self.x).sum(axis=spatial), gy.sum(axis=spatial)


def conditional_affine(x, gain, bias) -> chainer.Variable:
    """x * (1 + gain) + bias per example and channel: conditional batch norm's scale and shift."""
    return ConditionalAffine().apply((x, gain, bias))[0]


class ProjectionLogit(FusedFunction):
    """unconditional[:, 0] + sum(embedded * h, axis=1): the projection discriminator's logit."""

    differentiable = (0, 1, 2)

    def forward(self, inputs):
        unconditional, self.embedded, self.h = inputs
        return (unconditional[:, 0] + (self.embedded * self.h).sum(axis=1),)

    def gradients(self, gy):
        per_example = gy[:, None]
        return per_example.copy(), per_example * self.h, per_example * self.embedded


def projection_logit(unconditional, embedded, h) -> chainer.Variable:
    """The logit (n,) of features h (n, k), given their unconditional logit (n, 1) and the labels'
    embedding (n, k)."""
    return ProjectionLogit().apply((unconditional, embedded, h))[0]
