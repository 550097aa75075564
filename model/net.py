"""The conditional DCGAN's two networks.

The label enters both networks as a plain float vector, so any continuous
10-vector works at sampling time: one-hot digits, mixtures, all zeros, all ones.
"""

import chainer
import chainer.functions as F
import chainer.links as L

from model.functions import SpectralNormalizationNode, conditional_affine, projection_logit

IMAGE_SIZE = 28
N_CLASSES = 10


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
        return conditional_affine(self.bn(h), self.gain(labels), self.bias(labels))


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
        h = F.leaky_relu(self.c1(x), 0.2)
        return F.reshape(F.leaky_relu(self.c2(h), 0.2), (len(x), -1))

    def judge(self, h, labels):
        """The logit of features `h` under `labels`."""
        return projection_logit(self.fc(h), self.embed(labels), h)

    def forward(self, x, labels):
        return self.judge(self.features(x), labels)
