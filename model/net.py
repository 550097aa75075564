"""The conditional DCGAN's two networks, and the fused functions their layers are made of.

The label enters both networks as a plain float vector, so any continuous
10-vector works at sampling time: one-hot digits, mixtures, all zeros, all ones.

A training step is bound by Chainer's work per function application, not by arithmetic: spelled out
with Chainer's functions it took 289 applications, most of them spectral normalization's (a reshape,
two matmuls and a division per use of a weight, and their gradients). Each fused function here
computes the numbers of the composition it replaces, up to float rounding, and all its input
gradients in one more node (training/losses.py makes the losses the same way).
"""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
from chainer import backend
from chainer.function_node import FunctionNode
from chainer.functions.connection.convolution_2d import Convolution2DFunction, Convolution2DGradW
from chainer.functions.connection.deconvolution_2d import Deconvolution2DFunction
from chainer.functions.connection.linear import LinearFunction, LinearGradData, LinearGradWeight
from chainer.link_hooks import SpectralNormalization
from chainer.link_hooks.spectral_normalization import l2normalize

IMAGE_SIZE = 28
N_CLASSES = 10


class FusedFunction(FunctionNode):
    """A function node whose gradient is computed by `gradients`, in one call.

    `forward` keeps on the node what `gradients` needs. A backward pass that builds no graph (every
    one of the GAN's steps) gets the gradients as plain variables, without a node's work; one that
    does (double backpropagation) gets them from one node, FusedGradient, which is not
    differentiable again.
    """

    differentiable: tuple[int, ...] = (0,)  # the inputs that get a gradient
    wanted: tuple[int, ...] = ()  # the inputs whose gradient this backward pass asks for

    def gradients(self, gy) -> tuple:
        """The gradients of the `differentiable` inputs, as arrays, given the output's gradient;
        None for one that is not `wanted` may save its work."""
        raise NotImplementedError

    def backward(self, indexes, grad_outputs):
        self.wanted = indexes
        gradient = FusedGradient(self)
        if chainer.config.enable_backprop:
            outputs = gradient.apply(grad_outputs)
        else:  # what the node's output variables would hold
            arrays = gradient.forward(tuple(gy.array for gy in grad_outputs))
            outputs = [chainer.Variable(g, requires_grad=False) for g in arrays]
        grads = dict(zip(gradient.given, outputs, strict=True))
        return tuple(grads.get(i) for i in range(len(self.inputs)))


class FusedGradient(FunctionNode):
    """The gradient of a FusedFunction, as one node."""

    def __init__(self, function: FusedFunction):
        self.function = function
        self.given: list[int] = []  # the inputs whose gradient forward() computed

    @property
    def label(self) -> str:
        return f"{self.function.label}Grad"

    def forward(self, inputs):
        grads = self.function.gradients(*inputs)
        pairs = [(i, g) for i, g in zip(self.function.differentiable, grads, strict=True) if g is not None]
        self.given = [i for i, _ in pairs]
        return tuple(g for _, g in pairs)


def _outside_graph(node: FunctionNode, inputs: tuple) -> tuple:
    """Chainer's `node` run on arrays as one step of a fused function: its kernels, no graph node."""
    node._input_layouts = (None,) * len(inputs)  # what apply() would set: the standard layouts
    return node.forward(inputs)


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
        """(gy - sum(gy * W / sigma) u v^T) / sigma, with u v^T in W's layout (each operation as the
        expression makes it, into two arrays instead of five)."""
        xp = backend.get_array_module(gy)
        work = gy * self.normalized
        total = work.sum()
        outer = xp.multiply(self.u[:, None], self.v[None, :])  # xp.outer
        outer = outer.reshape(
            self.normalized.shape if self.axis == 0 else self.normalized.swapaxes(0, self.axis).shape
        )
        if self.axis != 0:
            outer = outer.swapaxes(0, self.axis)
        outer *= total
        xp.subtract(gy, outer, out=work)
        xp.divide(work, self.sigma, out=work)
        return (work,)


