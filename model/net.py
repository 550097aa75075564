"""The conditional DCGAN's two networks, and the fused functions their layers are made of.

The label enters both networks as a plain float vector, so any continuous
10-vector works at sampling time: one-hot digits, mixtures, all zeros, all ones.

A training step is bound by Chainer's work per function application, not by arithmetic: spelled out
with Chainer's functions it took 289 applications, most of them spectral normalization's (a reshape,
two matmuls and a division per use of a weight, and their gradients). Each fused function here
computes the numbers of the composition it replaces, up to float rounding, and all its input
gradients in one call, without a node of their own (training/losses.py makes the losses the same
way): a layer with its spectral norm and activation is one node, and so are D's passes over the
real and the fake batch.
"""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
from chainer import backend
from chainer.function_node import FunctionNode
from chainer.functions.activation.leaky_relu import LeakyReLU, _LeakyReLUGrad
from chainer.functions.activation.relu import ReLU, ReLUGrad2
from chainer.functions.activation.sigmoid import Sigmoid, SigmoidGrad
from chainer.functions.connection.convolution_2d import Convolution2DFunction, Convolution2DGradW
from chainer.functions.connection.deconvolution_2d import Deconvolution2DFunction
from chainer.functions.connection.linear import LinearFunction, LinearGradData, LinearGradWeight
from chainer.functions.normalization.batch_normalization import (
    BatchNormalization,
    BatchNormalizationGrad,
    _IDeepBatchNormalizationImpl,
)
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
            arrays = gradient.forward(tuple(None if gy is None else gy.array for gy in grad_outputs))
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


def spectral_normalization(link: chainer.Link) -> SpectralNormalizedWeight | None:
    """The normalization of `link`'s weight by its SpectralNormalizationNode hook, which steps the
    power iteration as a call of the link would; None for a link without one."""
    hooks = [h for h in link.local_link_hooks.values() if isinstance(h, SpectralNormalizationNode)]
    return hooks[0].normalization(link) if hooks else None


class Activation:
    """Chainer's ReLU, leaky ReLU or sigmoid as a step of a fused function: Chainer's kernels (on the
    CPU model/cpu_kernels.py's leaky ReLU), no graph node."""

    def __init__(self, name: str, slope: float = 0.2):
        self.name = name
        self.slope = slope

    def forward(self, x):
        node = {"relu": ReLU, "leaky_relu": lambda: LeakyReLU(self.slope), "sigmoid": Sigmoid}[self.name]()
        return _outside_graph(node, (x,))[0]

    def gradient(self, x, y, gy):
        """The gradient of the input x, given the output y and its gradient."""
        if self.name == "sigmoid":
            return _outside_graph(SigmoidGrad((x,)), (y, gy))[0]
        node = ReLUGrad2(y) if self.name == "relu" else _LeakyReLUGrad(y, self.slope)
        return _outside_graph(node, (gy,))[0]


class _Linear:
    """Chainer's linear function and its gradients, on arrays (x of shape (n, k))."""

    bias_axes = (0,)

    def __init__(self, link: L.Linear):
        pass  # a Linear link has no options that change the function

    def forward(self, x, W, b: tuple):
        return _outside_graph(LinearFunction(), (x, W, *b))[0]

    def input_gradient(self, x, W, gy):
        return _outside_graph(LinearGradData(), (W, gy))[0]

    def weight_gradient(self, x, W, gy):
        return _outside_graph(LinearGradWeight(W.dtype), (x, gy))[0]


def _convolution_options(link: L.Convolution2D | L.Deconvolution2D) -> dict:
    """The stride, padding, dilation and groups of a (transposed) convolution link, as its
    functions take them."""
    return {"stride": link.stride, "pad": link.pad, "dilate": link.dilate, "groups": link.groups}


