"""Training throughput: images/s of full D+G iterations of the trainer train.py runs.

    python -m bench.train_speed --device -1 --batchsize 64 --iterations 30
    python -m bench.train_speed --device 0                      # GPU: CuPy end to end
    python -m bench.train_speed --kernels chainer               # Chainer's own CPU convolutions
    python -m bench.train_speed --dis projection                # the projection discriminator

Uses random images (no data set needed); the work per iteration is the same as on MNIST.
"""

import argparse
import json
import time

import chainer
import numpy as np
from chainer.datasets import TupleDataset

from bench.machine import machine_info
from model import cpu_conv
from model.net import DISCRIMINATORS
from training.cli import parse_args
from training.trainer import build_trainer


def synchronize(device) -> None:
    """Wait for queued GPU work, so that the clock measures it."""
    if device.xp is not np:
        device.device.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="-1", help="Chainer device spec")
    parser.add_argument("--batchsize", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--gen-ch", type=int, default=128)
    parser.add_argument("--dis-ch", type=int, default=64)
    parser.add_argument("--dis", choices=tuple(DISCRIMINATORS), default="planes", help="discriminator design")
    parser.add_argument(
        "--kernels", choices=("fast", "chainer"), default="fast", help="CPU convolutions (model/cpu_conv.py)"
    )
    args = parser.parse_args()

    device = chainer.get_device(args.device)
    device.use()
    rng = np.random.RandomState(0)
    dataset = TupleDataset(
        rng.rand(1024, 1, 28, 28).astype(np.float32), rng.randint(0, 10, 1024).astype(np.int32)
    )
    train_args = parse_args(
        [
            "--batchsize",
            str(args.batchsize),
            "--gen-ch",
            str(args.gen_ch),
            "--dis-ch",
            str(args.dis_ch),
            "--dis",
            args.dis,
            "--out",
            "/tmp/bench-train-speed",
        ]
    )
    updater = build_trainer(train_args, dataset, device).updater
    if args.kernels == "chainer":
        cpu_conv.uninstall()  # build_trainer installed the fast ones

    for _ in range(args.warmup):
        updater.update()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.iterations):
        updater.update()
    synchronize(device)
    seconds = time.perf_counter() - start

    arrays = [p.array for opt in updater.get_all_optimizers().values() for p in opt.target.params()]
    on_device = all(isinstance(a, device.xp.ndarray) for a in arrays)
    print(
        json.dumps(
            {
                "benchmark": "train_speed",
                "device": str(device),
                "batchsize": args.batchsize,
                "gen_ch": args.gen_ch,
                "dis_ch": args.dis_ch,
                "dis": args.dis,
                "iterations": args.iterations,
                "kernels": args.kernels,
                "images_per_s": round(args.batchsize * args.iterations / seconds, 1),
                "ms_per_iteration": round(1000 * seconds / args.iterations, 2),
                "all_parameters_on_device": on_device,
                "machine": machine_info(device),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
