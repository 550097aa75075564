"""The evaluation's numbers on inputs whose answers are known."""

import numpy as np
import pytest

from evaluation import metrics


def gaussian_features(n=2000, d=8, shift=0.0, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, (n, d))


def test_frechet_distance_of_identical_sets_is_zero():
    features = gaussian_features()
    assert metrics.frechet_distance_of(features, features) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_identical_rank_deficient_sets_is_zero():
    # Dead ReLU units give feature columns that are always 0: a singular covariance.
    features = np.maximum(gaussian_features(d=6), 0)
    features[:, :2] = 0
    assert metrics.frechet_distance_of(features, features) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    features = gaussian_features()
    shift = np.array([1.0, -2.0, 0, 0, 0, 0, 0, 0.5])
    # Same covariance, so only the means differ: d² = |shift|².
    assert metrics.frechet_distance_of(features, features + shift) == pytest.approx(shift @ shift, rel=1e-6)


def test_frechet_distance_grows_with_the_shift():
    a = gaussian_features(seed=1)
    distances = [metrics.frechet_distance_of(a, gaussian_features(seed=2, shift=s)) for s in (0, 0.5, 1, 2)]
    assert distances == sorted(distances)
    assert distances[0] < 0.05 < distances[1]


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    found = metrics.frechet_distance(mean_a, np.diag(sd_a**2), mean_b, np.diag(sd_b**2))
    assert found == pytest.approx(expected)


def test_frechet_distance_is_symmetric_for_full_covariances():
    rng = np.random.default_rng(3)
    a = gaussian_features(seed=4) @ rng.normal(size=(8, 8))
    b = gaussian_features(seed=5, shift=0.3) @ rng.normal(size=(8, 8))
    assert metrics.frechet_distance_of(a, b) == pytest.approx(metrics.frechet_distance_of(b, a), rel=1e-8)


def test_frechet_distance_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance_of(np.zeros((1, 3)), np.zeros((5, 3)))


def test_sqrtm_psd_squares_back():
    rng = np.random.default_rng(6)
    root = rng.normal(size=(5, 5))
    matrix = root @ root.T
    sqrt = metrics.sqrtm_psd(matrix)
    np.testing.assert_allclose(sqrt @ sqrt, matrix, atol=1e-9)
    np.testing.assert_allclose(sqrt, sqrt.T)


def test_balanced_halves_are_disjoint_and_class_balanced():
    labels = np.repeat(np.arange(10), [10, 12, 9, 20, 30, 8, 11, 10, 10, 50])
    half_a, half_b, k = metrics.balanced_halves(labels, per_class=500)
    assert k == 4  # the smallest class holds 8
    assert not set(half_a) & set(half_b)
    assert np.bincount(labels[half_a]).tolist() == [4] * 10
    assert np.bincount(labels[half_b]).tolist() == [4] * 10


def test_balanced_halves_take_at_most_per_class():
    labels = np.repeat(np.arange(10), 100)
    _, _, k = metrics.balanced_halves(labels, per_class=7)
    assert k == 7


def test_balanced_halves_reject_a_missing_digit():
    with pytest.raises(ValueError, match="at least 2 real examples"):
        metrics.balanced_halves(np.repeat(np.arange(9), 5), per_class=5)


def test_per_class_accuracy_counts_agreement_with_the_requested_digit():
    requested = np.array([0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 1, 1, 1, 7, 1])
    accuracy = metrics.per_class_accuracy(predicted, requested, n_classes=3)
    assert accuracy[:2].tolist() == [0.5, 0.75]
    assert np.isnan(accuracy[2])


def test_mean_pairwise_distance_of_known_points():
    assert metrics.mean_pairwise_distance(np.array([[0.0], [3.0]])) == pytest.approx(3)
    square = np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]])  # 4 sides of 1, 2 diagonals of √2
    assert metrics.mean_pairwise_distance(square) == pytest.approx((4 + 2 * np.sqrt(2)) / 6)


def test_mean_pairwise_distance_of_a_collapsed_set_is_zero():
    assert metrics.mean_pairwise_distance(np.ones((50, 4))) == pytest.approx(0, abs=1e-6)


def test_mean_pairwise_distance_does_not_depend_on_the_sample_size():
    big, small = gaussian_features(n=2000), gaussian_features(n=200, seed=9)
    assert metrics.mean_pairwise_distance(small) == pytest.approx(
        metrics.mean_pairwise_distance(big), rel=0.05
    )


