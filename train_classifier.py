"""Train the MNIST classifier that evaluate.py uses to judge the generator.

python train_classifier.py --data ../shared/mnist            # -> weights/classifier.npz + .json
python train_classifier.py --epoch 2 --out /tmp/clf          # quick try, downloads MNIST
"""

import argparse
import sys
import time
from pathlib import Path

import chainer
import chainer.links as L
import numpy as np
from chainer import training
from chainer.datasets import TransformDataset
from chainer.training import extensions

from evaluation.classifier import Classifier, predict, save_classifier
from training.data import DataError, load_mnist
from training.flags import OneLineParser, add_data_flags, non_negative_int, positive_float, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, in the Chainer examples' style."""
    parser = OneLineParser(prog="train_classifier.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        "-d",
        default="-1",
        help="Chainer device: -1 or @numpy for the CPU, 0 or @cupy:0 for GPU 0",
    )
    parser.add_argument("--epoch", "-e", type=positive_int, default=30, help="epochs to train")
    parser.add_argument("--batchsize", "-b", type=positive_int, default=64, help="images per batch")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate at the start")
    parser.add_argument(
        "--lr-decay",
        type=positive_float,
        default=0.88,
        help="factor applied to the learning rate after every epoch",
    )
    parser.add_argument(
        "--shift",
        type=non_negative_int,
        default=2,
        help="augmentation: random shifts of up to this many pixels (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and augmentation")
    add_data_flags(parser)
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("weights"),
        help="folder for classifier.npz and classifier.json",
    )
    parser.add_argument(
        "--result", type=Path, default=Path("result/classifier"), help="folder for the training log and plots"
    )
    return parser.parse_args(argv)


def random_shift(shift: int, rng: np.random.RandomState):
    """Augmentation: move the digit by up to `shift` pixels each way, filling with black."""

    def transform(example):
        x, label = example
        if shift == 0:
            return x, label
        _, h, w = x.shape
        padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift)))
        dy, dx = rng.randint(0, 2 * shift + 1, size=2)
        return padded[:, dy : dy + h, dx : dx + w], label

    return transform


def build_trainer(args: argparse.Namespace, train_set, test_set, device) -> training.Trainer:
    """Network, optimizer, iterators and extensions, ready to run."""
    np.random.seed(args.seed)  # weight initialisation and dropout masks
    model = L.Classifier(Classifier())
    model.to_device(device)
    optimizer = chainer.optimizers.Adam(alpha=args.lr)
    optimizer.setup(model)

    rng = np.random.RandomState(args.seed)
    train_iter = chainer.iterators.SerialIterator(
        TransformDataset(train_set, random_shift(args.shift, rng)),
        args.batchsize,
        order_sampler=chainer.iterators.ShuffleOrderSampler(rng),
    )
    test_iter = chainer.iterators.SerialIterator(test_set, 500, repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device)
    trainer = training.Trainer(updater, (args.epoch, "epoch"), out=str(args.result))

    # The test set is only reported here, never used to pick an epoch: the last epoch is shipped.
    trainer.extend(extensions.Evaluator(test_iter, model, device=device))
    trainer.extend(extensions.ExponentialShift("alpha", args.lr_decay), trigger=(1, "epoch"))
    trainer.extend(extensions.LogReport())
    trainer.extend(
        extensions.PrintReport(
            [
                "epoch",
                "main/loss",
                "validation/main/loss",
                "main/accuracy",
                "validation/main/accuracy",
                "elapsed_time",
            ]
        )
    )
    trainer.extend(extensions.ProgressBar(update_interval=20))
    if extensions.PlotReport.available():
        trainer.extend(
            extensions.PlotReport(
                ["main/accuracy", "validation/main/accuracy"], "epoch", file_name="accuracy.png"
            )
        )
    return trainer


def test_accuracy(clf: Classifier, test_set) -> float:
    """Fraction of the test images whose most probable class is their label."""
    images, labels = test_set._datasets
    probs, _ = predict(clf, images)
    return float(np.mean(probs.argmax(axis=1) == labels))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def fail(message: str) -> int:
        print(f"train_classifier.py: error: {message}", file=sys.stderr)
        return 2

    try:
        device = chainer.get_device(args.device)
        device.use()
    except Exception as error:  # Chainer raises several types for a bad or unusable device spec
        return fail(f"--device {args.device}: {error}")
    try:
        train_set = load_mnist(args.data, args.limit)
        test_set = load_mnist(args.data, train=False)
    except DataError as error:
        return fail(str(error))
    except OSError as error:  # Chainer's download: no network, no disk space, ...
        return fail(f"could not download MNIST with Chainer ({error}); pass --data FOLDER")

    print(f"training on {len(train_set)} images, testing on {len(test_set)}")
    trainer = build_trainer(args, train_set, test_set, device)
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start

    clf = trainer.updater.get_optimizer("main").target.predictor
    clf.to_device("@numpy")
    accuracy = test_accuracy(clf, test_set)
    metadata = save_classifier(
        clf,
        args.out,
        {
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
        },
    )
    print(
        f"test accuracy {accuracy:.4f} after {seconds:.0f} s; "
        f"wrote {args.out / 'classifier.npz'} (sha256 {metadata['sha256'][:12]}…)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