def _l2normalize(xp, x, eps: float):
    """Chainer's l2normalize; on the CPU without numpy.linalg.norm's checks, the same sqrt(x . x)."""
    if xp is not np:
        return l2normalize(xp, x, eps)
    return x / (np.sqrt(x.dot(x)) + eps)


class SpectralNormalizationNode(SpectralNormalization):
    """Chainer's spectral normalization hook (one power iteration, eps 1e-6, no gamma), with the
    normalized weight as one graph node instead of Chainer's reshape, two matmuls and a division.

    The power iteration, and the vector it leaves in the link after each training forward pass
    (saved as W_u, as Chainer's hook saves it), are Chainer's own. The discriminator's layers call
    `normalization` themselves and normalize their weights inside their own fused nodes.
    """

    def __init__(self):
        super().__init__()  # Chainer's defaults, the only ones normalize_weight computes

    def normalize_weight(self, link: chainer.Link) -> chainer.Variable:
        return self.normalization(link).apply((getattr(link, self.weight_name),))[0]

    def normalization(self, link: chainer.Link) -> SpectralNormalizedWeight:
        """The function that normalizes `link`'s weight, after one step of the power iteration."""
        xp = link.xp
        matrix = _as_matrix(getattr(link, self.weight_name).array, self.axis)
        with chainer.using_device(link.device):
            v = _l2normalize(xp, xp.dot(getattr(link, self.vector_name), matrix), self.eps)
            u = _l2normalize(xp, xp.dot(matrix, v), self.eps)
            if chainer.config.train:
                backend.copyto(getattr(link, self.vector_name), u)
        return SpectralNormalizedWeight(u, v, self.axis)


def spectral_normalization(link: chainer.Link) -> SpectralNormalizedWeight:
    """The normalization of `link`'s weight by its SpectralNormalizationNode hook, which steps the
    power iteration as a call of the link would."""
    (hook,) = (h for h in link.local_link_hooks.values() if isinstance(h, SpectralNormalizationNode))
    return hook.normalization(link)


class SpectralConvolution(FusedFunction):
    """leaky_relu(convolution_2d(x, W / sigma, b)), flattened to (n, -1) if `flat`: a spectrally
    normalized convolution and its leaky ReLU, with Chainer's convolution kernels (on the CPU
    model/cpu_kernels.py's)."""

    differentiable = (0, 1, 2)

    def __init__(self, normalization: SpectralNormalizedWeight, stride, pad, slope: float, flat: bool):
        self.normalization = normalization
        self.stride, self.pad = stride, pad
        self.convolution = Convolution2DFunction(stride, pad)
        self.slope = slope
        self.flat = flat

    def forward(self, inputs):
        self.x, W, b = inputs
        (self.W,) = self.normalization.forward((W,))
        (y,) = _outside_graph(self.convolution, (self.x, self.W, b))
        self.y = backend.get_array_module(y).maximum(y, y * self.slope)  # Chainer's, for a slope in [0, 1]
        return (self.y.reshape(len(y), -1) if self.flat else self.y,)

    def gradients(self, gy):
        xp = backend.get_array_module(gy)
        slopes = (self.y > 0).astype(gy.dtype)
        gy = xp.maximum(slopes, self.slope, out=slopes) * gy.reshape(self.y.shape)
        gx = gW = gb = None
        if 0 in self.wanted:
            transposed = Deconvolution2DFunction(self.stride, self.pad, self.x.shape[2:])
            (gx,) = _outside_graph(transposed, (gy, self.W))
        if 1 in self.wanted:
            grad_w = Convolution2DGradW(self.convolution, self.W.shape, self.W.dtype, None)
            (gW,) = self.normalization.gradients(*_outside_graph(grad_w, (self.x, gy)))
        if 2 in self.wanted:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gW, gb


def spectral_convolution(link: L.Convolution2D, x, slope: float, flat: bool = False) -> chainer.Variable:
    """leaky_relu(link(x), slope), flattened to (n, -1) if `flat`, for a Convolution2D link with a
    SpectralNormalizationNode hook, as one node."""
    function = SpectralConvolution(spectral_normalization(link), link.stride, link.pad, slope, flat)
    return function.apply((x, link.W, link.b))[0]


