"""The report evaluate.py prints: a generator's images judged by the MNIST classifier.

Every number comes from evaluation.metrics; this module runs the networks to get the classifier's
probabilities and features of generated and real images, and lays the numbers out as a JSON-ready
dict, a plot and a table.
"""

from dataclasses import dataclass
from pathlib import Path

import chainer
import numpy as np
from chainer.dataset import concat_examples

from evaluation import metrics
from mnist.data import load_mnist
from model.classifier import Classifier, predict
from model.net import N_CLASSES
from model.sampling import generate, one_hot, seeds_noise

# (source, target) of the soft-label sweeps: two unlike digits, and two pairs that are easily confused.
SWEEP_PAIRS = ((0, 1), (3, 8), (4, 9))
# The most seeds per digit (--per-class), and the distance between the seed sets of frechet_spread:
# every set draws seeds the others and the rest of the evaluation never use.
MAX_PER_CLASS = 10_000


def generated_outputs(
    gen: chainer.Chain, clf: Classifier, labels: np.ndarray, seeds: np.ndarray, batchsize: int
) -> tuple[np.ndarray, np.ndarray]:
    """Classifier (probabilities, features) of the generator's images, one per (label row, seed)."""
    probs, features = [], []
    for start in range(0, len(labels), batchsize):
        rows = slice(start, start + batchsize)
        images = generate(gen, seeds_noise(seeds[rows], gen.z_size), labels[rows])
        p, f = predict(clf, images, batchsize)
        probs.append(p)
        features.append(f)
    return np.concatenate(probs), np.concatenate(features)


def sweep(
    gen: chainer.Chain, clf: Classifier, source: int, target: int, steps: int, n_seeds: int, batchsize: int
) -> dict:
    """P(target) and P(source) as the label moves from onehot(source) to onehot(target)."""
    ts = np.linspace(0, 1, steps)
    labels = np.tile(metrics.soft_labels(source, target, ts), (n_seeds, 1))  # seed-major
    seeds = np.repeat(np.arange(n_seeds), steps)
    probs, _ = generated_outputs(gen, clf, labels, seeds, batchsize)
    probs = probs.reshape(n_seeds, steps, -1)
    p_target = probs[:, :, target].mean(axis=0)
    per_seed_monotone = [metrics.is_monotone(curve) for curve in probs[:, :, target]]
    return {
        "source": source,
        "target": target,
        "t": ts.round(4).tolist(),
        "p_target": p_target.round(5).tolist(),
        "p_target_q25": np.quantile(probs[:, :, target], 0.25, axis=0).round(5).tolist(),
        "p_target_q75": np.quantile(probs[:, :, target], 0.75, axis=0).round(5).tolist(),
        "p_source": probs[:, :, source].mean(axis=0).round(5).tolist(),
        "max_drop": round(metrics.max_drop(p_target), 5),
        "monotone": metrics.is_monotone(p_target),
        "pass": metrics.sweep_passes(p_target),
        "seeds_monotone": int(sum(per_seed_monotone)),
        "seeds": n_seeds,
    }


