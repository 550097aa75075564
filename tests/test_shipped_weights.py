"""The shipped generator: it loads, carries its evaluation, and draws the digits it is asked for."""

from pathlib import Path

import numpy as np
import pytest

from model.classifier import load_classifier, predict
from model.export import load_generator
from model.files import save_network
from model.sampling import generate, one_hot, seeds_noise

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


@pytest.fixture(scope="module")
def shipped():
    return load_generator(WEIGHTS)


def test_shipped_generator_carries_its_evaluation_report(shipped):
    _, metadata = shipped
    report = metadata["evaluation"]
    assert report["generator"]["sha256"] == metadata["sha256"]
    assert report["per_class"] == 500
    assert set(report["quality_bar"]["checks"]) == {
        "mean_accuracy",
        "min_class_accuracy",
        "frechet_ratio",
        "min_diversity_ratio",
        "sweeps_passing",
    }


@pytest.mark.slow
def test_shipped_generator_draws_the_requested_digits(shipped):
    """50 seeds per digit (seeds 1000.. so not the report's own), judged by the shipped classifier."""
    gen, metadata = shipped
    clf, _ = load_classifier(WEIGHTS)
    digits = np.repeat(np.arange(10), 50)
    seeds = 1000 + np.tile(np.arange(50), 10)
    probs, _ = predict(clf, generate(gen, seeds_noise(seeds), one_hot(digits)))
    per_class = [np.mean(probs[digits == d].argmax(axis=1) == d) for d in range(10)]
    assert np.mean(per_class) >= 0.97
    assert min(per_class) >= 0.9
    assert np.mean(per_class) == pytest.approx(metadata["evaluation"]["accuracy"]["mean"], abs=0.03)


def test_shipped_weights_stay_small():
    assert (WEIGHTS / "generator.npz").stat().st_size < 4_000_000


def test_shipped_weights_files_are_the_bytes_their_networks_and_metadata_give(shipped, tmp_path):
    """Written by the deterministic writer: exporting the same weights again changes no byte or sha256,
    and the json beside each file is its metadata."""
    for name, (network, metadata) in {"generator": shipped, "classifier": load_classifier(WEIGHTS)}.items():
        assert save_network(network, tmp_path / f"{name}.npz", metadata) == metadata
        for suffix in (".npz", ".json"):
            assert (tmp_path / name).with_suffix(suffix).read_bytes() == (WEIGHTS / name).with_suffix(
                suffix
            ).read_bytes()
