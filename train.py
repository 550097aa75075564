"""Train the conditional DCGAN on MNIST with Chainer and export the generator.

python train.py --data ../shared/mnist --epoch 1 --limit 2000 --out result
python train.py --device 0 --epoch 30 --export weights/      # on a GPU (CuPy)
"""

import argparse
import sys
from pathlib import Path

import chainer
import numpy as np
from chainer import training
from chainer.training import extensions
from PIL import Image

from model.data import DataError, load_mnist
from model.export import save_generator
from model.extensions import GeneratorAverage, export_generator, generator_metadata, preview, preview_grid
from model.net import Discriminator, Generator
from model.updater import ConditionalGANUpdater


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, in the Chainer examples' style."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        "-d",
        default="-1",
        help="Chainer device: -1 or @numpy for the CPU, 0 or @cupy:0 for GPU 0",
    )
    parser.add_argument("--epoch", "-e", type=positive_int, default=30, help="epochs to train")
    parser.add_argument("--batchsize", "-b", type=positive_int, default=64, help="images per batch")
    parser.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate")
    parser.add_argument("--beta1", type=unit_float, default=0.5, help="Adam beta1")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and noise")
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("result"),
        help="folder for logs, plots, previews, snapshots and the exported generator",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with the four MNIST IDX .gz files (default: download with Chainer)",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="train on the first N training images only"
    )
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
        "--ema",
        type=unit_float,
        default=0.999,
        help="decay of the generator weights' moving average, which is what gets "
        "previewed and exported (0 = the last iterate)",
    )
    parser.add_argument("--gen-ch", type=positive_int, default=128, help="generator channel width")
    parser.add_argument("--dis-ch", type=positive_int, default=64, help="discriminator channel width")
    return parser.parse_args(argv)


def every_or_at_end(iterations: int, epochs: int):
    """Fires every `iterations` iterations and at the end of training."""
    every = training.triggers.IntervalTrigger(iterations, "iteration")
    end = training.triggers.IntervalTrigger(epochs, "epoch")
    return lambda trainer: every(trainer) | end(trainer)


def build_trainer(args: argparse.Namespace, dataset, device) -> training.Trainer:
    """Networks, optimizers, updater and extensions, ready to run."""
    np.random.seed(args.seed)
    gen = Generator(ch=args.gen_ch)
    dis = Discriminator(ch=args.dis_ch)
    gen.to_device(device)
    dis.to_device(device)
    optimizers = []
    for net in (gen, dis):
        optimizer = chainer.optimizers.Adam(alpha=args.lr, beta1=args.beta1)
        optimizer.setup(net)
        optimizers.append(optimizer)

    rng = np.random.RandomState(args.seed)
    iterator = chainer.iterators.SerialIterator(
        dataset, args.batchsize, order_sampler=chainer.iterators.ShuffleOrderSampler(rng)
    )
    updater = ConditionalGANUpdater(iterator, *optimizers, device=device, rng=rng)
    trainer = training.Trainer(updater, (args.epoch, "epoch"), out=str(args.out))

    average = GeneratorAverage(gen, args.ema)
    trainer.extend(average)
    # Triggers keep state, so each extension gets its own.
    trainer.extend(
        extensions.snapshot(filename="snapshot_iter_{.updater.iteration}"),
        trigger=every_or_at_end(args.snapshot_interval, args.epoch),
    )
    trainer.extend(
        export_generator(
            average.averaged,
            args.out,
            every_or_at_end(args.snapshot_interval, args.epoch),
            run_info(args, dataset),
        )
    )
    trainer.extend(preview(average.averaged, args.out))
    trainer.extend(extensions.LogReport(trigger=(args.log_interval, "iteration")))
    trainer.extend(extensions.PrintReport(["epoch", "iteration", "gen/loss", "dis/loss", "elapsed_time"]))
    trainer.extend(extensions.ProgressBar(update_interval=10))
    if extensions.PlotReport.available():
        trainer.extend(
            extensions.PlotReport(
                ["gen/loss", "dis/loss"],
                "iteration",
                file_name="loss.png",
                trigger=(args.log_interval, "iteration"),
            )
        )
    return trainer


def run_info(args: argparse.Namespace, dataset) -> dict:
    """What the exported metadata says about this run."""
    return {
        "data": str(args.data) if args.data else "chainer.datasets.get_mnist",
        "train_images": len(dataset),
        "seed": args.seed,
        "batchsize": args.batchsize,
        "lr": args.lr,
        "beta1": args.beta1,
        "discriminator_ch": args.dis_ch,
        "ema_decay": args.ema,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def fail(message: str) -> int:
        print(f"train.py: error: {message}", file=sys.stderr)
        return 2

    try:
        device = chainer.get_device(args.device)
        device.use()
    except Exception as error:  # Chainer raises several types for a bad or unusable device spec
        return fail(f"--device {args.device}: {error}")
    try:
        dataset = load_mnist(args.data, args.limit)
    except DataError as error:
        return fail(str(error))

    trainer = build_trainer(args, dataset, device)
    if args.resume is not None:
        try:
            chainer.serializers.load_npz(str(args.resume), trainer)
        except FileNotFoundError:
            return fail(f"--resume {args.resume}: file not found")
        except Exception as error:  # a damaged or foreign npz raises many types
            return fail(f"--resume {args.resume}: not a snapshot of this trainer ({error})")
    trainer.run()

    if args.export is not None:
        gen = trainer.get_extension("GeneratorAverage").averaged
        save_generator(gen, args.export, generator_metadata(trainer, run_info(args, dataset)))
        Image.fromarray(preview_grid(gen)).save(args.export / "preview.png")
        print(f"exported the generator to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