def frechet_spread(
    gen: chainer.Chain,
    clf: Classifier,
    first_set: tuple[np.ndarray, np.ndarray],
    real_halves: tuple[np.ndarray, np.ndarray],
    references: tuple[float, float],
    repeats: int,
    batchsize: int,
) -> dict:
    """The Fréchet ratio of `repeats` disjoint seed sets, each against both real halves' features,
    and the per-class accuracy over all their images (`repeats` times the images of one set, so
    that candidates compare on more than one set's few hundred images per digit).

    Each distance is divided by the training images' distance to the same half (`references`).
    Set 0 is `first_set` (the probabilities and features of seeds 0..k-1 of every digit, digit by
    digit); set r draws seeds r·MAX_PER_CLASS .. r·MAX_PER_CLASS + k - 1, apart from every seed
    the rest of the evaluation uses.
    """
    k = len(first_set[0]) // N_CLASSES
    digits = np.repeat(np.arange(N_CLASSES), k)
    sets = [first_set]
    for r in range(1, repeats):
        seeds = r * MAX_PER_CLASS + np.tile(np.arange(k), N_CLASSES)
        sets.append(generated_outputs(gen, clf, one_hot(digits), seeds, batchsize))
    ratios = np.array(
        [
            metrics.frechet_distance_of(features, real) / reference
            for _, features in sets
            for real, reference in zip(real_halves, references, strict=True)
        ]
    )
    predicted = np.concatenate([probs.argmax(axis=1) for probs, _ in sets])
    accuracy = metrics.per_class_accuracy(predicted, np.tile(digits, repeats))
    return {
        "seed_sets": repeats,
        "ratios": ratios.round(3).tolist(),
        "mean": round(float(ratios.mean()), 3),
        "sd": round(float(ratios.std(ddof=1)), 3),
        "min": round(float(ratios.min()), 3),
        "max": round(float(ratios.max()), 3),
        "accuracy": {**accuracy_summary(accuracy), "images_per_class": k * repeats},
        "note": f"set r: seeds r*{MAX_PER_CLASS}..r*{MAX_PER_CLASS}+k-1 of every digit (set 0: seeds "
        "0..k-1); ratios in order set 0 vs half A, set 0 vs half B, set 1 vs half A, ...; each over "
        "the training images' distance to that half",
    }


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference > 0 else None


@dataclass
class Measurements:
    """What evaluate_generator measured, before it is rounded and laid out as the report."""

    per_class: int
    accuracy: np.ndarray  # per digit, of the generated images
    real_accuracy: float  # the classifier's own, on the real images
    frechet: float  # generated vs real half A
    reference: float  # training vs real half A
    real_vs_real: float  # real half B vs real half A
    images_per_class: int  # k, in each Fréchet set
    by_class: np.ndarray
    by_class_reference: np.ndarray
    features: int
    spread: dict | None  # frechet_spread's, with repeats > 1
    gen_diversity: np.ndarray
    real_diversity: np.ndarray
    real_counts: list[int]
    sweeps: list[dict]
    quality_bar: dict


def evaluate_generator(
    gen: chainer.Chain,
    clf: Classifier,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    training: tuple[np.ndarray, np.ndarray],
    per_class: int = 500,
    sweep_steps: int = 21,
    sweep_seeds: int = 32,
    batchsize: int = 500,
    repeats: int = 1,
) -> dict:
    """Every number of the evaluation as a JSON-ready dict (docs/evaluation.md says what each means)."""
    measured = measure_generator(
        gen, clf, real_images, real_labels, training, per_class, sweep_steps, sweep_seeds, batchsize, repeats
    )
    return report_of(measured)


