"""The rendered page passes the Nu HTML checker (the W3C validator) in each state the server renders it."""

import numpy as np
import pytest
from helpers import lively_generator, nu_errors, save, save_small_classifier

from model.export import save_generator

pytestmark = pytest.mark.slow  # the checker is a Java program: a few seconds to start


@pytest.fixture
def page(make_app):
    """The page's HTML as an app serving `folder` renders it for `query`."""

    def render(folder, query: str = "") -> str:
        response = make_app(GENERATOR_DIR=folder).test_client().get(f"/{query}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    return render


def test_every_rendered_state_of_the_page_is_valid_html(page, tmp_path, generator_dir):
    full = save_small_classifier(save(lively_generator(), tmp_path / "full", "random weights"))
    directions = (np.zeros((3, 100), np.float32), {"steps": [1.0, 1.0, 1.0]})
    save_generator(lively_generator(), tmp_path / "styled", {"epochs": 0}, handwriting=directions)
    (tmp_path / "empty").mkdir()
    pages = {
        "generator-and-classifier": page(full),
        "blended-state": page(full, "?labels=0.5,0,0,0,0,0,0,0,0.25,1&seed=9&seed_b=3&blend=0.4"),
        "broken-link": page(full, "?labels=0,2&seed=x"),
        "handwriting-sliders": page(
            tmp_path / "styled", "?labels=0,0,0,1,0,0,0,0,0,0&seed=9&slant=0.5&width=-1"
        ),
        "sliders-without-directions": page(full, "?labels=0,0,0,1,0,0,0,0,0,0&seed=9&slant=0.5"),
        "no-classifier": page(generator_dir),
        "no-weights": page(tmp_path / "empty"),
    }
    assert "The link&#39;s state was not used" in pages["broken-link"]
    assert nu_errors(pages, tmp_path) == []


def test_the_checker_finds_errors(page, tmp_path):
    """The check above can fail: the page's old images without a src are reported."""
    broken = page(tmp_path).replace("<main>", '<main><img id="x" alt="a picture without a source">')
    errors = nu_errors({"broken": broken}, tmp_path)
    assert len(errors) == 1 and "“src”" in errors[0]
