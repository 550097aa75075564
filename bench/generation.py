"""Generator forward latency at several batch sizes on each path, side by side, and PNG encoding.

    python -m bench.generation                       # the shipped weights/, batches 1, 16, 256
    OPENBLAS_NUM_THREADS=1 taskset -c 0 python -m bench.generation   # one core, as a server thread

The paths: "folded", the NumPy forward pass the web app serves (model/inference.py); "chainer",
Chainer's forward with model/cpu_kernels.py's kernels (training's); "chainer_kernels", Chainer's
forward with its own CPU convolutions. Prints one JSON object: the median of --repeats timed calls
for each path and batch (after one untimed call), per call and per image, the folded path's
largest difference from Chainer's, and PNG encoding of one picture at scale 1 and 10 (the page's
download size).
"""

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.machine import machine_info
from model import cpu_kernels
from model.export import load_generator
from model.images import png_bytes, to_uint8
from model.inference import FoldedGenerator
from model.sampling import generate


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of `call` in milliseconds, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="generator folder")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    gen, metadata = load_generator(args.weights)
    folded = FoldedGenerator(gen)

    def chainer_path(install: Callable[[], None]) -> Callable:
        def forward(z, labels):
            install()
            return generate(gen, z, labels)

        return forward

    paths = {
        "folded": folded,
        "chainer": chainer_path(cpu_kernels.install),
        "chainer_kernels": chainer_path(cpu_kernels.uninstall),
    }
    rng = np.random.default_rng(0)
    forward = {name: {} for name in paths}
    largest_difference = 0.0
    for batch in args.batches:
        z = rng.uniform(-1, 1, (batch, gen.z_size)).astype(np.float32)
        labels = rng.random((batch, gen.n_classes), dtype=np.float32)
        for name, path in paths.items():
            ms = median_ms(lambda path=path, z=z, labels=labels: path(z, labels), args.repeats)
            forward[name][str(batch)] = {"ms_per_call": round(ms, 3), "ms_per_image": round(ms / batch, 4)}
        difference = np.abs(folded(z, labels) - paths["chainer"](z, labels)).max()
        largest_difference = max(largest_difference, float(difference))
    picture = to_uint8(folded(z[:1], labels[:1]))[0]
    encode = {
        f"scale_{scale}": {
            "ms": round(median_ms(lambda scale=scale: png_bytes(picture, scale), args.repeats), 3),
            "bytes": len(png_bytes(picture, scale)),
        }
        for scale in (1, 10)
    }
    result = {
        "benchmark": "generation",
        "generator_ch": gen.ch,
        "weights_sha256": metadata.get("sha256", "?")[:16],
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "forward": forward,
        "folded_vs_chainer_max_abs_difference": largest_difference,
        "png_encode": encode,
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
