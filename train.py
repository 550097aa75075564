"""Train the conditional DCGAN on MNIST with Chainer and export the generator.

python train.py --data ../shared/mnist --epoch 1 --limit 2000 --out result
python train.py --device 0 --epoch 30 --export weights/      # on a GPU (CuPy)
mpiexec -n 8 python train.py --communicator pure_nccl --global-bn   # data-parallel on 8 GPUs
"""

import argparse
import math
import sys
from pathlib import Path

import chainer
import numpy as np
from chainer import training
from chainer.training import extensions
from PIL import Image

from model import cpu_conv
from model.export import save_generator
from model.files import atomic_write
from model.net import DISCRIMINATORS, Generator
from training.data import DataError, load_mnist
from training.extensions import (
    GeneratorAverage,
    LinearDecay,
    RunRecord,
    export_generator,
    generator_metadata,
    preview,
    preview_grid,
)
from training.flags import (
    OneLineParser,
    add_data_flags,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from training.updater import LOSSES, ConditionalGANUpdater

COMMUNICATORS = ("naive", "pure_nccl")  # ChainerMN's names: CPU processes, or one GPU per process


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, in the Chainer examples' style."""
    parser = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        "-d",
        default=None,
        help="Chainer device: -1 or @numpy for the CPU (default), 0 or @cupy:0 for GPU 0",
    )
    parser.add_argument("--epoch", "-e", type=positive_int, default=30, help="epochs to train")
    parser.add_argument(
        "--batchsize", "-b", type=positive_int, default=64, help="images per batch (per process under MPI)"
    )
    parser.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate")
    parser.add_argument("--beta1", type=unit_float, default=0.5, help="Adam beta1")
    parser.add_argument(
        "--lr-decay-from",
        type=non_negative_int,
        default=None,
        metavar="ITERATION",
        help="from this iteration on, lower both learning rates linearly to 0 at the end of training "
        "(default: constant); a run resumed from a snapshot taken without it decays from there",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and noise")
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("result"),
        help="folder for logs, plots, previews, snapshots and the exported generator",
    )
    add_data_flags(parser)
    parser.add_argument(
        "--resume", "-r", type=Path, default=None, help="trainer snapshot (snapshot_iter_N) to continue from"
    )
    parser.add_argument(
        "--snapshot-interval",
        type=positive_int,
        default=1000,
        help="iterations between snapshots and generator exports",
    )
    parser.add_argument("--log-interval", type=positive_int, default=100, help="iterations between log lines")
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        help="at the end, also write the generator and preview.png here (e.g. weights/)",
    )
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="with --resume and --export: write that snapshot's generator (its weight average, or with "
        "--ema 0 its last iterate) to --export without training, e.g. to ship one checkpoint of a long run",
    )
    parser.add_argument(
        "--ema",
        type=unit_float,
        default=0.999,
        help="decay of the generator weights' moving average, which is what gets "
        "previewed and exported (0 = the last iterate)",
    )
    parser.add_argument(
        "--augment",
        type=non_negative_int,
        default=0,
        metavar="PIXELS",
        help="show the discriminator real and generated images shifted at random by up to this many "
        "pixels (0 = off); fights D memorising a small training set",
    )
    parser.add_argument("--gen-ch", type=positive_int, default=128, help="generator channel width")
    parser.add_argument(
        "--label-bn",
        action="store_true",
        help="the label also sets the gain and bias of the generator's batch norms (conditional batch norm)",
    )
    parser.add_argument("--dis-ch", type=positive_int, default=64, help="discriminator channel width")
    parser.add_argument(
        "--dis",
        choices=tuple(DISCRIMINATORS),
        default="planes",
        help="discriminator design: planes (the label as ten constant image planes, batch norm) or "
        "projection (the label projected onto the image features, spectral norm); a snapshot "
        "resumes only with the design it was trained with",
    )
    parser.add_argument(
        "--dis-steps",
        type=positive_int,
        default=1,
        help="discriminator steps per generator step, each on a batch of its own (an epoch then "
        "takes that many times fewer iterations)",
    )
    parser.add_argument(
        "--loss",
        choices=tuple(LOSSES),
        default="nonsaturating",
        help="GAN loss: nonsaturating (softplus, the DCGAN paper's) or hinge (the projection "
        "discriminator paper's); a snapshot resumes with either",
    )
    parser.add_argument(
        "--communicator",
        choices=COMMUNICATORS,
        default=None,
        help="train data-parallel under mpiexec with this ChainerMN communicator: naive (CPU) or "
        "pure_nccl (one GPU per process, numbered by its rank on its node); needs requirements-mpi.txt",
    )
    parser.add_argument(
        "--global-bn",
        action="store_true",
        help="with --communicator: batch normalization over the global batch of all processes "
        "(ChainerMN's MultiNodeBatchNormalization) instead of each process's own",
    )
    args = parser.parse_args(argv)
    if args.global_bn and args.communicator is None:
        parser.error("--global-bn needs --communicator")
    if args.global_bn and args.label_bn:  # create_mnbn_model gives the copy a gain and bias that bn lacks
        parser.error("--global-bn does not work with --label-bn: ChainerMN cannot copy its batch norms")
    if args.export_only and (args.resume is None or args.export is None):
        parser.error("--export-only needs --resume and --export")
    if args.communicator == "pure_nccl" and args.device is not None:
        parser.error("--device: --communicator pure_nccl gives each process the GPU of its rank on its node")
    return args


