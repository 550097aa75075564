"""The generator's and the classifier's inference forward passes in a few NumPy calls, for serving.

Chainer stays the one definition of the networks: a FoldedGenerator (FoldedClassifier) is built
from a loaded Chainer Generator (Classifier) and computes the same function (tests hold each to
1e-5 of Chainer's forward). At batch 1 Chainer spends most of its time in per-function bookkeeping
and in batch norm; here each batch norm's fixed statistics are folded into the weights of the
layer before it once, at build time, and what is left is matrix products and the activations.
"""

import chainer
import numpy as np

from model.classifier import Classifier
from model.cpu_kernels import convolve, deconvolve, tap_matrices
from model.net import IMAGE_SIZE, Generator

HALF, QUARTER = IMAGE_SIZE // 2, IMAGE_SIZE // 4  # picture sides after and before the first deconvolution


def cpu_float64(array) -> np.ndarray:
    return chainer.backends.cuda.to_cpu(array).astype(np.float64)


def folded_normalization(bn: chainer.links.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per feature such that bn(h) = h * scale + shift at inference."""
    scale = 1 / np.sqrt(cpu_float64(bn.avg_var) + bn.eps)
    if getattr(bn, "gamma", None) is not None:
        scale = scale * cpu_float64(bn.gamma.array)
    shift = -cpu_float64(bn.avg_mean) * scale
    if getattr(bn, "beta", None) is not None:
        shift = shift + cpu_float64(bn.beta.array)
    return scale, shift


class FoldedGenerator:
    """gen's (noise, labels) -> images (n, 1, 28, 28) in [0, 1], computed with NumPy on the CPU.

    Per layer, batch norm's scale and shift go into the weights and bias; the label-dependent gain
    and bias stay, as one small product of the labels.
    """

    def __init__(self, gen: Generator):
        self.z_size, self.ch, self.n_classes = gen.z_size, gen.ch, gen.n_classes
        cpu = chainer.backends.cuda.to_cpu
        scale0, shift0 = folded_normalization(gen.bn0.bn)
        scale1, shift1 = folded_normalization(gen.bn1.bn)
        fc_w, fc_b = cpu_float64(gen.fc.W.array), cpu_float64(gen.fc.b.array)
        self.fc_w = np.ascontiguousarray((fc_w * scale0[:, None]).T, np.float32)  # (z + labels, ch*49)
        self.fc_b = (fc_b * scale0 + shift0).astype(np.float32)
        dc1_w, dc1_b = cpu_float64(gen.dc1.W.array), cpu_float64(gen.dc1.b.array)
        self.dc1_taps = tap_matrices((dc1_w * scale1[None, :, None, None]).astype(np.float32))
        self.dc1_b = (dc1_b * scale1 + shift1).astype(np.float32)
        self.dc2_taps, self.dc2_b = tap_matrices(cpu(gen.dc2.W.array)), cpu(gen.dc2.b.array)
        parts = [gen.bn0.gain, gen.bn0.bias, gen.bn1.gain, gen.bn1.bias]  # rows: the labels
        self.label_affine = np.ascontiguousarray(np.concatenate([cpu(p.W.array) for p in parts]).T)
        size0, size1 = len(self.fc_b), len(self.dc1_b)
        self.split = [size0, 2 * size0, 2 * size0 + size1]  # gain0 | bias0 | gain1 | bias1

    def __call__(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.float32)
        n = len(z)
        h = np.concatenate((z, labels), axis=1) @ self.fc_w
        h += self.fc_b
        gain0, bias0, gain1, bias1 = np.split(labels @ self.label_affine, self.split, axis=1)
        h *= gain0 + 1
        h += bias0
        np.maximum(h, 0, out=h)
        h = h.reshape(n, self.ch, QUARTER, QUARTER)
        h = deconvolve(h, self.dc1_taps, self.dc1_b, (2, 2), (1, 1), (HALF, HALF))
        h *= (gain1 + 1)[:, :, None, None]
        h += bias1[:, :, None, None]
        np.maximum(h, 0, out=h)
        h = deconvolve(h, self.dc2_taps, self.dc2_b, (2, 2), (1, 1), (IMAGE_SIZE, IMAGE_SIZE))
        half = np.float32(0.5)  # Chainer's sigmoid: tanh(x / 2) / 2 + 1 / 2
        return np.tanh(h * half) * half + half


class FoldedClassifier:
    """clf's images (n, 1, 28, 28) in [0, 1] -> softmax probabilities (n, 10), with NumPy on the CPU.

    Each convolution carries its batch norm in its weights and bias; dropout is off at inference.
    """

    def __init__(self, clf: Classifier):
        self.n_classes = clf.n_classes
        self.convolutions = []  # (weights, bias, pool after it)
        for conv, bn, pool in (
            (clf.c1a, clf.bn1a, False),
            (clf.c1b, clf.bn1b, True),
            (clf.c2a, clf.bn2a, False),
            (clf.c2b, clf.bn2b, True),
        ):
            scale, shift = folded_normalization(bn)
            weights = (cpu_float64(conv.W.array) * scale[:, None, None, None]).astype(np.float32)
            self.convolutions.append((weights, shift.astype(np.float32), pool))
        self.fc_w = np.ascontiguousarray(cpu_float64(clf.fc.W.array).T, np.float32)
        self.fc_b = chainer.backends.cuda.to_cpu(clf.fc.b.array)
        self.out_w = np.ascontiguousarray(cpu_float64(clf.out.W.array).T, np.float32)
        self.out_b = chainer.backends.cuda.to_cpu(clf.out.b.array)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        h = np.asarray(images, dtype=np.float32)
        for weights, bias, pool in self.convolutions:
            side = h.shape[2]
            h = convolve(h, weights, bias, (1, 1), (1, 1), (side, side))
            if pool:  # 2x2 max pooling as three maxima of strided views (a reshaped max is 10x slower)
                h = np.maximum(
                    np.maximum(h[:, :, 0::2, 0::2], h[:, :, 0::2, 1::2]),
                    np.maximum(h[:, :, 1::2, 0::2], h[:, :, 1::2, 1::2]),
                )
            np.maximum(h, 0, out=h)  # ReLU, after the pooling it commutes with
        h = h.reshape(len(h), -1) @ self.fc_w
        h += self.fc_b
        np.maximum(h, 0, out=h)
        logits = h @ self.out_w + self.out_b
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