class _Convolution:
    """Chainer's 2-D convolution of a link's stride, padding, dilation and groups and its gradients,
    on arrays, as Convolution2DFunction.backward computes them."""

    bias_axes = (0, 2, 3)

    def __init__(self, link: L.Convolution2D):
        self.options = _convolution_options(link)
        self.node = Convolution2DFunction(**self.options)

    def forward(self, x, W, b: tuple):
        return _outside_graph(self.node, (x, W, *b))[0]

    def input_gradient(self, x, W, gy):
        return _outside_graph(Deconvolution2DFunction(outsize=x.shape[2:], **self.options), (gy, W))[0]

    def weight_gradient(self, x, W, gy):
        return _outside_graph(Convolution2DGradW(self.node, W.shape, W.dtype, None), (x, gy))[0]


class _Deconvolution:
    """Chainer's 2-D transposed convolution of a link's options and its gradients, on arrays, as
    Deconvolution2DFunction.backward computes them."""

    bias_axes = (0, 2, 3)

    def __init__(self, link: L.Deconvolution2D):
        self.options = _convolution_options(link)
        self.node = Deconvolution2DFunction(outsize=link.outsize, **self.options)

    def forward(self, x, W, b: tuple):
        y = _outside_graph(self.node, (x, W, *b))[0]
        self.node._set_cover_all(x.shape, W.shape)
        return y

    def input_gradient(self, x, W, gy):
        convolution = Convolution2DFunction(cover_all=self.node.cover_all, **self.options)
        return _outside_graph(convolution, (gy, W))[0]

    def weight_gradient(self, x, W, gy):
        return _outside_graph(Convolution2DGradW(self.node, W.shape, W.dtype, None), (gy, x))[0]


class Layer(FusedFunction):
    """activation(connection(x, W, b)) as one node, W spectrally normalized where the link's hook
    asks for it: a linear, convolution or transposed convolution layer, with Chainer's kernels
    (model/cpu_kernels.py's on the CPU). The output flattened to (n, -1) if `flat`.

    With several `passes`, the inputs are x_1, ..., x_passes, W, b and the outputs the layer's of
    each x in turn, as from that many calls of the link (each pass its own step of the power
    iteration): one node instead of one a call, and the weights' gradients summed inside it.
    """

    def __init__(
        self, link: chainer.Link, activation: Activation | None = None, flat: bool = False, passes: int = 1
    ):
        kinds = ((L.Deconvolution2D, _Deconvolution), (L.Convolution2D, _Convolution), (L.Linear, _Linear))
        maker = next(maker for kind, maker in kinds if isinstance(link, kind))
        self.connections = [maker(link) for _ in range(passes)]
        self.normalizations = [spectral_normalization(link) for _ in range(passes)]
        self.activation = activation
        self.flat = flat
        self.passes = passes
        self.differentiable = tuple(range(passes + 2))  # the xs, W, b

    def forward(self, inputs):
        self.xs, (W, *b) = inputs[: self.passes], inputs[self.passes :]
        self.Ws, self.zs, self.ys, outputs = [], [], [], []
        for x, connection, normalization in zip(self.xs, self.connections, self.normalizations, strict=True):
            self.Ws.append(W if normalization is None else normalization.forward((W,))[0])
            self.zs.append(connection.forward(x, self.Ws[-1], tuple(b)))
            y = self.zs[-1] if self.activation is None else self.activation.forward(self.zs[-1])
            self.ys.append(y)
            outputs.append(y.reshape(len(y), -1) if self.flat else y)
        return tuple(outputs)

    def gradients(self, *gys):
        gxs, gWs, gbs = [], [], []
        passes = zip(
            gys, self.xs, self.Ws, self.zs, self.ys, self.connections, self.normalizations, strict=True
        )
        for i, (gy, x, W, z, y, connection, normalization) in enumerate(passes):
            if gy is None:  # an output that nothing used
                gxs.append(None)
                continue
            gy = gy.reshape(y.shape)
            if self.activation is not None:
                gy = self.activation.gradient(z, y, gy)
            gxs.append(connection.input_gradient(x, W, gy) if i in self.wanted else None)
            if self.passes in self.wanted:
                gW = connection.weight_gradient(x, W, gy)
                gWs.append(gW if normalization is None else normalization.gradients(gW)[0])
            if self.passes + 1 in self.wanted:
                gbs.append(gy.sum(axis=connection.bias_axes))
        return (*gxs, _total(gWs), _total(gbs))