class SpectralLinear(FusedFunction):
    """x (W / sigma)^T + b: a spectrally normalized linear layer, with Chainer's linear kernels."""

    differentiable = (0, 1, 2)

    def __init__(self, normalization: SpectralNormalizedWeight):
        self.normalization = normalization

    def forward(self, inputs):
        self.x, W, b = inputs[0], inputs[1], inputs[2:]
        (self.W,) = self.normalization.forward((W,))
        return _outside_graph(LinearFunction(), (self.x, self.W, *b))

    def gradients(self, gy):
        gx = gW = gb = None
        if 0 in self.wanted:
            (gx,) = _outside_graph(LinearGradData(), (self.W, gy))
        if 1 in self.wanted:
            (gW,) = self.normalization.gradients(
                *_outside_graph(LinearGradWeight(self.W.dtype), (self.x, gy))
            )
        if 2 in self.wanted:
            gb = gy.sum(axis=0)
        return gx, gW, gb


def spectral_linear(link: L.Linear, x) -> chainer.Variable:
    """link(x) for a Linear link with a SpectralNormalizationNode hook, as one node."""
    bias = () if link.b is None else (link.b,)
    return SpectralLinear(spectral_normalization(link)).apply((x, link.W, *bias))[0]


class SpectralProjection(FusedFunction):
    """The projection discriminator's logit (n,) of features h (n, k) and labels (n, classes):
    fc(h)[:, 0] + sum(embed(labels) * h, axis=1), fc and embed SpectralLinear functions."""

    differentiable = (0, 2, 3, 4)  # h, fc's W and b, embed's W

    def __init__(self, fc: SpectralLinear, embed: SpectralLinear):
        self.fc = fc
        self.embed = embed

    def forward(self, inputs):
        self.h, labels, W, b, E = inputs
        (unconditional,) = self.fc.forward((self.h, W, b))
        (self.embedded,) = self.embed.forward((labels, E))
        return (unconditional[:, 0] + (self.embedded * self.h).sum(axis=1),)

    def gradients(self, gy):
        per_example = gy[:, None]
        self.fc.wanted = tuple(i for i, wanted in enumerate((0, 2, 3)) if wanted in self.wanted)
        self.embed.wanted = (1,) if 4 in self.wanted else ()
        gh, gW, gb = self.fc.gradients(per_example.copy())
        if gh is not None:
            gh += per_example * self.embedded
        (_, gE, _) = self.embed.gradients(per_example * self.h)
        return gh, gW, gb, gE


class ConditionalAffine(FusedFunction):
    """x * (1 + gain) + bias over x (n, c, ...), with a gain and a bias per example and channel that
    are linear in the labels: gain = labels G^T, bias = labels B^T (with Chainer's linear kernels)."""

    differentiable = (0, 2, 3)  # x, G, B

    def forward(self, inputs):
        self.x, self.labels, G, B = inputs
        (gain,) = _outside_graph(LinearFunction(), (self.labels, G))
        (bias,) = _outside_graph(LinearFunction(), (self.labels, B))
        per_channel = gain.shape + (1,) * (self.x.ndim - 2)
        self.scale = (gain + 1).reshape(per_channel)
        return (self.x * self.scale + bias.reshape(per_channel),)

    def gradients(self, gy):
        spatial = tuple(range(2, gy.ndim))
        g_gain, g_bias = (gy * self.x).sum(axis=spatial), gy.sum(axis=spatial)
        (gG,) = _outside_graph(LinearGradWeight(gy.dtype), (self.labels, g_gain))
        (gB,) = _outside_graph(LinearGradWeight(gy.dtype), (self.labels, g_bias))
        return gy * self.scale, gG, gB


def conditional_affine(x, labels, G, B) -> chainer.Variable:
    """x * (1 + labels G^T) + labels B^T per example and channel: conditional batch norm's scale
    and shift."""
    return ConditionalAffine().apply((x, labels, G, B))[0]


