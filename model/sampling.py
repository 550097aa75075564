"""Seed -> noise, and the label vectors the app and the training preview share.

The noise for a seed is fixed and documented (NOISE_RULE, written into generator.json and shown on
the page): same seed, same noise, on every machine and every run.
"""

import threading
from collections.abc import Callable

import chainer
import numpy as np

from model.net import N_CLASSES, Generator

Z_SIZE = 100
MAX_SEED = 2**32 - 1
NOISE_RULE = "numpy.random.default_rng(seed).uniform(-1, 1, z_size).astype(float32)"


PCG64_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_GENERATORS = threading.local()  # one numpy Generator per thread, its state set for each seed


def seed_noise(seed: int, z_size: int = Z_SIZE) -> np.ndarray:
    """The noise vector for one seed, shape (z_size,), float32 in [-1, 1): NOISE_RULE, without
    building a SeedSequence, a PCG64 and a Generator for every seed: the seed's PCG64 state is
    computed here as numpy computes it, and set on a Generator kept per thread."""
    generator = getattr(_GENERATORS, "generator", None)
    if generator is None:
        generator = _GENERATORS.generator = np.random.Generator(np.random.PCG64(0))
    words = seed_sequence_words(seed)
    initial, stream = (words[0] << 64) | words[1], (words[2] << 64) | words[3]
    increment = ((stream << 1) | 1) & (2**128 - 1)
    state = ((increment + initial) * PCG64_MULTIPLIER + increment) & (2**128 - 1)
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": increment},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return generator.uniform(-1, 1, z_size).astype(np.float32)


def seed_sequence_words(seed: int) -> list[int]:
    """numpy.random.SeedSequence(seed).generate_state(4, np.uint64) in Python integers."""
    mask = 0xFFFFFFFF
    entropy = [seed & mask]
    while seed >> 32:
        seed >>= 32
        entropy.append(seed & mask)
    hash_const = 0x43B0D7E5

    def hashmix(value: int) -> int:
        nonlocal hash_const
        value ^= hash_const
        hash_const = (hash_const * 0x931E8875) & mask
        value = (value * hash_const) & mask
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        result = (0xCA01F9DD * x - 0x4973F715 * y) & mask
        return result ^ (result >> 16)

    pool = [hashmix(entropy[i] if i < len(entropy) else 0) for i in range(4)]
    for source in range(4):
        for target in range(4):
            if source != target:
                pool[target] = mix(pool[target], hashmix(pool[source]))
    for word in entropy[4:]:
        for target in range(4):
            pool[target] = mix(pool[target], hashmix(word))
    out, hash_const = [], 0x8B51F9DD
    for i in range(8):
        value = pool[i % 4] ^ hash_const
        hash_const = (hash_const * 0x58F38DED) & mask
        value = (value * hash_const) & mask
        out.append(value ^ (value >> 16))
    return [out[2 * i] | (out[2 * i + 1] << 32) for i in range(4)]


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
