"""Seed -> noise, and the label vectors the app and the training preview share.

The noise for a seed is fixed and documented (NOISE_RULE, written into generator.json and shown on
the page): same seed, same noise, on every machine and every run.
"""

from collections.abc import Callable

import chainer
import numpy as np

from model.net import N_CLASSES, Generator

Z_SIZE = 100
MAX_SEED = 2**32 - 1
NOISE_RULE = "numpy.random.default_rng(seed).uniform(-1, 1, z_size).astype(float32)"


def seed_noise(seed: int, z_size: int = Z_SIZE) -> np.ndarray:
    """The noise vector for one seed, shape (z_size,), float32 in [-1, 1): NOISE_RULE."""
    return np.random.default_rng(seed).uniform(-1, 1, z_size).astype(np.float32)


def seeds_noise(seeds, z_size: int = Z_SIZE) -> np.ndarray:
    """Stacked noise vectors for several seeds, shape (len(seeds), z_size)."""
    return np.stack([seed_noise(int(s), z_size) for s in seeds])


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1), exact at the ends; linear where a, b are parallel."""
    if t == 0 or t == 1:
        return (a if t == 0 else b).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    mixed = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return mixed.astype(np.float32)


def one_hot(digits, n_classes: int = N_CLASSES) -> np.ndarray:
    """One-hot float32 label vectors for integer digits."""
    return np.eye(n_classes, dtype=np.float32)[np.asarray(digits)]


def generate(
    gen: Generator | Callable[[np.ndarray, np.ndarray], np.ndarray], z: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Images (n, 1, 28, 28) in [0, 1] for noise and label rows, on the CPU: a Chainer generator runs
    in inference mode, anything else (a FoldedGenerator) is called as it is."""
    if not isinstance(gen, chainer.Link):
        return gen(z, labels)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        out = gen(gen.xp.asarray(z, dtype=np.float32), gen.xp.asarray(labels, dtype=np.float32))
    return chainer.backends.cuda.to_cpu(out.array)
