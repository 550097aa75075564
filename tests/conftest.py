"""Shared fixtures: a small random generator whose pictures visibly differ, and an app serving it; the
skipping of GPU tests where there is no GPU."""

import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from helpers import lively_generator, save

import mnist.data
from model import cpu_kernels
from training.gpu import why_no_gpu
from webapp import create_app

pytest_plugins = ["chromium"]  # the browser fixture of the Chromium tests


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu are skipped, with the reason, where CuPy or a GPU is missing."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    reason = why_no_gpu() if gpu_tests else None
    for item in gpu_tests if reason else []:
        item.add_marker(pytest.mark.skip(reason=reason))


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
def make_app() -> Callable[..., Flask]:
    """create_app() with these config values (folders as paths or text), TESTING unless told otherwise."""

    def make(**config) -> Flask:
        if "GENERATOR_DIR" in config:
            config["GENERATOR_DIR"] = str(config["GENERATOR_DIR"])
        return create_app({"TESTING": True, **config})

    return make


@pytest.fixture(scope="session")
def app(make_app, generator_dir):
    return make_app(GENERATOR_DIR=generator_dir)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def no_network(monkeypatch):
    """Chainer's MNIST download fails as it does on a machine without internet."""

    def unreachable(**kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(mnist.data, "get_mnist", unreachable)
