"""The web app: the live slider page and a JSON API around a generator and a classifier loaded at start-up.

    gunicorn app:app                        # the Procfile's command; settings in gunicorn.conf.py
    flask --app app run --debug             # development server

Importing this package reads no file: create_app() loads the weights. A damaged weights file (see
model/files.py) stops start-up with WeightsError instead of serving half a site. A folder without
generator.npz (weights not trained yet) starts, and the page and /healthz say so; without
classifier.npz the app serves everything but the classifier's readings.
"""

import logging
import os
import sys
from pathlib import Path

from flask import Flask

from model import classifier
from model.export import WEIGHTS_NAME, load_generator
from model.files import WeightsError
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


def untrained_message(folder: Path, weights_name: str, how: str) -> str | None:
    """The message saying that no network is trained in `folder`, which lacks its weights file (not an
    error); None when it is there."""
    if (folder / weights_name).exists():
        return None
    return f"{folder}: no {weights_name} ({how})"


def load_weights(app: Flask) -> None:
    """The generator and its metadata into app.extensions, once; a missing folder is not an error."""
    folder = Path(app.config["GENERATOR_DIR"])
    error = untrained_message(folder, WEIGHTS_NAME, f"train with train.py --export {folder}")
    if error:
        # Nothing trained yet: serve the page, which (like /healthz) says so.
        app.extensions.update(generator=None, metadata={}, weights_error=error)
        app.logger.error("no generator: %s", error)
        return
    gen, metadata = load_generator(folder)  # WeightsError: damaged weights stop start-up
    if gen.n_classes != N_CLASSES:
        raise WeightsError(f"{folder / WEIGHTS_NAME}: {gen.n_classes} classes, the app needs {N_CLASSES}")
    # Served by the folded NumPy forward pass: the same pictures as Chainer's, 4x faster at batch 1.
    app.extensions.update(generator=FoldedGenerator(gen), metadata=metadata, weights_error=None)
    app.logger.info("loaded the generator from %s: %s", folder, weights_summary(metadata))


def load_classifier(app: Flask) -> None:
    """The MNIST classifier into app.extensions, once; without its files the rest of the app works."""
    folder = Path(app.config["GENERATOR_DIR"])
    how = f"train one with train_classifier.py --export {folder}"
    error = untrained_message(folder, classifier.WEIGHTS_NAME, how)
    if error:
        app.extensions.update(classifier=None, classifier_metadata={}, classifier_error=error)
        app.logger.warning("no classifier: %s", error)
        return
    clf, metadata = classifier.load_classifier(folder)  # WeightsError: damaged files stop start-up
    if clf.n_classes != N_CLASSES:
        raise WeightsError(
            f"{folder / classifier.WEIGHTS_NAME}: {clf.n_classes} classes, the app needs {N_CLASSES}"
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
    except WeightsError as error:
        print(f"app: error: weights failed their check: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_WEIGHTS) from None
