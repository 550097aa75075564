"""Checks of the API's input: every problem becomes an ApiError that names the field.

JSON gives dicts, lists, str, int, float (NaN and Infinity included), bool and None; query strings
are first turned into the same types, so one set of checks serves both.
"""

import io
import json
import math
import re
import zlib

import numpy as np
from flask import current_app, request
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.wsgi import get_input_stream

from model.net import IMAGE_SIZE, N_CLASSES
from webapp.limits import MAX_SCALE


class ApiError(Exception):
    """A request the API cannot serve; the message names the field and the problem."""

    def __init__(self, field: str | None, problem: str, status: int = 400):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.status = status


def describe(value) -> str:
    """A short description of a wrong value for an error message."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    kind = {bool: "boolean ", str: "string ", list: "array ", dict: "object ", type(None): ""}
    text = json.dumps(value) if type(value) in kind else repr(value)
    return kind.get(type(value), "") + (text if len(text) <= 40 else text[:37] + "...")


def number(value, field: str, low: float, high: float) -> float:
    """A finite JSON number in [low, high]; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(field, f"must be a number, got {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(field, f"must be a finite number, got {describe(value)}")
    if not low <= value <= high:  # compared before float(): a huge int must not overflow
        raise ApiError(field, f"must be between {low:g} and {high:g}, got {describe(value)}")
    return float(value)


def integer(value, field: str, low: int, high: int) -> int:
    """A JSON integer (no fraction, not a boolean) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(field, f"must be an integer, got {describe(value)}")
    if not low <= value <= high:
        raise ApiError(field, f"must be an integer between {low} and {high}, got {describe(value)}")
    return value


def array(value, field: str, low: int, high: int) -> list:
    """A JSON array of low..high items."""
    if not isinstance(value, list):
        raise ApiError(field, f"must be an array, got {describe(value)}")
    if not low <= len(value) <= high:
        wanted = f"exactly {low}" if low == high else f"{low} to {high}"
        raise ApiError(field, f"must have {wanted} items, got {len(value)}")
    return value


def label_vector(value, field: str) -> list[float]:
    """Ten numbers in [0, 1]: how much of each digit 0-9."""
    items = array(value, field, N_CLASSES, N_CLASSES)
    return [number(item, f"{field}[{i}]", 0, 1) for i, item in enumerate(items)]


def fields(data, field: str | None, required: set[str], optional: set[str]) -> dict:
    """The members of a JSON object, refusing missing and unknown names (typos fail loudly)."""
    if not isinstance(data, dict):
        raise ApiError(field, f"must be a JSON object, got {describe(data)}")
    prefix = f"{field}." if field else ""
    missing = sorted(required - data.keys())
    if missing:
        raise ApiError(prefix + missing[0], "missing")
    unknown = sorted(data.keys() - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise ApiError(prefix + unknown[0], f"unknown field (allowed: {allowed})")
    return data


def parse_scale(data: dict, field: str = "scale") -> int:
    return integer(data.get(field, 1), field, 1, MAX_SCALE)


def body_bytes() -> bytes:
    """The whole body: 413 past MAX_CONTENT_LENGTH, chunked or not; 400 when its framing is broken.

    Read with one byte more than the limit allowed, so that a chunked body over it is refused like
    one with a Content-Length instead of being cut at the limit.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if (request.content_length or 0) > limit:  # limit + 1 is refused whether or not the body came
        raise RequestEntityTooLarge()
    try:
        data = get_input_stream(request.environ, max_content_length=limit + 1).read()
    except ClientDisconnected:
        raise ApiError(None, "the body could not be read: it ended before its declared length") from None
    except HTTPException:
        raise
    except Exception as error:  # the server's chunk parser: a size that is not hex, a missing CRLF
        raise ApiError(None, f"the body could not be read: {error}") from None
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def json_body() -> dict:
    """The request's JSON object; 415 if the body is not declared JSON, 400 if it does not parse."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"the body must be JSON with Content-Type: application/json, got {request.mimetype or 'none'}"
        )
    raw = body_bytes()
    try:
        # NaN and Infinity parse (as Python's json allows them) so that the field check can name them.
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(None, f"invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(None, f"the body must be a JSON object, got {describe(data)}")
    return data


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_body() -> np.ndarray:
    """The request's 28x28 PNG as uint8 grayscale pixels; 415 if not declared PNG, 400 naming the problem."""
    if request.mimetype != "image/png":
        raise UnsupportedMediaType(
            f"the body must be a PNG image with Content-Type: image/png, got {request.mimetype or 'none'}"
        )
    data = body_bytes()
    if not data:
        raise ApiError(None, f"the body is empty: send a {IMAGE_SIZE}x{IMAGE_SIZE} PNG")
    if not data.startswith(PNG_SIGNATURE):
        raise ApiError(
            None, f"the body is not a PNG image: it starts with {data[:8]!r}, not the PNG signature"
        )
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):  # read from the header, before any pixel
                width, height = image.size
                raise ApiError(
                    None,
                    f"the picture must be {IMAGE_SIZE}x{IMAGE_SIZE} pixels, got {width}x{height} "
                    "(GET /generate with scale=1 gives one)",
                )
            return np.asarray(image.convert("L"))  # colour and palette pictures as grayscale
    except UnidentifiedImageError:  # its message names a Python object, not the problem
        raise ApiError(None, "the body is not a readable PNG image: its chunks do not parse") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as error:
        raise ApiError(None, f"the body is not a readable PNG image: {error}") from None


INT_TOKEN = re.compile(r"[+-]?\d{1,100}")
NUMBER_TOKEN = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def query_value(text: str):
    """A query-string token as the JSON value it spells (int, float or, failing that, str)."""
    if INT_TOKEN.fullmatch(text):
        return int(text)
    if NUMBER_TOKEN.fullmatch(text):
        return float(text)
    return text


def query_state(args, allowed: set[str]) -> dict:
    """Query parameters as a JSON-like object: labels=0,0,1,... (or ten labels=x), numbers as numbers."""
    data = {}
    for name in args:
        values = args.getlist(name)
        if name == "labels":
            tokens = values[0].split(",") if len(values) == 1 else values
            data[name] = [query_value(token.strip()) for token in tokens]
        elif name in allowed:
            data[name] = query_value(values[0])
        else:
            data[name] = values[0]  # reported as an unknown field by fields()
    return data
