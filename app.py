"""The web app: the live slider page and a JSON API around one generator loaded at start-up.

    GENERATOR_DIR=weights gunicorn app:app      # Procfile's command; settings in gunicorn.conf.py
    flask --app app run --debug                 # development server

Damaged weights stop start-up: a generator.npz that is truncated, replaced (its sha256 is not the
one in generator.json), of the wrong shape, or missing beside its generator.json exits with one
line instead of serving half a site. A folder with neither file (weights not trained yet) starts,
and the page and /healthz say so.

Every answer is a pure function of the request and the weights: the same labels and seeds give
byte-identical pictures on every request, worker and restart, which is what makes the long
Cache-Control of GET /generate safe.
"""

import base64
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from flask import Flask, Response, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError

from model import cpu_conv
from model.export import METADATA_NAME, WEIGHTS_NAME, WeightsError, load_generator
from model.net import IMAGE_SIZE, N_CLASSES
from model.sampling import MAX_SEED
from webapp.cache import LruCache
from webapp.pictures import digit_png, grid_png, morph_gif
from webapp.validation import (
    STATE_FIELDS,
    ApiError,
    State,
    array,
    fields,
    integer,
    json_body,
    label_vector,
    parse_scale,
    parse_state,
    query_state,
)

DEFAULT_GENERATOR_DIR = Path(__file__).resolve().parent / "weights"
# Caps that keep one request near 100 ms of CPU with the full-size generator (1.5-2 ms a picture,
# plus encoding the scaled pixels as PNG or GIF): bench/request_cost.py measures the largest requests.
MAX_BODY_BYTES = 16 * 1024  # a full grid of labels written with 17 digits each still fits
MAX_GRID = 10  # rows (label vectors) or columns (seeds) of /grid: every digit in a row of its own
MAX_GRID_PICTURES = 40  # rows x columns: all ten digits with four seeds
# Repeated /generate requests (a slider dragged back and forth) are answered from memory: a digit PNG
# is 0.3-3 KB, so the byte bound, per worker, is the one that holds for large scales.
PNG_CACHE_ENTRIES = 8192
PNG_CACHE_BYTES = 16 * 1024 * 1024
MIN_FRAMES, MAX_FRAMES, DEFAULT_FRAMES = 2, 24, 24
MIN_DURATION_MS, MAX_DURATION_MS, DEFAULT_DURATION_MS = 20, 2000, 80
MAX_PICTURE_PIXELS = 512 * 1024  # one /grid PNG, after scaling: 10x4 pictures at scale 4
MAX_ANIMATION_PIXELS = MAX_FRAMES * (IMAGE_SIZE * 4) ** 2  # all /interpolate frames: 24 at scale 4
# gunicorn halts (instead of restarting the worker forever) when a worker exits with this code,
# its APP_LOAD_ERROR; any other process just sees a non-zero exit.
EXIT_BAD_WEIGHTS = 4
PROVISIONAL_EPOCHS = 5  # fewer epochs than this: the page calls the weights provisional
DOWNLOAD_SCALE = 10  # the page shows the 28 px picture at 280 CSS px and downloads that size
LONG_CACHE = "public, max-age=31536000, immutable"  # URL names the weights' version: never stale
DAY_CACHE = "public, max-age=86400"  # URL without a version: revalidate (ETag) after a day
DEFAULT_STATE = {"labels": [0.0] * 3 + [1.0] + [0.0] * 6, "seed": 42, "seed_b": 7, "blend": 0.0}
SECURITY_HEADERS = {
    # No inline script or style anywhere: the page's one module and one stylesheet come from here.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


def cached_digit_png(state: State, scale: int) -> bytes:
    """digit_png through the app's LRU cache, keyed by the exact inputs and the weights' sha256."""
    gen = generator()
    key = (current_app.extensions["metadata"].get("sha256"), state, scale)
    return current_app.extensions["png_cache"].get_or_make(key, lambda: digit_png(gen, state, scale))


# ---------------------------------------------------------------- answers


def generator():
    """The generator loaded at start-up, or 503 naming why there is none."""
    gen = current_app.extensions["generator"]
    if gen is None:
        raise ApiError(None, f"no generator loaded: {current_app.extensions['weights_error']}", 503)
    return gen


def weights_version() -> str:
    return current_app.extensions["metadata"].get("sha256", "none")[:16]


def wants_json() -> bool:
    """JSON (with a data: URL) only when the client prefers it to an image; */* gets the image."""
    accept = request.accept_mimetypes
    return accept.quality("application/json") > max(accept.quality("image/png"), accept.quality("image/gif"))


def picture_response(data: bytes, mimetype: str, started: float, details: dict) -> Response:
    """The picture itself, or JSON with it as a data: URL when the client asked for JSON."""
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    if wants_json():
        image = f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"
        response = current_app.json.response({"image": image, **details, "elapsed_ms": elapsed_ms})
    else:
        response = Response(data, mimetype=mimetype)
    response.headers["Server-Timing"] = f"generate;dur={elapsed_ms}"
    response.vary.add("Accept")
    return response


def error_response(status: int, message: str, field: str | None = None, headers=None) -> Response:
    body = {"error": message}
    if field:
        body["field"] = field
    response = current_app.json.response(body)
    response.status_code = status
    if headers:
        response.headers.extend(headers)
    return response


def page_state(args) -> tuple[State, str | None]:
    """The page's state from its URL; a broken link still shows a page (defaults) and says why."""
    if not args:
        return parse_state(DEFAULT_STATE), None
    known = {"labels", "seed"} | STATE_FIELDS  # others (a tracker's utm_source...) are not ours to refuse
    data = {k: v for k, v in query_state(args, known).items() if k in known}
    try:
        return parse_state({**DEFAULT_STATE, "seed_b": None, **data}), None
    except ApiError as error:
        return parse_state(DEFAULT_STATE), f"The link's state was not used: {error}"


def state_query(state: State) -> dict:
    query = {"labels": ",".join(f"{x:g}" for x in state.labels), "seed": state.seed}
    if state.seed_b is not None and state.blend > 0:  # as static/app.js builds it: one URL, one cache entry
        query.update(seed_b=state.seed_b, blend=f"{state.blend:g}")
    return query


def weights_summary(metadata: dict) -> str:
    """One line saying how trained the shipped weights are (provisional ones say so by their numbers)."""
    parts = []
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


# ---------------------------------------------------------------- the app


def create_app(config: dict | None = None) -> Flask:
    """The app with its generator loaded once; GENERATOR_DIR (environment or config) picks the folder."""
    app = Flask(__name__)
    app.config.from_mapping(
        GENERATOR_DIR=os.environ.get("GENERATOR_DIR", str(DEFAULT_GENERATOR_DIR)),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        PNG_CACHE_ENTRIES=PNG_CACHE_ENTRIES,
        PNG_CACHE_BYTES=PNG_CACHE_BYTES,
    )
    if config:
        app.config.update(config)
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)

    cpu_conv.install()  # same pictures up to float rounding, about 1.4x faster (bench/generation.py)
    app.extensions["png_cache"] = LruCache(app.config["PNG_CACHE_ENTRIES"], app.config["PNG_CACHE_BYTES"])
    folder = Path(app.config["GENERATOR_DIR"])
    if not (folder / METADATA_NAME).exists() and not (folder / WEIGHTS_NAME).exists():
        # Nothing trained yet: serve the page, which (like /healthz) says so. Not a damaged file.
        error = f"{folder}: no {METADATA_NAME} or {WEIGHTS_NAME} (train with train.py --export {folder})"
        app.extensions.update(generator=None, metadata={}, weights_error=error)
        app.logger.error("no generator: %s", error)
    else:
        gen, metadata = load_generator(folder)  # WeightsError: damaged weights stop start-up
        if gen.n_classes != N_CLASSES:
            raise WeightsError(
                f"{folder / METADATA_NAME}: {gen.n_classes} label inputs, the app needs {N_CLASSES}"
            )
        app.extensions.update(generator=gen, metadata=metadata, weights_error=None)
        app.logger.info("loaded the generator from %s: %s", folder, weights_summary(metadata))

    register_routes(app)
    register_errors(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


def register_routes(app: Flask) -> None:
    @app.get("/")
    def index():
        state, link_error = page_state(request.args)
        version = weights_version()
        query = state_query(state)
        return render_template(
            "index.html",
            state=state,
            link_error=link_error,
            version=version,
            image_url=url_for("generate_get", **query, v=version),
            download_url=url_for("generate_get", **query, scale=DOWNLOAD_SCALE, v=version),
            presets=presets(),
            metadata=current_app.extensions["metadata"],
            weights_error=current_app.extensions["weights_error"],
            weights_summary=weights_summary(current_app.extensions["metadata"]),
            provisional=current_app.extensions["metadata"].get("epochs", 0) < PROVISIONAL_EPOCHS,
            limits={
                "max_seed": MAX_SEED,
                "min_frames": MIN_FRAMES,
                "max_frames": MAX_FRAMES,
                "frames": DEFAULT_FRAMES,
                "download_scale": DOWNLOAD_SCALE,
            },
        )

    @app.post("/generate")
    def generate_post():
        started = time.perf_counter()
        data = fields(json_body(), None, {"labels", "seed"}, STATE_FIELDS | {"scale"})
        state, scale = parse_state(data), parse_scale(data)
        png = cached_digit_png(state, scale)
        return picture_response(png, "image/png", started, state.as_json())

    @app.get("/generate")
    def generate_get():
        started = time.perf_counter()
        data = fields(
            query_state(request.args, STATE_FIELDS | {"seed", "scale"}),
            None,
            {"labels", "seed"},
            STATE_FIELDS | {"scale", "v"},
        )
        state, scale = parse_state(data), parse_scale(data)
        generator()  # 503 before anything else when there is none
        version = weights_version()
        key = json.dumps([state.labels, state.seed, state.seed_b, state.blend, scale])
        etag = f"{version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        if "v" not in data:
            cache = DAY_CACHE
        elif str(data["v"]) == version:
            cache = LONG_CACHE
        else:
            cache = "no-cache"  # a link made for other weights: answer with these, never keep it
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        else:
            response = Response(cached_digit_png(state, scale), mimetype="image/png")
            response.headers["Server-Timing"] = f"generate;dur={(time.perf_counter() - started) * 1000:.2f}"
        response.set_etag(etag)
        response.headers["Cache-Control"] = cache
        return response

    @app.post("/grid")
    def grid():
        started = time.perf_counter()
        data = fields(json_body(), None, {"labels", "seeds"}, {"scale"})
        rows = array(data["labels"], "labels", 1, MAX_GRID)
        rows = [label_vector(row, f"labels[{r}]") for r, row in enumerate(rows)]
        seeds = array(data["seeds"], "seeds", 1, MAX_GRID)
        seeds = [integer(seed, f"seeds[{c}]", 0, MAX_SEED) for c, seed in enumerate(seeds)]
        if len(rows) * len(seeds) > MAX_GRID_PICTURES:
            raise ApiError(
                "seeds",
                f"a {len(rows)}x{len(seeds)} grid is {len(rows) * len(seeds)} pictures, over the limit of "
                f"{MAX_GRID_PICTURES}: use fewer label rows or seeds",
            )
        scale = parse_scale(data)
        height, width = len(rows) * IMAGE_SIZE * scale, len(seeds) * IMAGE_SIZE * scale
        if height * width > MAX_PICTURE_PIXELS:
            raise ApiError(
                "scale",
                f"a {len(rows)}x{len(seeds)} grid at scale {scale} is {width}x{height} "
                f"pixels, over the limit of {MAX_PICTURE_PIXELS:,}: use a smaller scale",
            )
        png = grid_png(generator(), rows, seeds, scale)
        return picture_response(
            png,
            "image/png",
            started,
            {"rows": len(rows), "columns": len(seeds), "width": width, "height": height},
        )

    @app.post("/interpolate")
    def interpolate():
        started = time.perf_counter()
        data = fields(json_body(), None, {"from", "to"}, {"frames", "scale", "duration"})
        ends = [
            parse_state(fields(data[name], name, {"labels", "seed"}, STATE_FIELDS), name + ".")
            for name in ("from", "to")
        ]
        frames = integer(data.get("frames", DEFAULT_FRAMES), "frames", MIN_FRAMES, MAX_FRAMES)
        scale = parse_scale(data)
        duration = integer(
            data.get("duration", DEFAULT_DURATION_MS), "duration", MIN_DURATION_MS, MAX_DURATION_MS
        )
        side = IMAGE_SIZE * scale
        if frames * side * side > MAX_ANIMATION_PIXELS:
            raise ApiError(
                "scale",
                f"{frames} frames of {side}x{side} pixels are over the limit of "
                f"{MAX_ANIMATION_PIXELS:,} pixels: use a smaller scale or fewer frames",
            )
        gif = morph_gif(generator(), *ends, frames, scale, duration)
        return picture_response(
            gif, "image/gif", started, {"frames": frames, "width": side, "height": side, "duration": duration}
        )

    @app.get("/healthz")
    def healthz():
        if current_app.extensions["generator"] is None:
            return {"status": "error", "error": current_app.extensions["weights_error"]}, 503
        return {"status": "ok"}

    @app.get("/api/model")
    def model_metadata():
        generator()
        return current_app.extensions["metadata"]


def presets() -> list[tuple[str, str]]:
    """The article's experiments as (name, labels query): each digit, all 0, all 1, all 0.5, 0 with 1."""
    digits = [(str(d), [1.0 if i == d else 0.0 for i in range(N_CLASSES)]) for d in range(N_CLASSES)]
    both = [1.0, 1.0] + [0.0] * (N_CLASSES - 2)
    named = digits + [
        ("all 0", [0.0] * N_CLASSES),
        ("all 1", [1.0] * N_CLASSES),
        ("all 0.5", [0.5] * N_CLASSES),
        ("0 and 1 at 1", both),
        ("0 and 1 at 0.5", [x / 2 for x in both]),
    ]
    return [(name, ",".join(f"{x:g}" for x in labels)) for name, labels in named]


def register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error_response(error.status, str(error), error.field)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # 404, 405 (keeps its Allow header), 413, 415...: JSON like every other answer.
        headers = [(k, v) for k, v in error.get_response().headers if k.lower() == "allow"]
        allowed = ", ".join(v for _, v in headers)
        problem = {
            404: f"no such page or endpoint: {request.path}",
            405: f"{request.method} is not allowed on {request.path} (allowed: {allowed})",
            413: f"the body is over the limit of {app.config['MAX_CONTENT_LENGTH']:,} bytes",
        }.get(error.code, error.description)
        return error_response(error.code or 500, f"{error.code} {error.name}: {problem}", headers=headers)

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        # Flask has already logged the traceback; the client gets no details.
        return error_response(500, "500 Internal Server Error: the server failed; the log has the details")


def serve() -> Flask:
    """create_app() for gunicorn and `flask run`: damaged weights end the process with one line."""
    try:
        return create_app()
    except WeightsError as error:
        print(f"app: error: the generator's weights failed their check: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_WEIGHTS) from None


app = serve()