def _total(arrays: list):
    """The sum of `arrays`, in order (as Chainer sums a variable's gradients); None for none."""
    total = None
    for array in arrays:
        total = array if total is None else total + array
    return total


def layer(
    link: chainer.Link, x, activation: Activation | None = None, flat: bool = False
) -> chainer.Variable:
    """activation(link(x)) for a Linear, Convolution2D or Deconvolution2D link (spectrally normalized
    if it has a SpectralNormalizationNode hook, whose power iteration steps as in a call of the link),
    as one node; flattened to (n, -1) if `flat`."""
    return layers(link, (x,), activation, flat)[0]


def layers(link: chainer.Link, xs: tuple, activation: Activation | None = None, flat: bool = False) -> tuple:
    """layer(link, x, activation, flat) of each x of `xs` in turn, as one node."""
    function = Layer(link, activation, flat, passes=len(xs))
    return function.apply((*xs, link.W) if link.b is None else (*xs, link.W, link.b))


class SpectralProjection(FusedFunction):
    """The projection discriminator's logit (n,) of features h (n, k) and labels (n, classes):
    fc(h)[:, 0] + sum(embed(labels) * h, axis=1), fc and embed Layers of spectrally normalized links,
    for each of the features h_1, ..., h_passes in turn (the inputs: the hs, labels, fc's W and b,
    embed's W)."""

    def __init__(self, fc: chainer.Link, embed: chainer.Link, passes: int = 1):
        self.fc = Layer(fc, passes=passes)
        self.embed = Layer(embed, passes=passes)
        self.passes = passes
        self.differentiable = (*range(passes), passes + 1, passes + 2, passes + 3)

    def forward(self, inputs):
        self.hs, (labels, W, b, E) = inputs[: self.passes], inputs[self.passes :]
        unconditionals = self.fc.forward((*self.hs, W, b))
        self.embedded = self.embed.forward((*(labels,) * self.passes, E))
        pairs = zip(unconditionals, self.embedded, self.hs, strict=True)
        return tuple(unconditional[:, 0] + (embedded * h).sum(axis=1) for unconditional, embedded, h in pairs)

    def gradients(self, *gys):
        per_example = [None if gy is None else gy[:, None] for gy in gys]
        n = self.passes
        self.fc.wanted = tuple(i for i in range(n + 2) if (i if i < n else i + 1) in self.wanted)
        self.embed.wanted = (n,) if n + 3 in self.wanted else ()
        *ghs, gW, gb = self.fc.gradients(*(None if g is None else g.copy() for g in per_example))
        for gh, g, embedded in zip(ghs, per_example, self.embedded, strict=True):
            if gh is not None:
                gh += g * embedded
        gE = self.embed.gradients(
            *(None if g is None else g * h for g, h in zip(per_example, self.hs, strict=True))
        )[n]
        return (*ghs, gW, gb, gE)


class _BatchNormalization:
    """Chainer's batch normalization in training, as a link would call it (the link's running
    statistics updated), and its input gradient, on arrays."""

    def __init__(self, link: L.BatchNormalization):
        self.node = BatchNormalization(link.eps, link.avg_mean, link.avg_var, link.decay, link.axis)
        (self.gamma,) = link._get_gamma() if link.gamma is None else (link.gamma.array,)
        (self.beta,) = link._get_beta() if link.beta is None else (link.beta.array,)

    def forward(self, x):
        self.x = x
        return _outside_graph(self.node, (x, self.gamma, self.beta))[0]

    def input_gradient(self, gy):
        """As BatchNormalization.backward computes it (the variance passed only to iDeep's kernel)."""
        node = self.node
        var = node.var if isinstance(node._impl, _IDeepBatchNormalizationImpl) else None
        grad = BatchNormalizationGrad(
            node.eps,
            node.expander,
            node.axis,
            node.mean,
            var,
            node.inv_std,
            node.key_axis,
            node._impl,
            node.forward_data,
        )
        return _outside_graph(grad, (self.x, self.gamma, gy))[0]


