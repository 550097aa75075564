"""Export -> load round trip of the generator, and the checks load_generator makes."""

import json

import numpy as np
import pytest
from helpers import lively_generator, replace_npz_keeping_sha256

from model.export import METADATA_NAME, WEIGHTS_NAME, WeightsError, load_generator, save_generator
from model.files import npz_bytes
from model.sampling import generate, one_hot, seeds_noise


@pytest.fixture
def exported(tmp_path):
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
    }
    assert metadata["z"]["distribution"] == "uniform[-1, 1)"


def test_an_npz_of_plain_batch_norms_is_refused_naming_what_it_lacks(exported):
    """Earlier commits wrote generators whose batch norms ignored the labels: they must not load."""
    _, folder = exported
    with np.load(folder / WEIGHTS_NAME) as npz:
        arrays = {name.removesuffix(".npy"): npz[name] for name in npz.files}
    for layer in ("bn0", "bn1"):
        size = arrays.pop(f"{layer}/gain/W").shape[0]
        del arrays[f"{layer}/bias/W"]
        arrays[f"{layer}/bn/gamma"], arrays[f"{layer}/bn/beta"] = np.ones(size, "f"), np.zeros(size, "f")
    replace_npz_keeping_sha256(folder, npz_bytes(arrays))
    with pytest.raises(WeightsError, match=r"does not fit the architecture \(missing .*bn0/bias/W"):
        load_generator(folder)


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
