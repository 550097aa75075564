"""The generator's inference forward pass in a few NumPy calls, for serving.

Chainer stays the one definition of the network: a FoldedGenerator is built from a loaded Chainer
Generator and computes the same function (tests hold it to 1e-5 of Chainer's forward). At batch 1
Chainer spends most of its time in per-function bookkeeping and in batch norm; here each batch
norm's fixed statistics are folded into the weights of the layer before it once, at build time,
and what is left is two matrix products, two transposed convolutions and the activations.
"""

import chainer
import numpy as np

from model.cpu_conv import deconvolve, tap_matrices
from model.net import IMAGE_SIZE, Generator

HALF, QUARTER = IMAGE_SIZE // 2, IMAGE_SIZE // 4  # picture sides after and before the first deconvolution


def folded_normalization(bn: chainer.links.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per feature such that bn(h) = h * scale + shift at inference."""
    scale = 1 / np.sqrt(bn.avg_var.astype(np.float64) + bn.eps)
    if getattr(bn, "gamma", None) is not None:
        scale = scale * bn.gamma.array
    shift = -bn.avg_mean * scale
    if getattr(bn, "beta", None) is not None:
        shift = shift + bn.beta.array
    return scale, shift


class FoldedGenerator:
    """gen's (noise, labels) -> images (n, 1, 28, 28) in [0, 1], computed with NumPy on the CPU.

    Per layer, batch norm's scale and shift go into the weights and bias; with conditional batch
    norm the label-dependent gain and bias stay, as one small product of the labels.
    """

    def __init__(self, gen: Generator):
        self.z_size, self.ch, self.n_classes = gen.z_size, gen.ch, gen.n_classes
        cpu = chainer.backends.cuda.to_cpu
        norm0, norm1 = (gen.bn0.bn, gen.bn1.bn) if gen.label_bn else (gen.bn0, gen.bn1)
        scale0, shift0 = folded_normalization(norm0)
        scale1, shift1 = folded_normalization(norm1)
        fc_w, fc_b = cpu(gen.fc.W.array).astype(np.float64), cpu(gen.fc.b.array).astype(np.float64)
        self.fc_w = np.ascontiguousarray((fc_w * scale0[:, None]).T, np.float32)  # (z + labels, ch*49)
        self.fc_b = (fc_b * scale0 + shift0).astype(np.float32)
        dc1_w, dc1_b = cpu(gen.dc1.W.array).astype(np.float64), cpu(gen.dc1.b.array).astype(np.float64)
        self.dc1_taps = tap_matrices((dc1_w * scale1[None, :, None, None]).astype(np.float32))
        self.dc1_b = (dc1_b * scale1 + shift1).astype(np.float32)
        self.dc2_taps, self.dc2_b = tap_matrices(cpu(gen.dc2.W.array)), cpu(gen.dc2.b.array)
        self.label_affine = None  # (labels, gain and bias of both layers) for conditional batch norm
        if gen.label_bn:
            parts = [gen.bn0.gain, gen.bn0.bias, gen.bn1.gain, gen.bn1.bias]
            self.label_affine = np.ascontiguousarray(np.concatenate([cpu(p.W.array) for p in parts]).T)
        size0, size1 = len(self.fc_b), len(self.dc1_b)
        self.split = [size0, 2 * size0, 2 * size0 + size1]  # gain0 | bias0 | gain1 | bias1

    def __call__(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.float32)
        n = len(z)
        h = np.concatenate((z, labels), axis=1) @ self.fc_w
        h += self.fc_b
        if self.label_affine is not None:
            gain0, bias0, gain1, bias1 = np.split(labels @ self.label_affine, self.split, axis=1)
            h *= gain0 + 1
            h += bias0
        np.maximum(h, 0, out=h)
        h = h.reshape(n, self.ch, QUARTER, QUARTER)
        h = deconvolve(h, self.dc1_taps, self.dc1_b, (2, 2), (1, 1), (HALF, HALF))
        if self.label_affine is not None:
            h *= (gain1 + 1)[:, :, None, None]
            h += bias1[:, :, None, None]
        np.maximum(h, 0, out=h)
        h = deconvolve(h, self.dc2_taps, self.dc2_b, (2, 2), (1, 1), (IMAGE_SIZE, IMAGE_SIZE))
        half = np.float32(0.5)  # Chainer's sigmoid: tanh(x / 2) / 2 + 1 / 2
        return np.tanh(h * half) * half + half
