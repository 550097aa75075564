"""Training throughput: images/s of full D+G iterations of the trainer train.py runs.

    python -m bench.train_speed --device -1 --batchsize 64 --iterations 30
    python -m bench.train_speed --device 0                      # GPU: CuPy end to end, batch 64 and 256
    python -m bench.train_speed --kernels chainer               # Chainer as it comes, on the CPU

It times train.py's only networks (the generator with conditional batch norm, the projection
discriminator) at each --batchsize (64, the shipped recipe's, and 256 by default). Uses random
images (no data set needed); the work per iteration is the same as on MNIST.
"""

import argparse
import json
import resource
import time

import chainer
import numpy as np
from chainer.datasets import TupleDataset

from bench.machine import machine_info
from cli.train import parse_args, set_up_process
from model.net import ProjectionDiscriminator
from training.trainer import build_trainer


def synchronize(device: chainer.backend.Device) -> None:
    """Wait for queued GPU work, so that the clock measures it."""
    if device.xp is not np:
        device.device.synchronize()


def time_updates(args: argparse.Namespace, batchsize: int, device: chainer.backend.Device) -> dict:
    """Images/s of train.py's updater at `batchsize`, after untimed warm-up iterations."""
    rng = np.random.RandomState(0)
    n = max(1024, batchsize)
    dataset = TupleDataset(rng.rand(n, 1, 28, 28).astype(np.float32), rng.randint(0, 10, n).astype(np.int32))
    flags = ["--batchsize", str(batchsize), "--gen-ch", str(args.gen_ch), "--dis-ch", str(args.dis_ch)]
    updater = build_trainer(parse_args([*flags, "--out", "/tmp/bench-train-speed"]), dataset, device).updater

    for _ in range(args.warmup):
        updater.update()
    synchronize(device)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.iterations):
        updater.update()
    synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    arrays = [p.array for opt in updater.get_all_optimizers().values() for p in opt.target.params()]
    return {
        "batchsize": batchsize,
        "images_per_s": round(batchsize * args.iterations / seconds, 1),
        "ms_per_iteration": round(1000 * seconds / args.iterations, 2),
        # On a shared machine the process's CPU time, unlike the clock, leaves out the time that
        # others held the core (with one BLAS thread on the CPU; a GPU's work is not in it).
        "cpu_ms_per_iteration": round(1000 * cpu_seconds / args.iterations, 2),
        "page_faults_per_iteration": round(faults / args.iterations),
        "all_parameters_on_device": all(isinstance(a, device.xp.ndarray) for a in arrays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="-1", help="Chainer device spec")
    parser.add_argument("--batchsize", type=int, nargs="+", default=[64, 256], help="one or more batch sizes")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--gen-ch", type=int, default=128)
    parser.add_argument("--dis-ch", type=int, default=64)
    parser.add_argument(
        "--kernels",
        choices=("fast", "chainer"),
        default="fast",
        help="fast: train.py's CPU kernels (model/cpu_kernels.py) and allocator settings "
        "(training/memory.py); chainer: Chainer's own kernels and the C library's default allocator",
    )
    args = parser.parse_args()
    if args.kernels == "fast":
        set_up_process()

    device = chainer.get_device(args.device)
    device.use()
    runs = [time_updates(args, batchsize, device) for batchsize in args.batchsize]
    print(
        json.dumps(
            {
                "benchmark": "train_speed",
                "device": str(device),
                "discriminator": ProjectionDiscriminator.KIND,
                "gen_ch": args.gen_ch,
                "dis_ch": args.dis_ch,
                "iterations": args.iterations,
                "kernels": args.kernels,
                "runs": runs,
                "machine": machine_info(device),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
