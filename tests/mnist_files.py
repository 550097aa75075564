"""Small MNIST-format IDX files for tests (no network, no real data needed)."""

import gzip
import struct
from pathlib import Path

import numpy as np

from model.data import IMAGES_MAGIC, LABELS_MAGIC, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array.astype(np.uint8), magic)))
    return path


def write_mnist_folder(folder: Path, n: int = 20, seed: int = 0) -> Path:
    """A folder holding the four standard MNIST files with `n` random images each."""
    rng = np.random.RandomState(seed)
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        write_idx(folder / images, rng.randint(0, 256, (n, 28, 28)), IMAGES_MAGIC)
        write_idx(folder / labels, np.arange(n) % 10, LABELS_MAGIC)
    return folder
