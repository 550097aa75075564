"""The GAN's losses as fused functions, one node each, and LossSum, a step's terms summed in one
node (model/net.py says why)."""

import chainer
from chainer import backend
from chainer.functions.activation.log_softmax import _log_softmax
from chainer.utils import force_array

from model.net import FusedFunction


class HingeDiscriminatorLoss(FusedFunction):
    """mean(relu(1 - y_real)) + mean(relu(1 + y_fake))."""

    differentiable = (0, 1)

    def forward(self, inputs):
        y_real, y_fake = inputs
        xp = backend.get_array_module(y_real)
        real, fake = xp.maximum(1 - y_real, 0), xp.maximum(1 + y_fake, 0)
        self.real_inside, self.fake_inside = real > 0, fake > 0
        return (force_array(real.mean() + fake.mean(), y_real.dtype),)

    def gradients(self, gy):
        real = -(gy * gy.dtype.type(1 / len(self.real_inside)))
        fake = gy * gy.dtype.type(1 / len(self.fake_inside))
        return real * self.real_inside, fake * self.fake_inside


class HingeGeneratorLoss(FusedFunction):
    """-mean(y_fake)."""

    def forward(self, inputs):
        (y_fake,) = inputs
        self.shape = y_fake.shape
        return (force_array(-y_fake.mean(), y_fake.dtype),)

    def gradients(self, gy):
        xp = backend.get_array_module(gy)
        return (xp.full(self.shape, -(gy * gy.dtype.type(1 / self.shape[0])), gy.dtype),)


class ClassLoss(FusedFunction):
    """weight * -sum(labels * log_softmax(logits)) / n."""

    def __init__(self, weight: float):
        self.weight = weight

    def forward(self, inputs):
        logits, self.labels = inputs
        self.log_p = _log_softmax(logits)
        dtype = logits.dtype.type
        loss = -(self.labels * self.log_p).sum() * dtype(1 / len(logits))  # as Chainer's `/ n` computes it
        return (force_array(dtype(self.weight) * loss, logits.dtype),)

    def gradients(self, gy):
        xp = backend.get_array_module(gy)
        scale = gy * gy.dtype.type(self.weight) * gy.dtype.type(1 / len(self.labels))
        g_log_p = self.labels * -scale
        return (g_log_p - xp.exp(self.log_p) * g_log_p.sum(axis=1, keepdims=True),)


def hinge_discriminator_loss(y_real: chainer.Variable, y_fake: chainer.Variable) -> chainer.Variable:
    """Hinge D loss (Lim & Ye 2017, as in Miyato & Koyama 2018): relu(1 - y_real) + relu(1 + y_fake)."""
    return HingeDiscriminatorLoss().apply((y_real, y_fake))[0]


def hinge_generator_loss(y_fake: chainer.Variable) -> chainer.Variable:
    """The hinge GAN's G loss: -y_fake, batch mean."""
    return HingeGeneratorLoss().apply((y_fake,))[0]


def class_loss(class_logits: chainer.Variable, labels, weight: float = 1.0) -> chainer.Variable:
    """`weight` times the cross-entropy of the discriminator's class head against (one-hot or soft)
    labels, batch mean."""
    return ClassLoss(weight).apply((class_logits, labels))[0]


class LossSum(FusedFunction):
    """The sum of fused losses, in order, as one node (what adding their nodes computes); the
    inputs are each loss's in turn."""

    def __init__(self, losses: list[FusedFunction], input_counts: list[int]):
        self.losses = losses
        ends = [sum(input_counts[: i + 1]) for i in range(len(losses))]
        self.bounds = list(zip([0, *ends[:-1]], ends, strict=True))  # each loss's inputs
        self.differentiable = tuple(
            start + i
            for loss, (start, _) in zip(losses, self.bounds, strict=True)
            for i in loss.differentiable
        )

    def forward(self, inputs):
        total = None
        for loss, (start, end) in zip(self.losses, self.bounds, strict=True):
            (value,) = loss.forward(inputs[start:end])
            total = value if total is None else force_array(total + value)
        return (total,)

    def gradients(self, gy):
        grads = []
        for loss, (start, end) in zip(self.losses, self.bounds, strict=True):
            loss.wanted = tuple(i - start for i in self.wanted if start <= i < end)
            grads.extend(loss.gradients(gy))
        return tuple(grads)


def loss_sum(*terms: tuple) -> chainer.Variable:
    """The sum of loss terms, each (a fused loss function, its inputs), as one node."""
    losses, inputs = [loss for loss, _ in terms], [tuple(arguments) for _, arguments in terms]
    function = LossSum(losses, [len(arguments) for arguments in inputs])
    return function.apply(tuple(x for arguments in inputs for x in arguments))[0]
