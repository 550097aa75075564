"""Generator forward latency per image at several batch sizes, and the cost of PNG encoding.

    python -m bench.generation                       # the shipped weights/, batches 1, 16, 256
    python -m bench.generation --kernels chainer     # Chainer's own CPU convolutions

Prints one JSON object: the median of --repeats timed calls for each batch (after one untimed
call), per call and per image, and PNG encoding of one picture at scale 1 and 10 (the page's
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
from model import cpu_conv
from model.export import load_generator
from model.images import png_bytes, to_uint8
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
    parser.add_argument("--kernels", choices=("fast", "chainer"), default="fast")
    args = parser.parse_args()

    (cpu_conv.install if args.kernels == "fast" else cpu_conv.uninstall)()
    gen, metadata = load_generator(args.weights)
    rng = np.random.default_rng(0)
    forward = {}
    for batch in args.batches:
        z = rng.uniform(-1, 1, (batch, gen.z_size)).astype(np.float32)
        labels = np.eye(gen.n_classes, dtype=np.float32)[rng.integers(0, gen.n_classes, batch)]
        ms = median_ms(lambda z=z, labels=labels: generate(gen, z, labels), args.repeats)
        forward[str(batch)] = {"ms_per_call": round(ms, 3), "ms_per_image": round(ms / batch, 4)}
    picture = to_uint8(generate(gen, z[:1], labels[:1]))[0]
    encode = {
        f"scale_{scale}": {
            "ms": round(median_ms(lambda scale=scale: png_bytes(picture, scale), args.repeats), 3),
            "bytes": len(png_bytes(picture, scale)),
        }
        for scale in (1, 10)
    }
    result = {
        "benchmark": "generation",
        "kernels": args.kernels,
        "generator_ch": gen.ch,
        "weights_sha256": metadata.get("sha256", "?")[:16],
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "forward": forward,
        "png_encode": encode,
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
