"""The generator's and the classifier's inference forward passes in a few NumPy calls, for serving.

Chainer stays the one definition of the networks: a FoldedGenerator (FoldedClassifier) is built
from a loaded Chainer Generator (Classifier) and computes the same function (tests hold each to
1e-5 of Chainer's forward). At batch 1 Chainer spends most of its time in per-function bookkeeping
and in batch norm; here each batch norm's fixed statistics are folded into the weights of the
layer before it once, at build time, and what is left is matrix products and the activations.

The generator computes in float64 on float32 weights, so that a picture does not depend on the
CPU, its BLAS kernels or the batch: float32 sums taken in another order move a value by about 1e-7
of itself, enough to carry a pixel over a grey level's edge now and then; float64 sums move it by
about 1e-16, and docs/operations.md counts how rarely that can still happen. The classifier's
readings, rounded to six decimals, stay float32.
"""

import functools
import hashlib

import chainer
import numpy as np

from model.cpu_kernels import convolve, tap_matrices
from model.net import IMAGE_SIZE, Generator

HALF, QUARTER = IMAGE_SIZE // 2, IMAGE_SIZE // 4  # picture sides after and before the first deconvolution
ARITHMETIC = "folded-float64"  # how weights become pixels: part of every picture's version
HANDWRITING_ARRAY = "handwriting"  # the generator's handwriting directions (3, z_size), when it has them


@functools.cache  # asked on every GET /generate
def pictures_version(weights_sha256: str) -> str:
    """The version that names the pictures of these weights in URLs and ETags (cached for a year):
    it changes with the weights and with ARITHMETIC, so no cache keeps an old picture under it."""
    return hashlib.sha256(f"{weights_sha256} {ARITHMETIC}".encode()).hexdigest()[:16]


def cpu_float64(array) -> np.ndarray:
    return chainer.backends.cuda.to_cpu(array).astype(np.float64)


