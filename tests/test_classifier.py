"""The evaluation classifier: shapes, saving and loading, and the shipped weights."""

from pathlib import Path

import numpy as np
import pytest
from helpers import rewrite_weights

from model.classifier import WEIGHTS_NAME, Classifier, load_classifier, predict, save_classifier
from model.files import WeightsError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights"
MNIST = ROOT.parent / "shared" / "mnist"


@pytest.fixture
def images():
    return np.random.default_rng(0).random((7, 1, 28, 28), dtype=np.float32)


def test_classifier_forward_gives_logits_and_features(images):
    clf = Classifier(ch=4, n_features=16)
    logits, features = clf.logits_and_features(images)
    assert logits.shape == (7, 10)
    assert features.shape == (7, 16)
    assert clf(images).shape == (7, 10)


def test_features_are_non_negative_activations(images):
    _, features = predict(Classifier(ch=4, n_features=16), images)
    assert features.min() >= 0  # after ReLU


def test_predict_gives_probabilities_independent_of_the_batch_size(images):
    clf = Classifier(ch=4, n_features=16)
    probs, features = predict(clf, images, batchsize=7)
    probs_small, features_small = predict(clf, images, batchsize=3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(probs, probs_small, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(features, features_small, rtol=1e-5, atol=1e-6)


def test_predict_is_deterministic_in_inference_mode(images):
    clf = Classifier(ch=4, n_features=16)
    np.testing.assert_array_equal(predict(clf, images)[0], predict(clf, images)[0])


def test_saved_classifier_loads_back_identical(tmp_path, images):
    clf = Classifier(ch=4, n_features=16)
    metadata = save_classifier(clf, tmp_path, {"test_accuracy": 0.5})
    loaded, loaded_metadata = load_classifier(tmp_path)
    assert loaded_metadata == metadata
    assert loaded_metadata["architecture"]["n_features"] == 16
    np.testing.assert_array_equal(predict(loaded, images)[1], predict(clf, images)[1])


def test_load_classifier_rejects_damaged_weights(tmp_path):
    save_classifier(Classifier(ch=4, n_features=16), tmp_path, {})
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="not a weights file, or damaged"):
        load_classifier(tmp_path)


def test_load_classifier_names_a_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="classifier.npz: file not found"):
        load_classifier(tmp_path)


def test_load_classifier_rejects_an_unknown_architecture(tmp_path):
    save_classifier(Classifier(ch=4, n_features=16), tmp_path, {})
    rewrite_weights(
        tmp_path / WEIGHTS_NAME, metadata=lambda metadata: metadata["architecture"].update(name="resnet")
    )
    with pytest.raises(WeightsError, match="unknown architecture 'resnet'"):
        load_classifier(tmp_path)


def test_load_classifier_rejects_weights_of_other_sizes(tmp_path):
    save_classifier(Classifier(ch=4, n_features=16), tmp_path, {})
    rewrite_weights(tmp_path / WEIGHTS_NAME, metadata=lambda metadata: metadata["architecture"].update(ch=8))
    with pytest.raises(WeightsError, match="does not fit"):
        load_classifier(tmp_path)


shipped = pytest.mark.skipif(
    not (SHIPPED / WEIGHTS_NAME).is_file(),
    reason="weights/classifier.npz not trained yet (python train_classifier.py)",
)


def stroke_digit(digit: int) -> np.ndarray:
    """A hand-drawn-like 1 or 0 made from geometry: a thick vertical bar, or a thick ellipse ring."""
    y, x = np.mgrid[0:28, 0:28]
    if digit == 1:
        picture = (np.abs(x - 14) <= 1.5) & (y >= 5) & (y <= 23)
    else:
        r = ((x - 14) / 6.5) ** 2 + ((y - 14) / 9.0) ** 2
        picture = (r >= 0.55) & (r <= 1.0)
    return picture.astype(np.float32)[None]


@shipped
def test_shipped_classifier_loads_and_reports_its_accuracy():
    clf, metadata = load_classifier(SHIPPED)
    assert metadata["test_accuracy"] >= 0.99
    assert metadata["test_images"] == 10_000
    assert (SHIPPED / WEIGHTS_NAME).stat().st_size < 2_500_000


@shipped
def test_shipped_classifier_reads_drawn_ones_and_zeros():
    clf, _ = load_classifier(SHIPPED)
    probs, _ = predict(clf, np.stack([stroke_digit(1), stroke_digit(0)]))
    assert probs.argmax(axis=1).tolist() == [1, 0]


@shipped
@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_dir(), reason="no MNIST at ../shared/mnist on this machine")
def test_shipped_classifier_accuracy_is_reproducible_on_mnist():
    from chainer.dataset import concat_examples

    from mnist.data import load_mnist

    clf, metadata = load_classifier(SHIPPED)
    images, labels = concat_examples(load_mnist(MNIST, train=False)[:])
    probs, _ = predict(clf, images)
    assert np.mean(probs.argmax(axis=1) == labels) == pytest.approx(metadata["test_accuracy"], abs=1e-4)
