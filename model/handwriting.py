"""Handwriting sliders: three directions in the noise space that move a digit's slant, stroke
thickness and width, found from the generator's own pictures (docs/handwriting.md).

The attributes are measured on pictures in one place (`attributes`). The directions are fitted as
InterFaceGAN fits its boundaries: least squares of each attribute on the noise, within each digit
(each digit's mean removed), then each direction is made blind to the other two attributes by
projecting out their fitted directions (its conditional manipulation). Each stored direction is
the unit direction times a step, the largest of STEPS at which the classifier still reads the
asked digit at both ends of the slider.

A slider value s_i in [-1, 1] moves the noise elementwise, z' = float32(z + s_1 a_1 + s_2 a_2 +
s_3 a_3) in float64 and in that order, which numpy and the page's JavaScript compute to the same
bits; with every s_i at 0 the noise is z itself.
"""

from pathlib import Path

import numpy as np

from model.classifier import load_classifier
from model.images import to_uint8
from model.inference import FoldedClassifier, FoldedGenerator
from model.sampling import generate, one_hot, seeds_noise

HANDWRITING = ("slant", "thickness", "width")
STEPS = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 2.0)  # noise lengths tried; the noise's norm is ~5.8
FIT_SEEDS = 1_000_000  # first seed of the fit; evaluation draws from 0 up, so the two never share one
# At both ends of every slider, over the fit's check samples: margins over evaluate.py's targets
# (98% mean, 95% lowest digit), which other seeds measure with 100 pictures a digit.
MIN_MEAN_ACCURACY = 0.985
MIN_DIGIT_ACCURACY = 0.97
SHIPPED_CLASSIFIER = Path(__file__).resolve().parent.parent / "weights"  # train.py's judge of the steps
GLANCE = 10  # pictures per digit read first, to stop early on an untrained generator


def attributes(images: np.ndarray) -> np.ndarray:
    """(n, 3) slant, thickness and width of pictures (n, 1, h, w) or (n, h, w) with ink in [0, 1].

    slant: how far the ink moves right per row upward, -mu_xy / mu_yy of the ink's second moments
    (the shear that deskews MNIST digits). thickness: ink area over half the length of its outline
    (a stroke of width w and length L has area w L and outline 2 L), the outline being the sum of
    the ink's gradient magnitudes. width: the deskewed ink's horizontal spread in pixels, the
    standard deviation of x after that shear, sqrt(mu_xx - mu_xy^2 / mu_yy).
    """
    ink = np.asarray(images, np.float64).reshape(len(images), *np.shape(images)[-2:])
    rows, cols = np.indices(ink.shape[1:], dtype=np.float64)
    mass = ink.sum(axis=(1, 2))
    mean_y = (ink * rows).sum(axis=(1, 2)) / mass
    mean_x = (ink * cols).sum(axis=(1, 2)) / mass
    dy = rows - mean_y[:, None, None]
    dx = cols - mean_x[:, None, None]
    mu_yy = (ink * dy * dy).sum(axis=(1, 2)) / mass
    mu_xx = (ink * dx * dx).sum(axis=(1, 2)) / mass
    mu_xy = (ink * dx * dy).sum(axis=(1, 2)) / mass
    padded = np.pad(ink, ((0, 0), (0, 1), (0, 1)))
    outline = np.hypot(np.diff(padded, axis=1)[:, :, :-1], np.diff(padded, axis=2)[:, :-1, :]).sum(
        axis=(1, 2)
    )
    slant = -mu_xy / mu_yy
    thickness = 2 * mass / outline
    width = np.sqrt(np.maximum(mu_xx - mu_xy**2 / mu_yy, 0))
    return np.stack([slant, thickness, width], axis=1)


def styled_noise(z: np.ndarray, style, directions: np.ndarray) -> np.ndarray:
    """Noise (n, z_size) or (z_size,) moved by the slider values `style` along `directions` (3, z_size):
    float32(z + s_1 a_1 + s_2 a_2 + s_3 a_3), summed in float64 in that order; z itself when all are 0."""
    z = np.asarray(z, np.float32)
    if not any(style):
        return z
    moved = z.astype(np.float64)
    for value, direction in zip(style, np.asarray(directions, np.float64), strict=True):
        moved = moved + float(value) * direction
    return moved.astype(np.float32)


def sample_attributes(gen, z: np.ndarray, digits: np.ndarray, batchsize: int = 500) -> np.ndarray:
    """The attributes of the generator's pictures of these noise rows and digits."""
    parts = []
    for start in range(0, len(z), batchsize):
        rows = slice(start, start + batchsize)
        parts.append(attributes(generate(gen, z[rows], one_hot(digits[rows], gen.n_classes))))
    return np.concatenate(parts)


