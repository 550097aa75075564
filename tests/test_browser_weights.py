"""GET /api/generator/<version>.weights: the loaded generator's folded arrays for the page's forward pass."""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
from helpers import weights_version

from model.export import load_generator
from model.inference import FoldedGenerator
from webapp.browser_weights import weights_file

ARRAY_NAMES = FoldedGenerator.ARRAY_NAMES

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def read_weights(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a weights file, read as static/generator.js reads it."""
    (length,) = struct.unpack_from("<I", data)
    header = json.loads(data[4 : 4 + length])
    arrays, offset = {}, 4 + length
    for entry in header["arrays"]:
        size = int(np.prod(entry["shape"]))
        arrays[entry["name"]] = np.frombuffer(data, "<f4", size, offset).reshape(entry["shape"])
        offset += 4 * size
    assert offset == len(data), "bytes left over after the last array"
    return header, arrays


def weights_url(app) -> str:
    return f"/api/generator/{weights_version(app)}.weights"


def test_the_file_holds_the_generator_rebuilt_from_generator_npz(app, client, generator_dir):
    served = client.get(weights_url(app)).get_data()
    rebuilt = FoldedGenerator(load_generator(generator_dir)[0])  # from the npz on disk, not the app's
    assert served == weights_file(rebuilt)
    header, arrays = read_weights(served)
    assert (header["z_size"], header["ch"], header["n_classes"]) == (100, 16, 10)
    assert list(arrays) == list(ARRAY_NAMES)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(arrays[name], getattr(rebuilt, name), err_msg=name)


def test_the_shipped_weights_file_has_every_array_of_conditional_batch_norm_and_the_directions():
    gen, metadata = load_generator(WEIGHTS)
    folded = FoldedGenerator(gen)
    header, arrays = read_weights(weights_file(folded))
    assert list(arrays) == [*ARRAY_NAMES, "handwriting"]  # and the handwriting sliders' directions
    assert header["split"] == folded.split and header["ch"] == gen.ch
    np.testing.assert_array_equal(arrays["label_affine"], folded.label_affine)
    np.testing.assert_array_equal(arrays["handwriting"], folded.handwriting)
    assert sum(a.nbytes for a in arrays.values()) < 4_000_000  # the page's budget on a first visit


def test_the_folded_generator_lists_every_array_it_computes_with(generator_dir):
    folded = FoldedGenerator(load_generator(generator_dir)[0])
    held = {name for name, value in vars(folded).items() if isinstance(value, np.ndarray)}
    assert held == set(folded.arrays())  # so the page computes with all of them


def test_the_page_names_the_weights_url_of_its_version(app, client):
    html = client.get("/").get_data(as_text=True)
    assert f'data-weights-url="{weights_url(app)}"' in html


def test_the_weights_are_cached_for_good_and_revalidate_to_304(app, client):
    response = client.get(weights_url(app))
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Accept-Encoding" in response.headers["Vary"]
    again = client.get(weights_url(app), headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""


def test_the_weights_travel_gzipped_to_a_client_that_accepts_it(app, client):
    plain = client.get(weights_url(app), headers={"Accept-Encoding": "identity"})
    packed = client.get(weights_url(app), headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert packed.headers["ETag"] != plain.headers["ETag"]  # two representations, two tags


def test_other_weights_have_another_url_and_an_old_url_is_refused(make_app, app, client, other_generator_dir):
    other = make_app(GENERATOR_DIR=other_generator_dir)
    assert weights_url(other) != weights_url(app)
    response = other.test_client().get(weights_url(app))
    assert response.status_code == 404
    version = weights_version(app)
    assert response.get_json()["error"].startswith(f"version: no weights '{version}' here;")
    assert response.get_json()["field"] == "version"


def test_without_a_generator_the_weights_answer_503_and_the_page_links_none(make_app, tmp_path):
    empty = make_app(GENERATOR_DIR=tmp_path).test_client()
    response = empty.get("/api/generator/none.weights")
    assert response.status_code == 503 and "no generator loaded" in response.get_json()["error"]
    assert "data-weights-url" not in empty.get("/").get_data(as_text=True)


def test_a_strange_version_is_refused_by_name(client):
    long = client.get(f"/api/generator/{'x' * 200}.weights")
    assert long.status_code == 404 and long.get_json()["field"] == "version"
    climbing = client.get("/api/generator/..%2F..%2Fweights%2Fgenerator.weights")
    assert climbing.status_code == 404 and "no such page" in climbing.get_json()["error"]