def measure_generator(
    gen: chainer.Chain,
    clf: Classifier,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    training: tuple[np.ndarray, np.ndarray],
    per_class: int,
    sweep_steps: int,
    sweep_seeds: int,
    batchsize: int,
    repeats: int,
) -> Measurements:
    """Run the networks and measure, with evaluation.metrics.

    The Fréchet reference is `training` (images, labels): k training images per class against the
    same real half score what a generator that copied its training data would, so the bar's ratio
    asks how much farther from real data the generator is than its own training data. Two halves of
    the real set (real-vs-real) are measured beside it. `repeats` > 1 adds the spread of the ratio
    over that many seed sets (frechet_spread).
    """
    digits = np.repeat(np.arange(N_CLASSES), per_class)
    seeds = np.tile(np.arange(per_class), N_CLASSES)
    gen_probs, gen_features = generated_outputs(gen, clf, one_hot(digits), seeds, batchsize)
    real_probs, real_features = predict(clf, real_images, batchsize)

    accuracy = metrics.per_class_accuracy(gen_probs.argmax(axis=1), digits)

    # Class-balanced sets of k images per class: generated (seeds 0..k-1), real A, real B, training.
    half_a, half_b, k = metrics.balanced_halves(real_labels, per_class)
    fewest = int(np.bincount(training[1], minlength=N_CLASSES).min())
    if fewest < 2 * k:  # k per digit from one of two halves, as the test set's
        raise ValueError(f"the training set has {fewest} images of some digit, its half needs {k} of each")
    train_a, _, _ = metrics.balanced_halves(training[1], k)
    train_features = predict(clf, training[0][train_a], batchsize)[1]
    train_labels = training[1][train_a]
    generated_k = np.flatnonzero(seeds < k)
    halves = [(real_features[h], real_labels[h]) for h in (half_a, half_b)]
    frechet = metrics.frechet_distance_of(gen_features[generated_k], halves[0][0])
    reference = metrics.frechet_distance_of(train_features, halves[0][0])

    spread = None
    if repeats > 1 and reference > 0:  # a ratio needs a reference, as the report's "ratio"
        references = (reference, metrics.frechet_distance_of(train_features, halves[1][0]))
        spread = frechet_spread(
            gen,
            clf,
            (gen_probs[generated_k], gen_features[generated_k]),
            (halves[0][0], halves[1][0]),
            references,
            repeats,
            batchsize,
        )

    gen_diversity = metrics.class_diversity(gen_features, digits)
    real_diversity = metrics.class_diversity(real_features, real_labels)
    sweeps = [sweep(gen, clf, a, b, sweep_steps, sweep_seeds, batchsize) for a, b in SWEEP_PAIRS]
    bar = metrics.quality_bar(
        accuracy, frechet, reference, gen_diversity / real_diversity, [s["pass"] for s in sweeps]
    )
    return Measurements(
        per_class=per_class,
        accuracy=accuracy,
        real_accuracy=float(np.mean(real_probs.argmax(axis=1) == real_labels)),
        frechet=frechet,
        reference=reference,
        real_vs_real=metrics.frechet_distance_of(halves[1][0], halves[0][0]),
        images_per_class=k,
        by_class=metrics.class_frechet_distances(gen_features[generated_k], digits[generated_k], *halves[0]),
        by_class_reference=metrics.class_frechet_distances(train_features, train_labels, *halves[0]),
        features=int(gen_features.shape[1]),
        spread=spread,
        gen_diversity=gen_diversity,
        real_diversity=real_diversity,
        real_counts=np.bincount(real_labels, minlength=N_CLASSES).tolist(),
        sweeps=sweeps,
        quality_bar=bar,
    )


def accuracy_summary(accuracy: np.ndarray) -> dict:
    """Per-digit accuracies, their mean and the lowest, rounded as the report shows them."""
    return {
        "per_class": accuracy.round(4).tolist(),
        "mean": round(float(accuracy.mean()), 4),
        "min": round(float(accuracy.min()), 4),
    }


def report_of(m: Measurements) -> dict:
    """The measurements as the JSON-ready report: rounded, with the ratios and a note on each set."""
    k = m.images_per_class
    diversity_ratio = m.gen_diversity / m.real_diversity
    return {
        "per_class": m.per_class,
        "accuracy": {**accuracy_summary(m.accuracy), "real_test_images": round(m.real_accuracy, 4)},
        "frechet": {
            "generated_vs_real": round(m.frechet, 4),
            "training_vs_real": round(m.reference, 4),
            "ratio": ratio(m.frechet, m.reference),
            "real_vs_real": round(m.real_vs_real, 4),
            "ratio_to_real_vs_real": ratio(m.frechet, m.real_vs_real),
            "training_ratio_to_real_vs_real": ratio(m.reference, m.real_vs_real),
            "images_per_class": k,
            "set_size": k * N_CLASSES,
            "per_class": m.by_class.round(4).tolist(),
            "per_class_training_vs_real": m.by_class_reference.round(4).tolist(),
            "per_class_ratio": (m.by_class / m.by_class_reference).round(3).tolist(),
            "features": m.features,
            "note": "generated seeds 0..k-1, k training images per class, and real half B, each vs real "
            "half A (disjoint, class-balanced halves of the real images); ratio: generated over training; "
            "per_class: the same within each digit",
            **({"spread": m.spread} if m.spread is not None else {}),
        },
        "diversity": {
            "generated": m.gen_diversity.round(4).tolist(),
            "real": m.real_diversity.round(4).tolist(),
            "ratio": diversity_ratio.round(4).tolist(),
            "min_ratio": round(float(np.min(diversity_ratio)), 4),
            "real_images_per_class": m.real_counts,
        },
        "sweeps": m.sweeps,
        "quality_bar": m.quality_bar,
    }


