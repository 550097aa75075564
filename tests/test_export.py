"""Export -> load round trip of the generator, and the checks load_generator makes."""

import io

import numpy as np
import pytest
from helpers import lively_generator, rewrite_weights

from model.export import ARCHITECTURE, WEIGHTS_NAME, load_generator, save_generator
from model.files import WeightsError, npy_bytes
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
        "name": ARCHITECTURE,
        "z_size": 100,
        "ch": 16,
        "n_classes": 10,
    }
    assert metadata["z"]["distribution"] == "uniform[-1, 1)"


def plain_batch_norms(entries: dict[str, bytes]) -> None:
    """A generator's arrays as they were when its batch norms ignored the labels (for rewrite_weights)."""
    for layer in ("bn0", "bn1"):
        size = np.load(io.BytesIO(entries.pop(f"{layer}/gain/W.npy"))).shape[0]
        del entries[f"{layer}/bias/W.npy"]
        entries[f"{layer}/bn/gamma.npy"] = npy_bytes(np.ones(size, "f"))
        entries[f"{layer}/bn/beta.npy"] = npy_bytes(np.zeros(size, "f"))


def test_a_network_of_plain_batch_norms_is_refused_naming_what_it_lacks(exported):
    """Generators whose batch norms ignored the labels must not load, whatever name they state."""
    _, folder = exported
    rewrite_weights(folder / WEIGHTS_NAME, arrays=plain_batch_norms)
    with pytest.raises(WeightsError, match=r"does not fit the architecture \(missing .*bn0/bias/W"):
        load_generator(folder)


def test_export_leaves_no_temporary_files(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == ["generator.json", WEIGHTS_NAME]


def test_a_changed_npz_is_refused(exported):
    _, folder = exported
    (folder / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes()[:-10])
    with pytest.raises(WeightsError, match="not a weights file, or damaged"):
        load_generator(folder)


def test_an_unknown_architecture_is_refused(exported):
    _, folder = exported
    rewrite_weights(
        folder / WEIGHTS_NAME,
        metadata=lambda metadata: metadata["architecture"].update(name="something-else"),
    )
    with pytest.raises(WeightsError, match="unknown architecture 'something-else'"):
        load_generator(folder)


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"generator\.npz: file not found"):
        load_generator(tmp_path)
