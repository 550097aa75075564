"""Training the MNIST classifier that judges the generator: augmentation, Trainer and test accuracy.

The classifier is trained once and shipped (weights/classifier.npz); cli/train_classifier.py wires
train_classifier.py's flags to these functions.
"""

import argparse
from collections.abc import Callable

import chainer
import chainer.links as L
import numpy as np
from chainer.datasets import TransformDataset
from chainer.training import StandardUpdater, Trainer, extensions

from model.classifier import Classifier, predict


def random_shift(shift: int, rng: np.random.RandomState) -> Callable[[tuple], tuple]:
    """Augmentation: move the digit by up to `shift` pixels each way, filling with black."""

    def transform(example: tuple) -> tuple:
        x, label = example
        if shift == 0:
            return x, label
        _, h, w = x.shape
        padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift)))
        dy, dx = rng.randint(0, 2 * shift + 1, size=2)
        return padded[:, dy : dy + h, dx : dx + w], label

    return transform


def build_trainer(args: argparse.Namespace, train_set, test_set, device: chainer.backend.Device) -> Trainer:
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
    updater = StandardUpdater(train_iter, optimizer, device=device)
    trainer = Trainer(updater, (args.epoch, "epoch"), out=str(args.out))

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


def accuracy_on(clf: Classifier, test_set) -> float:
    """Fraction of the test images whose most probable class is their label."""
    images, labels = test_set._datasets
    probs, _ = predict(clf, images)
    return float(np.mean(probs.argmax(axis=1) == labels))
