"""evaluate_generator on a made-up ten-class data set, with a tiny classifier trained on it here.

Each class is a soft blob at its own place in the 28x28 frame, jittered and of varying brightness,
so the classes are easy to tell apart and each has real within-class variety. "Generators" that
return such images (by the seed's index, as a real generator maps noise to an image) stand in for
good, collapsed, mislabelled and badly mixing generators.
"""

import json

import chainer
import chainer.functions as F
import numpy as np
import pytest

from evaluation.report import evaluate_generator
from model.classifier import Classifier, predict
from model.sampling import seeds_noise

pytestmark = pytest.mark.slow  # the tiny classifier trains for about 4 s, then each test takes 0.5 s

N_CLASSES = 10
CENTRES = [(6 + 8 * (c // 4), 5 + 6 * (c % 4)) for c in range(N_CLASSES)]  # (row, column)


def blob_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One jittered Gaussian blob per label, float32 (n, 1, 28, 28) in [0, 1]."""
    y, x = np.mgrid[0:28, 0:28]
    images = np.empty((len(labels), 1, 28, 28), dtype=np.float32)
    for i, label in enumerate(labels):
        cy, cx = np.array(CENTRES[label]) + rng.uniform(-1.5, 1.5, 2)
        sigma = rng.uniform(1.5, 2.5)
        blob = rng.uniform(0.6, 1.0) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
        images[i, 0] = np.clip(blob + rng.normal(0, 0.03, (28, 28)), 0, 1)
    return images


def synthetic_set(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(N_CLASSES), per_class)
    return blob_images(labels, np.random.default_rng(seed)), labels


@pytest.fixture(scope="module")
def classifier():
    """A tiny Classifier trained for a few hundred steps on the blobs (about a second)."""
    np.random.seed(0)
    clf = Classifier(ch=4, n_features=16)
    optimizer = chainer.optimizers.Adam(alpha=3e-3)
    optimizer.setup(clf)
    images, labels = synthetic_set(60, seed=1)
    labels = labels.astype(np.int32)
    rng = np.random.default_rng(2)
    for _ in range(150):
        batch = rng.choice(len(labels), 50, replace=False)
        optimizer.update(lambda x, t: F.softmax_cross_entropy(clf(x), t), images[batch], labels[batch])
    return clf


@pytest.fixture(scope="module")
def real():
    """The "real test set" the generators are compared with."""
    return synthetic_set(100, seed=3)


@pytest.fixture(scope="module")
def training():
    """The "training set": more images of the real distribution, apart from the test set."""
    return synthetic_set(100, seed=5)


class PoolGenerator(chainer.Chain):
    """Returns stored images: pool[digit][seed] for the seed whose noise it is given.

    `pick(labels)` turns a label row into the digit to show, which is where the stand-ins differ.
    """

    z_size = 100
    n_classes = N_CLASSES

    def __init__(self, pool: np.ndarray, pick):
        super().__init__()
        self.pool = pool  # (n_classes, n_seeds, 1, 28, 28)
        self.pick = pick
        self.noise = seeds_noise(range(pool.shape[1]), self.z_size)

    def forward(self, z, labels):
        seeds = np.argmin(((z[:, None, :] - self.noise[None]) ** 2).sum(axis=2), axis=1)
        digits = self.pick(np.asarray(labels))
        return chainer.Variable(self.pool[digits, seeds])


@pytest.fixture(scope="module")
def pool():
    """Fresh images of every class, drawn apart from the real set (as a perfect generator would)."""
    images, _ = synthetic_set(60, seed=4)
    return images.reshape(N_CLASSES, 60, 1, 28, 28)


def run(generator, classifier, real, training, per_class=60, **options):
    return evaluate_generator(
        generator,
        classifier,
        *real,
        training,
        per_class=per_class,
        sweep_steps=options.pop("sweep_steps", 11),
        sweep_seeds=options.pop("sweep_seeds", 8),
        batchsize=128,
        **options,
    )


def strongest(labels):
    return labels.argmax(axis=1)


def test_the_tiny_classifier_knows_the_blobs(classifier, real):
    probs, _ = predict(classifier, real[0])
    assert np.mean(probs.argmax(axis=1) == real[1]) > 0.98


def test_a_perfect_generator_scores_like_real_data(classifier, real, training, pool):
    report = run(PoolGenerator(pool, strongest), classifier, real, training)
    assert min(report["accuracy"]["per_class"]) >= 0.95
    assert report["frechet"]["set_size"] == 500  # 50 per class: half of the 100 real ones
    # About as far from the real set as the training images: a distance between 50-image classes
    # varies by tens of percent from one draw to the next, so the ratio is only near 1.
    assert report["frechet"]["ratio"] < 2
    assert 0.8 < report["diversity"]["min_ratio"] and max(report["diversity"]["ratio"]) < 1.25
    # Switching digit where the label's weights cross gives a step from 0 to 1: monotone.
    assert all(s["pass"] for s in report["sweeps"])
    checks = report["quality_bar"]["checks"]
    assert all(checks[name]["pass"] for name in ("mean_accuracy", "min_class_accuracy", "sweeps_passing"))
    assert json.loads(json.dumps(report)) == report  # plain JSON types only, as evaluate.py writes it


def test_a_collapsed_generator_fails_on_diversity_and_frechet_distance(classifier, real, training, pool):
    one_per_class = np.repeat(pool[:, :1], pool.shape[1], axis=1)
    report = run(PoolGenerator(one_per_class, strongest), classifier, real, training)
    assert report["accuracy"]["min"] >= 0.9  # each class's one image is still a fine digit
    assert report["diversity"]["min_ratio"] < 0.01
    assert report["frechet"]["ratio"] > 2
    checks = report["quality_bar"]["checks"]
    assert not checks["min_diversity_ratio"]["pass"] and not checks["frechet_ratio"]["pass"]
    assert not report["quality_bar"]["pass"]


def test_the_per_class_frechet_distances_point_at_the_one_bad_digit(classifier, real, training, pool):
    """Digit 3 collapsed to one image, every other digit perfect: 3 stands out in the per-class numbers."""
    one_bad = pool.copy()
    one_bad[3] = pool[3, :1]
    fd = run(PoolGenerator(one_bad, strongest), classifier, real, training)["frechet"]
    assert len(fd["per_class"]) == len(fd["per_class_training_vs_real"]) == N_CLASSES
    assert int(np.argmax(fd["per_class_ratio"])) == 3
    assert fd["per_class"][3] > 5 * max(r for d, r in enumerate(fd["per_class"]) if d != 3)


def test_a_generator_drawing_the_wrong_digits_fails_on_accuracy(classifier, real, training, pool):
    report = run(
        PoolGenerator(pool, lambda labels: (strongest(labels) + 1) % N_CLASSES), classifier, real, training
    )
    assert report["accuracy"]["mean"] < 0.05
    assert not report["quality_bar"]["checks"]["mean_accuracy"]["pass"]


def test_a_sweep_that_goes_back_to_the_source_fails(classifier, real, training, pool):
    def there_and_back(labels):
        # The target digit only for middle mixtures: P(target) rises and falls again.
        digits = strongest(labels)
        middle = (labels.max(axis=1) < 0.8) & (labels.max(axis=1) > 0.5)
        second = np.argsort(labels, axis=1)[:, -2]
        return np.where(middle, second, digits)

    report = run(PoolGenerator(pool, there_and_back), classifier, real, training)
    assert report["accuracy"]["min"] >= 0.95  # one-hot labels are untouched
    assert not any(s["monotone"] for s in report["sweeps"])
    assert report["quality_bar"]["checks"]["sweeps_passing"]["value"] == 0


def test_sweeps_report_every_step(classifier, real, training, pool):
    report = run(PoolGenerator(pool, strongest), classifier, real, training, per_class=10)
    for s in report["sweeps"]:
        assert len(s["t"]) == len(s["p_target"]) == len(s["p_source"]) == 11
        assert s["t"][0] == 0 and s["t"][-1] == 1
        assert all(0 <= p <= 1 for p in s["p_target"])
    assert [(s["source"], s["target"]) for s in report["sweeps"]] == [(0, 1), (3, 8), (4, 9)]


def test_the_frechet_sets_shrink_to_fit_the_smallest_real_class(classifier, real, training, pool):
    images, labels = real
    keep = np.flatnonzero((labels != 7) | (np.arange(len(labels)) % 100 < 30))  # 30 sevens left
    report = run(PoolGenerator(pool, strongest), classifier, (images[keep], labels[keep]), training)
    assert report["frechet"]["images_per_class"] == 15


def test_the_ratio_is_over_the_training_images_own_distance(classifier, real, training, pool):
    """Training data from the real distribution is about as far as real half B; shifted data far more,
    and the same generator then measures closer relative to it."""
    shifted = (np.roll(training[0], 3, axis=3), training[1])
    generator = PoolGenerator(pool, strongest)
    options = {"sweep_steps": 3, "sweep_seeds": 2}
    like_real = run(generator, classifier, real, training, **options)["frechet"]
    unlike_real = run(generator, classifier, real, shifted, **options)["frechet"]
    assert like_real["generated_vs_real"] == unlike_real["generated_vs_real"]
    assert like_real["training_ratio_to_real_vs_real"] < 2
    assert unlike_real["training_vs_real"] > 2 * like_real["training_vs_real"]
    assert unlike_real["ratio"] < like_real["ratio"] / 2


def test_a_training_set_short_of_a_digit_is_named(classifier, real, training, pool):
    images, labels = training
    keep = np.flatnonzero((labels != 4) | (np.arange(len(labels)) % 100 < 10))  # 10 fours left
    with pytest.raises(ValueError, match="training set has 10 images of some digit, its half needs 50 of"):
        run(PoolGenerator(pool, strongest), classifier, real, (images[keep], labels[keep]))


def test_repeats_measure_the_frechet_ratio_on_disjoint_seed_sets(classifier, real, training):
    """Set 0 is the report's own measurement; the other sets draw other seeds, so other images."""
    images, _ = synthetic_set(150, seed=6)
    pool = images.reshape(N_CLASSES, 150, 1, 28, 28)  # seeds 0..149; farther seeds map to the nearest
    generator = PoolGenerator(pool, strongest)
    options = {"sweep_steps": 3, "sweep_seeds": 2}
    fd = run(generator, classifier, real, training, repeats=3, **options)["frechet"]
    spread = fd["spread"]
    assert spread["seed_sets"] == 3 and len(spread["ratios"]) == 6
    assert spread["ratios"][0] == pytest.approx(fd["ratio"], abs=1e-3)
    assert len(set(spread["ratios"][::2])) == 3, "each seed set shows other images"
    assert max(spread["ratios"]) < 2  # every set of a perfect generator scores about like the training data
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["sd"] > 0
    assert "spread" not in run(generator, classifier, real, training, **options)["frechet"]


def test_repeats_pool_the_accuracy_of_all_their_seed_sets(classifier, real, training):
    """Sevens drawn from seeds 100 and up look like ones: the report's own seeds never reach them,
    the other seed sets do, and the pooled accuracy counts them."""
    images, _ = synthetic_set(150, seed=6)
    pool = images.reshape(N_CLASSES, 150, 1, 28, 28).copy()
    pool[7, 100:] = pool[1, 100:]
    report = run(
        PoolGenerator(pool, strongest), classifier, real, training, repeats=3, sweep_steps=3, sweep_seeds=2
    )
    pooled = report["frechet"]["spread"]["accuracy"]
    assert pooled["images_per_class"] == 3 * report["frechet"]["images_per_class"]
    assert report["accuracy"]["per_class"][7] > 0.95
    assert 0.5 < pooled["per_class"][7] < 0.95
    assert pooled["min"] == pooled["per_class"][7] and pooled["per_class"][0] > 0.95
