"""MNIST: the four standard IDX .gz files from a folder, or Chainer's download."""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
from chainer.datasets import TupleDataset, get_mnist

from model.net import IMAGE_SIZE

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class DataError(Exception):
    """A data file is missing or malformed; the message names the file and the problem."""


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one gzipped IDX file of unsigned bytes whose header must carry `magic`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error})") from None
    n_dims = magic & 0xFF
    header_size = 4 + 4 * n_dims
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, no IDX header")
    found_magic = struct.unpack(">I", raw[:4])[0]
    if found_magic != magic:
        raise DataError(f"{path}: wrong magic number {found_magic:#010x}, expected {magic:#010x}")
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{n_dims}I", raw[4:header_size])
    expected = math.prod(shape)  # Python's integers: a header of huge sizes cannot overflow to 0
    found = len(raw) - header_size
    if found != expected:
        raise DataError(f"{path}: holds {found} data bytes, header {shape} says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file's bytes (before gzip): `magic`, the sizes, then the array as unsigned bytes."""
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    """`array` as one gzipped IDX file of unsigned bytes, as read_idx reads it."""
    path.write_bytes(gzip.compress(idx_bytes(array.astype(np.uint8), magic)))
    return path


def write_random_mnist_folder(folder: Path, n: int = 20, seed: int = 0) -> Path:
    """A folder holding the four standard MNIST files with `n` random images each, for checks of the
    training run that need no real data."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        write_idx(folder / images, rng.randint(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE)), IMAGES_MAGIC)
        write_idx(folder / labels, np.arange(n) % 10, LABELS_MAGIC)
    return folder


def read_mnist_folder(folder: Path, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels uint8 (n,)) from a folder of the standard IDX files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data directory not found")
    images_name, labels_name = (TRAIN_IMAGES, TRAIN_LABELS) if train else (TEST_IMAGES, TEST_LABELS)
    images = read_idx(folder / images_name, IMAGES_MAGIC)
    labels = read_idx(folder / labels_name, LABELS_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        height, width = images.shape[1:]
        expected = f"{IMAGE_SIZE}x{IMAGE_SIZE}"
        raise DataError(f"{folder / images_name}: images are {height}x{width}, expected {expected}")
    if len(images) == 0:
        raise DataError(f"{folder / images_name}: holds no images")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    if labels.max(initial=0) >= 10:
        raise DataError(f"{folder / labels_name}: label {labels.max()} is not a digit")
    return images, labels


def as_dataset(images: np.ndarray, labels: np.ndarray) -> TupleDataset:
    """uint8 images and labels -> (float32 (1, 28, 28) in [0, 1], int32 label) pairs."""
    x = (images.astype(np.float32) / 255.0)[:, None]
    return TupleDataset(x, labels.astype(np.int32))


def load_mnist(folder: Path | None = None, limit: int | None = None, train: bool = True) -> TupleDataset:
    """MNIST from `folder`, or downloaded (and cached) by Chainer when folder is None."""
    if folder is None:
        try:
            train_set, test_set = get_mnist(withlabel=True, ndim=3)
        except OSError as error:  # urllib's URLError included: no network, no such host, refused
            raise DataError(
                f"could not download MNIST ({error}); pass --data with a folder of the four IDX .gz files"
            ) from error
        chosen = train_set if train else test_set
        x, y = chosen._datasets
        return TupleDataset(x[:limit], y[:limit].astype(np.int32))
    images, labels = read_mnist_folder(folder, train)
    return as_dataset(images[:limit], labels[:limit])
