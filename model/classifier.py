"""The MNIST classifier that judges the generator and reads the app's pictures, and its saved weights.

Its penultimate layer (after ReLU) is the feature space of the Fréchet distance and of the
diversity measure, so the evaluation needs no Inception network: a small CNN trained on MNIST
knows what distinguishes digits, and it runs in seconds on a CPU.
"""

from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np

from model.files import WeightsError, architecture_sizes, load_network, save_network
from model.net import IMAGE_SIZE, N_CLASSES

ARCHITECTURE = "mnist-cnn-conv3x3x4-fc"
WEIGHTS_NAME = "classifier.npz"
# 8x the shipped classifier's sizes, so that a damaged classifier.json cannot ask for terabytes
SIZE_BOUNDS = {"ch": 256, "n_features": 1024, "n_classes": 1024}


def max_pool_2x2(h: chainer.Variable) -> chainer.Variable:
    """2x2 max pooling, stride 2, as a reshape and a max: on the CPU about twice as fast as
    F.max_pooling_2d's im2col in inference, which is most of what evaluate.py does."""
    n, c, height, width = h.shape
    return F.max(F.reshape(h, (n, c, height // 2, 2, width // 2, 2)), axis=(3, 5))


class Classifier(chainer.Chain):
    """1x28x28 image in [0, 1] -> 10 logits; its `features` layer feeds the Fréchet distance."""

    def __init__(self, ch: int = 32, n_features: int = 128, n_classes: int = N_CLASSES, dropout: float = 0.3):
        super().__init__()
        self.ch = ch
        self.n_features = n_features
        self.n_classes = n_classes
        self.dropout = dropout
        with self.init_scope():
            self.c1a = L.Convolution2D(1, ch, 3, pad=1, nobias=True)
            self.bn1a = L.BatchNormalization(ch)
            self.c1b = L.Convolution2D(ch, ch, 3, pad=1, nobias=True)
            self.bn1b = L.BatchNormalization(ch)
            self.c2a = L.Convolution2D(ch, ch * 2, 3, pad=1, nobias=True)
            self.bn2a = L.BatchNormalization(ch * 2)
            self.c2b = L.Convolution2D(ch * 2, ch * 2, 3, pad=1, nobias=True)
            self.bn2b = L.BatchNormalization(ch * 2)
            self.fc = L.Linear(ch * 2 * (IMAGE_SIZE // 4) ** 2, n_features)
            self.out = L.Linear(n_features, n_classes)

    def logits_and_features(self, x: np.ndarray) -> tuple[chainer.Variable, chainer.Variable]:
        """(logits (n, 10), penultimate features (n, n_features)) as Variables."""
        h = F.relu(self.bn1a(self.c1a(x)))
        h = max_pool_2x2(F.relu(self.bn1b(self.c1b(h))))  # 14x14
        h = F.relu(self.bn2a(self.c2a(h)))
        h = max_pool_2x2(F.relu(self.bn2b(self.c2b(h))))  # 7x7
        features = F.relu(self.fc(F.dropout(h, self.dropout)))
        return self.out(F.dropout(features, self.dropout)), features

    def forward(self, x: np.ndarray) -> chainer.Variable:
        return self.logits_and_features(x)[0]


def predict(clf: Classifier, images: np.ndarray, batchsize: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities (n, 10), features (n, n_features)) as float64 numpy, in inference mode."""
    probs, features = [], []
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for start in range(0, len(images), batchsize):
            x = clf.xp.asarray(images[start : start + batchsize], dtype=np.float32)
            logits, h = clf.logits_and_features(x)
            probs.append(chainer.backends.cuda.to_cpu(F.softmax(logits).array))
            features.append(chainer.backends.cuda.to_cpu(h.array))
    if not probs:
        return np.zeros((0, clf.n_classes)), np.zeros((0, clf.n_features))
    return np.concatenate(probs).astype(np.float64), np.concatenate(features).astype(np.float64)


def save_classifier(clf: Classifier, folder: Path, metadata: dict) -> dict:
    """Write classifier.npz (float32, CPU) into `folder`, then classifier.json; return the metadata."""
    described = {
        "architecture": {
            "name": ARCHITECTURE,
            "ch": clf.ch,
            "n_features": clf.n_features,
            "n_classes": clf.n_classes,
            "dropout": clf.dropout,
        },
        "input": "float32 (n, 1, 28, 28), white digit on black, values in [0, 1]",
        **metadata,
    }
    return save_network(clf, Path(folder) / WEIGHTS_NAME, described)


def build_classifier(metadata: dict, path: Path) -> Classifier:
    """The empty classifier that the metadata describes."""
    sizes = architecture_sizes(metadata, path, ARCHITECTURE, SIZE_BOUNDS)
    dropout = metadata["architecture"].get("dropout")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise WeightsError(f"{path}: architecture.dropout must be a number in [0, 1), got {dropout!r}")
    return Classifier(**sizes, dropout=dropout)


def load_classifier(folder: Path) -> tuple[Classifier, dict]:
    """The classifier of `folder`'s classifier.npz, with its metadata; WeightsError if it cannot be."""
    path = Path(folder) / WEIGHTS_NAME
    return load_network(path, lambda metadata: build_classifier(metadata, path))
