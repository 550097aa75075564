"""The agreement fixture still holds what the server computes: the page's own pictures are checked
against it (tests/test_browser_local.py), so a fixture out of step would check the wrong thing."""

import json

import numpy as np
import pytest
from agreement import FIXTURE, N_STATES, N_STYLED, ROOT, fixture_states, make_fixture


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(FIXTURE))


def test_the_fixture_is_for_the_shipped_weights(fixture):
    shipped = json.loads((ROOT / "weights" / "generator.json").read_text())["sha256"]
    assert str(fixture["generator_sha256"]) == shipped, "the weights changed: run python tests/agreement.py"


def test_the_fixture_covers_the_states_the_page_makes(fixture):
    assert len(fixture["seed"]) == N_STATES + N_STYLED
    assert {0, 2**32 - 1} <= set(fixture["seed"].tolist())
    blends = fixture["blend"]
    assert 0.4 < np.mean(blends > 0) < 0.6 and (blends == 1).any()
    assert (fixture["labels"].sum(axis=1) == 0).any() and (fixture["labels"] == 1).all(axis=1).any()
    pictures = fixture["pixels"].reshape(len(fixture["seed"]), -1)
    assert len({tuple(row) for row in pictures}) > 0.99 * len(pictures)  # pictures differ
    style = fixture["style"]
    assert not style[:N_STATES].any() and style[N_STATES:].any(axis=1).all()
    assert (np.abs(style) == 1).any() and (style[N_STATES:] != 0).all(axis=1).any()  # ends; all three
    for name, values in fixture_states().items():
        np.testing.assert_array_equal(fixture[name], values, err_msg=name)


@pytest.mark.slow  # 1,200 pictures: four seconds
def test_the_server_computes_the_fixtures_noise_and_pixels_bit_for_bit(fixture):
    again = make_fixture()
    assert again["noise"].dtype == np.float32 and again["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(again["noise"].view(np.uint32), fixture["noise"].view(np.uint32))
    np.testing.assert_array_equal(again["pixels"], fixture["pixels"])
