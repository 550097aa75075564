"""What the app loads once at start-up and keeps as app.extensions["networks"]: the generator and the
MNIST classifier, each folded for serving with its metadata (or the reason it is missing), and what
is made from them for the answers (the answer cache, the page's copy of the generator's weights)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app

from model import classifier, export
from model.files import WeightsError
from model.inference import FoldedClassifier, FoldedGenerator
from model.net import N_CLASSES
from webapp.cache import LruCache


@dataclass(frozen=True)
class Network:
    """A network as the app serves it, with its metadata; or, when none is trained, why there is none."""

    folded: object | None  # a FoldedGenerator or a FoldedClassifier
    metadata: dict
    missing: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.metadata.get("sha256")

    def summary(self) -> str:
        """One line saying how trained the weights are (provisional ones say so by their numbers)."""
        metadata, parts = self.metadata, []
        if "epochs" in metadata:
            parts.append(f"{metadata['epochs']:g} epoch{'' if metadata['epochs'] == 1 else 's'}")
        if "images_seen" in metadata:
            parts.append(f"{metadata['images_seen']:,} images seen")
        if "train_images" in metadata:
            parts.append(f"{metadata['train_images']:,} training images")
        if "date" in metadata:
            parts.append(f"exported {metadata['date']}")
        parts.append(f"sha256 {metadata.get('sha256', '?')[:12]}")
        return ", ".join(parts)


def folded_network(path: Path, load: Callable, fold: Callable, how_to_train: str) -> Network:
    """The network of the weights file `path`, through load(folder) and fold(chain). A missing file is
    no error (nothing trained yet: `how_to_train` + the folder says what to do); a damaged one raises
    WeightsError, which stops start-up."""
    if not path.exists():
        return Network(None, {}, f"{path.parent}: no {path.name} ({how_to_train} {path.parent})")
    chain, metadata = load(path.parent)
    if chain.n_classes != N_CLASSES:
        raise WeightsError(f"{path}: {chain.n_classes} classes, the app needs {N_CLASSES}")
    return Network(fold(chain), metadata)


@dataclass
class Networks:
    """Everything the app loaded and keeps for its answers."""

    generator: Network
    classifier: Network
    answers: LruCache  # pictures and readings, keyed by the weights' sha256
    browser_weights: tuple[bytes, bytes] | None = None  # made on first request (webapp/browser_weights.py)


def init_app(app: Flask) -> None:
    """Load the networks of the folder app.config["GENERATOR_DIR"] into app.extensions["networks"]."""
    folder = Path(app.config["GENERATOR_DIR"])
    loaded = Networks(
        generator=folded_network(
            folder / export.WEIGHTS_NAME,
            export.load_generator,
            FoldedGenerator,
            "train with train.py --export",
        ),
        classifier=folded_network(
            folder / classifier.WEIGHTS_NAME,
            classifier.load_classifier,
            FoldedClassifier,
            "train one with train_classifier.py --export",
        ),
        answers=LruCache(app.config["ANSWER_CACHE_ENTRIES"], app.config["ANSWER_CACHE_BYTES"]),
    )
    app.extensions["networks"] = loaded
    if loaded.generator.missing:
        app.logger.error("no generator: %s", loaded.generator.missing)
    else:
        app.logger.info("loaded the generator from %s: %s", folder, loaded.generator.summary())
    if loaded.classifier.missing:
        app.logger.warning("no classifier: %s", loaded.classifier.missing)


def networks() -> Networks:
    """The current app's networks."""
    return current_app.extensions["networks"]
