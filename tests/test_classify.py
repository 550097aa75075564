"""What the MNIST classifier reads: POST /classify, JSON /generate's "classifier" field, the page's bars."""

import io
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import lively_generator, save, save_small_classifier
from PIL import Image

import webapp
from model.classifier import WEIGHTS_NAME
from model.files import WeightsError
from webapp import EXIT_BAD_WEIGHTS

THREE = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
QUERY = "labels=0,0,0,1,0,0,0,0,0,0.5&seed=5"
JSON = {"Accept": "application/json"}
SHIPPED = Path(__file__).resolve().parent.parent / "weights"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """A random generator with a small random classifier beside it."""
    folder = tmp_path_factory.mktemp("weights")
    return save_small_classifier(save(lively_generator(), folder, "random weights for the tests"))


@pytest.fixture(scope="module")
def client(make_app, weights_dir):
    return make_app(GENERATOR_DIR=weights_dir).test_client()


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def classify(client, data: bytes, content_type: str = "image/png"):
    return client.post("/classify", data=data, content_type=content_type)


def assert_reading(answer: dict) -> None:
    probabilities = answer["classifier"]
    assert len(probabilities) == 10 and all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) == pytest.approx(1, abs=1e-4)
    assert answer["reads_as"] == int(np.argmax(probabilities))


def test_json_generate_carries_what_the_classifier_reads(client):
    for answer in (
        client.post("/generate", json={"labels": THREE, "seed": 5}, headers=JSON).json,
        client.get(f"/generate?{QUERY}", headers=JSON).json,
    ):
        assert answer["image"].startswith("data:image/png;base64,")
        assert_reading(answer)


def test_classify_reads_the_picture_as_json_generate_did(client):
    answer = client.get(f"/generate?{QUERY}", headers=JSON).json
    response = classify(client, client.get(f"/generate?{QUERY}").data)
    assert response.status_code == 200
    assert response.json["classifier"] == answer["classifier"]
    assert response.json["reads_as"] == answer["reads_as"]


def test_pictures_without_accept_json_carry_no_reading(client):
    response = client.post("/generate", json={"labels": THREE, "seed": 5})
    assert response.mimetype == "image/png"


