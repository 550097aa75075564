"""Property-based fuzzing of every endpoint: whatever arrives, the answer is never a 5xx.

Bad input always gets a JSON error naming the problem (and the field, when there is one), and every
answer carries the security headers. The app fixture is TESTING, so an unexpected exception fails
the test instead of turning into a quiet 500. Examples are derandomized: the same inputs every run.
"""

import io
import json
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from helpers import lively_generator, save, save_small_classifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from webapp.errors import SECURITY_HEADERS

pytestmark = pytest.mark.slow  # each property runs a hundred or more requests

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
POST_PATHS = ["/generate", "/grid", "/interpolate"]
GET_PATHS = ["/", "/generate", "/healthz", "/api/model", "/static/app.js", "/nowhere"]
HUGE_NUMBERS = [10**30, -(10**30), 2**64, 2**32, -1, 1e308, -1e308, 5e-324, 1e-300, 0.0, -0.0]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(HUGE_NUMBERS)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=12) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)
# Each field is often valid, so that the checks after it are reached too, and otherwise anything.
label_vectors = (
    st.lists(st.floats(0, 1), min_size=10, max_size=10)
    | st.lists(scalars | st.floats(0, 1), max_size=12)
    | json_values
)
seeds = st.integers(0, 2**32 - 1) | json_values
small = st.integers(-2, 40) | json_values
states = st.fixed_dictionaries(
    {"labels": label_vectors, "seed": seeds},
    optional={"seed_b": seeds, "blend": st.floats(0, 1) | json_values, "scale": small, "frames": small},
)
# Objects shaped like each endpoint's body: these reach the checks past "missing".
shaped_bodies = {
    "/generate": states,
    "/grid": st.fixed_dictionaries(
        {"labels": st.lists(label_vectors, max_size=12) | json_values, "seeds": st.lists(seeds, max_size=12)},
        optional={"scale": small},
    ),
    "/interpolate": st.fixed_dictionaries(
        {"from": states | json_values, "to": states | json_values},
        optional={"frames": small, "scale": small, "duration": st.integers(0, 3000) | json_values},
    ),
}
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "image/png",
        "",
    ]
) | st.text(max_size=30).filter(lambda text: "\n" not in text and "\r" not in text)


def assert_well_answered(response) -> None:
    """No server error; errors are JSON naming the problem; the security headers are always there."""
    assert response.status_code < 500, response.get_data(as_text=True)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    if response.status_code >= 400 and response.request.method != "HEAD":  # HEAD: headers only
        assert response.mimetype == "application/json"
        body = response.json
        assert isinstance(body["error"], str) and body["error"]
        if "field" in body:
            assert body["error"].startswith(f"{body['field']}: ")
        assert "Traceback" not in response.get_data(as_text=True)
    response.close()  # a static file is streamed from an open file


def post_json(client, path: str, value):
    # allow_nan: NaN and Infinity go out as the bare words Python's json writes, as a client might.
    return client.post(path, data=json.dumps(value, allow_nan=True), content_type="application/json")


@pytest.mark.parametrize("path", POST_PATHS)
@FUZZ
@given(value=json_values)
def test_any_json_value_as_the_body(app, path, value):
    assert_well_answered(post_json(app.test_client(), path, value))


@pytest.mark.parametrize("path", POST_PATHS)
@FUZZ
@given(data=st.data())
def test_bodies_shaped_like_the_endpoints_with_any_values(app, path, data):
    body = data.draw(shaped_bodies[path])
    response = post_json(app.test_client(), path, body)
    assert_well_answered(response)
    if response.status_code != 200:
        assert response.status_code == 400 and "field" in response.json


@pytest.mark.parametrize("path", POST_PATHS)
@FUZZ
@given(body=st.binary(max_size=2000), content_type=content_types)
def test_any_bytes_with_any_content_type(app, path, body, content_type):
    assert_well_answered(app.test_client().post(path, data=body, content_type=content_type))


@pytest.mark.parametrize("path", GET_PATHS)
@FUZZ
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["labels", "seed", "seed_b", "blend", "scale", "v"]) | st.text(max_size=8),
            st.text(max_size=40) | st.sampled_from(["nan", "inf", "-1", "1e999", "9" * 200, "0x10"]),
        ),
        max_size=14,
    )
)
def test_any_query_string(app, path, pairs):
    response = app.test_client().get(path, query_string=urlencode(pairs))
    assert_well_answered(response)
    if path == "/":
        assert response.status_code == 200  # a broken link still shows the page, with defaults


@pytest.mark.parametrize("path", ["/", "/generate"])
@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_raw_query_bytes(app, path, raw):
    assert_well_answered(app.test_client().get(f"{path}?{quote(raw, safe='=&,')}"))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.sampled_from(POST_PATHS + GET_PATHS) | st.text(max_size=30).map(lambda text: "/" + quote(text)),
)
def test_any_method_on_any_path(app, method, path):
    assert_well_answered(app.test_client().open(path, method=method))


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("depth", [1, 100, 1000, 5000, 8000])
def test_deeply_nested_arrays(app, path, depth):
    for body in ("[" * depth + "]" * depth, '{"labels": ' + "[" * depth + "]" * depth + ', "seed": 1}'):
        response = app.test_client().post(path, data=body, content_type="application/json")
        assert_well_answered(response)
        assert response.status_code in (400, 413)


@pytest.mark.parametrize("path", POST_PATHS)
def test_numbers_too_long_to_parse_are_a_400(app, path):
    body = '{"labels": [0,0,0,0,0,0,0,0,0,0], "seed": ' + "9" * 5000 + "}"
    response = app.test_client().post(path, data=body, content_type="application/json")
    assert_well_answered(response)
    assert response.status_code == 400 and "invalid JSON" in response.json["error"]


@pytest.fixture(scope="module")
def reading_app(make_app, tmp_path_factory):
    """An app with a classifier, so that /classify reads the bodies instead of answering 503."""
    folder = save(lively_generator(), tmp_path_factory.mktemp("weights"), "random weights for the tests")
    return make_app(GENERATOR_DIR=save_small_classifier(folder))


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PNG_28 = png_of(np.arange(784, dtype=np.uint16).reshape(28, 28).astype(np.uint8))


def damaged(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out)


png_bodies = (
    st.binary(max_size=3000)
    | st.builds(lambda cut, tail: PNG_28[:cut] + tail, st.integers(0, len(PNG_28)), st.binary(max_size=64))
    | st.builds(
        damaged, st.just(PNG_28), st.lists(st.tuples(st.integers(8, 10**6), st.integers(0, 255)), max_size=6)
    )
    | st.builds(png_of, st.sampled_from([np.zeros((1, 1), np.uint8), np.zeros((28, 27), np.uint8)]))
)


@FUZZ
@given(body=png_bodies)
def test_any_bytes_as_the_png_to_classify(reading_app, body):
    response = reading_app.test_client().post("/classify", data=body, content_type="image/png")
    assert_well_answered(response)
    assert response.status_code in (200, 400)
