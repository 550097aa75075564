"""The conditional GAN's Chainer Trainer: networks, optimizers, updater and extensions, and the export.

train.py builds one from its flags; tests and bench/train_speed.py build one from the same flags.
"""

import argparse
import math
from pathlib import Path

import chainer
import numpy as np
from chainer.training import Trainer, extensions, triggers

from model.export import save_generator
from model.files import WeightsError
from model.handwriting import SHIPPED_CLASSIFIER, HandwritingError, fit_with_classifier
from model.images import png_bytes
from model.net import Generator, ProjectionDiscriminator
from training.extensions import (
    EMA_WARMUP,
    GeneratorAverage,
    LinearDecay,
    RunRecord,
    SnapshotWriter,
    export_generator,
    generator_metadata,
    preview,
    preview_grid,
)
from training.optimizer import FlatAdam
from training.stopping import SNAPSHOT_NAME, StopOnSignal
from training.updater import ConditionalGANUpdater, DeviceData

COMMUNICATORS = ("naive", "pure_nccl")  # ChainerMN's names: CPU processes, or one GPU per process


class EveryOrAtEnd:
    """Fires every `iterations` iterations (None: every epoch) and at the end of training.

    Its state is saved in snapshots, so a resumed run fires where an uninterrupted one would.
    """

    def __init__(self, iterations: int | None, epochs: int):
        every = (1, "epoch") if iterations is None else (iterations, "iteration")
        self.every = triggers.IntervalTrigger(*every)
        self.end = triggers.IntervalTrigger(epochs, "epoch")

    def __call__(self, trainer: Trainer) -> bool:
        return self.every(trainer) | self.end(trainer)

    def serialize(self, serializer: chainer.AbstractSerializer) -> None:
        self.every.serialize(serializer["every"])
        self.end.serialize(serializer["end"])


def build_trainer(args: argparse.Namespace, dataset, device: chainer.backend.Device, comm=None) -> Trainer:
    """Networks, optimizers, updater and extensions, ready to run.

    With a ChainerMN communicator `comm`, `dataset` is rank 0's (the others may pass None): each
    process trains on its shard, and rank 0 alone reports, previews, snapshots and exports.
    """
    np.random.seed(args.seed)
    gen = Generator(ch=args.gen_ch)
    dis = ProjectionDiscriminator(ch=args.dis_ch, classifier=args.class_weight > 0)
    if comm is not None:
        from training import distributed  # only here: a single process needs neither ChainerMN nor MPI
    gen.to_device(device)
    dis.to_device(device)
    optimizers = []
    for net in (gen, dis):
        optimizer = FlatAdam(alpha=args.lr, beta1=args.beta1)
        optimizer.setup(net)
        optimizers.append(optimizer if comm is None else distributed.averaging_gradients(optimizer, comm))

    # Under MPI the shards have equal lengths, so the processes shuffle and draw alike and keep
    # equal random states: rank 0's snapshot then resumes every process.
    shard = dataset if comm is None else distributed.shard(dataset, comm)
    rng = np.random.RandomState(args.seed)
    data = DeviceData(shard, device)
    iterator = chainer.iterators.SerialIterator(
        np.arange(len(data)), args.batchsize, order_sampler=chainer.iterators.ShuffleOrderSampler(rng)
    )
    process = {} if comm is None else {"rank": comm.rank, "size": comm.size}
    updater = ConditionalGANUpdater(
        iterator, data, *optimizers, device=device, rng=rng, class_weight=args.class_weight, **process
    )
    trainer = Trainer(updater, (args.epoch, "epoch"), out=str(args.out))
    end = last_iteration(args, len(shard))
    trainer.extend(LinearDecay(args.lr, decay_start(args, end), end))
    if comm is None or comm.rank == 0:
        snapshot = extend_writers(trainer, args, gen, run_info(args, dataset, device, end, comm))
        if comm is None:  # under MPI the processes would stop at different steps and wait for each other
            trainer.extend(StopOnSignal(snapshot))
    return trainer


def last_iteration(args: argparse.Namespace, shard_size: int) -> int:
    """The iteration at which --epoch epochs of `shard_size` images end."""
    return math.ceil(args.epoch * shard_size / args.batchsize)


def decay_start(args: argparse.Namespace, end: int) -> int:
    """The iteration from which the learning rates fall, as a share of the run so that it holds for
    any data size and --epoch."""
    return round(args.lr_decay_start * end)


def extend_writers(
    trainer: Trainer, args: argparse.Namespace, gen: Generator, info: dict
) -> chainer.training.Extension:
    """The generator average and everything that reports or writes files; returns the snapshot."""
    average = GeneratorAverage(gen, args.ema)
    trainer.extend(average)
    record = RunRecord(info)
    trainer.extend(record)
    # Triggers keep state, so each extension gets its own.
    snapshot = extensions.snapshot(filename=SNAPSHOT_NAME, writer=SnapshotWriter())
    trainer.extend(snapshot, trigger=EveryOrAtEnd(args.snapshot_interval, args.epoch))
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
    return snapshot


def exported_generator(trainer: Trainer, ema: float) -> Generator:
    """The weight average, or with --ema 0 the last iterate (a snapshot of an averaged run holds it too)."""
    if ema == 0:
        return trainer.updater.get_optimizer("gen").target
    return trainer.get_extension("GeneratorAverage").averaged


def export(trainer: Trainer, ema: float, folder: Path) -> None:
    """generator.npz, generator.json and preview.png of the generator that --ema picks, into `folder`.

    The metadata is the snapshot's recipe, so that it says how these weights were made. The
    handwriting sliders' directions are fitted with the shipped classifier; a generator whose
    pictures it cannot read well enough (one trained briefly) is exported without them.
    """
    gen = exported_generator(trainer, ema)
    recipe = trainer.get_extension("RunRecord").recipe()
    if ema == 0:  # the last iterate, whatever the run averaged
        recipe["ema_decay"] = 0.0
    try:
        handwriting = fit_with_classifier(gen, SHIPPED_CLASSIFIER)
    except (HandwritingError, WeightsError) as error:
        handwriting = None
        print(f"exporting without handwriting sliders: {error}")
    metadata = generator_metadata(trainer, recipe)
    save_generator(gen, folder, metadata, preview=png_bytes(preview_grid(gen)), handwriting=handwriting)


def run_info(args: argparse.Namespace, dataset, device: chainer.backend.Device, end: int, comm=None) -> dict:
    """The whole recipe for generator.json, so that it says how to make these weights again; the
    generator's widths and options are in its architecture."""
    info = {
        "data": str(args.data) if args.data else "chainer.datasets.get_mnist",
        "train_images": len(dataset),
        "planned_epochs": args.epoch,
        "last_iteration": end,
        "seed": args.seed,
        "batchsize": args.batchsize,
        "lr": args.lr,
        "beta1": args.beta1,
        "lr_decay_start": args.lr_decay_start,
        "lr_decay_start_iteration": decay_start(args, end),
        "discriminator": ProjectionDiscriminator.KIND,
        "discriminator_ch": args.dis_ch,
        "loss": ConditionalGANUpdater.LOSS,
        "class_weight": args.class_weight,
        "ema_decay": args.ema,
        "ema_warmup": EMA_WARMUP,
        "device": str(device),
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