def test_get_generate_names_its_two_representations_apart(client):
    picture, answer = client.get(f"/generate?{QUERY}"), client.get(f"/generate?{QUERY}", headers=JSON)
    assert picture.mimetype == "image/png" and answer.mimetype == "application/json"
    assert "Accept" in picture.headers["Vary"] and "Accept" in answer.headers["Vary"]
    assert picture.headers["ETag"] != answer.headers["ETag"]
    assert answer.headers["ETag"].startswith("W/")  # elapsed_ms differs between JSON answers
    again = client.get(f"/generate?{QUERY}", headers={**JSON, "If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304


def test_a_colour_png_is_read_as_its_grayscale(client):
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    gray, colour = classify(client, png(pixels)), classify(client, png(pixels, "RGB"))
    assert gray.status_code == colour.status_code == 200
    assert colour.json["classifier"] == gray.json["classifier"]


def corrupted_idat(data: bytes) -> bytes:
    """The PNG with its compressed pixel data garbled but its chunk checksum kept valid."""
    start = data.index(b"IDAT")
    length = int.from_bytes(data[start - 4 : start], "big")
    garbled = bytes(b ^ 0x5A for b in data[start + 4 : start + 4 + length])
    crc = zlib.crc32(b"IDAT" + garbled).to_bytes(4, "big")
    return data[: start + 4] + garbled + crc + data[start + 8 + length :]


def chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def huge_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height pixels, as a decompression bomb's does."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(bytes(1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


GOOD = png(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize(
    "body, content_type, status, words",
    [
        (b"", "image/png", 400, ["empty"]),
        (b"GIF89a....", "image/png", 400, ["not a PNG image", "signature"]),
        (GOOD[:50], "image/png", 400, ["not a readable PNG"]),
        (corrupted_idat(GOOD), "image/png", 400, ["not a readable PNG"]),
        (png(np.zeros((280, 280), np.uint8)), "image/png", 400, ["28x28", "got 280x280", "scale=1"]),
        (huge_header(100_000, 100_000), "image/png", 400, ["not a readable PNG", "decompression bomb"]),
        (GOOD, "application/octet-stream", 415, ["image/png", "application/octet-stream"]),
        (b"\x89PNG\r\n\x1a\n" + bytes(20_000), "image/png", 413, ["over the limit"]),
    ],
    ids=["empty", "not-png", "truncated", "garbled", "too-big-picture", "bomb-header", "type", "too-long"],
)
def test_bad_images_get_an_error_naming_the_problem(client, body, content_type, status, words):
    response = classify(client, body, content_type)
    assert response.status_code == status and response.mimetype == "application/json"
    for word in words:
        assert word in response.json["error"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_the_page_shows_the_bars_of_its_picture(client):
    html = client.get(f"/?{QUERY}").get_data(as_text=True)
    answer = client.get(f"/generate?{QUERY}", headers=JSON).json
    meters = re.findall(r'<meter id="reading-(\d)" min="0" max="1" value="([\d.]+)">', html)
    assert [int(d) for d, _ in meters] == list(range(10))
    assert [float(v) for _, v in meters] == pytest.approx(answer["classifier"], abs=1e-4)
    for d in range(10):
        assert (
            f'<label for="reading-{d}"><span class="visually-hidden">probability of </span>{d}</label>'
            in html
        )
    assert f"Reads as {answer['reads_as']} (" in html


def test_without_a_classifier_the_page_and_api_say_so_and_the_rest_works(make_app, generator_dir):
    client = make_app(GENERATOR_DIR=generator_dir).test_client()
    response = classify(client, GOOD)
    assert response.status_code == 503 and "no classifier loaded" in response.json["error"]
    assert "classifier.npz" in response.json["error"]
    answer = client.post("/generate", json={"labels": THREE, "seed": 5}, headers=JSON).json
    assert answer["classifier"] is None and "no classifier.npz" in answer["classifier_error"]
    assert answer["image"].startswith("data:image/png")
    assert client.get(f"/generate?{QUERY}").status_code == 200
    html = client.get("/").get_data(as_text=True)
    assert "No classifier is loaded" in html and "<meter" not in html


def test_a_damaged_classifier_stops_start_up_with_one_line(make_app, tmp_path, monkeypatch, capsys):
    folder = save_small_classifier(save(lively_generator(), tmp_path, "random"))
    (folder / WEIGHTS_NAME).write_bytes(b"damaged")
    with pytest.raises(WeightsError, match="classifier.npz: not a weights file"):
        make_app(GENERATOR_DIR=folder)
    monkeypatch.setenv("GENERATOR_DIR", str(folder))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS
    assert capsys.readouterr().err.splitlines() == [
        f"app: error: weights failed their check: {folder / WEIGHTS_NAME}: "
        "not a weights file, or damaged (File is not a zip file)"
    ]


def test_the_shipped_classifier_reads_the_shipped_digits(make_app):
    client = make_app(GENERATOR_DIR=SHIPPED).test_client()
    for digit in (0, 3, 7):
        labels = [int(d == digit) for d in range(10)]
        answer = client.post("/generate", json={"labels": labels, "seed": 11}, headers=JSON).json
        assert answer["reads_as"] == digit and answer["classifier"][digit] > 0.9


def test_damaged_pngs_are_refused_or_read_never_a_server_error(client):
    rng = np.random.default_rng(0)
    good = client.get(f"/generate?{QUERY}").data
    statuses = set()
    for _ in range(150):
        damaged = bytearray(good)
        for position in rng.integers(8, len(good), rng.integers(1, 4)):  # the signature stays
            damaged[position] = rng.integers(0, 256)
        response = classify(client, bytes(damaged))
        assert response.status_code in (200, 400), response.json
        statuses.add(response.status_code)
    assert statuses == {200, 400}  # some damage is only in pixels (a readable picture), some is not