class ConditionalAffine(FusedFunction):
    """activation(x * (1 + gain) + bias) over x (n, c, ...), with a gain and a bias per example and
    channel that are linear in the labels: gain = labels G^T, bias = labels B^T (Chainer's linear
    kernels); no activation if None. With a batch normalization, x is first normalized by it."""

    differentiable = (0, 2, 3)  # x, G, B

    def __init__(
        self, activation: Activation | None = None, normalization: _BatchNormalization | None = None
    ):
        self.activation = activation
        self.normalization = normalization

    def forward(self, inputs):
        x, self.labels, G, B = inputs
        self.x = x if self.normalization is None else self.normalization.forward(x)
        (gain,) = _outside_graph(LinearFunction(), (self.labels, G))
        (bias,) = _outside_graph(LinearFunction(), (self.labels, B))
        per_channel = gain.shape + (1,) * (self.x.ndim - 2)
        self.scale = (gain + 1).reshape(per_channel)
        self.z = self.x * self.scale + bias.reshape(per_channel)
        self.y = self.z if self.activation is None else self.activation.forward(self.z)
        return (self.y,)

    def gradients(self, gy):
        if self.activation is not None:
            gy = self.activation.gradient(self.z, self.y, gy)
        spatial = tuple(range(2, gy.ndim))
        g_gain, g_bias = (gy * self.x).sum(axis=spatial), gy.sum(axis=spatial)
        (gG,) = _outside_graph(LinearGradWeight(gy.dtype), (self.labels, g_gain))
        (gB,) = _outside_graph(LinearGradWeight(gy.dtype), (self.labels, g_bias))
        gx = gy * self.scale
        if self.normalization is not None and 0 in self.wanted:
            gx = self.normalization.input_gradient(gx)
        return gx, gG, gB


def conditional_affine(x, labels, G, B, activation: Activation | None = None) -> chainer.Variable:
    """activation(x * (1 + labels G^T) + labels B^T) per example and channel: conditional batch
    norm's scale and shift, and the activation after it if any."""
    return ConditionalAffine(activation).apply((x, labels, G, B))[0]


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

    def forward(self, h, labels, activation: Activation | None = None):
        """The normalized h, scaled and shifted by the labels, through `activation` if any: in
        training one node, batch norm included, as the link's call computes it."""
        weights = (self.gain.W, self.bias.W)
        if chainer.config.train and not chainer.config.in_recomputing and self.bn.avg_mean is not None:
            return ConditionalAffine(activation, _BatchNormalization(self.bn)).apply((h, labels, *weights))[0]
        return conditional_affine(self.bn(h), labels, *weights, activation)


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
        h = layer(self.fc, F.concat((z, labels), axis=1))
        h = self.bn0(h, labels, Activation("relu"))
        h = F.reshape(h, (len(h), self.ch, 7, 7))
        h = self.bn1(layer(self.dc1, h), labels, Activation("relu"))
        return layer(self.dc2, h, Activation("sigmoid"))


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
        return self.features_of((x,))[0]

    def features_of(self, batches: tuple) -> tuple:
        """features(x) of each batch x in turn, in one node per layer."""
        hs = layers(self.c1, batches, Activation("leaky_relu", 0.2))
        return layers(self.c2, hs, Activation("leaky_relu", 0.2), flat=True)

    def judge(self, h, labels):
        """The logit of features `h` under `labels`."""
        return self.judge_each((h,), labels)[0]

    def judge_each(self, hs: tuple, labels) -> tuple:
        """judge(h, labels) of each of the features `hs` in turn, in one node."""
        function = SpectralProjection(self.fc, self.embed, passes=len(hs))
        return function.apply((*hs, labels, self.fc.W, self.fc.b, self.embed.W))

    def classify(self, h):
        """The class head's logits (n, classes) of features `h`."""
        return layer(self.classes, h)

    def forward(self, x, labels):
        return self.judge(self.features(x), labels)