def plot_sweeps(sweeps: list[dict], path: Path, title: str) -> None:
    """P(target) against t for every sweep: mean over seeds, interquartile band, P(source) dashed."""
    from matplotlib.figure import Figure  # a training extra, not in requirements.txt

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for i, result in enumerate(sweeps):
        color = f"C{i}"
        name = f"{result['source']}→{result['target']}"
        axes.plot(
            result["t"],
            result["p_target"],
            color=color,
            marker="o",
            markersize=3,
            label=f"P({result['target']}), {name}" + ("" if result["pass"] else " (fails)"),
        )
        axes.fill_between(result["t"], result["p_target_q25"], result["p_target_q75"], color=color, alpha=0.2)
        axes.plot(
            result["t"],
            result["p_source"],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"P({result['source']}), {name}",
        )
    axes.set_xlabel("t  (label = (1 − t)·onehot(source) + t·onehot(target))")
    axes.set_ylabel("classifier probability (mean over seeds)")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlim(0, 1)
    axes.grid(alpha=0.3)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, ncols=2)
    figure.savefig(path, dpi=110)


def table(report: dict) -> str:
    """The short human summary printed at the end."""

    def row(name: str, values, fmt: str) -> str:
        return f"{name:<12}" + "".join(f"{fmt.format(v):>7}" for v in values)

    acc, fd, div, bar = report["accuracy"], report["frechet"], report["diversity"], report["quality_bar"]
    lines = [
        f"generator {report['generator']['folder']}  ({report['per_class']} images per class, "
        f"{report['seconds']:.0f} s)",
        row("digit", range(N_CLASSES), "{}"),
        row("accuracy %", [100 * a for a in acc["per_class"]], "{:.1f}"),
        row("diversity", div["ratio"], "{:.2f}"),
        row("Fréchet ×", fd["per_class_ratio"], "{:.1f}"),
        f"accuracy: mean {100 * acc['mean']:.2f}%, min {100 * acc['min']:.2f}% "
        f"(classifier on real test images: {100 * acc['real_test_images']:.2f}%)",
        f"Fréchet distance to real half A ({fd['set_size']} images per set): generated "
        f"{fd['generated_vs_real']:.3f}, training images {fd['training_vs_real']:.3f}, "
        f"real half B {fd['real_vs_real']:.3f}",
        f"Fréchet ratio, generated over training images: {fd['ratio']} "
        f"(generated over real-vs-real {fd['ratio_to_real_vs_real']}, training over real-vs-real "
        f"{fd['training_ratio_to_real_vs_real']})",
    ]
    if "spread" in fd:
        spread = fd["spread"]
        lines.append(
            f"Fréchet ratio over {spread['seed_sets']} seed sets x 2 real halves: mean {spread['mean']}, "
            f"sd {spread['sd']}, range {spread['min']}..{spread['max']}"
        )
        pooled = spread["accuracy"]
        lines.append(
            f"accuracy over those seed sets ({pooled['images_per_class']} images per class): mean "
            f"{100 * pooled['mean']:.2f}%, min {100 * pooled['min']:.2f}%"
        )
    for s in report["sweeps"]:
        lines.append(
            f"sweep {s['source']}→{s['target']}: P({s['target']}) {s['p_target'][0]:.3f} → "
            f"{s['p_target'][-1]:.3f}, largest drop {s['max_drop']:.3f}, "
            f"{'monotone' if s['monotone'] else 'NOT monotone'}"
        )
    for name, check in bar["checks"].items():
        limit = f">= {check['min']}" if "min" in check else f"<= {check['max']}"
        value = check["value"]
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"  {'pass' if check['pass'] else 'FAIL'}  {name} = {shown} ({limit})")
    lines.append(f"quality bar: {'PASS' if bar['pass'] else 'FAIL'}")
    return "\n".join(lines)


def load_real(folder: Path | None, train: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST test (or training) images, float32 (n, 1, 28, 28) in [0, 1], and labels."""
    images, labels = concat_examples(load_mnist(folder, train=train)[:])
    return images, labels.astype(np.int64)
