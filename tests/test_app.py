"""The JSON API and the page, through Flask's test client."""

import base64
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import numpy as np
import pytest
from helpers import weights_version
from PIL import Image

from model import export, files
from model.export import load_generator
from model.files import WeightsError
from model.sampling import MAX_SEED
from webapp import pictures
from webapp.errors import SECURITY_HEADERS

ONE_HOT_2 = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
ONE_HOT_7 = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
QUERY_2 = "labels=0,0,1,0,0,0,0,0,0,0&seed=42"


def picture(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "L"
    return np.asarray(image)


def post(client, path, body, **kwargs):
    return client.post(path, json=body, **kwargs)


def digit(client, labels=ONE_HOT_2, seed=42, **extra) -> np.ndarray:
    response = post(client, "/generate", {"labels": labels, "seed": seed, **extra})
    assert response.status_code == 200, response.json
    return picture(response.data)


def assert_error(response, status: int, field: str | None, *words: str):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.json
    assert isinstance(body["error"], str)
    if field is not None:
        assert body["field"] == field
        assert body["error"].startswith(f"{field}: ")
    for word in words:
        assert word in body["error"]
    assert "Traceback" not in response.get_data(as_text=True)


# ---------------------------------------------------------------- service endpoints


def test_healthz_is_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_api_model_returns_the_weights_metadata_and_the_pictures_version(client, app, generator_dir):
    response = client.get("/api/model")
    assert response.status_code == 200
    assert response.json == {**load_generator(generator_dir)[1], "version": weights_version(app)}
    assert response.json == {**json.loads((generator_dir / "generator.json").read_text()), "version": ANY}


def test_generator_is_loaded_once_at_start_up(app, client, monkeypatch):
    def fail(folder):
        raise AssertionError("the generator was loaded again during a request")

    monkeypatch.setattr(export, "load_generator", fail)
    monkeypatch.setattr(files, "load_network", fail)
    assert post(client, "/generate", {"labels": ONE_HOT_2, "seed": 1}).status_code == 200


# ---------------------------------------------------------------- POST /generate


def test_generate_returns_a_28px_8bit_grayscale_png(client):
    response = post(client, "/generate", {"labels": ONE_HOT_2, "seed": 42})
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (28, 28))
    assert "generate;dur=" in response.headers["Server-Timing"]


def test_generate_scale_upscales_with_nearest_neighbour(client):
    small = digit(client)
    big = digit(client, scale=8)
    assert big.shape == (224, 224)
    assert np.array_equal(big, np.kron(small, np.ones((8, 8), dtype=np.uint8)))
    assert digit(client, scale=16).shape == (448, 448)


def test_generate_is_byte_identical_twice_and_across_app_instances(make_app, client, generator_dir):
    body = {"labels": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "seed": 123456789}
    first = post(client, "/generate", body).data
    assert post(client, "/generate", body).data == first
    other = make_app(GENERATOR_DIR=generator_dir).test_client()
    assert post(other, "/generate", body).data == first


def test_concurrent_requests_give_identical_pictures(app):
    """Threads share one generator (gunicorn's gthread workers); answers must not mix."""
    bodies = [{"labels": ONE_HOT_2, "seed": seed, "scale": 2} for seed in (1, 2, 3, 4)] * 4

    def draw(body):
        return body["seed"], app.test_client().post("/generate", json=body).data

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(draw, bodies))
    by_seed = {}
    for seed, data in results:
        assert by_seed.setdefault(seed, data) == data
    assert len(set(by_seed.values())) == 4


def test_generate_depends_on_seed_and_labels(client):
    base = digit(client, seed=1)
    assert not np.array_equal(base, digit(client, seed=2))
    assert not np.array_equal(base, digit(client, labels=ONE_HOT_7, seed=1))
    assert not np.array_equal(base, digit(client, labels=[0.5] * 10, seed=1))


