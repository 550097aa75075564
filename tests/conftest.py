"""Shared fixtures: a small random generator whose pictures visibly differ, and an app serving it."""

import urllib.error
from pathlib import Path

import numpy as np
import pytest

import model.data
from app import create_app
from model.export import save_generator
from model.net import Generator


def lively_generator(seed: int = 0) -> Generator:
    """An untrained generator with large weights, so that seeds and labels change many pixels.

    Default (N(0, 0.02)) weights draw every picture as flat grey 127-128, which would let a
    test pass while the seed or the labels are ignored.
    """
    gen = Generator(ch=16)
    rng = np.random.RandomState(seed)
    for _, param in sorted(gen.namedparams()):
        if param.ndim > 1:
            param.array[...] = rng.normal(0, 0.3, param.shape)
    return gen


def save(gen: Generator, folder: Path, note: str) -> Path:
    save_generator(gen, folder, {"epochs": 0, "note": note})
    return folder


@pytest.fixture(scope="session")
def generator_dir(tmp_path_factory) -> Path:
    return save(lively_generator(), tmp_path_factory.mktemp("generator"), "random weights for the tests")


@pytest.fixture
def other_generator_dir(tmp_path) -> Path:
    """A second generator with other weights, in a folder of its own."""
    return save(lively_generator(seed=1), tmp_path, "other random weights")


@pytest.fixture(scope="session")
def app(generator_dir):
    return create_app({"GENERATOR_DIR": str(generator_dir), "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def no_network(monkeypatch):
    """Chainer's MNIST download fails as it does on a machine without internet."""

    def unreachable(**kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(model.data, "get_mnist", unreachable)
