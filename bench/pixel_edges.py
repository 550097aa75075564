"""How close the served pixels come to a grey level's edge, against how far other CPUs can move them.

    python -m bench.pixel_edges                    # 2,000 states like the page's, the shipped weights

A pixel is rint(255 * v). Another machine's kernels, or another batch, sum each product in another
order, which moves v a little; the pixel changes only where v lies nearer a rounding edge (k + 1/2)
than that move. This prints, for the folded generator in float64 (served) and in float32 (as before):

- `bound`: an a-priori bound on how far any order of the sums can move 255 v, per pixel (the
  standard model of floating-point sums: each sum of K terms is off by at most gamma_K = K u / (1 - K u)
  times the sum of the terms' sizes, each product and activation by u of its size; carried through
  the layers with each layer's weights in absolute value), its largest and median value;
- `moved`: the largest move measured here, between batches of 1 and of all the states, and against
  the same sums in extended precision (numpy.longdouble; float64 only);
- `nearest_edge` and `within_bound`: how many pixels lie within their bound of an edge (only these
  could differ between machines); `edge_density`: pixels within 1e-3 of an edge, per pixel and grey
  level, from which `expected_per_million_pictures` = 1e6 * 784 * 2 * density * (the mean bound, or
  the largest move measured): how many pictures in a million hold a pixel that close to an edge.
The float32 figures are only measured: the bound means nothing at float32's roundoff (it exceeds a
grey level).
"""

import argparse
import json

import numpy as np

from bench.machine import machine_info
from model.cpu_kernels import deconvolve
from model.export import load_generator
from model.images import to_uint8
from model.inference import HALF, IMAGE_SIZE, QUARTER, FoldedGenerator
from model.sampling import seeds_noise

UNIT_ROUNDOFF = {np.float64: 2.0**-53, np.float32: 2.0**-24}
DECONVOLUTION = ((2, 2), (1, 1))  # both layers: stride 2, padding 1