class EveryOrAtEnd:
    """Fires every `iterations` iterations and at the end of training.

    Its state is saved in snapshots, so a resumed run fires where an uninterrupted one would.
    """

    def __init__(self, iterations: int, epochs: int):
        self.every = training.triggers.IntervalTrigger(iterations, "iteration")
        self.end = training.triggers.IntervalTrigger(epochs, "epoch")

    def __call__(self, trainer: training.Trainer) -> bool:
        return self.every(trainer) | self.end(trainer)

    def serialize(self, serializer) -> None:
        self.every.serialize(serializer["every"])
        self.end.serialize(serializer["end"])


def build_trainer(args: argparse.Namespace, dataset, device, comm=None) -> training.Trainer:
    """Networks, optimizers, updater and extensions, ready to run.

    With a ChainerMN communicator `comm`, `dataset` is rank 0's (the others may pass None): each
    process trains on its shard, and rank 0 alone reports, previews, snapshots and exports.
    """
    np.random.seed(args.seed)
    cpu_conv.install()  # same results up to float rounding, 1.5x the CPU throughput (bench/train_speed.py)
    gen = Generator(ch=args.gen_ch, label_bn=args.label_bn)
    dis = DISCRIMINATORS[args.dis](ch=args.dis_ch)
    if comm is not None:
        from training import distributed

        if args.global_bn:
            gen, dis = (distributed.global_batch_norm(net, comm) for net in (gen, dis))
    gen.to_device(device)
    dis.to_device(device)
    optimizers = []
    for net in (gen, dis):
        optimizer = chainer.optimizers.Adam(alpha=args.lr, beta1=args.beta1)
        optimizer.setup(net)
        optimizers.append(optimizer if comm is None else distributed.averaging_gradients(optimizer, comm))

    # Under MPI the shards have equal lengths, so the processes shuffle and draw alike and keep
    # equal random states: rank 0's snapshot then resumes every process.
    shard = dataset if comm is None else distributed.shard(dataset, comm)
    rng = np.random.RandomState(args.seed)
    iterator = chainer.iterators.SerialIterator(
        shard, args.batchsize, order_sampler=chainer.iterators.ShuffleOrderSampler(rng)
    )
    process = {} if comm is None else {"rank": comm.rank, "size": comm.size}
    updater = ConditionalGANUpdater(
        iterator,
        *optimizers,
        device=device,
        rng=rng,
        max_shift=args.augment,
        loss=args.loss,
        dis_steps=args.dis_steps,
        **process,
    )
    trainer = training.Trainer(updater, (args.epoch, "epoch"), out=str(args.out))
    if args.lr_decay_from is not None:
        trainer.extend(LinearDecay(args.lr, args.lr_decay_from, last_iteration(args, len(shard))))
    if comm is None or comm.rank == 0:
        extend_writers(trainer, args, gen, run_info(args, dataset, comm))
    return trainer


def last_iteration(args: argparse.Namespace, shard_size: int) -> int:
    """The iteration at which --epoch epochs of `shard_size` images end."""
    return math.ceil(args.epoch * shard_size / (args.batchsize * args.dis_steps))