def test_generate_accepts_extreme_label_vectors_and_seeds(client):
    for labels in ([0] * 10, [1] * 10, [1, 1] + [0] * 8):
        for seed in (0, MAX_SEED):
            assert digit(client, labels=labels, seed=seed).shape == (28, 28)


def test_generate_answers_json_with_a_data_url_when_asked(client):
    body = {"labels": ONE_HOT_2, "seed": 42, "scale": 2}
    response = post(client, "/generate", body, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    answer = response.json
    prefix = "data:image/png;base64,"
    assert answer["image"].startswith(prefix)
    assert base64.b64decode(answer["image"][len(prefix) :]) == post(client, "/generate", body).data
    assert answer["labels"] == ONE_HOT_2 and answer["seed"] == 42
    assert isinstance(answer["elapsed_ms"], float) and answer["elapsed_ms"] >= 0
    assert "Accept" in response.headers["Vary"]


@pytest.mark.parametrize("accept", ["*/*", "image/png", "image/png, application/json", "text/html"])
def test_generate_answers_png_unless_json_is_preferred(client, accept):
    response = post(client, "/generate", {"labels": ONE_HOT_2, "seed": 42}, headers={"Accept": accept})
    assert response.mimetype == "image/png"


def test_blend_ends_are_exactly_the_two_seeds_and_the_middle_differs(client):
    a, b = digit(client, seed=1), digit(client, seed=2)
    assert np.array_equal(digit(client, seed=1, seed_b=2, blend=0), a)
    assert np.array_equal(digit(client, seed=1, seed_b=2, blend=1), b)
    middle = digit(client, seed=1, seed_b=2, blend=0.5)
    assert not np.array_equal(middle, a) and not np.array_equal(middle, b)


def test_blend_answer_echoes_the_style_seed(client):
    body = {"labels": ONE_HOT_2, "seed": 1, "seed_b": 2, "blend": 0.25}
    answer = post(client, "/generate", body, headers={"Accept": "application/json"}).json
    assert (answer["seed_b"], answer["blend"]) == (2, 0.25)


# ---------------------------------------------------------------- validation of POST /generate

NAN_BODY = '{"labels": [0, 0, 1, 0, 0, 0, 0, 0, 0, NaN], "seed": 1}'
BAD_GENERATE = [
    ({"seed": 1}, "labels", ["missing"]),
    ({"labels": ONE_HOT_2}, "seed", ["missing"]),
    ({"labels": ONE_HOT_2[:9], "seed": 1}, "labels", ["exactly 10", "got 9"]),
    ({"labels": ONE_HOT_2 + [0], "seed": 1}, "labels", ["exactly 10", "got 11"]),
    ({"labels": "0,0,1,0,0,0,0,0,0,0", "seed": 1}, "labels", ["must be an array"]),
    ({"labels": [0, 0, "1", 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["must be a number", "string"]),
    ({"labels": [0, 0, True, 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["must be a number", "boolean"]),
    ({"labels": [0, 0, None, 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["must be a number"]),
    ({"labels": [0, 0, 1.5, 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["between 0 and 1", "1.5"]),
    ({"labels": [0, 0, -0.01, 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["between 0 and 1"]),
    ({"labels": [0, 0, 10**400, 0, 0, 0, 0, 0, 0, 0], "seed": 1}, "labels[2]", ["between 0 and 1"]),
    ({"labels": ONE_HOT_2, "seed": 1.5}, "seed", ["must be an integer", "1.5"]),
    ({"labels": ONE_HOT_2, "seed": 42.0}, "seed", ["must be an integer"]),
    ({"labels": ONE_HOT_2, "seed": "42"}, "seed", ["must be an integer", "string"]),
    ({"labels": ONE_HOT_2, "seed": True}, "seed", ["must be an integer", "boolean"]),
    ({"labels": ONE_HOT_2, "seed": -1}, "seed", ["between 0 and 4294967295"]),
    ({"labels": ONE_HOT_2, "seed": MAX_SEED + 1}, "seed", ["between 0 and 4294967295"]),
    ({"labels": ONE_HOT_2, "seed": 1, "scale": 0}, "scale", ["between 1 and 16"]),
    ({"labels": ONE_HOT_2, "seed": 1, "scale": 17}, "scale", ["between 1 and 16"]),
    ({"labels": ONE_HOT_2, "seed": 1, "scale": 2.5}, "scale", ["must be an integer"]),
    ({"labels": ONE_HOT_2, "seed": 1, "blend": 0.5}, "seed_b", ["missing", "blend"]),
    ({"labels": ONE_HOT_2, "seed": 1, "seed_b": 2, "blend": 1.5}, "blend", ["between 0 and 1"]),
    ({"labels": ONE_HOT_2, "seed": 1, "seed_b": 2.5, "blend": 0.5}, "seed_b", ["must be an integer"]),
    ({"labels": ONE_HOT_2, "seed": 1, "seeds": [1]}, "seeds", ["unknown field"]),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_GENERATE)
def test_generate_rejects_bad_fields_by_name(client, body, field, words):
    assert_error(post(client, "/generate", body), 400, field, *words)


@pytest.mark.parametrize(
    ("raw", "word"),
    [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e999", "Infinity")],
)
def test_generate_rejects_nan_and_infinity(client, raw, word):
    body = NAN_BODY.replace("NaN", raw)
    response = client.post("/generate", data=body, content_type="application/json")
    assert_error(response, 400, "labels[9]", "finite", word)


@pytest.mark.parametrize(
    "raw", ['{"labels": [0, 0, 1', "", "{'labels': []}", "\xff\xfe", "[" * 5000 + "]" * 5000]
)
def test_generate_rejects_invalid_json(client, raw):
    response = client.post("/generate", data=raw.encode("latin-1"), content_type="application/json")
    assert_error(response, 400, None, "invalid JSON")


@pytest.mark.parametrize("raw", ["[1, 2]", "42", '"text"', "null"])
def test_generate_rejects_a_body_that_is_not_an_object(client, raw):
    response = client.post("/generate", data=raw, content_type="application/json")
    assert_error(response, 400, None, "must be a JSON object")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_generate_rejects_a_body_that_is_not_json_with_415(client, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/generate", data='{"labels": [], "seed": 1}', **kwargs)
    assert_error(response, 415, None, "application/json")


def test_generate_rejects_a_big_body_with_413(client):
    body = json.dumps({"labels": ONE_HOT_2, "seed": 1, "padding": " " * 20_000})
    assert_error(client.post("/generate", data=body, content_type="application/json"), 413, None, "16,384")


# ---------------------------------------------------------------- GET /generate


def test_get_generate_gives_the_same_png_as_post(client):
    response = client.get(f"/generate?{QUERY_2}&scale=8")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data == post(client, "/generate", {"labels": ONE_HOT_2, "seed": 42, "scale": 8}).data


def test_get_generate_accepts_ten_labels_parameters_like_a_form(client):
    form = "&".join(f"labels={x}" for x in ONE_HOT_2) + "&seed=42"
    assert client.get(f"/generate?{form}").data == client.get(f"/generate?{QUERY_2}").data


def test_get_generate_blend_matches_post(client):
    query = f"{QUERY_2}&seed_b=7&blend=0.3"
    body = {"labels": ONE_HOT_2, "seed": 42, "seed_b": 7, "blend": 0.3}
    assert client.get(f"/generate?{query}").data == post(client, "/generate", body).data


def test_get_generate_sets_an_etag_naming_the_weights_and_answers_304(client, app):
    response = client.get(f"/generate?{QUERY_2}")
    etag = response.headers["ETag"]
    assert etag.strip('"').startswith(weights_version(app))
    again = client.get(f"/generate?{QUERY_2}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    other = client.get("/generate?labels=0,0,1,0,0,0,0,0,0,0&seed=43")
    assert other.headers["ETag"] != etag
    # 1 and 1.0 are the same number, so the same picture and the same ETag.
    same = client.get("/generate?labels=0,0,1.0,0,0,0,0,0,0,0.000&seed=42")
    assert same.headers["ETag"] == etag


def test_get_generate_etag_changes_with_the_weights(make_app, client, other_generator_dir):
    other = make_app(GENERATOR_DIR=other_generator_dir).test_client()
    first, second = client.get(f"/generate?{QUERY_2}"), other.get(f"/generate?{QUERY_2}")
    assert first.headers["ETag"] != second.headers["ETag"]


def test_get_generate_cache_control_is_long_when_the_url_names_these_weights(client, app):
    version = weights_version(app)
    named = client.get(f"/generate?{QUERY_2}&v={version}")
    assert named.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    plain = client.get(f"/generate?{QUERY_2}")
    assert plain.headers["Cache-Control"] == "public, max-age=86400"
    stale = client.get(f"/generate?{QUERY_2}&v=0123456789abcdef")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"


BAD_QUERIES = [
    ("seed=42", "labels", ["missing"]),
    ("labels=0,0,1&seed=42", "labels", ["exactly 10", "got 3"]),
    ("labels=0,0,1,0,0,0,0,0,0,nan&seed=42", "labels[9]", ["finite", "NaN"]),
    ("labels=0,0,1,0,0,0,0,0,0,inf&seed=42", "labels[9]", ["finite", "Infinity"]),
    ("labels=0,0,1,0,0,0,0,0,0,x&seed=42", "labels[9]", ["must be a number", "string"]),
    ("labels=0,0,1,0,0,0,0,0,0,1_0&seed=42", "labels[9]", ["must be a number"]),
    ("labels=0,0,1,0,0,0,0,0,0,2&seed=42", "labels[9]", ["between 0 and 1"]),
    ("labels=0,0,1,0,0,0,0,0,0,0", "seed", ["missing"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=4.5", "seed", ["must be an integer"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=abc", "seed", ["must be an integer"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=4294967296", "seed", ["between 0 and 4294967295"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=" + "9" * 5000, "seed", ["must be an integer"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=1&scale=99", "scale", ["between 1 and 16"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=1&blend=0.5", "seed_b", ["missing"]),
    ("labels=0,0,1,0,0,0,0,0,0,0&seed=1&colour=red", "colour", ["unknown field"]),
]


@pytest.mark.parametrize(("query", "field", "words"), BAD_QUERIES)
def test_get_generate_rejects_bad_parameters_by_name(client, query, field, words):
    assert_error(client.get(f"/generate?{query}"), 400, field, *words)


# ---------------------------------------------------------------- one generator call per request


@pytest.fixture
def generator_calls(monkeypatch):
    calls = []
    real = pictures.generate

    def counting(gen, z, labels):
        calls.append(len(z))
        return real(gen, z, labels)

    monkeypatch.setattr(pictures, "generate", counting)
    return calls


# ---------------------------------------------------------------- POST /grid

DIGITS = [[1 if i == d else 0 for i in range(10)] for d in range(10)]


def test_grid_is_one_png_of_rows_by_seeds_in_one_generator_call(client, generator_calls):
    response = post(client, "/grid", {"labels": DIGITS[:3], "seeds": [5, 6, 7, 8], "scale": 2})
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert picture(response.data).shape == (3 * 28 * 2, 4 * 28 * 2)
    assert generator_calls == [12]


def test_grid_of_the_largest_size_is_served(client):
    response = post(client, "/grid", {"labels": DIGITS, "seeds": list(range(4)), "scale": 4})
    assert response.status_code == 200
    assert picture(response.data).shape == (10 * 28 * 4, 4 * 28 * 4)


def test_grid_answers_json_when_asked(client):
    body = {"labels": DIGITS[:2], "seeds": [1, 2, 3]}
    answer = post(client, "/grid", body, headers={"Accept": "application/json"}).json
    assert answer["image"].startswith("data:image/png;base64,")
    assert (answer["rows"], answer["columns"], answer["width"], answer["height"]) == (2, 3, 84, 56)


BAD_GRIDS = [
    ({"seeds": [1]}, "labels", ["missing"]),
    ({"labels": [ONE_HOT_2]}, "seeds", ["missing"]),
    ({"labels": [], "seeds": [1]}, "labels", ["1 to 10", "got 0"]),
    ({"labels": [ONE_HOT_2] * 11, "seeds": [1]}, "labels", ["1 to 10", "got 11"]),
    ({"labels": [ONE_HOT_2], "seeds": list(range(11))}, "seeds", ["1 to 10", "got 11"]),
    ({"labels": DIGITS, "seeds": list(range(5))}, "seeds", ["10x5 grid is 50 pictures", "limit of 40"]),
    ({"labels": ONE_HOT_2, "seeds": [1]}, "labels[0]", ["must be an array"]),
    ({"labels": [ONE_HOT_2, [0, 0, 0, 2, 0, 0, 0, 0, 0, 0]], "seeds": [1]}, "labels[1][3]", ["between"]),
    ({"labels": [ONE_HOT_2], "seeds": [1, 2.5]}, "seeds[1]", ["must be an integer"]),
    ({"labels": [ONE_HOT_2], "seeds": [1, -2]}, "seeds[1]", ["between 0 and 4294967295"]),
    ({"labels": DIGITS, "seeds": list(range(4)), "scale": 5}, "scale", ["limit", "smaller"]),
    ({"labels": [ONE_HOT_2], "seeds": [1], "seed": 1}, "seed", ["unknown field"]),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_GRIDS)
def test_grid_rejects_bad_fields_by_name(client, body, field, words):
    assert_error(post(client, "/grid", body), 400, field, *words)


def test_grid_rejects_non_json_with_415(client):
    assert_error(client.post("/grid", data="labels=1"), 415, None)


# ---------------------------------------------------------------- POST /interpolate

MORPH = {"from": {"labels": DIGITS[1], "seed": 1}, "to": {"labels": DIGITS[8], "seed": 2}}


def frames_of(data: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF"
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(np.asarray(image.convert("L")))
    return frames


def test_interpolate_is_an_animated_gif_with_the_frames_asked_for(client, generator_calls):
    response = post(client, "/interpolate", {**MORPH, "frames": 12, "scale": 3})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    image = Image.open(io.BytesIO(response.data))
    assert (image.n_frames, image.size, image.info["loop"]) == (12, (84, 84), 0)
    assert image.info["duration"] == 80
    assert generator_calls == [12]


def test_interpolate_starts_and_ends_on_the_two_states(client):
    frames = frames_of(post(client, "/interpolate", {**MORPH, "frames": 5}).data)
    assert len(frames) == 5
    start, end = digit(client, labels=DIGITS[1], seed=1), digit(client, labels=DIGITS[8], seed=2)
    np.testing.assert_array_equal(frames[0], start)
    np.testing.assert_array_equal(frames[-1], end)
    assert not np.array_equal(frames[2], frames[0]) and not np.array_equal(frames[2], frames[-1])


def test_interpolate_accepts_style_blends_duration_and_the_frame_limits(client):
    body = {
        "from": {"labels": DIGITS[3], "seed": 1, "seed_b": 9, "blend": 0.5},
        "to": {"labels": [0.5] * 10, "seed": 4},
        "duration": 40,
    }
    for frames in (2, 24):
        image = Image.open(io.BytesIO(post(client, "/interpolate", {**body, "frames": frames}).data))
        assert image.n_frames == frames and image.info["duration"] == 40


def test_interpolate_is_byte_identical_twice(client):
    body = {**MORPH, "frames": 6, "scale": 2}
    assert post(client, "/interpolate", body).data == post(client, "/interpolate", body).data


def test_interpolate_answers_json_when_asked(client):
    answer = post(client, "/interpolate", MORPH, headers={"Accept": "application/json"}).json
    assert answer["image"].startswith("data:image/gif;base64,")
    assert (answer["frames"], answer["width"]) == (24, 28)


BAD_MORPHS = [
    ({"to": MORPH["to"]}, "from", ["missing"]),
    ({"from": MORPH["from"]}, "to", ["missing"]),
    ({**MORPH, "from": [1]}, "from", ["must be a JSON object"]),
    ({**MORPH, "from": {"labels": DIGITS[1]}}, "from.seed", ["missing"]),
    ({**MORPH, "to": {"labels": DIGITS[1][:5], "seed": 1}}, "to.labels", ["exactly 10"]),
    ({**MORPH, "to": {"labels": DIGITS[1], "seed": "x"}}, "to.seed", ["must be an integer"]),
    ({**MORPH, "to": {"labels": DIGITS[1], "seed": 1, "blend": 0.5}}, "to.seed_b", ["missing"]),
    ({**MORPH, "to": {"labels": DIGITS[1], "seed": 1, "frames": 3}}, "to.frames", ["unknown field"]),
    ({**MORPH, "frames": 1}, "frames", ["between 2 and 24"]),
    ({**MORPH, "frames": 25}, "frames", ["between 2 and 24"]),
    ({**MORPH, "frames": True}, "frames", ["must be an integer"]),
    ({**MORPH, "duration": 5}, "duration", ["between 20 and 2000"]),
    ({**MORPH, "frames": 24, "scale": 5}, "scale", ["limit", "smaller"]),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_MORPHS)
def test_interpolate_rejects_bad_fields_by_name(client, body, field, words):
    assert_error(post(client, "/interpolate", body), 400, field, *words)


# ---------------------------------------------------------------- HTTP errors


def test_unknown_url_is_a_json_404(client):
    assert_error(client.get("/nope"), 404, None, "/nope")


@pytest.mark.parametrize(
    ("method", "path"), [("delete", "/generate"), ("get", "/grid"), ("post", "/healthz")]
)
def test_wrong_method_is_a_json_405_with_allow(client, method, path):
    response = getattr(client, method)(path)
    assert_error(response, 405, None, method.upper())
    assert response.headers["Allow"]


def test_an_unexpected_failure_is_a_json_500_without_details_with_the_security_headers(
    make_app, generator_dir, monkeypatch
):
    app = make_app(GENERATOR_DIR=generator_dir, TESTING=False)  # not TESTING: errors are handled

    def broken(*args):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(pictures, "generate", broken)
    monkeypatch.setattr(app.logger, "disabled", True)
    response = app.test_client().post("/generate", json={"labels": ONE_HOT_2, "seed": 1})
    assert_error(response, 500, None, "log")
    assert "secret" not in response.get_data(as_text=True)
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_app_without_weights_starts_and_says_why(make_app, tmp_path):
    app = make_app(GENERATOR_DIR=tmp_path / "missing")
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and "no generator.npz" in health.json["error"]
    assert_error(post(client, "/generate", {"labels": ONE_HOT_2, "seed": 1}), 503, None, "no generator")
    assert_error(client.get(f"/generate?{QUERY_2}"), 503, None, "no generator")
    page = client.get("/")
    assert page.status_code == 200 and b"could not be loaded" in page.data


def test_damaged_weights_stop_start_up(make_app, other_generator_dir):
    (other_generator_dir / "generator.npz").write_bytes(b"damaged")
    with pytest.raises(WeightsError, match="generator.npz: not a weights file"):
        make_app(GENERATOR_DIR=other_generator_dir)


def test_generator_dir_comes_from_the_environment(make_app, monkeypatch, generator_dir):
    monkeypatch.setenv("GENERATOR_DIR", str(generator_dir))
    assert make_app().config["GENERATOR_DIR"] == str(generator_dir)


# ---------------------------------------------------------------- the page


def test_page_renders_ten_labelled_sliders_in_digit_order(client):
    html = client.get("/").get_data(as_text=True)
    sliders = re.findall(
        r'<input type="range" id="label-(\d)" name="labels" min="0" max="1" step="0.001"', html
    )
    assert sliders == [str(d) for d in range(10)]
    for d in range(10):
        assert f'<label for="label-{d}"><span class="visually-hidden">digit </span>{d}</label>' in html
        assert f'<output id="label-{d}-value" for="label-{d}" aria-hidden="true">' in html
    assert 'id="seed"' in html and 'id="random-seed"' in html and 'id="blend"' in html


def test_page_shows_the_state_of_its_link(client):
    html = client.get("/?labels=0,0,0,0,0,0,0,0.25,0,1&seed=99&seed_b=5&blend=0.5").get_data(as_text=True)
    values = dict(re.findall(r'<input type="range" id="([\w-]+)"[^>]*\svalue="([^"]+)"', html))
    assert values == {
        **{f"label-{d}": "0.000" for d in range(10)},
        "label-7": "0.250",
        "label-9": "1.000",
        "blend": "0.500",
        **dict.fromkeys(("slant", "thickness", "width"), "0.000"),  # the handwriting sliders, at 0
    }
    assert re.search(r'id="seed" [^>]*value="99"', html) and re.search(r'id="seed-b" [^>]*value="5"', html)
    image = re.search(r'<img id="digit" src="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert image.startswith("/generate?labels=0,0,0,0,0,0,0,0.25,0,1&seed=99&seed_b=5&blend=0.5&v=")
    assert (
        client.get(image).data
        == client.get("/generate?labels=0,0,0,0,0,0,0,0.25,0,1&seed=99&seed_b=5&blend=0.5").data
    )


def test_page_ignores_parameters_that_are_not_state(client):
    response = client.get("/?labels=0,0,0,0,0,0,0,0,0,1&seed=5&utm_source=mail")
    assert b"was not used" not in response.data and b'id="label-9" name="labels"' in response.data
    assert re.search(rb'id="seed" [^>]*value="5"', response.data)


def test_page_with_a_broken_link_shows_defaults_and_why(client):
    response = client.get("/?labels=0,0,2&seed=1")
    assert response.status_code == 200
    assert b"The link&#39;s state was not used: labels: must have exactly 10 items" in response.data


def test_page_image_and_download_urls_serve_pngs(client):
    html = client.get("/").get_data(as_text=True)
    for element in ("digit", "download"):
        url = re.search(rf'id="{element}" [^>]*?(?:src|href)="([^"]+)"', html).group(1).replace("&amp;", "&")
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "image/png"
    assert picture(response.data).shape == (280, 280)


def test_page_has_every_preset(client):
    html = client.get("/").get_data(as_text=True)
    names = re.findall(r'class="preset" [^>]*><span class="visually-hidden">Preset </span>([^<]+)</a>', html)
    assert names == [str(d) for d in range(10)] + [
        "all 0",
        "all 1",
        "all 0.5",
        "0 and 1 at 1",
        "0 and 1 at 0.5",
    ]
    assert 'data-labels="0.5,0.5,0,0,0,0,0,0,0,0"' in html


def test_page_says_how_trained_the_weights_are(client):
    html = client.get("/").get_data(as_text=True)
    assert "0 epochs" in html and "provisional" in html


def test_page_has_no_inline_script_style_or_handlers_and_a_strict_csp(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son[a-z]+=", html) == []
    assert "http://" not in html and "https://" not in html  # no CDN: works on a closed network
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "text"),
    [("app.js", "AbortController"), ("style.css", "image-rendering: pixelated"), ("favicon.svg", "<svg")],
)
def test_static_files_are_served(client, name, text):
    with client.get(f"/static/{name}") as response:  # closes the file Flask streams
        assert response.status_code == 200 and text in response.get_data(as_text=True)
