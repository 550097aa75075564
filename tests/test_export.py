"""Export -> load round trip of the generator, and the checks load_generator makes."""

import json

import chainer
import numpy as np
import pytest

from model.export import METADATA_NAME, WEIGHTS_NAME, WeightsError, load_generator, save_generator
from model.net import Generator
from model.sampling import generate, one_hot, seeds_noise


@pytest.fixture
def exported(tmp_path):
    from helpers import lively_generator

    gen = lively_generator()
    save_generator(gen, tmp_path, {"epochs": 3, "seed": 5})
    return gen, tmp_path


def test_loaded_generator_draws_exactly_what_the_saved_one_drew(exported):
    gen, folder = exported
    loaded, metadata = load_generator(folder)
    z, labels = seeds_noise(range(4)), one_hot([1, 4, 7, 9])
    np.testing.assert_array_equal(generate(loaded, z, labels), generate(gen, z, labels))
    assert metadata["epochs"] == 3 and metadata["seed"] == 5
    assert metadata["architecture"] == {
        "name": "cdcgan-fc7x7-deconv4x2",
        "z_size": 100,
        "ch": 16,
        "n_classes": 10,
        "label_bn": False,
    }
    assert metadata["z"]["distribution"] == "uniform[-1, 1)"


def test_a_label_bn_generator_round_trips(tmp_path):
    gen = Generator(ch=16, label_bn=True)
    rng = np.random.default_rng(1)
    for link in (gen.bn0, gen.bn1):  # away from their zero start, so a wrong load would show
        for param in link.params():
            param.array[...] = rng.normal(0, 0.5, param.shape)
    save_generator(gen, tmp_path, {})
    loaded, metadata = load_generator(tmp_path)
    z, labels = seeds_noise(range(3)), np.full((3, 10), 0.3, np.float32)
    with chainer.using_config("train", False):
        np.testing.assert_array_equal(loaded(z, labels).array, gen(z, labels).array)
    assert loaded.label_bn and metadata["architecture"]["label_bn"] is True


def test_metadata_without_label_bn_loads_the_plain_generator(exported):
    _, folder = exported
    metadata = json.loads((folder / METADATA_NAME).read_text())
    del metadata["architecture"]["label_bn"]
    (folder / METADATA_NAME).write_text(json.dumps(metadata))
    assert load_generator(folder)[0].label_bn is False


def test_export_leaves_no_temporary_files(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == [METADATA_NAME, WEIGHTS_NAME]


def test_a_changed_npz_fails_the_sha256_check(exported):
    _, folder = exported
    (folder / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes()[:-10])
    with pytest.raises(WeightsError, match="sha256 does not match"):
        load_generator(folder)


def test_an_unknown_architecture_is_refused(exported):
    _, folder = exported
    metadata = json.loads((folder / METADATA_NAME).read_text())
    metadata["architecture"]["name"] = "something-else"
    (folder / METADATA_NAME).write_text(json.dumps(metadata))
    with pytest.raises(WeightsError, match="unknown architecture 'something-else'"):
        load_generator(folder)


def test_missing_metadata_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"generator\.json: file not found"):
        load_generator(tmp_path)
