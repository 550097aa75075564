"""The page and the API: each route checks its input, calls one picture function and formats the answer
(the answers' pieces are in webapp/responses.py).

Every answer is a pure function of the request and the weights: the same labels and seeds give
byte-identical pictures on every request, worker and restart, which is what makes the long
Cache-Control of GET /generate safe.
"""

import hashlib
import json
import time

from flask import Blueprint, Response, render_template, request, url_for

from model.handwriting import HANDWRITING
from model.net import IMAGE_SIZE
from model.sampling import MAX_SEED, NOISE_RULE, Z_SIZE
from webapp.browser_weights import encoded_weights
from webapp.limits import (
    DEFAULT_DURATION_MS,
    DEFAULT_FRAMES,
    MAX_ANIMATION_PIXELS,
    MAX_DURATION_MS,
    MAX_FRAMES,
    MAX_GRID,
    MAX_GRID_PICTURES,
    MAX_PICTURE_PIXELS,
    MIN_DURATION_MS,
    MIN_FRAMES,
)
from webapp.networks import networks
from webapp.pictures import grid_png, morph_gif, readings
from webapp.responses import (
    HANDWRITING_COMMAND,
    digit_answer,
    loaded_classifier,
    picture_response,
    presets,
    reading_json,
    require_generator,
    state_pixels,
    state_reading,
    styling_generator,
    wants_json,
    weights_version,
)
from webapp.state import STATE_FIELDS, page_state, parse_state, parse_style
from webapp.validation import (
    ApiError,
    array,
    fields,
    integer,
    json_body,
    label_vector,
    parse_scale,
    png_body,
    query_state,
)

PROVISIONAL_EPOCHS = 5  # fewer epochs than this: the page calls the weights provisional
DOWNLOAD_SCALE = 10  # the page shows the 28 px picture at 280 CSS px and downloads that size
LONG_CACHE = "public, max-age=31536000, immutable"  # URL names the weights' version: never stale
DAY_CACHE = "public, max-age=86400"  # URL without a version: revalidate (ETag) after a day

web = Blueprint("web", __name__)


@web.get("/")
def index():
    generator = networks().generator
    gen = generator.folded
    has_generator = gen is not None
    has_handwriting = has_generator and gen.handwriting is not None
    state, link_error = page_state(request.args, has_handwriting)
    version = weights_version()
    query = state.query()
    metadata = generator.metadata
    return render_template(
        "index.html",
        state=state,
        reading=state_reading(state, state_pixels(state)) if has_generator else None,
        link_error=link_error,
        version=version,
        image_url=url_for("web.generate_get", **query, v=version),
        download_url=url_for("web.generate_get", **query, scale=DOWNLOAD_SCALE, v=version),
        presets=presets(),
        metadata=metadata,
        weights_error=generator.missing,
        weights_summary=generator.summary(),
        provisional=metadata.get("epochs", 0) < PROVISIONAL_EPOCHS,
        noise_rule=NOISE_RULE,
        has_handwriting=has_handwriting,
        handwriting_command=HANDWRITING_COMMAND,
        z_size=Z_SIZE,
        limits={
            "max_seed": MAX_SEED,
            "min_frames": MIN_FRAMES,
            "max_frames": MAX_FRAMES,
            "frames": DEFAULT_FRAMES,
            "download_scale": DOWNLOAD_SCALE,
        },
    )


@web.post("/generate")
def generate_post():
    started = time.perf_counter()
    data = fields(json_body(), None, {"labels", "seed"}, STATE_FIELDS | {"scale"})
    return digit_answer(parse_state(data), parse_scale(data), started)


@web.get("/generate")
def generate_get():
    started = time.perf_counter()
    data = fields(
        query_state(request.args, STATE_FIELDS | {"seed", "scale"}),
        None,
        {"labels", "seed"},
        STATE_FIELDS | {"scale", "v"},
    )
    state, scale = parse_state(data), parse_scale(data)
    require_generator()
    version = weights_version()
    as_json = wants_json()
    key = json.dumps([state.labels, state.seed, state.seed_b, state.blend, state.style, scale, as_json])
    etag = f"{version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if "v" not in data:
        cache = DAY_CACHE
    elif str(data["v"]) == version:
        cache = LONG_CACHE
    else:
        cache = "no-cache"  # a link made for other weights: answer with these, never keep it
    if request.if_none_match.contains_weak(etag):  # If-None-Match compares weakly (RFC 9110)
        response = Response(status=304)
    else:
        response = digit_answer(state, scale, started)
    response.vary.add("Accept")
    response.set_etag(etag, weak=as_json)  # a JSON answer's elapsed_ms differs from one answer to the next
    response.headers["Cache-Control"] = cache
    return response


@web.post("/grid")
def grid():
    started = time.perf_counter()
    data = fields(json_body(), None, {"labels", "seeds"}, {"scale", *HANDWRITING})
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
    scale, style = parse_scale(data), parse_style(data)
    gen = styling_generator(("", style))
    height, width = len(rows) * IMAGE_SIZE * scale, len(seeds) * IMAGE_SIZE * scale
    if height * width > MAX_PICTURE_PIXELS:
        raise ApiError(
            "scale",
            f"a {len(rows)}x{len(seeds)} grid at scale {scale} is {width}x{height} "
            f"pixels, over the limit of {MAX_PICTURE_PIXELS:,}: use a smaller scale",
        )
    png = grid_png(gen, rows, seeds, scale, style)
    return picture_response(
        png,
        "image/png",
        started,
        {"rows": len(rows), "columns": len(seeds), "width": width, "height": height},
    )


@web.post("/interpolate")
def interpolate():
    started = time.perf_counter()
    data = fields(json_body(), None, {"from", "to"}, {"frames", "scale", "duration"})
    ends = [
        parse_state(fields(data[name], name, {"labels", "seed"}, STATE_FIELDS), name + ".")
        for name in ("from", "to")
    ]
    gen = styling_generator(("from.", ends[0].style), ("to.", ends[1].style))
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
    gif = morph_gif(gen, *ends, frames, scale, duration)
    return picture_response(
        gif, "image/gif", started, {"frames": frames, "width": side, "height": side, "duration": duration}
    )


@web.post("/classify")
def classify():
    started = time.perf_counter()
    clf = loaded_classifier()
    probabilities = readings(clf, png_body()[None])[0]
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return {**reading_json(probabilities), "elapsed_ms": elapsed_ms}


@web.get("/healthz")
def healthz():
    generator = networks().generator
    if generator.folded is None:
        return {"status": "error", "error": generator.missing}, 503
    return {"status": "ok"}


@web.get("/api/model")
def model_metadata():
    require_generator()
    return {**networks().generator.metadata, "version": weights_version()}


@web.get("/api/generator/<version>.weights")
def browser_weights(version: str):
    """The generator's folded weights for the page (webapp/browser_weights.py), under its version."""
    require_generator()
    if version != weights_version():
        loaded_version = weights_version()
        raise ApiError("version", f"no weights {version!r} here; the loaded ones are {loaded_version!r}", 404)
    plain, compressed = encoded_weights(networks())
    gzipped = request.accept_encodings["gzip"] > 0
    etag = f"weights-{version}" + ("-gzip" if gzipped else "")  # one tag per representation
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(compressed if gzipped else plain, mimetype="application/octet-stream")
        if gzipped:
            response.content_encoding = "gzip"
    response.set_etag(etag)
    response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = LONG_CACHE
    return response
