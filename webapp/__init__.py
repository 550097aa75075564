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

from model.files import WeightsError
from webapp import errors, networks
from webapp.limits import ANSWER_CACHE_BYTES, ANSWER_CACHE_ENTRIES, MAX_BODY_BYTES
from webapp.routes import web

ROOT = Path(__file__).resolve().parent.parent  # templates/, static/ and weights/ live here
DEFAULT_GENERATOR_DIR = ROOT / "weights"
# gunicorn halts (instead of restarting the worker forever) when a worker exits with this code,
# its APP_LOAD_ERROR; any other process just sees a non-zero exit.
EXIT_BAD_WEIGHTS = 4


def create_app(config: dict | None = None) -> Flask:
    """The app with its networks loaded once; GENERATOR_DIR (environment or config) picks the folder."""
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

    networks.init_app(app)
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
