"""The web app: the live slider page and a JSON API around a generator and a classifier loaded at start-up.

    gunicorn app:app                        # the Procfile's command; settings in gunicorn.conf.py
    flask --app app run --debug             # development server

Importing this package reads no file: create_app() loads the weights. Damaged weights stop start-up:
a generator.npz that is truncated, replaced (its sha256 is not the one in generator.json), of the
wrong shape, not an npz at all (even under a matching sha256), or missing beside its generator.json
raises WeightsError instead of serving half a site.
A folder with neither file (weights not trained yet) starts, and the page and /healthz say so.
The MNIST classifier beside them (classifier.npz and .json) is checked the same way
(ClassifierError); without either file the app serves everything but the classifier's readings.
"""

import logging
import os
import sys
from pathlib import Path

from flask import Flask

from model import classifier
from model.export import METADATA_NAME, WEIGHTS_NAME, WeightsError, load_generator
from model.inference import FoldedClassifier, FoldedGenerator
from model.net import N_CLASSES
from webapp import errors
from webapp.cache import LruCache
from webapp.limits import ANSWER_CACHE_BYTES, ANSWER_CACHE_ENTRIES, MAX_BODY_BYTES
from webapp.responses import weights_summary
from webapp.routes import web

ROOT = Path(__file__).resolve().parent.parent  # templates/, static/ and weights/ live here
DEFAULT_GENERATOR_DIR = ROOT / "weights"
# gunicorn halts (instead of restarting the worker forever) when a worker exits with this code,
# its APP_LOAD_ERROR; any other process just sees a non-zero exit.
EXIT_BAD_WEIGHTS = 4


def untrained_message(folder: Path, metadata_name: str, weights_name: str, how: str) -> str | None:
    """The message saying that no network is trained in `folder`, which holds neither of its two files
    (not an error); None when either file is there.

    One file without the other is a damaged pair, which its loader refuses.
    """
    if (folder / metadata_name).exists() or (folder / weights_name).exists():
        return None
    return f"{folder}: no {metadata_name} or {weights_name} ({how})"


def load_weights(app: Flask) -> None:
    """The generator and its metadata into app.extensions, once; a missing folder is not an error."""
    folder = Path(app.config["GENERATOR_DIR"])
    error = untrained_message(folder, METADATA_NAME, WEIGHTS_NAME, f"train with train.py --export {folder}")
    if error:
        # Nothing trained yet: serve the page, which (like /healthz) says so.
        app.extensions.update(generator=None, metadata={}, weights_error=error)
        app.logger.error("no generator: %s", error)
        return
    gen, metadata = load_generator(folder)  # WeightsError: damaged weights stop start-up
    if gen.n_classes != N_CLASSES:
        raise WeightsError(
            f"{folder / METADATA_NAME}: {gen.n_classes} label inputs, the app needs {N_CLASSES}"
        )
    # Served by the folded NumPy forward pass: the same pictures as Chainer's, 4x faster at batch 1.
    app.extensions.update(generator=FoldedGenerator(gen), metadata=metadata, weights_error=None)
    app.logger.info("loaded the generator from %s: %s", folder, weights_summary(metadata))


def load_classifier(app: Flask) -> None:
    """The MNIST classifier into app.extensions, once; without its files the rest of the app works."""
    folder = Path(app.config["GENERATOR_DIR"])
    how = f"train one with train_classifier.py --export {folder}"
    error = untrained_message(folder, classifier.METADATA_NAME, classifier.WEIGHTS_NAME, how)
    if error:
        app.extensions.update(classifier=None, classifier_metadata={}, classifier_error=error)
        app.logger.warning("no classifier: %s", error)
        return
    clf, metadata = classifier.load_classifier(folder)  # ClassifierError: damaged files stop start-up
    if clf.n_classes != N_CLASSES:
        raise classifier.ClassifierError(
            f"{folder / classifier.METADATA_NAME}: {clf.n_classes} classes, the app needs {N_CLASSES}"
        )
    app.extensions.update(
        classifier=FoldedClassifier(clf), classifier_metadata=metadata, classifier_error=None
    )


def create_app(config: dict | None = None) -> Flask:
    """The app with its generator loaded once; GENERATOR_DIR (environment or config) picks the folder."""
    app = Flask(__name__, root_path=str(ROOT))
    # Werkzeug answers "//static/app.js" with a redirect to an absolute URL built from the request's
    # Host header, which a client chooses; with no route ending in "/", no URL needs merging.
    app.url_map.merge_slashes = False
    app.config.from_mapping(
        GENERATOR_DIR=os.environ.get("GENERATOR_DIR", str(DEFAULT_GENERATOR_DIR)),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        ANSWER_CACHE_ENTRIES=ANSWER_CACHE_ENTRIES,
        ANSWER_CACHE_BYTES=ANSWER_CACHE_BYTES,
    )
    if config:
        app.config.update(config)
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)

    app.extensions["answer_cache"] = LruCache(
        app.config["ANSWER_CACHE_ENTRIES"], app.config["ANSWER_CACHE_BYTES"]
    )
    load_weights(app)
    load_classifier(app)
    app.register_blueprint(web)
    errors.register(app)
    return app


def serve() -> Flask:
    """create_app() for gunicorn and `flask run`: damaged weights end the process with one line."""
    try:
        return create_app()
    except (WeightsError, classifier.ClassifierError) as error:
        network = "generator" if isinstance(error, WeightsError) else "classifier"
        print(f"app: error: the {network}'s weights failed their check: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_WEIGHTS) from None
