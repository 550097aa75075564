"""The numbers of the generator evaluation, as plain numpy functions of classifier outputs.

Nothing here runs a network: evaluation/report.py does and hands over probabilities
and penultimate-layer features, so every measure can be tested on arrays made up in the test.
"""

import numpy as np

from model.net import N_CLASSES
from model.sampling import one_hot

# The quality bar a generator must meet to ship (N=500 images per class).
MIN_MEAN_ACCURACY = 0.99
MIN_CLASS_ACCURACY = 0.98
MAX_FRECHET_RATIO = 1.5  # over the training images' own distance to the real half
MIN_DIVERSITY_RATIO = 0.9
# A sweep counts as monotone when P(target) never falls by more than this from one step to the next:
# the seed-averaged curve is a finite-sample estimate, and wiggles of a few thousandths near 0 or 1
# say nothing about the generator.
MONOTONE_TOLERANCE = 0.01
# A value on a bound meets it: a mean of exact fractions (4,950 of 5,000 digits as ten per-class
# shares) can land a rounding error short of 0.99 in floating point.
AT_BOUND = 1e-9


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature rows, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition.

    Round-off can leave eigenvalues of a PSD matrix a little below zero; they are clipped to 0.
    """
    matrix = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mean_a, cov_a) and N(mean_b, cov_b).

    d² = |mean_a - mean_b|² + tr(A + B - 2·(A·B)^½). The usual code takes scipy.linalg.sqrtm of
    the non-symmetric product A·B, which needs scipy and can return complex round-off. A·B is
    similar to the symmetric PSD matrix A^½·B·A^½, so both have the same eigenvalues and
    tr((A·B)^½) = Σ √eig(A^½·B·A^½): two numpy eigh calls, real by construction, no dependency.
    """
    sqrt_a = sqrtm_psd(cov_a)
    middle = sqrt_a @ cov_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = np.asarray(mean_a) - np.asarray(mean_b)
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(value, 0.0))


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between two sets of feature rows, each summarised as a Gaussian."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def class_frechet_distances(
    features_a: np.ndarray,
    labels_a: np.ndarray,
    features_b: np.ndarray,
    labels_b: np.ndarray,
    n_classes: int = N_CLASSES,
) -> np.ndarray:
    """Fréchet distance between the two sets' rows of each class (NaN where a set lacks the class)."""
    distances = np.full(n_classes, np.nan)
    for digit in range(n_classes):
        rows_a, rows_b = features_a[labels_a == digit], features_b[labels_b == digit]
        if len(rows_a) and len(rows_b):
            distances[digit] = frechet_distance_of(rows_a, rows_b)
    return distances