def test_class_diversity_is_per_class():
    features = np.concatenate([np.zeros((5, 2)), gaussian_features(n=5, d=2)])
    labels = np.repeat([0, 1], 5)
    diversity = metrics.class_diversity(features, labels, n_classes=3)
    assert diversity[0] == pytest.approx(0, abs=1e-9)
    assert diversity[1] > 0
    assert np.isnan(diversity[2])


def test_soft_labels_move_from_source_to_target():
    labels = metrics.soft_labels(3, 8, np.linspace(0, 1, 5))
    assert labels.dtype == np.float32
    np.testing.assert_allclose(labels.sum(axis=1), 1)
    np.testing.assert_array_equal(labels[0], np.eye(10)[3])
    np.testing.assert_array_equal(labels[-1], np.eye(10)[8])
    np.testing.assert_allclose(labels[2, [3, 8]], [0.5, 0.5])


def test_a_rising_sigmoid_is_monotone_and_passes():
    t = np.linspace(0, 1, 21)
    curve = 1 / (1 + np.exp(-12 * (t - 0.5)))
    assert metrics.is_monotone(curve)
    assert metrics.max_drop(curve) == 0
    assert metrics.sweep_passes(curve)


def test_a_wiggle_within_the_tolerance_is_monotone():
    curve = np.array([0.01, 0.2, 0.6, 0.995, 0.993, 0.999])
    assert metrics.max_drop(curve) == pytest.approx(0.002)
    assert metrics.is_monotone(curve)


def test_a_dip_is_not_monotone():
    curve = np.array([0.0, 0.3, 0.6, 0.5, 0.9, 1.0])
    assert metrics.max_drop(curve) == pytest.approx(0.1)
    assert not metrics.is_monotone(curve)
    assert not metrics.sweep_passes(curve)


def test_a_flat_curve_is_monotone_but_does_not_pass():
    flat = np.zeros(21)
    assert metrics.is_monotone(flat)
    assert not metrics.sweep_passes(flat)


def test_a_falling_curve_fails():
    assert not metrics.sweep_passes(np.linspace(1, 0, 21))


def good_numbers(**changes):
    numbers = {
        "accuracy": np.full(10, 0.99),
        "frechet": 1.5,
        "frechet_reference": 1.0,
        "diversity_ratio": np.full(10, 0.95),
        "sweeps_pass": [True, True, True],
    }
    numbers.update(changes)
    return numbers


def test_quality_bar_passes_good_numbers():
    bar = metrics.quality_bar(**good_numbers())
    assert bar["pass"]
    assert bar["checks"]["frechet_ratio"]["value"] == pytest.approx(1.5)


def test_a_mean_accuracy_on_the_bound_meets_it():
    """4,950 of 5,000 digits right: the ten shares' float mean is a rounding error under 0.99."""
    accuracy = np.array([1.0, 0.998, 0.98, 0.986, 0.986, 0.988, 0.998, 0.998, 0.99, 0.976])
    assert np.mean(accuracy) < 0.99
    assert metrics.quality_bar(**good_numbers(accuracy=accuracy))["checks"]["mean_accuracy"]["pass"]


@pytest.mark.parametrize(
    "changes, failing",
    [
        ({"accuracy": np.full(10, 0.989)}, "mean_accuracy"),
        ({"accuracy": np.array([0.979] + [1.0] * 9)}, "min_class_accuracy"),
        ({"frechet": 1.51}, "frechet_ratio"),
        ({"diversity_ratio": np.array([0.89] + [1.0] * 9)}, "min_diversity_ratio"),
        ({"sweeps_pass": [True, False, True]}, "sweeps_passing"),
        ({"accuracy": np.array([np.nan] + [1.0] * 9)}, "min_class_accuracy"),
    ],
)
def test_quality_bar_fails_each_check(changes, failing):
    bar = metrics.quality_bar(**good_numbers(**changes))
    assert not bar["pass"]
    assert not bar["checks"][failing]["pass"]


def test_quality_bar_with_a_zero_reference_fails_the_frechet_check():
    bar = metrics.quality_bar(**good_numbers(frechet_reference=0.0))
    assert not bar["checks"]["frechet_ratio"]["pass"]


def test_class_frechet_distances_compare_each_class_alone():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 4))
    labels = np.repeat(np.arange(3), 100)
    moved = features.copy()
    moved[labels == 1] += 2.0  # only class 1 moves, by 2 along every axis
    distances = metrics.class_frechet_distances(features, labels, moved, labels, n_classes=4)
    assert distances[0] == pytest.approx(0, abs=1e-6) and distances[2] == pytest.approx(0, abs=1e-6)
    assert distances[1] == pytest.approx(4 * 2.0**2, rel=1e-6)
    assert np.isnan(distances[3])  # no rows of class 3 in either set