def page_states(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise of random seeds and label vectors as the sliders make them: one digit, a pair, any mix."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, 10))
    for i, kind in enumerate(np.arange(n) % 3):
        if kind == 0:
            labels[i, rng.integers(10)] = 1
        elif kind == 1:
            labels[i, rng.choice(10, 2, replace=False)] = 1, rng.integers(1001) / 1000
        else:
            labels[i] = rng.integers(1001, size=10) / 1000
    return seeds_noise(rng.integers(0, 2**32, n)), labels.astype(np.float32)


def forward(gen: FoldedGenerator, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """255 v in gen's arithmetic: the served folded generator, its float32 weights in that type."""
    return 255 * gen(z, labels)


def rounding_bound(gen: FoldedGenerator, z: np.ndarray, labels: np.ndarray, unit: float) -> np.ndarray:
    """A bound on |computed - exact| of 255 v per pixel for unit roundoff `unit`, any order of sums."""

    def gamma(k: int) -> float:
        return k * unit / (1 - k * unit)

    inputs = np.abs(np.concatenate((z, labels), axis=1).astype(np.float64))
    la = np.abs(labels.astype(np.float64)) @ np.abs(gen.label_affine)
    size_g0, size_b0, size_g1, size_b1 = np.split(la, gen.split, axis=1)  # |labels| |W|: each term's size
    gain0, bias0, gain1, bias1 = np.split(labels.astype(np.float64) @ gen.label_affine, gen.split, axis=1)
    err_g0, err_b0 = gamma(10) * size_g0, gamma(10) * size_b0
    err_g1, err_b1 = gamma(10) * size_g1, gamma(10) * size_b1
    fc = inputs @ np.abs(gen.fc_w) + np.abs(gen.fc_b)
    err = gamma(gen.fc_w.shape[0] + 1) * fc
    scaled = fc * (np.abs(gain0) + 1 + err_g0)  # sizes, with their own errors, bound the products
    err = err * (np.abs(gain0) + 1 + err_g0) + fc * err_g0 + err_b0 + 3 * unit * (scaled + np.abs(bias0))
    sizes = (scaled + np.abs(bias0)).reshape(len(z), gen.ch, QUARTER, QUARTER)
    err = err.reshape(sizes.shape)  # the ReLU moves nothing further (1-Lipschitz)
    for taps, bias, side, gains in (
        (gen.dc1_taps, gen.dc1_b, HALF, (gain1, err_g1, bias1, err_b1)),
        (gen.dc2_taps, gen.dc2_b, IMAGE_SIZE, None),
    ):
        taps, bias = np.abs(taps), np.abs(bias)
        terms = taps.shape[0] // 2 * taps.shape[1] // 2 * taps.shape[3] + 1  # 4 taps x channels + bias
        out = deconvolve(sizes, taps, bias, *DECONVOLUTION, (side, side))
        err = deconvolve(err, taps, None, *DECONVOLUTION, (side, side)) + gamma(terms) * out
        sizes = out
        if gains is not None:
            gain, err_gain, shift, err_shift = (g[:, :, None, None] for g in gains)
            scaled = sizes * (np.abs(gain) + 1 + err_gain)
            err = err * (np.abs(gain) + 1 + err_gain) + sizes * err_gain + err_shift
            err += 3 * unit * (scaled + np.abs(shift))
            sizes = scaled + np.abs(shift)
    # v = tanh(h / 2) / 2 + 1 / 2 moves by at most a quarter of h's error, plus tanh's own (a few
    # units in the last place in any libm or SIMD loop: 4 allowed) and three roundings.
    return 255 * (err / 4 + 8 * unit)


def edges(values: np.ndarray) -> np.ndarray:
    """Each value's distance to the nearest rounding edge k + 1/2, in grey levels."""
    return np.abs(values - np.floor(values) - 0.5)


def measure(gen: FoldedGenerator, z, labels, reference=None) -> dict:
    """Moves measured here for gen's arithmetic; with the extended-precision `reference`, the bound too."""
    batched = forward(gen, z, labels)
    single = np.concatenate([forward(gen, z[i : i + 1], labels[i : i + 1]) for i in range(len(z))])
    largest = float(np.abs(single.astype(np.float64) - batched).max())
    differing = (to_uint8(single / 255) != to_uint8(batched / 255)).any(axis=(1, 2))
    result = {"moved": {"batch_1_vs_all": largest}, "pictures_differing_batch_1_vs_all": int(differing.sum())}
    if reference is None:
        return result
    largest = max(largest, float(np.abs(batched.astype(np.longdouble) - reference).max()))
    result["moved"]["vs_extended_precision"] = float(np.abs(batched.astype(np.longdouble) - reference).max())
    bound = rounding_bound(gen, z, labels, UNIT_ROUNDOFF[gen.dtype])
    distance = edges(batched.astype(np.float64))
    density = np.count_nonzero(distance < 1e-3) / (2e-3 * distance.size)  # per pixel and grey level
    per_picture = IMAGE_SIZE**2 * 2 * density
    return {
        **result,
        "bound": {"max": float(bound.max()), "median": float(np.median(bound))},
        "nearest_edge": float(distance.min()),
        "within_bound": int(np.count_nonzero(distance < bound)),
        "edge_density": round(density, 4),
        "expected_per_million_pictures": {
            "at_the_bound": 1e6 * per_picture * float(bound.mean()),
            "at_the_largest_move": 1e6 * per_picture * largest,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights", help="generator folder")
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chainer_gen = load_generator(args.weights)[0]
    z, labels = page_states(args.states, args.seed)
    reference = forward(FoldedGenerator(chainer_gen, np.longdouble), z, labels)
    result = {
        "benchmark": "pixel_edges",
        "states": args.states,
        "pixels": args.states * IMAGE_SIZE**2,
        "float64": measure(FoldedGenerator(chainer_gen), z, labels, reference),
        "float32": measure(FoldedGenerator(chainer_gen, np.float32), z, labels),
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