def extend_writers(trainer: training.Trainer, args: argparse.Namespace, gen, info: dict) -> None:
    """The generator average and everything that reports or writes files."""
    average = GeneratorAverage(gen, args.ema)
    trainer.extend(average)
    record = RunRecord(info)
    trainer.extend(record)
    # Triggers keep state, so each extension gets its own.
    trainer.extend(
        extensions.snapshot(filename="snapshot_iter_{.updater.iteration}"),
        trigger=EveryOrAtEnd(args.snapshot_interval, args.epoch),
    )
    trainer.extend(
        export_generator(average.averaged, args.out, EveryOrAtEnd(args.snapshot_interval, args.epoch), record)
    )
    trainer.extend(preview(average.averaged, args.out))
    trainer.extend(extensions.LogReport(trigger=EveryOrAtEnd(args.log_interval, args.epoch)))
    trainer.extend(extensions.PrintReport(["epoch", "iteration", "gen/loss", "dis/loss", "elapsed_time"]))
    trainer.extend(extensions.ProgressBar(update_interval=10))
    if extensions.PlotReport.available():
        trainer.extend(
            extensions.PlotReport(
                ["gen/loss", "dis/loss"],
                "iteration",
                file_name="loss.png",
                trigger=EveryOrAtEnd(args.log_interval, args.epoch),
            )
        )


def exported_generator(trainer: training.Trainer, ema: float):
    """The weight average, or with --ema 0 the last iterate (a snapshot of an averaged run holds it too)."""
    if ema == 0:
        return trainer.updater.get_optimizer("gen").target
    return trainer.get_extension("GeneratorAverage").averaged


def run_info(args: argparse.Namespace, dataset, comm=None) -> dict:
    """What the exported metadata says about this run."""
    info = {
        "data": str(args.data) if args.data else "chainer.datasets.get_mnist",
        "train_images": len(dataset),
        "seed": args.seed,
        "batchsize": args.batchsize,
        "lr": args.lr,
        "beta1": args.beta1,
        "lr_decay_from": args.lr_decay_from,
        "discriminator": args.dis,
        "discriminator_ch": args.dis_ch,
        "loss": args.loss,
        "dis_steps": args.dis_steps,
        "ema_decay": args.ema,
        "augment_pixels": args.augment,
    }
    if comm is not None:
        info["processes"] = comm.size
    return info


def shared_error(comm, error: str | None) -> str | None:
    """Under MPI, the first process's error on every process, so that all of them stop together."""
    if comm is not None:
        errors = comm.allreduce_obj([error] if error else [])
        error = errors[0] if errors else None
    return error


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    comm = None
    if args.communicator is not None:
        try:
            from training import distributed

            comm = distributed.communicator(args.communicator)
        except Exception as error:  # no mpi4py or MPI library; for pure_nccl no CuPy, NCCL or GPU
            print(f"train.py: error: --communicator {args.communicator}: {error}", file=sys.stderr)
            return 2
    rank = 0 if comm is None else comm.rank

    def fail(message: str) -> int:
        if rank == 0:
            print(f"train.py: error: {message}", file=sys.stderr)
        return 2

    spec = distributed.gpu_of(comm) if args.communicator == "pure_nccl" else args.device or "-1"
    error = None
    try:
        device = chainer.get_device(spec)
        device.use()
    except Exception as exception:  # Chainer raises several types for a bad or unusable device spec
        error = f"--device {spec}: {exception}"
    if error := shared_error(comm, error):
        return fail(error)
    dataset = None
    if rank == 0:  # under MPI, rank 0 reads the data and scatters it
        try:
            dataset = load_mnist(args.data, args.limit)
        except DataError as exception:
            error = str(exception)
    if error := shared_error(comm, error):
        return fail(error)
    if rank == 0 and args.lr_decay_from is not None:
        end = last_iteration(args, math.ceil(len(dataset) / (1 if comm is None else comm.size)))
        if args.lr_decay_from >= end:
            error = f"--lr-decay-from {args.lr_decay_from}: training ends at iteration {end}"
    if error := shared_error(comm, error):
        return fail(error)

    trainer = build_trainer(args, dataset, device, comm)
    if args.resume is not None:  # under MPI, every process loads rank 0's snapshot
        try:
            chainer.serializers.load_npz(str(args.resume), trainer)
        except FileNotFoundError:
            error = f"--resume {args.resume}: file not found"
        except Exception as exception:  # a damaged or foreign npz raises many types
            error = f"--resume {args.resume}: not a snapshot of this trainer ({exception})"
    if error := shared_error(comm, error):
        return fail(error)
    if not args.export_only:
        trainer.run()

    if args.export is not None and rank == 0:
        gen = exported_generator(trainer, args.ema)
        recipe = trainer.get_extension("RunRecord").recipe()
        if args.ema == 0:  # the last iterate, whatever the run averaged
            recipe["ema_decay"] = 0.0
        save_generator(gen, args.export, generator_metadata(trainer, recipe))
        grid = Image.fromarray(preview_grid(gen))
        atomic_write(args.export / "preview.png", lambda tmp: grid.save(tmp, format="PNG"))
        print(f"exported the generator to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
