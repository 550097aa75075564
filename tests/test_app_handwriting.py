"""The handwriting sliders (slant, thickness, width) through the API and the page: bounds, the zero
default, determinism, and weights that have no directions."""

import io

import numpy as np
import pytest
from helpers import lively_generator
from PIL import Image

from model.export import save_generator
from model.handwriting import HANDWRITING, styled_noise
from model.sampling import seed_noise
from webapp.state import State

LABELS = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
STYLE = {"slant": 0.5, "thickness": -0.25, "width": 1}


@pytest.fixture(scope="module")
def styled_dir(tmp_path_factory):
    """The lively test generator with random directions, large enough to move many pixels."""
    folder = tmp_path_factory.mktemp("styled")
    directions = np.random.default_rng(3).normal(0, 0.5, (3, 100)).astype(np.float32)
    fit = {"names": list(HANDWRITING), "steps": [1.0, 1.0, 1.0]}
    save_generator(lively_generator(), folder, {"epochs": 0}, handwriting=(directions, fit))
    return folder


@pytest.fixture(scope="module")
def styled_app(make_app, styled_dir):
    return make_app(GENERATOR_DIR=styled_dir)


@pytest.fixture
def styled(styled_app):
    return styled_app.test_client()


def png(response) -> bytes:
    assert response.status_code == 200, response.get_json()
    return response.data


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def generate(client, **extra) -> bytes:
    return png(client.post("/generate", json={"labels": LABELS, "seed": 42, **extra}))


def test_all_three_at_0_give_the_bytes_of_a_request_without_them(styled):
    without = generate(styled)
    assert generate(styled, slant=0, thickness=0.0, width=-0.0) == without
    query = "labels=0,0,0,1,0,0,0,0,0,0&seed=42"
    assert png(styled.get(f"/generate?{query}&slant=0&thickness=0&width=0")) == without
    assert png(styled.get(f"/generate?{query}")) == without


def test_each_slider_moves_the_picture_and_the_same_request_gives_the_same_bytes(
    styled, make_app, styled_dir
):
    plain = generate(styled)
    moved = {name: generate(styled, **{name: 0.8}) for name in HANDWRITING}
    assert all(picture != plain for picture in moved.values()) and len(set(moved.values())) == 3
    again = make_app(GENERATOR_DIR=styled_dir).test_client()  # another app: nothing cached
    assert generate(again, **STYLE) == generate(styled, **STYLE)


def test_the_picture_is_the_generator_of_the_styled_noise(styled, styled_app):
    gen = styled_app.extensions["networks"].generator.folded
    expected = styled_noise(seed_noise(42), tuple(STYLE.values()), gen.handwriting)
    assert (
        State(tuple(map(float, LABELS)), 42, style=tuple(map(float, STYLE.values())))
        .noise(100, gen.handwriting)
        .tobytes()
        == expected.tobytes()
    )
    z_moved = gen(expected[None], np.array([LABELS], np.float32))
    shown = pixels(generate(styled, **STYLE))
    np.testing.assert_array_equal(shown, np.clip(np.rint(z_moved[0, 0] * 255), 0, 255).astype(np.uint8))


def test_get_and_post_agree_and_the_json_answer_echoes_the_sliders(styled):
    query = "labels=0,0,0,1,0,0,0,0,0,0&seed=42&slant=0.5&thickness=-0.25&width=1"
    assert png(styled.get(f"/generate?{query}")) == generate(styled, **STYLE)
    answer = styled.post(
        "/generate", json={"labels": LABELS, "seed": 42, **STYLE}, headers={"Accept": "application/json"}
    ).get_json()
    assert {name: answer[name] for name in HANDWRITING} == STYLE
    plain = styled.post(
        "/generate", json={"labels": LABELS, "seed": 42}, headers={"Accept": "application/json"}
    )
    assert {name: plain.get_json()[name] for name in HANDWRITING} == dict.fromkeys(HANDWRITING, 0)


def test_get_etags_differ_with_the_sliders(styled):
    query = "labels=0,0,0,1,0,0,0,0,0,0&seed=42"
    assert (
        styled.get(f"/generate?{query}").headers["ETag"]
        != styled.get(f"/generate?{query}&slant=0.1").headers["ETag"]
    )


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"slant": 1.01}, "slant", "between -1 and 1"),
        ({"thickness": -2}, "thickness", "between -1 and 1"),
        ({"width": "0.5"}, "width", "must be a number"),
        ({"slant": True}, "slant", "must be a number"),
        ({"width": None}, "width", "must be a number"),
        ({"thickness": [0.1]}, "thickness", "must be a number"),
    ],
)
def test_generate_refuses_a_slider_out_of_range_or_not_a_number_by_name(styled, extra, field, words):
    response = styled.post("/generate", json={"labels": LABELS, "seed": 42, **extra})
    assert response.status_code == 400
    assert response.get_json()["field"] == field and words in response.get_json()["error"]