def balanced_halves(
    labels: np.ndarray, per_class: int, n_classes: int = N_CLASSES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Two disjoint index sets with the same number k of examples of every class.

    k = min(per_class, smallest class count // 2). The generated set is class-balanced by
    construction, so the real sets it is compared with are made balanced too: otherwise the
    Fréchet distance would also measure the test set's class frequencies, which the real-vs-real
    baseline does not. Returns (indices_a, indices_b, k), each array sorted by class.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_classes)[:n_classes]
    k = int(min(per_class, counts.min() // 2))
    if k < 1:
        raise ValueError(f"every class needs at least 2 real examples, counts are {counts.tolist()}")
    rng = np.random.default_rng(seed)
    half_a, half_b = [], []
    for digit in range(n_classes):
        chosen = rng.permutation(np.flatnonzero(labels == digit))
        half_a.append(chosen[:k])
        half_b.append(chosen[k : 2 * k])
    return np.concatenate(half_a), np.concatenate(half_b), k


def per_class_accuracy(
    predicted: np.ndarray, requested: np.ndarray, n_classes: int = N_CLASSES
) -> np.ndarray:
    """For each class, the fraction of images asked for as that class that the classifier calls it."""
    predicted, requested = np.asarray(predicted), np.asarray(requested)
    accuracy = np.full(n_classes, np.nan)
    for digit in range(n_classes):
        asked = requested == digit
        if asked.any():
            accuracy[digit] = np.mean(predicted[asked] == digit)
    return accuracy


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of distinct rows.

    Unlike a variance it stays comparable between sets of different sizes (it is an unbiased
    estimate of E|x - y|), and it drops to 0 when a generator repeats one image.
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 rows, got {n}")
    squared = np.sum(x * x, axis=1)
    d2 = squared[:, None] + squared[None, :] - 2 * x @ x.T
    distances = np.sqrt(np.clip(d2, 0, None))
    return float((distances.sum() - np.trace(distances)) / (n * (n - 1)))


def class_diversity(features: np.ndarray, labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Mean pairwise feature distance within each class (NaN where a class has fewer than 2 rows)."""
    features, labels = np.asarray(features), np.asarray(labels)
    diversity = np.full(n_classes, np.nan)
    for digit in range(n_classes):
        rows = features[labels == digit]
        if len(rows) >= 2:
            diversity[digit] = mean_pairwise_distance(rows)
    return diversity


def soft_labels(source: int, target: int, ts: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Label rows (1 - t)·onehot(source) + t·onehot(target), one per t, float32."""
    source_row, target_row = one_hot([source, target], n_classes).astype(np.float64)
    ts = np.asarray(ts, dtype=np.float64)[:, None]
    return ((1 - ts) * source_row + ts * target_row).astype(np.float32)


def max_drop(curve: np.ndarray) -> float:
    """The largest fall from one point of the curve to the next (0 for a non-decreasing curve)."""
    steps = np.diff(np.asarray(curve, dtype=np.float64))
    return float(max(0.0, -steps.min())) if len(steps) else 0.0


def is_monotone(curve: np.ndarray, tolerance: float = MONOTONE_TOLERANCE) -> bool:
    """True when the curve never falls by more than `tolerance` between neighbouring points."""
    return max_drop(curve) <= tolerance


def sweep_passes(p_target: np.ndarray, tolerance: float = MONOTONE_TOLERANCE) -> bool:
    """A soft-label sweep is good when P(target) rises monotonically from below to above one half.

    Monotone alone is not enough: a curve flat at 0 (the generator ignores the target digit) is
    monotone too.
    """
    p_target = np.asarray(p_target)
    return bool(is_monotone(p_target, tolerance) and p_target[0] < 0.5 < p_target[-1])


def quality_bar(
    accuracy: np.ndarray,
    frechet: float,
    frechet_reference: float,
    diversity_ratio: np.ndarray,
    sweeps_pass: list[bool],
) -> dict:
    """Each check of the quality bar with its value, threshold and verdict, and the overall verdict."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    diversity_ratio = np.asarray(diversity_ratio, dtype=np.float64)
    ratio = frechet / frechet_reference if frechet_reference > 0 else float("inf")
    checks = {
        "mean_accuracy": {"value": float(np.mean(accuracy)), "min": MIN_MEAN_ACCURACY},
        "min_class_accuracy": {"value": float(np.min(accuracy)), "min": MIN_CLASS_ACCURACY},
        "frechet_ratio": {"value": float(ratio), "max": MAX_FRECHET_RATIO},
        "min_diversity_ratio": {"value": float(np.min(diversity_ratio)), "min": MIN_DIVERSITY_RATIO},
        "sweeps_passing": {"value": int(sum(sweeps_pass)), "min": len(sweeps_pass)},
    }
    for check in checks.values():
        value = check["value"]
        # NaN (a class never asked for, a degenerate set) fails every comparison, so it fails the bar.
        if "min" in check:
            check["pass"] = bool(value >= check["min"] - AT_BOUND)
        else:
            check["pass"] = bool(value <= check["max"] + AT_BOUND)
    return {"checks": checks, "pass": all(check["pass"] for check in checks.values())}
