"""How the handwriting sliders move the pictures: each slider over -1..1 on fixed seeds and digits.

For each slider, every (digit, seed) sample is drawn at SLIDER_VALUES with the other two sliders at 0,
and model.handwriting.attributes measures the pictures. Reported per slider: Spearman's rho between
the slider value and its own attribute (per sample, averaged over samples); how far each attribute
moves from -1 to +1 on average, in units of that attribute's within-digit spread at 0, and the
ratio of the larger of the other two to its own; the mean of the samples' absolute changes beside
it (what a sample's own ups and downs add); and the classifier's accuracy at both ends (mean over
digits, lowest digit).
"""

from pathlib import Path

import numpy as np

from model.handwriting import HANDWRITING, attributes, styled_noise, within_digit
from model.images import tile, to_uint8
from model.sampling import generate, one_hot, seeds_noise

SLIDER_VALUES = np.linspace(-1, 1, 9)
TARGETS = {"rho": 0.95, "cross_ratio": 1 / 3, "mean_accuracy": 0.98, "min_digit_accuracy": 0.95}


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (measured attributes are continuous: no ties to share)."""
    return np.argsort(np.argsort(values, axis=-1), axis=-1).astype(np.float64)


def mean_spearman(values: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rho of `values` (v,) with each row of `measured` (n, v), averaged over the rows."""
    x = ranks(values) - ranks(values).mean()
    y = ranks(measured) - ranks(measured).mean(axis=1, keepdims=True)
    return float(((y @ x) / (np.linalg.norm(y, axis=1) * np.linalg.norm(x))).mean())


def slider_pictures(
    gen, directions: np.ndarray, slider: int, z: np.ndarray, digits: np.ndarray
) -> np.ndarray:
    """Pictures (n, v, 1, 28, 28) of every sample at every SLIDER_VALUES of one slider."""
    labels = one_hot(digits, gen.n_classes)
    rows = []
    for value in SLIDER_VALUES:
        style = np.zeros(len(HANDWRITING))
        style[slider] = value
        rows.append(generate(gen, styled_noise(z, style, directions), labels))
    return np.stack(rows, axis=1)


def measure_sliders(gen, clf, directions: np.ndarray, seeds_per_digit: int = 30) -> dict:
    """The sliders' report (see the module's docstring); gen a FoldedGenerator, clf a FoldedClassifier."""
    digits = np.repeat(np.arange(gen.n_classes), seeds_per_digit)
    z = seeds_noise(np.tile(np.arange(seeds_per_digit), gen.n_classes), gen.z_size)
    report = {
        "values": SLIDER_VALUES.round(4).tolist(),
        "seeds": f"0..{seeds_per_digit - 1} for each digit",
        "samples": len(digits),
        "targets": TARGETS,
        "sliders": {},
    }
    for k, name in enumerate(HANDWRITING):
        pictures = slider_pictures(gen, directions, k, z, digits)
        shown = to_uint8(pictures.reshape(-1, *pictures.shape[2:]))[:, None] / 255  # as the app shows them
        measured = attributes(shown).reshape(len(z), len(SLIDER_VALUES), len(HANDWRITING))
        spread = within_digit(measured[:, len(SLIDER_VALUES) // 2], digits).std(axis=0)
        change = (measured[:, -1] - measured[:, 0]) / spread
        moved = np.abs(change.mean(axis=0))
        accuracy = {}
        for end, index in (("-1", 0), ("+1", -1)):
            read = clf(shown.reshape(len(z), len(SLIDER_VALUES), 1, *shown.shape[2:])[:, index]).argmax(
                axis=1
            )
            per_digit = np.array([(read[digits == d] == d).mean() for d in range(gen.n_classes)])
            accuracy[end] = {
                "mean": round(float(per_digit.mean()), 4),
                "min": round(float(per_digit.min()), 4),
            }
        report["sliders"][name] = {
            "rho": round(mean_spearman(SLIDER_VALUES, measured[:, :, k]), 4),
            "own_change": round(float(np.mean(measured[:, -1, k] - measured[:, 0, k])), 4),
            "moves_in_spreads": {other: round(float(moved[j]), 3) for j, other in enumerate(HANDWRITING)},
            "absolute_moves_in_spreads": {
                other: round(float(np.abs(change[:, j]).mean()), 3) for j, other in enumerate(HANDWRITING)
            },
            "cross_ratio": round(float(max(np.delete(moved, k)) / moved[k]), 3),
            "accuracy": accuracy,
        }
    report["pass"] = all(
        s["rho"] >= TARGETS["rho"]
        and s["cross_ratio"] <= TARGETS["cross_ratio"]
        and all(
            a["mean"] >= TARGETS["mean_accuracy"] and a["min"] >= TARGETS["min_digit_accuracy"]
            for a in s["accuracy"].values()
        )
        for s in report["sliders"].values()
    )
    return report


def plot_handwriting(gen, directions: np.ndarray, path: Path, seed: int = 0) -> None:
    """One panel per slider: rows are SLIDER_VALUES, columns the digits 0-9 of one seed."""
    from matplotlib.figure import Figure  # a training extra, not in requirements.txt

    digits = np.arange(gen.n_classes)
    z = seeds_noise(np.full(len(digits), seed), gen.z_size)
    figure = Figure(figsize=(10, 3.9), layout="constrained")
    for k, (name, axes) in enumerate(zip(HANDWRITING, figure.subplots(1, len(HANDWRITING)), strict=True)):
        pictures = to_uint8(
            slider_pictures(gen, directions, k, z, digits).swapaxes(0, 1).reshape(-1, 1, 28, 28)
        )
        axes.imshow(tile(pictures, len(SLIDER_VALUES), len(digits)), cmap="gray", vmin=0, vmax=255)
        axes.set_title(name, fontsize=10)
        axes.set_yticks(
            np.arange(len(SLIDER_VALUES)) * 28 + 13.5, [f"{v:+g}" for v in SLIDER_VALUES], fontsize=7
        )
        axes.set_xticks(np.arange(len(digits)) * 28 + 13.5, [str(d) for d in digits], fontsize=7)
    figure.suptitle(f"handwriting sliders from -1 (top) to +1 (bottom), seed {seed}", fontsize=10)
    figure.savefig(path, dpi=110)


def table(report: dict) -> str:
    """The sliders' lines of evaluate.py's summary."""
    lines = [f"handwriting sliders, each from -1 to 1 ({report['samples']} samples):"]
    for name, s in report["sliders"].items():
        ends = ", ".join(
            f"{end} {100 * a['mean']:.1f}% (lowest {100 * a['min']:.1f}%)" for end, a in s["accuracy"].items()
        )
        lines.append(
            f"  {name:<9} rho {s['rho']:.3f}, others move {s['cross_ratio']:.2f} of its own, accuracy {ends}"
        )
    lines.append(f"handwriting targets: {'PASS' if report['pass'] else 'FAIL'}")
    return "\n".join(lines)