def float32_values(array, dtype: type = np.float64) -> np.ndarray:
    """`array` rounded to float32, as a contiguous array of `dtype`: the weights the page downloads
    as float32 (webapp/browser_weights.py) are then the very numbers the server computes with."""
    return np.ascontiguousarray(np.asarray(chainer.backends.cuda.to_cpu(array), np.float32), dtype)


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
    """gen's (noise, labels) -> images (n, 1, 28, 28) in [0, 1], computed with NumPy in float64.

    Per layer, batch norm's scale and shift go into the weights and bias; the label-dependent gain
    and bias stay, as one small product of the labels. ARRAY_NAMES lists the page's arrays; the
    transposed convolutions compute with `spread_matrix`'s layout of the same numbers. `dtype` is the
    arithmetic: the app serves float64 (ARITHMETIC), and bench/pixel_edges.py measures others.
    """

    # The page's arrays (arrays(), webapp/browser_weights.py), in its weights file's order: all the
    # numbers the server computes with (spread_matrices are dc1_taps and dc2_taps laid out anew).
    ARRAY_NAMES = ("fc_w", "fc_b", "label_affine", "dc1_taps", "dc1_b", "dc2_taps", "dc2_b")

    def __init__(self, gen: Generator, dtype: type = np.float64):
        self.z_size, self.ch, self.n_classes, self.dtype = gen.z_size, gen.ch, gen.n_classes, dtype
        scale0, shift0 = folded_normalization(gen.bn0.bn)
        scale1, shift1 = folded_normalization(gen.bn1.bn)
        fc_w, fc_b = cpu_float64(gen.fc.W.array), cpu_float64(gen.fc.b.array)
        self.fc_w = float32_values((fc_w * scale0[:, None]).T, dtype)  # (z + labels, ch*49)
        self.fc_b = float32_values(fc_b * scale0 + shift0, dtype)
        dc1_w, dc1_b = cpu_float64(gen.dc1.W.array), cpu_float64(gen.dc1.b.array)
        self.dc1_taps = tap_matrices(float32_values(dc1_w * scale1[None, :, None, None], dtype))
        self.dc1_b = float32_values(dc1_b * scale1 + shift1, dtype)
        self.dc2_taps = tap_matrices(float32_values(gen.dc2.W.array, dtype))
        self.dc2_b = float32_values(gen.dc2.b.array, dtype)
        self.spread_matrices = spread_matrix(self.dc1_taps), spread_matrix(self.dc2_taps)
        parts = [gen.bn0.gain, gen.bn0.bias, gen.bn1.gain, gen.bn1.bias]  # rows: the labels
        self.label_affine = float32_values(np.concatenate([cpu_float64(p.W.array) for p in parts]).T, dtype)
        size0, size1 = len(self.fc_b), len(self.dc1_b)
        self.split = [size0, 2 * size0, 2 * size0 + size1]  # gain0 | bias0 | gain1 | bias1
        directions = getattr(gen, HANDWRITING_ARRAY, None)  # model/handwriting.py moves the noise along them
        self.handwriting = None if directions is None else float32_values(directions)

    def arrays(self) -> dict[str, np.ndarray]:
        """Its arrays by name, in ARRAY_NAMES' order, then its handwriting directions when it has them:
        all that static/generator.js needs to compute the same pictures."""
        arrays = {name: getattr(self, name) for name in self.ARRAY_NAMES}
        if self.handwriting is not None:
            arrays[HANDWRITING_ARRAY] = self.handwriting
        return arrays

    def __call__(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Images in `dtype`; the inputs are taken as float32, as the noise rule and the page give them."""
        z = np.asarray(z, np.float32).astype(self.dtype)
        labels = np.asarray(labels, np.float32).astype(self.dtype)
        n = len(z)
        h = np.concatenate((z, labels), axis=1) @ self.fc_w
        h += self.fc_b
        affine = labels @ self.label_affine
        gain0_end, bias0_end, gain1_end = self.split
        h *= affine[:, :gain0_end] + 1  # slices: np.split's Python took 2% of a picture's time
        h += affine[:, gain0_end:bias0_end]
        np.maximum(h, 0, out=h)
        h = np.ascontiguousarray(h.reshape(n, self.ch, QUARTER, QUARTER).transpose(0, 2, 3, 1))
        h = spread(h, self.spread_matrices[0])  # (n, 14, 14, ch / 2): channels last from here on
        h += self.dc1_b
        h *= (affine[:, bias0_end:gain1_end] + 1)[:, None, None, :]
        h += affine[:, None, None, gain1_end:]
        np.maximum(h, 0, out=h)
        h = spread(h, self.spread_matrices[1])
        h += self.dc2_b
        h = h.transpose(0, 3, 1, 2)
        return np.tanh(h * 0.5) * 0.5 + 0.5  # Chainer's sigmoid: tanh(x / 2) / 2 + 1 / 2


def spread_matrix(taps: np.ndarray) -> np.ndarray:
    """A 4x4 transposed convolution's tap_matrices (4, 4, oc, c) as one (c, 16 oc) matrix for
    `spread`, its columns ordered (kernel row // 2, kernel column // 2, row % 2, column % 2, oc)."""
    oc, c = taps.shape[2:]
    by_parity = taps.reshape(2, 2, 2, 2, oc, c)  # (row // 2, row % 2, column // 2, column % 2, ...)
    return np.ascontiguousarray(by_parity.transpose(5, 0, 2, 1, 3, 4).reshape(c, -1))


def spread(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The generator's transposed convolution (4x4 kernel, stride 2, padding 1) without its bias, on
    channels-last x (n, h, w, c) -> (n, 2h, 2w, oc), with `matrix` = spread_matrix(taps).

    One BLAS product gives every input pixel's 16 taps; each output pixel then adds the four taps
    that fall on it (spread_rows), gathered by row number. Unlike model/cpu_kernels.deconvolve
    (laid out for training's batches), nothing is computed for padding columns, and every copy and
    sum runs along the contiguous channels (docs/performance.md).
    """
    n, h, w, c = x.shape
    per_image = h * w * 16  # rows of oc values: one per input pixel and tap
    taps = np.empty((n * h * w + 1, matrix.shape[1]), x.dtype)  # the last row stays zero
    np.matmul(x.reshape(-1, c), matrix, out=taps[:-1])
    taps[-1] = 0
    rows, tap_rows = spread_rows(n, h, w), taps.reshape(n * per_image + 16, -1)
    out = tap_rows[rows[0]]
    gathered = np.empty_like(out)  # one at a time: four at once outgrow the caches from batch 16
    for more in rows[1:]:
        np.take(tap_rows, more, axis=0, out=gathered)
        out += gathered
    return out.reshape(n, 2 * h, 2 * w, -1)


@functools.lru_cache(maxsize=8)  # a few batch sizes: the server's 1, a grid's, an evaluation's
def spread_rows(n: int, h: int, w: int) -> np.ndarray:
    """For `spread` on n inputs (h, w): (4, n, 2h * 2w), for each output pixel and each (dy, dx), the
    row of the taps (n * h * w * 16 rows, spread_matrix's column order, then zeros) that it adds:
    the zero row where that tap's input pixel lies outside the input.

    Output pixel (2q + a, 2p + b) takes kernel row 1 - a + 2 dy from input row q + a - dy (dy in
    0, 1), and the columns alike.
    """
    q, p = np.arange(2 * h)[:, None], np.arange(2 * w)[None, :]
    a, b = q % 2, p % 2
    per_image = h * w * 16
    images = per_image * np.arange(n)[:, None]
    rows = []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        y, x = q // 2 + a - dy, p // 2 + b - dx
        tap = ((2 * dy + dx) * 2 + 1 - a) * 2 + 1 - b
        inside = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).ravel()
        rows.append(np.where(inside, ((y * w + x) * 16 + tap).ravel() + images, n * per_image))
    rows = np.stack(rows)
    rows.flags.writeable = False  # shared by every call through the cache
    return rows


class FoldedClassifier:
    """clf's images (n, 1, 28, 28) in [0, 1] -> softmax probabilities (n, 10), with NumPy on the CPU.

    Each convolution carries its batch norm in its weights and bias; dropout is off at inference.
    """

    def __init__(self, clf: chainer.Chain):  # a model.classifier.Classifier
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
