"""The IDX reader and the MNIST folder loader, on files the tests write."""

import gzip

import numpy as np
import pytest
from helpers import idx_bytes, write_idx, write_mnist_folder

from mnist.data import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    TRAIN_LABELS,
    DataError,
    load_mnist,
    read_idx,
)


def test_read_idx_returns_the_written_array(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, (3, 28, 28)).astype(np.uint8)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "x.gz", images, IMAGES_MAGIC), IMAGES_MAGIC), images
    )


def test_read_idx_names_the_file_and_the_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.arange(5), LABELS_MAGIC)
    with pytest.raises(DataError, match=r"labels\.gz: wrong magic number 0x00000801, expected 0x00000803"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_reports_a_truncated_body(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8), IMAGES_MAGIC)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"short\.gz: holds 3036 data bytes, header \(4, 28, 28\) says 3136"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_reports_a_cut_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "cut.gz", np.zeros((50, 28, 28)), IMAGES_MAGIC)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match=r"cut\.gz: not a readable gzip file"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_reports_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.gz: file not found"):
        read_idx(tmp_path / "nothing.gz", IMAGES_MAGIC)


def test_load_mnist_scales_images_to_0_1_and_honours_the_limit(tmp_path):
    dataset = load_mnist(write_mnist_folder(tmp_path), limit=7)
    assert len(dataset) == 7
    x, y = dataset[3]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    assert y == 3


def test_load_mnist_reads_the_test_split(tmp_path):
    assert len(load_mnist(write_mnist_folder(tmp_path, n=12), train=False)) == 12


def test_load_mnist_names_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        load_mnist(tmp_path / "absent")


def test_a_failed_download_is_a_data_error_that_points_to_data(no_network):
    with pytest.raises(DataError, match=r"could not download MNIST \(.*Name or service not known.*--data"):
        load_mnist()


def test_load_mnist_rejects_images_and_labels_of_different_counts(tmp_path):
    folder = write_mnist_folder(tmp_path)
    write_idx(folder / TRAIN_LABELS, np.arange(5), LABELS_MAGIC)
    with pytest.raises(DataError, match="20 images but 5 labels"):
        load_mnist(folder)
