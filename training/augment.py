"""Differentiable random translation of image batches, shown to the discriminator.

The discriminator sees real and generated images moved by the same kind of random shift, and the
generator's loss goes through the shift too (DiffAugment, Zhao et al. 2020): D cannot memorise the
exact pixels of a small training set, and G still learns unshifted digits.
"""

import chainer
import chainer.functions as F
import numpy as np


def random_shifts(rng: np.random.RandomState, n: int, max_shift: int) -> np.ndarray:
    """(n, 2) integer (dy, dx) shifts, each uniform in [-max_shift, max_shift]."""
    return rng.randint(-max_shift, max_shift + 1, size=(n, 2))


def translate(images, shifts: np.ndarray) -> chainer.Variable:
    """Each image (n, c, h, w) moved down by dy and right by dx pixels, zeros shifted in.

    `images` is an array or a Variable (gradients flow back through the shift); `shifts` is (n, 2)
    integers on the CPU.
    """
    shifts = np.asarray(shifts)
    height, width = images.shape[2:]
    pad = int(np.abs(shifts).max(initial=0))
    padded = F.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    xp = chainer.backend.get_array_module(padded)
    pieces, order = [], []
    for dy, dx in np.unique(shifts, axis=0):
        rows = np.flatnonzero((shifts == (dy, dx)).all(axis=1))
        top, left = pad - dy, pad - dx
        pieces.append(padded[xp.asarray(rows), :, top : top + height, left : left + width])
        order.append(rows)
    restore = np.argsort(np.concatenate(order))
    return F.concat(pieces, axis=0)[xp.asarray(restore)]
