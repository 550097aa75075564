"""train_classifier.py's command line: its flags, the training run and the files it ships."""

import argparse
import sys
import time
from pathlib import Path

import chainer

from cli.flags import (
    OneLineParser,
    add_data_flags,
    count_at_least,
    fail,
    positive_float,
    unwritable,
    written,
)
from mnist.data import DataError, load_mnist
from model.classifier import save_classifier
from training.classifier import accuracy_on, build_trainer
from training.signals import Interrupted, interrupting

PROG = "train_classifier.py"


def build_parser() -> OneLineParser:
    """The flags, in the Chainer examples' style."""
    parser = OneLineParser(
        prog=PROG, description="Train the MNIST classifier that evaluate.py uses to judge the generator."
    )
    parser.add_argument(
        "--device",
        "-d",
        default="-1",
        help="Chainer device: -1 or @numpy for the CPU, 0 or @cupy:0 for GPU 0",
    )
    parser.add_argument(
        "--epoch",
        "-e",
        type=count_at_least(1),
        default=5,
        help="epochs to train (the shipped classifier's: 5)",
    )
    parser.add_argument("--batchsize", "-b", type=count_at_least(1), default=64, help="images per batch")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate at the start")
    parser.add_argument(
        "--lr-decay",
        type=positive_float,
        default=0.4644,
        help="factor applied to the learning rate after every epoch (the shipped classifier's: 0.4644, "
        "0.88 for every 10,000 of the 60,000 training images)",
    )
    parser.add_argument(
        "--shift",
        type=count_at_least(0),
        default=2,
        help="augmentation: random shifts of up to this many pixels (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and augmentation")
    add_data_flags(parser)
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("result/classifier"),
        help="folder for the training log and plots, as train.py's --out (default result/classifier)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        default=Path("weights"),
        help="folder for classifier.npz and classifier.json, as train.py's --export (default weights)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; a bad one exits with one line and status 2."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, test and save the classifier: 0, or 2 after a one-line error."""
    args = parse_args(argv)
    try:
        device = chainer.get_device(args.device)
        device.use()
    except Exception as error:  # Chainer raises several types for a bad or unusable device spec
        return fail(PROG, f"--device {args.device}: {error}")
    try:
        train_set = load_mnist(args.data, args.limit)
        test_set = load_mnist(args.data, train=False)
    except DataError as error:
        return fail(PROG, str(error))
    except OSError as error:  # Chainer's download: no network, no disk space, ...
        return fail(PROG, f"could not download MNIST with Chainer ({error}); pass --data FOLDER")
    if len(train_set) < args.batchsize:
        return fail(PROG, f"--batchsize {args.batchsize}: more than the {len(train_set)} training images")
    for flag, folder in (("--export", args.export), ("--out", args.out)):
        if error := unwritable(flag, folder):
            return fail(PROG, error)

    print(f"training on {len(train_set)} images, testing on {len(test_set)}")
    trainer = build_trainer(args, train_set, test_set, device)
    start = time.perf_counter()
    try:
        with interrupting():
            trainer.run(show_loop_exception_msg=False)
    except Interrupted as stopped:  # no snapshots: the run starts again
        print(f"{PROG}: {stopped}; nothing was written to {args.export}", file=sys.stderr)
        return 128 + stopped.signum
    except OSError as error:  # the log or the plots in --out
        return fail(PROG, f"{written(error)}; nothing was written to {args.export}")
    seconds = time.perf_counter() - start

    clf = trainer.updater.get_optimizer("main").target.predictor
    clf.to_device("@numpy")
    accuracy = accuracy_on(clf, test_set)
    recipe = {
        "test_accuracy": round(accuracy, 4),
        "test_images": len(test_set),
        "train_images": len(train_set),
        "data": str(args.data) if args.data else "chainer.datasets.get_mnist",
        "epochs": args.epoch,
        "batchsize": args.batchsize,
        "lr": args.lr,
        "lr_decay": args.lr_decay,
        "augmentation": f"random shifts of up to {args.shift} px" if args.shift else "none",
        "seed": args.seed,
        "train_seconds": round(seconds, 1),
        "device": str(device),
    }
    try:
        metadata = save_classifier(clf, args.export, recipe)
    except OSError as error:
        return fail(PROG, f"{written(error)}; the files in {args.export} are as they were")
    print(
        f"test accuracy {accuracy:.4f} after {seconds:.0f} s; "
        f"wrote {args.export / 'classifier.npz'} (sha256 {metadata['sha256'][:12]}…)"
    )
    return 0