def within_digit(values: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """`values` with each digit's mean removed."""
    centred = np.asarray(values, np.float64).copy()
    for digit in np.unique(digits):
        centred[digits == digit] -= centred[digits == digit].mean(axis=0)
    return centred


def cosines(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


def projected_directions(weights: np.ndarray) -> np.ndarray:
    """Unit directions (3, z_size) from the fitted ones (rows of `weights`), each with the other two
    projected out: a direction then leaves the other attributes' fitted values where they are."""
    directions = []
    for k in range(len(weights)):
        others = np.delete(weights, k, axis=0).T
        basis, _ = np.linalg.qr(others)
        own = weights[k] - basis @ (basis.T @ weights[k])
        directions.append(own / np.linalg.norm(own))
    return np.array(directions)


def digit_accuracy(clf, gen, z: np.ndarray, digits: np.ndarray, batchsize: int = 500) -> np.ndarray:
    """Per digit, the share of pictures (as the app shows them, 8-bit) the classifier reads as asked."""
    read = []
    for start in range(0, len(z), batchsize):
        rows = slice(start, start + batchsize)
        pictures = to_uint8(generate(gen, z[rows], one_hot(digits[rows], gen.n_classes)))
        read.append(clf(pictures[:, None] / np.float32(255)).argmax(axis=1))
    read = np.concatenate(read)
    return np.array([(read[digits == d] == d).mean() for d in range(gen.n_classes)])


class HandwritingError(Exception):
    """The generator's pictures are too poorly read to place the sliders (an untrained generator)."""


def reads_well(accuracy: np.ndarray) -> bool:
    return accuracy.mean() >= MIN_MEAN_ACCURACY and accuracy.min() >= MIN_DIGIT_ACCURACY


def largest_step(clf, gen, unit: np.ndarray, z: np.ndarray, digits: np.ndarray) -> float:
    """The largest of STEPS at which the pictures at both ends still read well (bisection: reading
    falls as the step grows); 0 when even the smallest does not."""
    low, high = -1, len(STEPS)  # STEPS[low] reads well (or none), STEPS[high] does not (or none)
    while high - low > 1:
        middle = (low + high) // 2
        step = STEPS[middle]
        if all(
            reads_well(digit_accuracy(clf, gen, styled_noise(z, [sign * step], unit[None]), digits))
            for sign in (-1, 1)
        ):
            low = middle
        else:
            high = middle
    return STEPS[low] if low >= 0 else 0.0


def fit_handwriting(gen, clf, per_digit: int = 400, check_per_digit: int = 300) -> tuple[np.ndarray, dict]:
    """(directions (3, z_size) float32, each scaled by its step; what the fit found, for generator.json).

    gen: a FoldedGenerator (or a Chainer Generator); clf: a FoldedClassifier. The directions come from
    per_digit samples of each digit, the steps from check_per_digit other samples of each. Raises
    HandwritingError when the pictures read too badly for any step (an untrained generator).
    """
    n = gen.n_classes
    digits = np.repeat(np.arange(n), per_digit)
    z = seeds_noise(FIT_SEEDS + np.arange(len(digits)), gen.z_size)
    check_digits = np.tile(np.arange(n), check_per_digit)  # every prefix of n k rows has k of each digit
    check_z = seeds_noise(FIT_SEEDS + len(digits) + np.arange(len(check_digits)), gen.z_size)
    glance = digit_accuracy(clf, gen, check_z[: GLANCE * n], check_digits[: GLANCE * n])
    if glance.mean() < MIN_MEAN_ACCURACY - 0.1:  # not worth the fit; a trained one fails later if at all
        raise HandwritingError(
            f"the classifier reads {glance.mean():.1%} of {GLANCE * n} unstyled pictures as the digit asked "
            f"for: too few to keep {MIN_MEAN_ACCURACY:.1%} at the sliders' ends; train longer"
        )
    measured = within_digit(sample_attributes(gen, z, digits), digits)
    noise = within_digit(z, digits)
    weights, *_ = np.linalg.lstsq(noise, measured, rcond=None)
    predicted = noise @ weights
    units = projected_directions(weights.T)
    steps = [largest_step(clf, gen, unit, check_z, check_digits) for unit in units]
    if 0 in steps:
        raise HandwritingError(
            f"moving the noise by {STEPS[0]} along the {HANDWRITING[steps.index(0)]} direction already "
            f"brings the classifier's reading under {MIN_MEAN_ACCURACY:.1%} (or a digit's under "
            f"{MIN_DIGIT_ACCURACY:.0%}); train longer"
        )
    fit = {
        "names": list(HANDWRITING),
        "steps": steps,
        "samples_per_digit": per_digit,
        "check_samples_per_digit": check_per_digit,
        "first_seed": FIT_SEEDS,
        "within_digit_r": [
            round(float(np.corrcoef(predicted[:, k], measured[:, k])[0, 1]), 4) for k in range(3)
        ],
        "cosines_before_projection": np.round(cosines(weights.T), 4).tolist(),
        "rule": "z' = float32(z + slant * a[0] + thickness * a[1] + width * a[2]), in float64, in that order",
    }
    return (units * np.array(steps)[:, None]).astype(np.float32), fit


def fit_with_classifier(gen, classifier_folder: Path) -> tuple[np.ndarray, dict]:
    """fit_handwriting for a Chainer Generator, judged by the classifier in `classifier_folder`
    (WeightsError when it cannot be loaded, HandwritingError when the pictures read too badly)."""
    clf, clf_metadata = load_classifier(classifier_folder)
    directions, fit = fit_handwriting(FoldedGenerator(gen), FoldedClassifier(clf))
    return directions, {**fit, "classifier_sha256": clf_metadata.get("sha256")}
