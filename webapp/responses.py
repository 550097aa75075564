"""What the routes answer with: the networks loaded at start-up (or the 503 naming why there is none),
a state's picture and the classifier's reading of it through the app's cache, a picture as itself or
as JSON, and the page's presets."""

import base64
import functools
import json
import time
from collections.abc import Callable

import numpy as np
from flask import Response, current_app, request

from model.handwriting import HANDWRITING
from model.images import png_bytes
from model.inference import pictures_version
from model.net import N_CLASSES
from model.sampling import one_hot
from webapp.networks import networks
from webapp.pictures import draw_states, readings
from webapp.state import State
from webapp.validation import ApiError


def loaded(name: str):
    """The folded network loaded at start-up under `name`, or 503 naming why there is none."""
    network = getattr(networks(), name)
    if network.folded is None:
        raise ApiError(None, f"no {name} loaded: {network.missing}", 503)
    return network.folded


def loaded_generator():
    return loaded("generator")


HANDWRITING_COMMAND = "python handwriting.py --weights FOLDER"


def styling_generator(*styles: tuple[str, tuple[float, ...]]):
    """The loaded generator, once it is sure to have the handwriting directions that the sliders
    need, given as (field prefix, slider values); else 400 naming the first slider set and how to
    give the weights their directions."""
    gen = loaded_generator()
    if gen.handwriting is None:
        for prefix, style in styles:
            for name, value in zip(HANDWRITING, style, strict=True):
                if value:
                    raise ApiError(
                        prefix + name,
                        f"these weights have no handwriting directions, so only 0 is possible: add them "
                        f"with {HANDWRITING_COMMAND}",
                    )
    return gen


def require_generator() -> None:
    """503 naming why there is no generator, before a route that needs one does anything else."""
    loaded_generator()


def loaded_classifier():
    return loaded("classifier")


def reading_json(probabilities: list[float]) -> dict:
    return {"classifier": probabilities, "reads_as": max(range(N_CLASSES), key=probabilities.__getitem__)}


def state_pixels(state: State) -> Callable[[], np.ndarray]:
    """The state's uint8 picture, drawn on the first call only: its PNG and its reading share it."""
    gen = styling_generator(("", state.style))
    return functools.cache(lambda: draw_states(gen, [state])[0])


def state_reading(state: State, pixels: Callable[[], np.ndarray]) -> dict:
    """What the classifier reads in the state's picture (through the cache), or why it cannot say."""
    loaded_networks = networks()
    clf = loaded_networks.classifier
    if clf.folded is None:
        return {"classifier": None, "classifier_error": clf.missing}
    key = ("reading", loaded_networks.generator.sha256, clf.sha256, state)
    encoded = loaded_networks.answers.get_or_make(
        key, lambda: json.dumps(readings(clf.folded, pixels()[None])[0]).encode()
    )
    return reading_json(json.loads(encoded))


def weights_version() -> str:
    sha256 = networks().generator.sha256
    return pictures_version(sha256) if sha256 else "none"


def cached_digit_png(state: State, scale: int, pixels: Callable[[], np.ndarray]) -> bytes:
    """The state's PNG through the app's LRU cache, keyed by the exact inputs and the weights' sha256."""
    key = (networks().generator.sha256, state, scale)
    return networks().answers.get_or_make(key, lambda: png_bytes(pixels(), scale))


def digit_answer(state: State, scale: int, started: float) -> Response:
    """The state's picture as a PNG, or as JSON with what the classifier reads when JSON is asked for."""
    pixels = state_pixels(state)
    details = {**state.as_json(), **state_reading(state, pixels)} if wants_json() else {}
    return picture_response(cached_digit_png(state, scale, pixels), "image/png", started, details)


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


def presets() -> list[tuple[str, str]]:
    """The article's experiments as (name, labels query): each digit, all 0, all 1, all 0.5, 0 with 1."""
    digits = [(str(d), one_hot(d).tolist()) for d in range(N_CLASSES)]
    both = [1.0, 1.0] + [0.0] * (N_CLASSES - 2)
    named = digits + [
        ("all 0", [0.0] * N_CLASSES),
        ("all 1", [1.0] * N_CLASSES),
        ("all 0.5", [0.5] * N_CLASSES),
        ("0 and 1 at 1", both),
        ("0 and 1 at 0.5", [x / 2 for x in both]),
    ]
    return [(name, ",".join(f"{x:g}" for x in labels)) for name, labels in named]
