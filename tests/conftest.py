"""Shared fixtures: a small random generator whose pictures visibly differ, and an app serving it."""

import urllib.error
from pathlib import Path

import pytest
from helpers import lively_generator, save

import mnist.data
from model import cpu_kernels
from webapp import create_app

pytest_plugins = ["chromium"]  # the browser fixture of the Chromium tests


@pytest.fixture(autouse=True)
def chainers_own_kernels():
    """Every test starts from Chainer's own CPU kernels, whatever a training run before it installed."""
    cpu_kernels.uninstall()
    yield
    cpu_kernels.uninstall()


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

    monkeypatch.setattr(mnist.data, "get_mnist", unreachable)
