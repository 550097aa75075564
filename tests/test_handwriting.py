"""The handwriting sliders' model side: the attributes, the styled noise, the fit, and the directions
in the weights files (model/handwriting.py, model/export.py, handwriting.py)."""

import numpy as np
import pytest
from helpers import lively_generator, rewrite_weights, save_small_classifier, write_mnist_folder

from cli.handwriting import main
from cli.train import main as train
from model.classifier import load_classifier
from model.export import WEIGHTS_NAME, load_generator, save_generator
from model.files import WeightsError
from model.handwriting import (
    HANDWRITING,
    HandwritingError,
    attributes,
    fit_handwriting,
    projected_directions,
    styled_noise,
)
from model.inference import FoldedClassifier, FoldedGenerator
from model.sampling import seeds_noise


def bar(width: int, shear: float = 0.0) -> np.ndarray:
    """A 28x28 picture of a vertical bar `width` pixels wide, its top moved right by `shear` per row."""
    picture = np.zeros((28, 28))
    for row in range(4, 24):
        left = round(12 + shear * (14 - row))
        picture[row, left : left + width] = 1
    return picture


def test_attributes_measure_a_bars_slant_thickness_and_width():
    upright, thick, leaning = attributes(np.stack([bar(2), bar(4), bar(2, shear=0.5)]))
    assert upright[0] == pytest.approx(0) and leaning[0] == pytest.approx(0.5, abs=0.05)
    # area over half the outline: w L / (L + w) for a w x L bar (its ends are outline too)
    assert upright[1] == pytest.approx(2 * 20 / 22, rel=0.05) and thick[1] == pytest.approx(
        4 * 20 / 24, rel=0.05
    )
    assert thick[2] > upright[2] and leaning[2] == pytest.approx(upright[2], abs=0.15)  # deskewed


def test_styled_noise_with_every_slider_at_0_is_the_noise_itself():
    z = seeds_noise([1, 2])
    directions = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)
    assert styled_noise(z, (0.0, -0.0, 0.0), directions).tobytes() == z.tobytes()
    assert styled_noise(z, (0.0, 0.0, 0.0), None).tobytes() == z.tobytes()  # no directions needed


def test_styled_noise_adds_the_directions_elementwise_in_float64_in_order():
    z = seeds_noise([5])[0]
    a = np.random.default_rng(1).normal(size=(3, 100)).astype(np.float32)
    style = (0.3, -0.7, 0.123)
    expected = np.empty(100, np.float32)
    for i in range(100):  # one element at a time, as the page adds them
        total = float(z[i])
        for k in range(3):
            total = total + style[k] * float(a[k, i])
        expected[i] = total
    assert styled_noise(z, style, a).tobytes() == expected.tobytes()


def test_each_projected_direction_leaves_the_other_fitted_attributes_alone():
    weights = np.random.default_rng(2).normal(size=(3, 100))
    directions = projected_directions(weights)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1)
    moves = weights @ directions.T  # column k: how direction k moves each fitted attribute
    np.testing.assert_allclose(moves - np.diag(np.diag(moves)), 0, atol=1e-12)
    assert (np.diag(moves) > 0).all()


@pytest.fixture
def untrained(tmp_path):
    gen = lively_generator()
    save_generator(gen, tmp_path, {"epochs": 0})
    save_small_classifier(tmp_path)
    return tmp_path


def test_an_untrained_generator_gets_no_directions_and_is_told_why(untrained):
    gen = FoldedGenerator(load_generator(untrained)[0])
    clf = FoldedClassifier(load_classifier(untrained)[0])
    with pytest.raises(HandwritingError, match="train longer"):
        fit_handwriting(gen, clf)


def test_the_command_refuses_weights_it_cannot_fit_in_one_line(untrained, capsys):
    before = (untrained / WEIGHTS_NAME).read_bytes()
    assert main(["--weights", str(untrained), "--classifier", str(untrained)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("handwriting.py: error: the classifier reads") and error.count("\n") == 1
    assert (untrained / WEIGHTS_NAME).read_bytes() == before


def test_the_command_names_a_missing_folder(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "nowhere")]) == 2
    assert (
        capsys.readouterr().err
        == f"handwriting.py: error: --weights {tmp_path / 'nowhere'}: folder not found\n"
    )


def directions_and_fit(seed: int = 0) -> tuple[np.ndarray, dict]:
    directions = np.random.default_rng(seed).normal(0, 0.1, (3, 100)).astype(np.float32)
    return directions, {"names": list(HANDWRITING), "steps": [1.0, 1.0, 1.0]}


def test_directions_travel_with_the_weights_and_back(tmp_path):
    gen = lively_generator()
    directions, fit = directions_and_fit()
    written = save_generator(gen, tmp_path, {"epochs": 1}, handwriting=(directions, fit))
    loaded, metadata = load_generator(tmp_path)
    assert metadata["handwriting"] == fit and metadata["sha256"] == written["sha256"]
    np.testing.assert_array_equal(loaded.handwriting, directions)
    np.testing.assert_array_equal(FoldedGenerator(loaded).handwriting, directions)
    assert not hasattr(gen, "handwriting")  # the saved generator itself is left as it was


def test_weights_saved_again_with_other_directions_carry_those(tmp_path):
    save_generator(lively_generator(), tmp_path, {"epochs": 1}, handwriting=directions_and_fit(0))
    gen, metadata = load_generator(tmp_path)
    newer = directions_and_fit(1)
    save_generator(gen, tmp_path, metadata, handwriting=newer)
    np.testing.assert_array_equal(load_generator(tmp_path)[0].handwriting, newer[0])


def test_weights_without_directions_load_without_them(tmp_path):
    save_generator(lively_generator(), tmp_path, {"epochs": 1})
    gen, metadata = load_generator(tmp_path)
    assert "handwriting" not in metadata and FoldedGenerator(gen).handwriting is None


def test_metadata_that_promises_directions_the_npz_lacks_is_refused(tmp_path):
    save_generator(lively_generator(), tmp_path, {"epochs": 1})
    fit = directions_and_fit()[1]
    rewrite_weights(tmp_path / WEIGHTS_NAME, metadata=lambda metadata: metadata.update(handwriting=fit))
    with pytest.raises(WeightsError, match="handwriting"):
        load_generator(tmp_path)


def test_a_short_runs_export_has_no_directions_and_says_why(tmp_path, capsys):
    mnist = write_mnist_folder(tmp_path, n=16)
    tiny = ["--gen-ch", "8", "--dis-ch", "8", "--batchsize", "8", "--epoch", "1", "--data", str(mnist)]
    assert train(["--out", str(tmp_path / "out"), "--export", str(tmp_path / "weights"), *tiny]) == 0
    assert "exporting without handwriting sliders: the classifier reads" in capsys.readouterr().out
    gen, metadata = load_generator(tmp_path / "weights")
    assert "handwriting" not in metadata and not hasattr(gen, "handwriting")