@pytest.mark.parametrize(
    ("query", "field"), [("slant=1.5", "slant"), ("width=abc", "width"), ("thickness=nan", "thickness")]
)
def test_get_generate_refuses_bad_sliders_by_name(styled, query, field):
    response = styled.get(f"/generate?labels=0,0,0,1,0,0,0,0,0,0&seed=42&{query}")
    assert response.status_code == 400 and response.get_json()["field"] == field


def test_the_grid_takes_the_sliders_for_every_cell(styled):
    body = {"labels": [LABELS], "seeds": [42, 43]}
    plain = pixels(png(styled.post("/grid", json=body)))
    assert np.array_equal(pixels(png(styled.post("/grid", json={**body, "slant": 0, "width": 0}))), plain)
    grid = pixels(png(styled.post("/grid", json={**body, **STYLE})))
    np.testing.assert_array_equal(grid[:, :28], pixels(generate(styled, **STYLE)))
    response = styled.post("/grid", json={**body, "width": -1.5})
    assert response.status_code == 400 and response.get_json()["field"] == "width"


def test_the_morph_takes_the_sliders_at_both_ends(styled):
    ends = {"from": {"labels": LABELS, "seed": 42, **STYLE}, "to": {"labels": LABELS, "seed": 7, "slant": -1}}
    gif = Image.open(io.BytesIO(png(styled.post("/interpolate", json={**ends, "frames": 4}))))
    np.testing.assert_array_equal(np.asarray(gif.convert("L")), pixels(generate(styled, **STYLE)))
    gif.seek(gif.n_frames - 1)
    last = png(styled.post("/generate", json={"labels": LABELS, "seed": 7, "slant": -1}))
    np.testing.assert_array_equal(np.asarray(gif.convert("L")), pixels(last))
    bad = {**ends, "to": {**ends["to"], "thickness": 3}}
    response = styled.post("/interpolate", json=bad)
    assert response.status_code == 400 and response.get_json()["field"] == "to.thickness"


def test_weights_without_directions_refuse_a_slider_off_0_and_say_how_to_add_them(client):
    assert client.post("/generate", json={"labels": LABELS, "seed": 42, "slant": 0}).status_code == 200
    for path, body, field in [
        ("/generate", {"labels": LABELS, "seed": 42, "slant": 0.5}, "slant"),
        ("/grid", {"labels": [LABELS], "seeds": [1], "width": -0.1}, "width"),
        (
            "/interpolate",
            {"from": {"labels": LABELS, "seed": 1}, "to": {"labels": LABELS, "seed": 2, "thickness": 1}},
            "to.thickness",
        ),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 400 and response.get_json()["field"] == field
        assert "no handwriting directions" in response.get_json()["error"]
        assert "handwriting.py" in response.get_json()["error"]


def test_the_page_has_three_labelled_handwriting_sliders_in_the_links_state(styled):
    html = styled.get("/?labels=0,0,0,1,0,0,0,0,0,0&seed=42&slant=0.5&width=-1").get_data(as_text=True)
    for name, label in (("slant", "Slant"), ("thickness", "Stroke thickness"), ("width", "Width")):
        assert f'<label for="{name}">{label}</label>' in html
    assert 'id="slant" name="slant" min="-1" max="1" step="0.001" value="0.500"' in html
    assert 'id="width" name="width" min="-1" max="1" step="0.001" value="-1.000"' in html
    assert 'id="thickness" name="thickness" min="-1" max="1" step="0.001" value="0.000"' in html
    assert "slant=0.5" in html and "width=-1" in html  # the picture's URL carries them
    assert html.count('aria-describedby="handwriting-hint">') == 3  # and none disabled


def test_the_page_of_weights_without_directions_disables_the_sliders_and_says_why(client):
    html = client.get("/?labels=0,0,0,1,0,0,0,0,0,0&seed=42&slant=0.5").get_data(as_text=True)
    assert (
        html.count('aria-describedby="handwriting-hint" disabled>') == 3 and "python handwriting.py" in html
    )
    assert "handwriting sliders were not used" in html and "slant=0.5" not in html


def test_the_pages_weights_file_carries_the_directions(styled, styled_app):
    from test_browser_weights import read_weights, weights_url

    _, arrays = read_weights(styled.get(weights_url(styled_app)).data)
    gen = styled_app.extensions["networks"].generator.folded
    np.testing.assert_array_equal(arrays["handwriting"], gen.handwriting)