class LabelBatchNormalization(chainer.Chain):
    """Batch norm whose gain and bias are linear in the label vector (conditional batch norm).

    gain = 1 + labels @ G and bias = labels @ B, per channel, with G and B starting at zero, so the
    layer starts as plain batch norm and a soft label gets the same mixture of the digits' gains.
    """

    def __init__(self, size: int, n_classes: int):
        super().__init__()
        with self.init_scope():
            self.bn = L.BatchNormalization(size, use_gamma=False, use_beta=False)
            self.gain = L.Linear(n_classes, size, nobias=True, initialW=0)
            self.bias = L.Linear(n_classes, size, nobias=True, initialW=0)

    def forward(self, h, labels):
        return conditional_affine(self.bn(h), labels, self.gain.W, self.bias.W)


class Generator(chainer.Chain):
    """(noise, label vector) -> 1x28x28 image in [0, 1].

    The label is joined to the noise at the input and also sets the gain and bias of both batch
    norms (LabelBatchNormalization). model/inference.py's FoldedGenerator is this network's second
    definition, for serving; tests/test_inference.py holds the two to the same outputs.
    """

    def __init__(self, z_size: int = 100, ch: int = 128, n_classes: int = N_CLASSES):
        super().__init__()
        self.z_size = z_size
        self.ch = ch
        self.n_classes = n_classes
        w = chainer.initializers.Normal(0.02)
        with self.init_scope():
            self.fc = L.Linear(z_size + n_classes, ch * 7 * 7, initialW=w)
            self.dc1 = L.Deconvolution2D(ch, ch // 2, 4, 2, 1, initialW=w)
            self.dc2 = L.Deconvolution2D(ch // 2, 1, 4, 2, 1, initialW=w)
            self.bn0 = LabelBatchNormalization(ch * 7 * 7, n_classes)
            self.bn1 = LabelBatchNormalization(ch // 2, n_classes)

    def forward(self, z, labels):
        h = F.concat((z, labels), axis=1)
        h = F.relu(self.bn0(self.fc(h), labels))
        h = F.reshape(h, (len(h), self.ch, 7, 7))
        h = F.relu(self.bn1(self.dc1(h), labels))
        return F.sigmoid(self.dc2(h))


class ProjectionDiscriminator(chainer.Chain):
    """(image, label vector) -> one logit per image: a projection discriminator with spectral norm.

    The image alone goes through the convolutions; the label enters only at the end, as the inner
    product of its embedding with the image's features (Miyato & Koyama 2018), added to an
    unconditional logit. Every weight is spectrally normalized (Miyato et al. 2018) and there is
    no batch norm. A soft label's embedding is the same mixture of the digits' embeddings.
    """

    KIND = "projection"  # as run records name it

    def __init__(self, ch: int = 64, n_classes: int = N_CLASSES, classifier: bool = False):
        super().__init__()
        self.ch = ch
        self.n_classes = n_classes
        w = chainer.initializers.Normal(0.02)
        features = ch * 2 * 7 * 7
        with self.init_scope():
            self.c1 = L.Convolution2D(1, ch, 4, 2, 1, initialW=w)
            self.c2 = L.Convolution2D(ch, ch * 2, 4, 2, 1, initialW=w)
            self.fc = L.Linear(features, 1, initialW=w)
            self.embed = L.Linear(n_classes, features, nobias=True, initialW=w)
            if classifier:
                self.classes = L.Linear(features, n_classes, initialW=w)
        for link in self.children():
            link.add_hook(SpectralNormalizationNode())

    def features(self, x):
        """The image's features, which the logit and the class head share."""
        return spectral_convolution(self.c2, spectral_convolution(self.c1, x, 0.2), 0.2, flat=True)

    def judge(self, h, labels):
        """The logit of features `h` under `labels`."""
        fc, embed = (SpectralLinear(spectral_normalization(link)) for link in (self.fc, self.embed))
        return SpectralProjection(fc, embed).apply((h, labels, self.fc.W, self.fc.b, self.embed.W))[0]

    def classify(self, h):
        """The class head's logits (n, classes) of features `h`."""
        return spectral_linear(self.classes, h)

    def forward(self, x, labels):
        return self.judge(self.features(x), labels)
